"""``make run``: the whole local stack, with the URLs to open.

Starts DynamoDB Local (data kept in .local/dynamodb) and creates the table, starts the
Act! simulator (demo contacts) and creates the consent fields there, starts a mail
sink (SMTP on loopback, mails viewable in the browser, kept in .local/mail) with a
demo page that embeds the signup form from another origin, runs the sync and mail
sweeps, mints a demo confirmation link, and serves the app with ``chalice local``.
Ctrl-C stops it all.
Local secrets are generated once into .local/dev.env; ``source .local/dev.env`` gives
a shell the same configuration for the CLI.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

from devstack.act_simulator import ActSimulator
from devstack.dynamodb_local import ROOT, DynamoDBLocal, ServiceError, local_aws_environment
from devstack.mailsink import MailSink
from devstack.tsa import LocalTSA

#: Where the local stack keeps its data, logs and secrets (tests point it elsewhere).
STATE_DIR = Path(os.environ.get("OPTINPROOF_STATE_DIR", ROOT / ".local"))
ENV_FILE = STATE_DIR / "dev.env"
DEMO_EMAIL = "demo@example.com"
ACT_USER, ACT_PASSWORD, ACT_DATABASE = "OptinProof Sync", "sim-password", "OptinProofDemo"
#: The simulated Act! server runs on French time, like the customers this is for.
ACT_TIMEZONE = "Europe/Paris"


def local_secrets() -> dict[str, str]:
    """Secrets for the local stack, generated once and kept (links survive restarts)."""
    STATE_DIR.mkdir(exist_ok=True)
    values: dict[str, str] = {}
    if ENV_FILE.exists():
        for line in ENV_FILE.read_text().splitlines():
            if line.startswith("export ") and "=" in line:
                name, _, value = line[len("export "):].partition("=")
                values[name] = value.strip("'\"")
    values.setdefault("LINK_SECRET_KEYS", secrets.token_urlsafe(48))
    values.setdefault("SUBJECT_PEPPER", secrets.token_urlsafe(48))
    values.setdefault("ADMIN_SECRET_KEYS", secrets.token_urlsafe(48))
    return values


DEMO_FORM = "local-demo"


def local_catalogue(demo_origin: str) -> Path:
    """catalogue.toml plus a form the demo page (another origin) may embed.

    Written at each start: edits to catalogue.toml show after restarting ``make run``.
    """
    shipped = (ROOT / "catalogue.toml").read_text(encoding="utf-8")
    data = tomllib.loads(shipped)
    purposes = [p["id"] for p in data.get("purposes", [])]
    if any(form.get("id") == DEMO_FORM for form in data.get("forms", [])):
        raise ServiceError(f"catalogue.toml already defines a form {DEMO_FORM!r}; rename it")
    path = STATE_DIR / "catalogue.toml"
    path.write_text(shipped + f"""

