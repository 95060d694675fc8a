"""Shared fixtures: DynamoDB Local for the session, a fresh table per test, the app;
the Act! simulator, the SMTP sink, the admin API, a confirmed person, Chromium.

Nothing is mocked: the ledger talks to the real DynamoDB engine over HTTP on a free
loopback port, pages are rendered by the real Jinja2 templates, requests go through
Chalice's test client or a real HTTP server.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.consent import requests, rules
from chalicelib.consent.subjects import mail_address, normalise_email, subject_key
from chalicelib.core.clock import now_iso
from chalicelib.store import schema
from chalicelib.store.ledger import Ledger, Plan, Snapshot, from_item
from chalicelib.core.services import dynamodb_client, get_catalogue, get_ledger
from chalicelib.core.settings import get_settings
from devstack.dynamodb_local import DynamoDBLocal, ServiceError, free_port

ROOT = Path(__file__).resolve().parent.parent
KEY_OLD = "old-" + "k" * 40
KEY_NEW = "new-" + "n" * 40
PEPPER = "pepper-" + "p" * 40


@pytest.fixture(scope="session")
def dynamodb() -> Iterator[DynamoDBLocal]:
    """One DynamoDB Local for the whole run; a missing Java or npm package fails loudly."""
    server = DynamoDBLocal(log_path=Path(os.environ.get("PYTEST_DDB_LOG", "/dev/null")))
    try:
        server.start()
    except ServiceError as exc:
        pytest.fail(f"DynamoDB Local is needed for these tests: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def env(dynamodb: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """A complete configuration on a fresh, empty table of DynamoDB Local."""
    values = {
        "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1",
        "DYNAMODB_ENDPOINT": dynamodb.endpoint,
        "CONSENT_TABLE": f"test-{uuid.uuid4().hex[:12]}",
        "LINK_SECRET_KEYS": KEY_NEW, "SUBJECT_PEPPER": PEPPER,
        "PUBLIC_BASE_URL": "http://testserver",
    }
    # Nothing of the operator's shell (e.g. a sourced .local/dev.env) leaks into a test.
    from chalicelib.core.settings import _ENV_NAMES
    for name in (*_ENV_NAMES, "AWS_PROFILE", "SECRETS_SSM_PATH", "SECRETS_CACHE_SECONDS",
                 "CONSENT_TABLE_STREAM_ARN"):
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith(("MAIL_", "THROTTLE_")):
            monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    schema.create_table(dynamodb_client(), values["CONSENT_TABLE"])
    if request.node.get_closest_marker("stream") is None:
        # DynamoDB Local keeps every stream record for the whole session (even after
        # delete_table) and each request slows with their number: a 1,000-contact test
        # made later tests 2-7x slower. Only tests that read the stream get one.
        dynamodb_client().update_table(TableName=values["CONSENT_TABLE"],
                                       StreamSpecification={"StreamEnabled": False})
    yield values
    # DynamoDB Local keeps every table in memory: hundreds of them slow it down for the
    # tests that come last, so each test's table goes with the test.
    with contextlib.suppress(ClientError, BotoCoreError):  # a test may have broken it
        dynamodb_client().delete_table(TableName=values["CONSENT_TABLE"])


@pytest.fixture
def ledger(env: dict[str, str]) -> Ledger:
    return get_ledger()


@pytest.fixture
def catalogue(env: dict[str, str]) -> Any:
    return get_catalogue()


@pytest.fixture
def client(env: dict[str, str]) -> Any:
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="test", project_dir=str(ROOT)) as test_client:
        yield test_client


@pytest.fixture
def mint(env: dict[str, str]) -> Callable[..., rules.IssuedLink]:
    """Issue a confirm link the way real traffic does: ``mint("a@b.eu", "newsletter", ...)``.

    One request recorded as signup forms, renewals, campaigns and Act! reconciliation
    record theirs (``consent.requests.draft_request`` + ``plan_request``, one commit): the
    confirm link and the withdraw link that goes with it, their ``link_issued`` events
    and ``LINK#`` records, older confirm links superseded, the profile's address, live
    links and pending expiry. Nothing is mailed (no outbox item): the test holds the
    link, as a campaign delivering by CSV or Act! field hands it over. Returns the
    confirm link (``token``, ``link_id``, ``subject``, ``expires_at``).

    Tests that need a token with no such record behind it (forged, unrecorded, of
    another kind) build it with ``links.mint`` themselves, and say so.
    """
    def _mint(email: str = "ann@example.eu", *purposes: str, channel: str = "test") -> rules.IssuedLink:
        settings, ledger = get_settings(), get_ledger()
        asked = list(dict.fromkeys(purposes or ("newsletter", "events")))
        address = mail_address(email)
        subject = subject_key(settings.subject_pepper, normalise_email(email))
        at, drafted = now_iso(), []

        def build(snap: Snapshot) -> Plan:
            request = requests.draft_request(settings, subject, asked, True, channel, "en",
                                             rules.RequestContext(), at)
            request.order = None  # handed over by the test, not mailed
            drafted.append(request)
            return requests.plan_request(request, snap, address, None, "en", at)

        ledger.commit(subject, build)
        return drafted[-1].asking().issued
    return _mint


@pytest.fixture
def cli_mint(env: dict[str, str]) -> Callable[..., rules.IssuedLink]:
    """Issue one confirm link as the operator's ``link mint`` command does
    (``rules.issue_link``): ``cli_mint("a@b.eu", "newsletter", ...)``.

    For the tests whose assertions list a subject's whole chain event by event (the
    confirm flow, chain verify): a request as real traffic records it (``mint``) also
    issues a withdraw link, one more ``link_issued`` event; the CLI's issuance records
    exactly one. Same signature and result as ``mint``.
    """
    def _mint(email: str = "ann@example.eu", *purposes: str, channel: str = "test") -> rules.IssuedLink:
        return rules.issue_link(get_ledger(), get_settings(), get_catalogue(), email,
                                list(purposes or ("newsletter", "events")), channel=channel)
    return _mint


def scan_table(ledger: Ledger) -> list[dict[str, Any]]:
    """Every item of the table, sorted: compare before/after to prove nothing changed."""
    items, kwargs = [], {"TableName": ledger.table, "ConsistentRead": True}
    while True:
        page = ledger.client.scan(**kwargs)
        items += [from_item(item) for item in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return sorted(items, key=lambda item: (item["pk"], item["sk"]))


@pytest.fixture
def table_items(ledger: Ledger) -> Callable[[], list[dict[str, Any]]]:
    return lambda: scan_table(ledger)


@pytest.fixture
def live_server(env: dict[str, str]) -> Iterator[str]:
    """The app behind Chalice's real threaded HTTP server, on a free loopback port."""
    from chalice.cli.factory import CLIFactory
    from chalice.local import create_local_server

    from app import app

    config = CLIFactory(str(ROOT)).create_config_obj(chalice_stage_name="test")
    port = free_port()
    original_class = type(app)  # create_local_server re-bases the app's class; undo it after
    server = create_local_server(app, config, "127.0.0.1", port)
    # socketserver listens with a backlog of 5: twenty simultaneous clients on a busy
    # machine then see "connection reset". Listening again raises the backlog.
    server.server.socket.listen(128)
    # Headers and body leave in two writes: with Nagle on, each answer waits ~40 ms for
    # the client's delayed ACK.
    server.server.RequestHandlerClass.disable_nagle_algorithm = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server.server_close()
    app.__class__ = original_class