# Added by `make run` (not in catalogue.toml): the demo embed page's form.
[[forms]]
id = "{DEMO_FORM}"
purposes = {json.dumps(purposes)}
allowed_origins = ["{demo_origin}"]
ask_name = true
min_fill_seconds = 2
heading.en = "Hear from us (local demo)"
heading.fr = "Restons en contact (démo locale)"
""", encoding="utf-8")
    return path


def demo_page(base_url: str) -> str:
    """A page of another website embedding the form three ways (served by the mail sink)."""
    from chalicelib.web import embed
    from chalicelib.consent.catalogue import load_catalogue

    catalogue = load_catalogue(STATE_DIR / "catalogue.toml")
    form = catalogue.forms[DEMO_FORM]
    parts = [(kind, embed.snippet(kind, base_url, form, catalogue)) for kind in embed.KINDS]
    sections = "".join(f"<section><h2>Embedded as: {kind}</h2>\n{code}\n</section>\n"
                       for kind, code in parts)
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>Example Outdoor — a website embedding the signup form</title>"
            "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:48rem;margin:2rem auto;"
            "padding:0 1rem}section{border:1px dashed #888;padding:1rem;margin:1.5rem 0}"
            "</style></head><body><h1>Example Outdoor (demo website on another origin)</h1>"
            "<p>The same form, embedded the three ways the README describes. Mails arrive in "
            "<a href=\"/\">the local mailbox</a>.</p>" + sections + "</body></html>")


def write_env_file(env: dict[str, str]) -> None:
    names = ["CONSENT_TABLE", "DYNAMODB_ENDPOINT", "PUBLIC_BASE_URL", "LINK_SECRET_KEYS",
             "SUBJECT_PEPPER", "ADMIN_SECRET_KEYS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
             "AWS_DEFAULT_REGION",
             "ACT_API_URL", "ACT_DATABASE", "ACT_USERNAME", "ACT_PASSWORD", "ACT_TIMEZONE",
             "CONSENT_CATALOGUE",
             "MAIL_TRANSPORT", "MAIL_FROM", "MAIL_SMTP_HOST", "MAIL_SMTP_PORT",
             "MAIL_SMTP_SECURITY", "TSA_URLS"]
    lines = ["# Local stack configuration, written by `make run`. Use: source .local/dev.env"]
    lines += [f"export {name}='{env[name]}'" for name in names]
    ENV_FILE.write_text("\n".join(lines) + "\n")
    ENV_FILE.chmod(0o600)


def cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "chalicelib.cli", *args], env=env, cwd=ROOT,
                            capture_output=True, text=True)
    if result.returncode:
        raise ServiceError(f"cli {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def wait_http(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(f"chalice local exited with status {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.3)
    raise ServiceError(f"{url} did not answer within {timeout:.0f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")),
                        help="port of the app (default: $PORT or 8000)")
    parser.add_argument("--dynamodb-port", type=int,
                        default=int(os.environ.get("DYNAMODB_PORT", "8001")),
                        help="port of DynamoDB Local (default: $DYNAMODB_PORT or 8001)")
    parser.add_argument("--act-port", type=int, default=int(os.environ.get("ACT_PORT", "8002")),
                        help="port of the Act! simulator (default: $ACT_PORT or 8002)")
    parser.add_argument("--mail-port", type=int, default=int(os.environ.get("MAIL_PORT", "8003")),
                        help="port of the mailbox page and demo website (default: $MAIL_PORT "
                             "or 8003)")
    parser.add_argument("--tsa-port", type=int, default=int(os.environ.get("TSA_PORT", "8004")),
                        help="port of the local RFC 3161 time-stamping authority (default: "
                             "$TSA_PORT or 8004)")
    parser.add_argument("--smtp-port", type=int, default=int(os.environ.get("SMTP_PORT", "8025")),
                        help="port of the local SMTP sink (default: $SMTP_PORT or 8025)")
    args = parser.parse_args(argv)

    base_url = f"http://127.0.0.1:{args.port}"
    dynamodb = DynamoDBLocal(port=args.dynamodb_port, data_dir=STATE_DIR / "dynamodb",
                             log_path=STATE_DIR / "dynamodb.log")
    STATE_DIR.mkdir(exist_ok=True)
    try:
        dynamodb.start()
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    act = ActSimulator(port=args.act_port, database=ACT_DATABASE, users={ACT_USER: ACT_PASSWORD},
                       seed="demo", timezone_name=ACT_TIMEZONE)
    try:
        act.start()
    except OSError as exc:
        dynamodb.stop()
        print(f"error: the Act! simulator cannot listen on port {args.act_port}: {exc}", file=sys.stderr)
        return 1
    sink = MailSink(smtp_port=args.smtp_port, http_port=args.mail_port,
                    folder=STATE_DIR / "mail")
    try:
        sink.start()
        catalogue = local_catalogue(sink.http_url)
    except (OSError, ServiceError) as exc:
        sink.stop()
        act.stop()
        dynamodb.stop()
        print(f"error: the mail sink cannot start: {exc}", file=sys.stderr)
        return 1
    shutil.rmtree(STATE_DIR / "tsa", ignore_errors=True)  # a throw-away CA per run
    tsa = LocalTSA(folder=STATE_DIR / "tsa", port=args.tsa_port)
    try:
        tsa.start()
    except (OSError, RuntimeError) as exc:
        sink.stop()
        act.stop()
        dynamodb.stop()
        print(f"error: the local TSA cannot start: {exc}", file=sys.stderr)
        return 1
    env = {**os.environ, **local_aws_environment(), **local_secrets(),
           "TSA_URLS": tsa.url,
           "CONSENT_TABLE": "optinproof-local", "DYNAMODB_ENDPOINT": dynamodb.endpoint,
           "PUBLIC_BASE_URL": base_url, "PYTHONUNBUFFERED": "1",
           "ACT_API_URL": act.base_url, "ACT_DATABASE": ACT_DATABASE, "ACT_USERNAME": ACT_USER,
           "ACT_PASSWORD": ACT_PASSWORD, "ACT_TIMEZONE": ACT_TIMEZONE,
           "CONSENT_CATALOGUE": str(catalogue),
           "MAIL_TRANSPORT": "smtp", "MAIL_FROM": "Example Outdoor <consent@example-outdoor.eu>",
           "MAIL_SMTP_HOST": "127.0.0.1", "MAIL_SMTP_PORT": str(sink.smtp_port),
           "MAIL_SMTP_SECURITY": "none"}
    write_env_file(env)
    sink.add_page("/embed-demo", demo_page(base_url))
    app = sweeper = mailer = campaigner = anchorer = None
    try:
        cli(env, "table", "create")
        cli(env, "act", "setup")
        sweeper = subprocess.Popen([sys.executable, "-m", "chalicelib.cli", "sync", "drain",
                                    "--interval", "2"], cwd=ROOT, env=env,
                                   stdout=open(STATE_DIR / "sync.log", "ab"), stderr=subprocess.STDOUT)
        mailer = subprocess.Popen([sys.executable, "-m", "chalicelib.cli", "mail", "sweep",
                                   "--interval", "2"], cwd=ROOT, env=env,
                                  stdout=open(STATE_DIR / "mail.log", "ab"), stderr=subprocess.STDOUT)
        campaigner = subprocess.Popen([sys.executable, "-m", "chalicelib.cli", "campaign", "work",
                                       "--interval", "5", "--budget", "30"], cwd=ROOT, env=env,
                                      stdout=open(STATE_DIR / "campaigns.log", "ab"),
                                      stderr=subprocess.STDOUT)
        # No stream under chalice local: the catch-up scan finds the heads to anchor.
        anchorer = subprocess.Popen([sys.executable, "-m", "chalicelib.cli", "anchor", "run",
                                     "--catch-up", "--interval", "60"], cwd=ROOT, env=env,
                                    stdout=open(STATE_DIR / "anchor.log", "ab"),
                                    stderr=subprocess.STDOUT)
        admin_token = cli(env, "admin", "token", "--operator", "local-operator", "--ttl", "12h")
        dashboard_link = cli(env, "admin", "link", "--operator", "local-operator", "--ttl", "12h",
                             "--base-url", base_url)
        demo = cli(env, "link", "mint", "--email", DEMO_EMAIL, "--purpose", "newsletter",
                   "--purpose", "promotions", "--purpose", "events", "--channel", "demo")
        chalice = str(Path(sys.executable).parent / "chalice")
        app = subprocess.Popen([chalice, "local", "--host", "127.0.0.1",
                                "--port", str(args.port), "--stage", "local", "--no-autoreload"],
                               cwd=ROOT, env=env)
        wait_http(f"{base_url}/health", app)
        print(f"""