def form_fields(html: str) -> dict[str, str]:
    """The hidden fields of the page's form (anti-forgery token, language, text versions)."""
    import re

    return {name: value for name, value in
            re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html)}


def new_secret() -> str:
    return secrets.token_urlsafe(40)


# -- Act! -------------------------------------------------------------------------------

ACT_USER, ACT_PASSWORD, ACT_DATABASE = "OptinProof Sync", "sim-password", "OptinProofDemo"
#: The simulated Act! server keeps French wall time, so every Act! test crosses a zone.
ACT_TIMEZONE = "Europe/Paris"


@pytest.fixture
def act_sim() -> Iterator[Any]:
    """A fresh Act! simulator (demo contacts) on a free loopback port, on French time."""
    from devstack.act_simulator import ActSimulator

    with ActSimulator(port=0, database=ACT_DATABASE, users={ACT_USER: ACT_PASSWORD},
                      seed="demo", timezone_name=ACT_TIMEZONE) as sim:
        yield sim


@pytest.fixture
def act_env(env: dict[str, str], act_sim: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The app configured for the simulator, consent fields created as `act setup` does."""
    from chalicelib.act import client as act_client
    from chalicelib.act import fields

    values = {"ACT_API_URL": act_sim.base_url, "ACT_DATABASE": ACT_DATABASE,
              "ACT_USERNAME": ACT_USER, "ACT_PASSWORD": ACT_PASSWORD, "ACT_TIMEOUT": "1",
              "ACT_MAX_RETRIES": "3", "ACT_TIMEZONE": ACT_TIMEZONE}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    act_client._TOKENS.clear()
    settings = get_settings()
    fields.setup(act_client.ActClient(settings.act), get_catalogue())
    return {**env, **values}


@pytest.fixture
def pusher(act_env: dict[str, str]) -> Any:
    """A sync pusher whose Act! client does not really sleep (waits are recorded)."""
    from chalicelib.act.client import ActClient
    from chalicelib.act.sync import Pusher

    settings = get_settings()
    waits: list[float] = []
    client = ActClient(settings.act, sleep=waits.append)
    made = Pusher(get_ledger(), client, get_catalogue(), settings)
    made.waits = waits  # type: ignore[attr-defined]
    return made


# -- mail and signup forms ----------------------------------------------------------------

SHOP = "https://shop.example"

#: Forms for tests: no minimum fill time unless a test asks for one.
TEST_FORMS = f"""
[[forms]]
id = "website"
purposes = ["newsletter", "promotions", "events"]
allowed_origins = ["{SHOP}"]
ask_name = true
min_fill_seconds = 0

[[forms]]
id = "strict"
purposes = ["newsletter"]
allowed_origins = ["{SHOP}"]
min_fill_seconds = 30
allow_plain_html = false

[[forms]]
id = "redirecting"
purposes = ["newsletter"]
allowed_origins = ["{SHOP}"]
min_fill_seconds = 0
redirect_after_submit = "{SHOP}/thanks"
"""


@pytest.fixture(scope="session")
def mail_sink_server() -> Iterator[Any]:
    from devstack.mailsink import MailSink

    with MailSink() as sink:
        yield sink


@pytest.fixture
def mail_sink(mail_sink_server: Any) -> Any:
    """The session's SMTP sink, emptied and accepting mail."""
    mail_sink_server.clear()
    mail_sink_server.set_failure(None)
    return mail_sink_server


@pytest.fixture
def mail_env(env: dict[str, str], mail_sink: Any, monkeypatch: pytest.MonkeyPatch,
             tmp_path: Path) -> dict[str, str]:
    """The app sending through the SMTP sink, with the test forms in its catalogue."""
    shipped = (ROOT / "catalogue.toml").read_text(encoding="utf-8")
    catalogue_file = tmp_path / "catalogue.toml"
    catalogue_file.write_text(shipped.split("[[forms]]")[0] + TEST_FORMS, encoding="utf-8")
    values = {"MAIL_TRANSPORT": "smtp", "MAIL_SMTP_HOST": "127.0.0.1",
              "MAIL_SMTP_PORT": str(mail_sink.smtp_port), "MAIL_SMTP_SECURITY": "none",
              "MAIL_FROM": "Example Outdoor <consent@example-outdoor.eu>",
              "CONSENT_CATALOGUE": str(catalogue_file), "MAIL_TIMEOUT": "2",
              "SIGNUP_MIN_RESPONSE": "0", "MAIL_DELIVERY": "inline"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return {**env, **values}


# -- the admin API and a person with a rights link -----------------------------------------


@pytest.fixture
def admin_env(act_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The Act! configuration plus the admin API's key (tests.support.admin signs with it)."""
    from tests.support.admin import ADMIN_KEY

    monkeypatch.setenv("ADMIN_SECRET_KEYS", ADMIN_KEY)
    return {**act_env, "ADMIN_SECRET_KEYS": ADMIN_KEY}


@pytest.fixture
def person(mail_env, act_env, client, mail_sink, act_sim) -> dict[str, str]:
    """Zoé, an Act! contact, confirmed through the form and the mail, with a rights link."""
    from tests.support.rights import ask_rights, confirmed, rights_path

    act_sim.add_contact(firstName="Zoé", lastName="Rights", emailAddress="zoe@example.eu")
    confirm = confirmed(client, mail_sink, "zoe@example.eu")
    mail_sink.clear()
    assert ask_rights(client, "Zoe@Example.eu").status_code == 200
    assert len(mail_sink.messages) == 1
    return {"email": "zoe@example.eu", "confirm": confirm, "rights": rights_path(mail_sink)}


# -- browser (Debian's Chromium, loopback only) --------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium, or None when it is not installed (each test then fails, saying why)."""
    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        yield None
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=CHROMIUM_ARGS, timeout=30_000)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any, live_server: str) -> Iterator[tuple[Any, Any] | None]:
    """A fresh English-speaking browser context on the live app, with everything recorded."""
    from tests.support.browser import TIMEOUT_MS, Watch, is_app

    if browser is None:
        yield None
        return
    watch = Watch(live_server)
    context = browser.new_context(locale="en-GB", viewport={"width": 900, "height": 1000})

    def guard(route: Any) -> None:
        if is_app(route.request.url, live_server):
            route.continue_()
        else:
            watch.blocked.append(route.request.url)
            route.abort("blockedbyclient")

    context.route("**/*", guard)
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    tab.on("console", lambda message: watch.console.append((message.type, message.text)))
    tab.on("pageerror", lambda error: watch.page_errors.append(str(error)))
    tab.on("request", lambda request: watch.requests.append((request.method, request.url)))
    try:
        yield tab, watch
    finally:
        context.close()


@pytest.fixture
def site(mail_env, mail_sink, act_env, live_server, tmp_path, monkeypatch) -> dict[str, Any]:
    """A catalogue whose form may be embedded on the sink's origin, and a page doing so."""
    from chalicelib.consent.catalogue import load_catalogue
    from chalicelib.web import embed

    shipped = Path(mail_env["CONSENT_CATALOGUE"]).read_text(encoding="utf-8")
    path = tmp_path / "site-catalogue.toml"
    path.write_text(shipped.split("[[forms]]")[0] + f"""
[[forms]]
id = "website"
purposes = ["newsletter", "promotions", "events"]
allowed_origins = ["{mail_sink.http_url}"]
ask_name = true
min_fill_seconds = 1
""", encoding="utf-8")
    monkeypatch.setenv("CONSENT_CATALOGUE", str(path))
    monkeypatch.setenv("PUBLIC_BASE_URL", live_server)
    catalogue = load_catalogue(path)
    form = catalogue.forms["website"]
    for kind in embed.KINDS:
        mail_sink.add_page(f"/embed-{kind}", (
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Shop</title>"
            f"</head><body><h1>Example shop</h1>{embed.snippet(kind, live_server, form, catalogue, 'en')}"
            "</body></html>"))
    return {"app": live_server, "site": mail_sink.http_url, "sink": mail_sink}


@pytest.fixture
def tab(browser: Any, site: dict[str, Any]) -> Iterator[tuple[Any, list[str]]]:
    """A browser context that may reach the app and the embedding site, and nothing else."""
    from tests.support.browser import MISSING_CHROMIUM, TIMEOUT_MS

    if browser is None:
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    allowed = {urlsplit(site["app"]).port, urlsplit(site["site"]).port}
    problems: list[str] = []
    context = browser.new_context(locale="en-GB", viewport={"width": 1000, "height": 1200})

    def guard(route: Any) -> None:
        parts = urlsplit(route.request.url)
        if parts.hostname == "127.0.0.1" and parts.port in allowed:
            route.continue_()
        else:
            problems.append(f"blocked {route.request.url}")
            route.abort("blockedbyclient")

    context.route("**/*", guard)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    from playwright.sync_api import expect
    expect.set_options(timeout=TIMEOUT_MS)  # a loaded machine needs more than 5 s
    page.on("console", lambda m: problems.append(f"console {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"page error {error}"))
    try:
        yield page, problems
    finally:
        context.close()


# -- legal basis: a catalogue with purposes not on consent ----------------------------------

#: A soft opt-in purpose (with its Act! basis field) and a B2B legitimate-interest one.
BASIS_PURPOSES = """
[[purposes]]
id = "customer_tips"
email_marketing = true
legal_basis = "soft_opt_in"
title.en = "Care tips for what you bought"
title.fr = "Conseils d'entretien pour vos achats"
text.en = "As a customer, we e-mail you care tips and accessories for the products you bought."
text.fr = "En tant que client, nous vous envoyons des conseils et accessoires pour vos achats."
opt_out.en = "You can object at any time, free of charge, with the link in every e-mail."
opt_out.fr = "Vous pouvez vous y opposer à tout moment, sans frais, avec le lien de chaque e-mail."
[purposes.act]
status_field = "Consent Tips"
date_field = "Consent Tips At"
basis_field = "Consent Tips Basis"

[[purposes]]
id = "trade_news"
email_marketing = true
legal_basis = "legitimate_interest"
title.en = "News for professionals"
title.fr = "Actualités pour les professionnels"
text.en = "At your work address, we e-mail you news about products for your trade."
text.fr = "À votre adresse professionnelle, nous vous envoyons des nouveautés pour votre métier."
opt_out.en = "Object at any time with the link in every e-mail."
opt_out.fr = "Opposez-vous à tout moment avec le lien de chaque e-mail."
"""


BASIS_FORM = f"""
[[forms]]
id = "shop"
purposes = ["newsletter", "customer_tips"]
allowed_origins = ["{SHOP}"]
min_fill_seconds = 0
"""


@pytest.fixture
def basis_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """The shipped catalogue plus ``customer_tips`` (soft opt-in) and ``trade_news``
    (legitimate interest), and the test forms."""
    shipped = (ROOT / "catalogue.toml").read_text(encoding="utf-8")
    catalogue_file = tmp_path / "basis-catalogue.toml"
    catalogue_file.write_text(shipped.split("[[forms]]")[0] + BASIS_PURPOSES + TEST_FORMS
                              + BASIS_FORM, encoding="utf-8")
    monkeypatch.setenv("CONSENT_CATALOGUE", str(catalogue_file))
    return {**env, "CONSENT_CATALOGUE": str(catalogue_file)}


@pytest.fixture(scope="session")
def tsa_server() -> Iterator[Any]:
    """One real RFC 3161 TSA on loopback for the run (``openssl ts -reply``), with a
    throw-away CA generated at start; tests trust ``tsa_server.ca_pem``."""
    from devstack.tsa import LocalTSA

    try:
        server = LocalTSA().start()
    except (OSError, RuntimeError) as exc:
        pytest.fail(f"the loopback TSA needs the openssl command (apt-get install openssl): "
                    f"{exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def tsa(tsa_server: Any, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The TSA, up and named by ``TSA_URLS`` for this test (``tsa.fail`` takes it down)."""
    tsa_server.fail = False
    monkeypatch.setenv("TSA_URLS", tsa_server.url)
    env["TSA_URLS"] = tsa_server.url
    yield tsa_server
    tsa_server.fail = False