OptinProof local stack is up.

  App (chalice local)     {base_url}            health: {base_url}/health
  DynamoDB Local          {dynamodb.endpoint}   table: optinproof-local (data in {os.path.relpath(STATE_DIR / 'dynamodb', ROOT)})
  Act! simulator          {act.base_url.removesuffix('/act.web.api')}/   contacts, consent fields, histories
                          API {act.base_url}  user {ACT_USER!r}, database {ACT_DATABASE!r}
  Mailbox (SMTP sink)     {sink.http_url}/   SMTP on 127.0.0.1:{sink.smtp_port}, mails kept in .local/mail
  Sync and mail sweeps    every 2 s (chalice local has no table stream), logs in .local/sync.log and .local/mail.log
  Time-stamping (RFC 3161) {tsa.url}   anchors every 60 s, log in .local/anchor.log;
                          its throw-away root: {os.path.relpath(tsa.ca_pem, ROOT)}
  Campaign worker         every 5 s (campaigns started from the dashboard or the admin API), log in .local/campaigns.log

  Admin API token (12 h): curl -H "Authorization: Bearer {admin_token}" {base_url}/admin/campaigns
  Consent dashboard       open this sign-in link (12 h): {dashboard_link}

  Signup form             {base_url}/signup/website          (the catalogue's form, full page)
  Embedded on a website   {sink.http_url}/embed-demo    (iframe, plain HTML and script embeds)
  Try the whole loop: fill the form on the demo website, open the mail in the mailbox,
  follow its link, decide, and see the Act! simulator's contact change.

  Rights page (your data) {base_url}/rights

  Demo confirmation link for {DEMO_EMAIL}, open it in a browser:
  {demo}

  Operator CLI in another shell:  source .local/dev.env && .venv/bin/python -m chalicelib.cli --help
  Stop everything with Ctrl-C.
""", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        app.wait()
        return app.returncode or 0
    except KeyboardInterrupt:
        return 0
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for process in (app, sweeper, mailer, campaigner, anchorer):
            if process and process.poll() is None:
                process.terminate()
                process.wait(timeout=10)
        tsa.stop()
        sink.stop()
        act.stop()
        dynamodb.stop()


if __name__ == "__main__":
    sys.exit(main())
