"""The operator CLI: ``python -m chalicelib.cli --help``.

Every command reads the same environment variables as the app (see the README), so
what the CLI writes is exactly what the app reads. Errors print one line saying what
to fix and exit non-zero.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.act import reconcile as acthooks
from chalicelib.act import fields
from chalicelib.act import dates
from chalicelib.web import admin_auth
from chalicelib.proof import audit
from chalicelib.rights import breach
from chalicelib.campaigns import jobs
from chalicelib.campaigns import define
from chalicelib.campaigns import runner as campaign_runner
from chalicelib.campaigns import report as campaign_report
from chalicelib.consent import rules
from chalicelib.web import embed
from chalicelib.rights import erasure
from chalicelib.proof import evidence
from chalicelib.store import infra
from chalicelib.mail import compose
from chalicelib.mail import outbox
from chalicelib.proof import chain as proof
from chalicelib.store import schema
from chalicelib.core import secrets
from chalicelib.act import sync
from chalicelib.web import webhooks_out
from chalicelib.core.clock import iso, parse_instant
from chalicelib.core.errors import OptinProofError
from chalicelib.core.services import (
    dynamodb_client, get_act_client, get_catalogue, get_ledger, get_postman, get_pusher,
    get_reconciler,
)
from chalicelib.consent.catalogue import load_catalogue
from chalicelib.core.settings import catalogue_path, get_settings, parse_duration
from chalicelib.mail.transports import get_transport
from chalicelib.consent.subjects import normalise_email, subject_key
from chalicelib.store import keys

LINK_ROUTES = {"confirm": "c", "withdraw": "u", "preferences": "p", "rights": "r"}


def _print(data: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    elif isinstance(data, dict):
        for key, value in data.items():
            print(f"{key}: {value}")
    else:
        print(data)


def cmd_table_create(args: argparse.Namespace) -> int:
    settings = get_settings()
    for line in schema.create_table(dynamodb_client(settings), args.table or settings.consent_table):
        print(line)
    return 0


def cmd_table_describe(args: argparse.Namespace) -> int:
    settings = get_settings()
    _print(schema.describe(dynamodb_client(settings), args.table or settings.consent_table),
           args.json)
    return 0


def link_url(base_url: str, kind: str, token: str, locale: str | None = None) -> str:
    """The public URL of a link: ``<base>/<route>/<token>[?lang=..]``."""
    if not base_url:
        raise OptinProofError("PUBLIC_BASE_URL is not set (or pass --base-url): the address "
                              "people open, e.g. https://consent.example.eu")
    suffix = f"?lang={locale}" if locale else ""
    return f"{base_url.rstrip('/')}/{LINK_ROUTES[kind]}/{token}{suffix}"


def cmd_link_mint(args: argparse.Namespace) -> int:
    settings = get_settings()
    issued = rules.issue_link(get_ledger(settings), settings, get_catalogue(settings),
                                args.email, args.purpose, kind=args.kind,
                                channel=args.channel, locale=args.locale)
    url = link_url(args.base_url or settings.public_base_url, args.kind, issued.token, args.locale)
    if args.json:
        _print({"url": url, "link_id": issued.link_id, "subject": issued.subject,
                "expires_at": issued.expires_at}, True)
    else:
        print(url)
        print(f"link {issued.link_id} for subject {issued.subject[:12]}…, "
              f"expires {issued.expires_at}", file=sys.stderr)
    return 0


def _report_line(report: proof.ChainReport) -> str:
    if report.ok:
        return f"ok      {report.subject}  {report.events} events"
    where = f"at event {report.broken_seq}: " if report.broken_seq else ""
    return (f"BROKEN  {report.subject}  {where}{report.reason} "
            f"({report.events} events verified)")


def cmd_chain_verify(args: argparse.Namespace) -> int:
    settings = get_settings()
    ledger = get_ledger(settings)
    if args.email:
        subjects: Any = [subject_key(settings.subject_pepper, normalise_email(args.email))]
    elif args.subject:
        subjects = [args.subject]
    else:
        subjects = ledger.subjects()
    checked = broken = 0
    for subject in subjects:
        report = audit.verify_subject(ledger, subject)
        checked += 1
        if not report.ok:
            broken += 1
        if not report.ok or not args.quiet:
            print(_report_line(report))
    if checked == 0:
        print("no subject found" if not args.all else "the table holds no subject yet")
        return 1 if not args.all else 0
    print(f"{checked} subject(s) checked, {broken} broken")
    return 1 if broken else 0


def cmd_purposes_check(args: argparse.Namespace) -> int:
    catalogue = load_catalogue(catalogue_path())
    rows = [{"id": p.id, "version": p.version, "email_marketing": p.email_marketing,
             "texts": {loc: t.sha256 for loc, t in p.texts.items()}}
            for p in catalogue.purposes.values()]
    if args.json:
        _print({"controller": catalogue.controller.name, "purposes": rows}, True)
    else:
        print(f"{catalogue.source}: valid, controller {catalogue.controller.name!r}, "
              f"locales {', '.join(catalogue.locales)}")
        for row in rows:
            print(f"  {row['id']:<20} version {row['version']}")
    return 0


def cmd_act_check(args: argparse.Namespace) -> int:
    settings = get_settings()
    client = get_act_client(settings)
    info = client.system()
    client.authorize()
    print(f"Act! {settings.act.api_url} (API {info.get('apiVersion', '?')}), database "
          f"{settings.act.database!r}: signed in as {settings.act.username!r}")
    zone_note = "" if "ACT_TIMEZONE" in os.environ else " (ACT_TIMEZONE unset: set it to the Act! " \
        "server's zone, e.g. Europe/Paris)"
    print(f"  dates written as the Act! server's local time in {dates.describe(client.tz)}"
          f"{zone_note}")
    results = fields.check(client.contact_fields(),
                              fields.wanted_fields(get_catalogue(settings)))
    for result in results:
        mark = "ok     " if result.ok else "PROBLEM"
        detail = f"key {result.key}, {result.act_type}" if result.ok else result.problem
        print(f"  {mark} {result.wanted.purpose:<14} {result.wanted.role:<12} "
              f"{result.wanted.display_name!r}: {detail}")
    bad = sum(1 for r in results if not r.ok)
    print(f"{len(results)} field(s) mapped, {bad} problem(s)")
    return 1 if bad else 0


def cmd_act_setup(args: argparse.Namespace) -> int:
    settings = get_settings()
    lines = fields.setup(get_act_client(settings), get_catalogue(settings))
    for line in lines:
        print(line)
    return 1 if any(line.startswith("CONFLICT") for line in lines) else 0


def cmd_act_webhooks_register(args: argparse.Namespace) -> int:
    settings = get_settings()
    act = settings.act
    if act is None or not act.webhook_token or not act.webhook_path_secret:
        raise OptinProofError("Set ACT_WEBHOOK_TOKEN and ACT_WEBHOOK_PATH_SECRET first (each "
                              "python -c 'import secrets; print(secrets.token_urlsafe(32))').")
    base = (args.base_url or settings.public_base_url).rstrip("/")
    if not base:
        raise OptinProofError("PUBLIC_BASE_URL is not set (or pass --base-url).")
    client = get_act_client(settings)
    existing = {hook.get("callbackId"): hook for hook in client.webhooks()}
    for trigger in ("Created", "Updated"):
        body = {"monitor": "Contacts", "triggerEvent": trigger,
                "callbackUrl": f"{base}/hooks/act/{act.webhook_path_secret}/{trigger.lower()}",
                "callbackId": f"optinproof-contacts-{trigger.lower()}",
                "callbackToken": act.webhook_token,
                "description": f"OptinProof: contacts {trigger.lower()} (consent reconciliation)"}
        hook = existing.get(body["callbackId"])
        if hook is None:
            made = client.register_webhook(body)
            print(f"registered  Contacts.{trigger} -> {base}/hooks/act/…/{trigger.lower()} "
                  f"(id {made.get('id')})")
        else:
            client.update_webhook(hook["id"], body)
            print(f"updated     Contacts.{trigger} (id {hook['id']}): URL and token refreshed")
    return 0


def cmd_act_webhooks_list(args: argparse.Namespace) -> int:
    hooks = get_act_client().webhooks()
    secret = (get_settings().act.webhook_path_secret or "") if get_settings().act else ""
    for hook in hooks:  # the path secret stays out of terminals and logs
        if secret and secret in str(hook.get("callbackUrl") or ""):
            hook["callbackUrl"] = hook["callbackUrl"].replace(secret, "…")
    if args.json:
        _print(hooks, True)
        return 0
    for hook in hooks:
        state = "SUSPENDED" if hook.get("suspended") else "active"
        print(f"{state:<10} {hook.get('monitor')}.{hook.get('triggerEvent'):<8} "
              f"{hook.get('callbackId') or '-'}  failed attempts {hook.get('failedAttempts', 0)}  "
              f"last sent {hook.get('lastNotificationSent') or '-'}")
    if not hooks:
        print("no webhook registered (act webhooks register)")
    return 0


def cmd_act_reconcile(args: argparse.Namespace) -> int:
    reconciler = get_reconciler()
    pending = reconciler.pending()
    for contact_id in pending:
        outcome = reconciler.process(contact_id)
        print(f"{contact_id}: {', '.join(outcome.actions) or 'nothing to do'}")
    print(f"{len(pending)} change(s) reconciled")
    return 0


def _instant(text: str, name: str) -> str:
    """An ISO 8601 date-time with its zone, as our UTC instant; the error says how to write it."""
    try:
        return iso(parse_instant(text))
    except ValueError:
        raise OptinProofError(f"{name} {text!r}: write a date-time with its zone, e.g. "
                              "2026-11-01T00:00:00Z or 2026-11-01T01:00:00+01:00.") from None


def cmd_act_poll(args: argparse.Namespace) -> int:
    ledger, reconciler = get_ledger(), get_reconciler()
    since = _instant(args.since, "--since") if args.since else None

    def show(outcome: acthooks.Outcome) -> None:
        if outcome.actions:
            print(f"{outcome.contact_id}: {', '.join(outcome.actions)}")

    report = acthooks.poll(ledger, reconciler, since, on_contact=show)
    print(f"{report.read} contact(s) edited since {report.since} read: "
          f"{len(report.reconciled)} reconciled, {report.own_writes} were our own writes, "
          f"{report.already_seen} already seen; watermark {report.watermark}")
    return 0


def cmd_act_drift(args: argparse.Namespace) -> int:
    rows = acthooks.drift_rows(get_ledger())
    if args.json:
        _print(rows, True)
        return 0
    for row in rows:
        print(f"{row['found_at']}  contact {row['contact_id']}  {', '.join(row['purposes'])}  "
              f"{row['action']}{'  (after an address change)' if row.get('after_address_change') else ''}")
    print(f"{len(rows)} contact(s) with consent fields edited by hand in Act!")
    return 0


def cmd_webhooks_status(args: argparse.Namespace) -> int:
    rows = webhooks_out.status_rows(get_ledger())
    if args.json:
        _print(rows, True)
        return 0
    for row in rows:
        last = (row.get("log") or [{}])[-1]
        print(f"{row['status']:<8} {row['pk'].removeprefix('HOOKOUT#')} -> {row['url']}  "
              f"attempts {row.get('attempts', 0)}  next {row.get('sync_due') or '-'}  "
              f"last {last.get('status') or last.get('error') or '-'}")
    print(f"{len(rows)} delivery(ies) not delivered" if rows else "every delivery was delivered")
    return 0


def cmd_webhooks_retry(args: argparse.Namespace) -> int:
    ledger = get_ledger()
    if args.failed:
        print(f"{webhooks_out.requeue_failed(ledger)} failed delivery(ies) queued again")
    dispatcher = webhooks_out.Dispatcher(ledger, get_settings())
    statuses = [dispatcher.deliver(*key) for key in webhooks_out.due_keys(ledger, include_later=True)]
    print(", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses))) or "nothing to send")
    return 1 if "pending" in statuses or "failed" in statuses else 0


def cmd_sync_status(args: argparse.Namespace) -> int:
    rows = sync.status_rows(get_ledger())
    if args.json:
        _print(rows, True)
        return 0
    if not rows:
        print("nothing pending: every decision is in Act!")
        return 0
    for row in rows:
        print(f"{row['sync_status']:<15} {row['subject'][:12]}… {row['purpose']:<14} "
              f"{row['state']:<10} decided {row['decided_at']}  attempts {row['attempts']}  "
              f"next {row['due']}  {row['error'] if row['error'] != '-' else ''}")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["sync_status"]] = counts.get(row["sync_status"], 0) + 1
    print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    return 0


def cmd_sync_drain(args: argparse.Namespace) -> int:
    settings = get_settings()
    pusher = get_pusher(settings)
    rounds = 0
    while True:
        try:
            keys = sync.all_keys(pusher.ledger) if args.all else sync.due_keys(pusher.ledger)
        except OptinProofError as exc:
            if not args.interval:
                raise
            print(f"error: {exc}; trying again in {args.interval:g}s", file=sys.stderr)
            time.sleep(args.interval)
            continue
        report = sync.drain(pusher, keys, limit=args.limit, force=args.all)
        rounds += 1
        print(f"synced {report.synced}, failed {report.failed}, held {report.held}, "
              f"skipped {report.skipped}")
        for error in report.errors[:10]:
            print(f"  {error}")
        if not args.interval:
            return 1 if report.failed else 0
        time.sleep(args.interval)


def cmd_sync_retry(args: argparse.Namespace) -> int:
    statuses = tuple(args.status or ("no_contact", "contact_deleted"))
    count = sync.requeue_held(get_ledger(), statuses)
    print(f"{count} held sync(s) queued again; they are pushed by the next sweep "
          "(or now: sync drain)")
    return 0


def cmd_mail_status(args: argparse.Namespace) -> int:
    rows = outbox.outbox_rows(get_ledger())
    if args.json:
        _print(rows, True)
        return 0
    if not rows:
        print("the outbox is empty: every mail was sent")
        return 0
    for row in rows:
        print(f"{row['status']:<7} {row['mail_id']} {row['mail_kind']:<8} "
              f"{(row['subject'] or '')[:12]}…  attempts {row['attempts']}  "
              f"queued {row['queued_at']}  next {row.get('sync_due') or '-'}  "
              f"{row.get('last_error') or ''}")
    return 0


def cmd_mail_sweep(args: argparse.Namespace) -> int:
    settings = get_settings()
    if settings.mail.transport == "none":
        raise OptinProofError("MAIL_TRANSPORT is none: there is nothing to send.")
    while True:
        try:
            results = outbox.sweep(get_postman(settings), limit=args.limit,
                                   include_later=args.all)
        except OptinProofError as exc:
            if not args.interval:
                raise
            print(f"error: {exc}; trying again in {args.interval:g}s", file=sys.stderr)
            results = []
        counts = {status: sum(1 for r in results if r.status == status)
                  for status in ("sent", "retry", "failed", "skipped")}
        if results or not args.interval:
            print(", ".join(f"{n} {status}" for status, n in counts.items()))
            for result in results:
                if result.status in ("retry", "failed"):
                    print(f"  {result.mail_id}: {result.detail}")
        if not args.interval:
            return 1 if counts["failed"] or counts["retry"] else 0
        time.sleep(args.interval)


def cmd_mail_preview(args: argparse.Namespace) -> int:
    settings = get_settings()
    catalogue = get_catalogue(settings)
    purposes = tuple(args.purpose or catalogue.purposes)
    template = compose.render_template(settings, catalogue, args.kind, args.locale, purposes,
                                    has_name=args.with_name)
    if args.json:
        _print({"template_version": template.sha256, **compose.template_record(template)}, True)
        return 0
    print(f"template version {template.sha256}")
    print(f"Subject: {template.subject}\n")
    print(template.html if args.html else template.text)
    return 0


def cmd_forms_list(args: argparse.Namespace) -> int:
    catalogue = load_catalogue(catalogue_path())
    rows = [{"id": f.id, "purposes": list(f.purposes), "allowed_origins": list(f.allowed_origins),
             "locale": f.locale, "ask_name": f.ask_name, "min_fill_seconds": f.min_fill_seconds,
             "allow_plain_html": f.allow_plain_html,
             "redirect_after_submit": f.redirect_after_submit,
             "redirect_after_confirm": f.redirect_after_confirm}
            for f in catalogue.forms.values()]
    if args.json:
        _print(rows, True)
        return 0
    if not rows:
        print("no [[forms]] in the catalogue")
    for row in rows:
        print(f"{row['id']:<16} purposes {', '.join(row['purposes'])}; embeddable on "
              f"{', '.join(row['allowed_origins']) or 'no other website'}")
    return 0


def cmd_forms_snippet(args: argparse.Namespace) -> int:
    catalogue = load_catalogue(catalogue_path())
    form = catalogue.forms.get(args.form)
    if form is None:
        raise OptinProofError(f"no form {args.form!r} in the catalogue; known: "
                              f"{', '.join(catalogue.forms) or 'none'}")
    base = (args.base_url or os.environ.get("PUBLIC_BASE_URL", "")).rstrip("/")
    if not base:
        raise OptinProofError("PUBLIC_BASE_URL is not set (or pass --base-url): the address "
                              "of the app, e.g. https://consent.example.eu")
    print(embed.snippet(args.kind, base, form, catalogue, args.lang))
    return 0


def _progress_printer(verb: str) -> Callable[[campaign_runner.Progress], None]:
    """A progress line on stderr: rewritten in place on a terminal, every 2 s otherwise."""
    last = [0.0]
    tty = sys.stderr.isatty()

    def show(progress: campaign_runner.Progress) -> None:
        now = time.monotonic()
        final = progress.processed == progress.total
        if not final and now - last[0] < (0.2 if tty else 2.0):
            return
        last[0] = now
        line = progress.line(verb)
        print(("\r" + line.ljust(110)) if tty else line, end="\n" if final or not tty else "",
              file=sys.stderr, flush=True)
    return show


def _tools() -> jobs.Tools:
    settings = get_settings()
    return jobs.Tools(settings, get_catalogue(settings),
                               get_act_client(settings) if settings.act else None,
                               lambda: get_postman(settings))


def _runner(campaign: define.Campaign, round_no: int = 1,
            create_field: bool = False) -> campaign_runner.Runner:
    return jobs.runner_for(get_ledger(), _tools(), campaign, round_no, create_field)


def _run_campaign(runner: campaign_runner.Runner, args: argparse.Namespace,
                  only: set[str] | None = None) -> int:
    if runner.client is None:
        raise OptinProofError("Reading the audience needs Act! (ACT_API_URL and friends).")
    print(f"reading the audience of {runner.campaign.id} from Act!…", file=sys.stderr)
    contacts = define.audience(runner.client, runner.campaign)
    if only is not None:
        contacts = [c for c in contacts if c.id in only]
    verb = {"act-field": "written", "mail": "mailed", "csv": "exported"}[runner.campaign.delivery]
    progress = runner.run(contacts, concurrency=args.concurrency,
                          on_progress=_progress_printer(verb))
    jobs.note_run(runner.ledger, runner.campaign, progress, runner.round,
                           f"cli:{os.environ.get('USER') or 'operator'}")
    if runner.campaign.delivery == "csv" and args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as out:
            rows = campaign_runner.export_csv(runner, out)
        print(f"{rows} link(s) written to {args.csv}")
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(progress.skipped.items())) or "none"
    print(f"{progress.total} contacts: {progress.delivered} {verb} now, {progress.already} "
          f"done before, skipped {skipped}, {progress.failed} failed")
    for error in progress.errors[:10]:
        print(f"  {error}")
    if progress.failed:
        print("run the same command again to retry the failed ones (nothing is sent twice)")
    return 1 if progress.failed else 0


def cmd_campaign_start(args: argparse.Namespace) -> int:
    settings = get_settings()
    audience, value = ("group", args.group) if args.group else (
        ("filter", args.filter) if args.filter else ("all", None))
    campaign = define.define(get_ledger(settings), settings, get_catalogue(settings), args.id,
                                args.purpose, audience, value, args.delivery, args.locale,
                                args.link_field)
    return _run_campaign(_runner(campaign, create_field=args.create_link_field), args)


def cmd_campaign_run(args: argparse.Namespace) -> int:
    campaign = define.load(get_ledger(), args.id)
    return _run_campaign(_runner(campaign), args)


def cmd_campaign_remind(args: argparse.Namespace) -> int:
    """Round 2 the first time; afterwards the same round again (finishing what failed),
    unless --new-round asks for another reminder to whoever still has not answered."""
    ledger = get_ledger()
    campaign = define.load(ledger, args.id)
    current = define.current_round(ledger, campaign)
    round_no = current + 1 if current == 1 or args.new_round else current
    silent = [i for i in campaign_report.report(ledger, campaign).no_answer
              if int(i.get("round", 1)) < round_no]
    if not silent:
        print(f"nobody left to remind in round {round_no} (everybody answered, bounced or was "
              "reminded); --new-round starts another round")
        return 0
    define.set_round(ledger, campaign, round_no)
    print(f"reminding {len(silent)} contact(s) (round {round_no})", file=sys.stderr)
    return _run_campaign(_runner(campaign, round_no), args, {i["contact_id"] for i in silent})


def cmd_campaign_report(args: argparse.Namespace) -> int:
    ledger = get_ledger()
    campaign = define.load(ledger, args.id)
    result = campaign_report.report(ledger, campaign)
    if args.no_answer_csv:
        runner = _runner(campaign) if campaign.delivery == "act-field" and get_settings().act \
            else campaign_runner.Runner(ledger, get_settings(), get_catalogue(), None, campaign)
        wanted = {i["contact_id"] for i in result.no_answer}
        with open(args.no_answer_csv, "w", newline="", encoding="utf-8") as out:
            rows = campaign_runner.export_csv(runner, out, only=lambda i: i["contact_id"] in wanted)
        print(f"{rows} contact(s) without an answer written to {args.no_answer_csv}",
              file=sys.stderr)
    if args.json:
        _print(result.as_dict(), True)
        return 0
    print(f"campaign {campaign.id}: {', '.join(campaign.purposes)} by {campaign.delivery}")
    print(f"  {'purpose':<16}{'sent':>7}{'accepted':>10}{'refused':>9}{'withdrawn':>11}"
          f"{'no answer':>11}{'bounced':>9}")
    for purpose, row in result.purposes.items():
        print(f"  {purpose:<16}{row['sent']:>7}{row['accepted']:>10}{row['refused']:>9}"
              f"{row['withdrawn']:>11}{row['no_answer']:>11}{row['bounced']:>9}")
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(result.skipped.items())) or "none"
    print(f"  skipped: {skipped}; failed: {result.failed}; minted, not delivered yet: "
          f"{result.undelivered}")
    return 0


def cmd_campaign_export(args: argparse.Namespace) -> int:
    campaign = define.load(get_ledger(), args.id)
    runner = campaign_runner.Runner(get_ledger(), get_settings(), get_catalogue(), None, campaign)
    with open(args.csv, "w", newline="", encoding="utf-8") as out:
        rows = campaign_runner.export_csv(runner, out)
    print(f"{rows} link(s) written to {args.csv}")
    return 0


def cmd_campaign_list(args: argparse.Namespace) -> int:
    entries = jobs.listing(get_ledger())
    if args.json:
        _print(entries, True)
        return 0
    if not entries:
        print("no campaign yet (campaign start, or POST /admin/campaigns)")
    for entry in entries:
        last = entry.get("last_pass") or {}
        print(f"{entry['campaign_id']:<32} {entry.get('state', '?'):<16} round "
              f"{entry.get('round', 1)}  {last.get('processed', 0)}/{last.get('total', 0)} "
              f"handled, {last.get('failed', 0)} failed  {entry.get('last_error', '')}")
    return 0


def cmd_campaign_work(args: argparse.Namespace) -> int:
    while True:
        try:
            results = jobs.work(get_ledger(), _tools(), args.budget, args.concurrency)
        except OptinProofError as exc:
            if not args.interval:
                raise
            print(f"error: {exc}; trying again in {args.interval:g}s", file=sys.stderr)
            results = []
        for entry in results:
            last = entry.get("last_pass") or {}
            print(f"{entry['campaign_id']}: {entry.get('state')} — {last.get('processed', 0)}/"
                  f"{last.get('total', 0)} handled, {last.get('delivered', 0)} delivered now, "
                  f"{last.get('failed', 0)} failed {entry.get('last_error', '')}", flush=True)
        if not args.interval:
            return 1 if any(e.get("state") == jobs.ATTENTION or e.get("last_error")
                            for e in results) else 0
        time.sleep(args.interval)


def _subject_arg(args: argparse.Namespace) -> str:
    if getattr(args, "subject", None):
        return args.subject
    return subject_key(get_settings().subject_pepper, normalise_email(args.email))


def cmd_erase(args: argparse.Namespace) -> int:
    settings = get_settings()
    ledger, subject = get_ledger(settings), _subject_arg(args)
    profile, states = ledger.current(subject)
    held = profile is not None or states or erasure.tombstone(ledger, subject) \
        or ledger.get(*keys.chain(subject))
    if not held:
        print(f"nothing is held about {args.email or subject}", file=sys.stderr)
        return 1
    if not args.yes:
        print(f"would erase subject {subject} (Act!: {args.act or settings.erasure_act}); "
              "run again with --yes to do it", file=sys.stderr)
        return 2
    done = erasure.erase_with_act(
        ledger, get_catalogue(settings), settings, subject,
        f"cli:{os.environ.get('USER') or 'operator'}", args.act or settings.erasure_act,
        get_act_client(settings) if settings.act else None,
        get_pusher(settings) if settings.act else None)
    verdict = audit.verify_subject(ledger, subject)
    print(f"{'already erased' if done.already else 'erased'} {subject} at {done.erased_at}: "
          f"{done.links_revoked} link(s) revoked, personal fields removed from "
          f"{done.events_stripped} event(s); Act!: "
          f"{', '.join(f'{k} {v}' for k, v in done.act.items()) or 'nothing to do'}; "
          f"chain {'verifies' if verdict.ok else 'BROKEN: ' + verdict.reason}")
    failed = any(v.startswith(("failed", "pending")) for v in done.act.values())
    return 1 if failed or not verdict.ok else 0


def cmd_evidence(args: argparse.Namespace) -> int:
    settings = get_settings()
    ledger, subject = get_ledger(settings), _subject_arg(args)
    if not ledger.get(*keys.chain(subject)) and ledger.current(subject) == (None, {}):
        print(f"nothing is held about {args.email or subject}", file=sys.stderr)
        return 1
    catalogue = get_catalogue(settings)
    data = evidence.pack(ledger, settings, catalogue, subject)
    locale = args.locale or data["subject"].get("locale") or catalogue.default_locale
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"evidence-{subject[:12]}"
    stem.with_suffix(".json").write_text(json.dumps(data, ensure_ascii=False, indent=2),
                                         encoding="utf-8")
    stem.with_suffix(".html").write_text(evidence.html(data, locale), encoding="utf-8")
    check = data["evidence"]["verification"]
    print(f"{stem}.json\n{stem}.html")
    print(f"{len(data['events'])} events; chain "
          f"{'verifies' if check['ok'] else 'BROKEN: ' + str(check['reason'])}", file=sys.stderr)
    return 0 if check["ok"] else 1


def cmd_breach_notify(args: argparse.Namespace) -> int:
    settings = get_settings()
    ledger, catalogue = get_ledger(settings), get_catalogue(settings)
    notice = breach.load_notice(args.id, Path(args.notice_dir), catalogue, args.aware_at)
    selected = breach.select(ledger, settings, catalogue, breach.Selection(
        purpose=args.purpose, states=tuple(args.state or ("accepted",)),
        addresses=breach.read_addresses(Path(args.addresses)) if args.addresses else None,
        since=breach.parse_moment(args.since, "--since") if args.since else None))
    if selected.unknown or selected.invalid_lines:
        print(f"{selected.unknown} listed address(es) we hold nothing about; lines that are no "
              f"address: {selected.invalid_lines[:20] or 'none'}", file=sys.stderr)
    if args.dry_run:
        _print(breach.survey(ledger, args.id, selected.subjects), args.json)
        return 0
    progress = breach.notify(ledger, settings, catalogue,
                             get_transport(settings.mail, settings.aws_region), notice,
                             selected.subjects, args.rate, _progress_printer("notified"),
                             operator=f"cli:{os.environ.get('USER') or 'operator'}")
    unreachable = ", ".join(f"{n} {why}" for why, n in sorted(progress.unreachable.items()))
    print(f"{progress.total} people: {progress.notified} notified now, {progress.before} before, "
          f"unreachable {unreachable or 'none'}, {progress.failed} failed (retried by the next "
          f"run), {progress.permanent} refused for good, {progress.busy} busy")
    for error in progress.errors[:10]:
        print(f"  {error}")
    return 1 if progress.failed or progress.busy else 0


def cmd_breach_report(args: argparse.Namespace) -> int:
    _print(breach.report(get_ledger(), args.id).as_dict(), args.json)
    return 0


def cmd_breach_preview(args: argparse.Namespace) -> int:
    catalogue = get_catalogue()
    notice = breach.load_notice(args.id, Path(args.notice_dir), catalogue)
    template = breach.preview(catalogue, notice, args.locale or catalogue.default_locale)
    print(f"Subject: {template.subject}\n")
    print(template.html if args.html else template.text)
    return 0


def _aws(service: str, args: argparse.Namespace) -> Any:
    """A boto3 client for the operator's account (no app secrets needed yet)."""
    import boto3

    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise OptinProofError("Name the AWS region: --region eu-west-1 (or AWS_REGION).")
    endpoint = os.environ.get("DYNAMODB_ENDPOINT") if service == "dynamodb" else None
    return boto3.session.Session().client(service, region_name=region, endpoint_url=endpoint)


def cmd_infra_create(args: argparse.Namespace) -> int:
    done, outputs = infra.create(
        args.stage, args.sender_domain, _aws("dynamodb", args),
        None if args.no_secrets else _aws("ssm", args),
        None if args.no_ses or not args.sender_domain else _aws("sesv2", args))
    for line in done:
        print(line)
    print(f"table {outputs['table']}\nstream {outputs['stream_arn']}")
    print(f"next: export CONSENT_TABLE_STREAM_ARN={outputs['stream_arn']} && "
          f"chalice deploy --stage {args.stage}", file=sys.stderr)
    return 0


def cmd_infra_template(args: argparse.Namespace) -> int:
    text = json.dumps(infra.template(args.stage, args.sender_domain), indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}; use: chalice package --stage {args.stage} --merge-template "
              f"{args.out} out/", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def cmd_infra_policy(args: argparse.Namespace) -> int:
    text = json.dumps(infra.policy(args.stage, args.sender_domain), indent=2) + "\n"
    if args.write:
        target = Path(".chalice") / f"policy-{args.stage}.json"
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def cmd_secrets_init(args: argparse.Namespace) -> int:
    for line in infra.init_secrets(_aws("ssm", args), args.stage):
        print(line)
    return 0


def cmd_secrets_set(args: argparse.Namespace) -> int:
    value = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else \
        __import__("getpass").getpass(f"{args.name}: ")
    print(f"stored {infra.set_secret(_aws('ssm', args), args.stage, args.name, value)}")
    return 0


def cmd_secrets_list(args: argparse.Namespace) -> int:
    _print(infra.list_secrets(_aws("ssm", args), args.stage), args.json)
    return 0


def cmd_admin_token(args: argparse.Namespace) -> int:
    ttl = parse_duration(args.ttl, "--ttl")
    token = admin_auth.mint(get_settings(), args.operator, ttl)
    print(token)
    print(f"valid {args.ttl} for {args.operator}; use: curl -H 'Authorization: Bearer {token}' "
          f"{get_settings().public_base_url or 'http://127.0.0.1:8000'}/admin/campaigns",
          file=sys.stderr)
    return 0


def cmd_admin_link(args: argparse.Namespace) -> int:
    settings = get_settings()
    base = args.base_url or settings.public_base_url or "http://127.0.0.1:8000"
    token = admin_auth.mint(settings, args.operator, parse_duration(args.ttl, "--ttl"), use="browser")
    print(admin_auth.login_url(base, token))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chalicelib.cli",
        description="OptinProof operator commands. Configuration comes from environment "
                    "variables (CONSENT_TABLE, DYNAMODB_ENDPOINT, LINK_SECRET_KEYS, "
                    "SUBJECT_PEPPER, PUBLIC_BASE_URL, ...); see the README.")
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    table = groups.add_parser("table", help="create or inspect the consent table")
    table_cmds = table.add_subparsers(dest="command", required=True, metavar="ACTION")
    create = table_cmds.add_parser(
        "create", help="create the table (keys, pending-sync index, TTL, stream); idempotent",
        description="Create the consent table if it does not exist, wait until it is "
                    "active, and enable TTL. Safe to run again.")
    create.add_argument("--table", help="table name (default: $CONSENT_TABLE)")
    create.set_defaults(func=cmd_table_create)
    describe = table_cmds.add_parser("describe", help="show status, index, stream and TTL")
    describe.add_argument("--table", help="table name (default: $CONSENT_TABLE)")
    describe.add_argument("--json", action="store_true", help="print JSON")
    describe.set_defaults(func=cmd_table_describe)

    link = groups.add_parser("link", help="mint signed links")
    link_cmds = link.add_subparsers(dest="command", required=True, metavar="ACTION")
    mint = link_cmds.add_parser(
        "mint", help="mint a link for an address and purposes, record it, print its URL",
        description="Mint a signed link for one address and one or more purposes, record "
                    "its issuance in the proof trail, and print the URL to send.")
    mint.add_argument("--email", required=True, help="the person's e-mail address")
    mint.add_argument("--purpose", action="append", required=True,
                      help="a purpose id from the catalogue; repeat for several")
    mint.add_argument("--kind", choices=["confirm"], default="confirm",
                      help="link kind (default: confirm)")
    mint.add_argument("--channel", default="cli",
                      help="how the link reaches the person, recorded in the proof (default: cli)")
    mint.add_argument("--locale", choices=["en", "fr"],
                      help="page language to open the link in (default: the browser's)")
    mint.add_argument("--base-url", help="public base URL (default: $PUBLIC_BASE_URL)")
    mint.add_argument("--json", action="store_true", help="print JSON with the link id")
    mint.set_defaults(func=cmd_link_mint)

    chain = groups.add_parser("chain", help="verify the tamper-evident event chains")
    chain_cmds = chain.add_subparsers(dest="command", required=True, metavar="ACTION")
    verify = chain_cmds.add_parser(
        "verify", help="verify one subject's chain or every chain; exit 1 if one is broken",
        description="Recompute every event hash and link, check the chain head, that each "
                    "purpose state follows from its last event, and that every cited wording "
                    "is stored intact; report the first problem of each subject. Exit status 1 "
                    "when any is found.")
    who = verify.add_mutually_exclusive_group(required=True)
    who.add_argument("--email", help="the subject with this address")
    who.add_argument("--subject", help="the subject with this key (hex)")
    who.add_argument("--all", action="store_true", help="every subject in the table")
    verify.add_argument("--quiet", action="store_true", help="print only broken chains")
    verify.set_defaults(func=cmd_chain_verify)

    purposes = groups.add_parser("purposes", help="check the purpose catalogue")
    purpose_cmds = purposes.add_subparsers(dest="command", required=True, metavar="ACTION")
    check = purpose_cmds.add_parser(
        "check", help="validate the catalogue and print each purpose's text version",
        description="Load the catalogue ($CONSENT_CATALOGUE or catalogue.toml) as the app "
                    "would, and print the purposes with their versions.")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(func=cmd_purposes_check)
    act = groups.add_parser("act", help="check or prepare the Act! connection and fields")
    act_cmds = act.add_subparsers(dest="command", required=True, metavar="ACTION")
    act_check = act_cmds.add_parser(
        "check", help="sign in to Act! and check every mapped contact field",
        description="Sign in with ACT_USERNAME/ACT_PASSWORD to ACT_DATABASE, read the contact "
                    "field metadata and report, for each field the catalogue maps, whether it "
                    "exists with a suitable type. Exit 1 if any does not.")
    act_check.set_defaults(func=cmd_act_check)
    act_setup = act_cmds.add_parser(
        "setup", help="create the missing consent fields in Act! (needs 'Define Fields')",
        description="Create every mapped contact field that Act! lacks, with a suitable type. "
                    "Existing fields are never changed; a field of the wrong type is reported.")
    act_setup.set_defaults(func=cmd_act_setup)
    hooks = act_cmds.add_parser("webhooks", help="register our endpoint for Act! webhooks",
                                description="Act! webhooks exist on self-hosted Act! only.")
    hooks_cmds = hooks.add_subparsers(dest="hooks_command", required=True, metavar="ACTION")
    register = hooks_cmds.add_parser(
        "register", help="register (or refresh) Contacts Created and Updated webhooks",
        description="POST /api/webhooks for Contacts Created and Updated, calling back "
                    "<base>/hooks/act/<ACT_WEBHOOK_PATH_SECRET>/<trigger> with "
                    "ACT_WEBHOOK_TOKEN in the Authorization header. Idempotent: existing "
                    "registrations get the current URL and token.")
    register.add_argument("--base-url", help="public base URL (default: $PUBLIC_BASE_URL)")
    register.set_defaults(func=cmd_act_webhooks_register)
    hooks_list = hooks_cmds.add_parser("list", help="the webhooks registered in Act!",
                                       description="List registrations, suspended ones first "
                                                   "to look at (Act! suspends after 3 failures).")
    hooks_list.add_argument("--json", action="store_true", help="print JSON")
    hooks_list.set_defaults(func=cmd_act_webhooks_list)
    reconcile = act_cmds.add_parser(
        "reconcile", help="reconcile the contacts Act! said changed (queued webhook hints)",
        description="Re-read each contact a webhook named and act on it (ask a new contact, "
                    "record an address change, restore or flag hand-edited consent fields).")
    reconcile.set_defaults(func=cmd_act_reconcile)
    poll = act_cmds.add_parser(
        "poll", help="find contacts edited in Act! since the last poll (Act! cloud: no webhooks)",
        description="GET /api/contacts?$filter=edited gt <since>, then reconcile each. The "
                    "watermark is kept in the table; the first poll looks back 24 hours.")
    poll.add_argument("--since", help="ISO 8601 UTC, e.g. 2026-11-01T00:00:00Z")
    poll.set_defaults(func=cmd_act_poll)
    drift = act_cmds.add_parser("drift", help="contacts whose consent fields were edited by hand",
                                description="Drift found by reconciliation, restored or flagged "
                                            "per ACT_DRIFT.")
    drift.add_argument("--json", action="store_true", help="print JSON")
    drift.set_defaults(func=cmd_act_drift)

    sync_group = groups.add_parser("sync", help="see and push decisions waiting for Act!")
    sync_cmds = sync_group.add_subparsers(dest="command", required=True, metavar="ACTION")
    status = sync_cmds.add_parser(
        "status", help="list pending, failed and held syncs with their last error",
        description="List the decisions not yet in Act!: pending (will be retried), failed "
                    "(retried slowly; look at the error), no_contact / contact_deleted / "
                    "no_address (need a person).")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_sync_status)
    drain = sync_cmds.add_parser(
        "drain", help="push pending decisions to Act! now",
        description="Push the decisions whose sync is due (with --all: every pending or failed "
                    "one, due or not). Exit 1 if any failed. With --interval, repeat forever "
                    "(the local stand-in for the scheduled sweep).")
    drain.add_argument("--all", action="store_true", help="also those waiting for their backoff")
    drain.add_argument("--limit", type=int, help="at most this many per round")
    drain.add_argument("--interval", type=float, help="repeat every N seconds until stopped")
    drain.set_defaults(func=cmd_sync_drain)
    retry = sync_cmds.add_parser(
        "retry", help="queue held syncs again (after creating or restoring the Act! contact)",
        description="Held syncs (no_contact, contact_deleted) are never retried on their own. "
                    "After fixing the cause in Act!, queue them again: the next push searches "
                    "Act! by address afresh.")
    retry.add_argument("--status", action="append", choices=["no_contact", "contact_deleted"],
                       help="only these (repeatable; default: both)")
    retry.set_defaults(func=cmd_sync_retry, status=None)

    mail_group = groups.add_parser("mail", help="see, send and preview OptinProof's own mails")
    mail_cmds = mail_group.add_subparsers(dest="command", required=True, metavar="ACTION")
    mail_status = mail_cmds.add_parser(
        "status", help="list mails waiting in the outbox (queued for a retry, or failed)",
        description="Mails whose first try failed wait in the outbox with their last error: "
                    "queued ones are retried with backoff, failed ones gave up (permanent "
                    "refusal, or MAIL_MAX_ATTEMPTS rounds).")
    mail_status.add_argument("--json", action="store_true", help="print JSON")
    mail_status.set_defaults(func=cmd_mail_status)
    mail_sweep = mail_cmds.add_parser(
        "sweep", help="send the queued mails that are due (--all: due or not)",
        description="Send outbox mails now: the local stand-in for the scheduled mail sweep. "
                    "Exit 1 if any failed again.")
    mail_sweep.add_argument("--all", action="store_true", help="also those waiting for backoff")
    mail_sweep.add_argument("--limit", type=int, default=200, help="at most this many per round")
    mail_sweep.add_argument("--interval", type=float, help="repeat every N seconds until stopped")
    mail_sweep.set_defaults(func=cmd_mail_sweep)
    preview = mail_cmds.add_parser(
        "preview", help="print a mail template as sent, with markers for links and name",
        description="Render a mail template for review, with ⟦markers⟧ where each person's "
                    "links and name go, and print its template version (what mail_sent "
                    "events cite).")
    preview.add_argument("--kind", choices=list(compose.MAIL_KINDS), default="confirm",
                         help="confirm (default) or already (already subscribed)")
    preview.add_argument("--locale", choices=["en", "fr"], default="en", help="language")
    preview.add_argument("--purpose", action="append",
                         help="purposes listed in the mail (default: all); repeatable")
    preview.add_argument("--with-name", action="store_true", help="the variant with a name")
    preview.add_argument("--html", action="store_true", help="print the HTML part")
    preview.add_argument("--json", action="store_true", help="print JSON (both parts)")
    preview.set_defaults(func=cmd_mail_preview)

    forms = groups.add_parser("forms", help="list signup forms, print their embed code")
    forms_cmds = forms.add_subparsers(dest="command", required=True, metavar="ACTION")
    forms_list = forms_cmds.add_parser("list", help="the catalogue's signup forms",
                                       description="List the [[forms]] of the catalogue.")
    forms_list.add_argument("--json", action="store_true", help="print JSON")
    forms_list.set_defaults(func=cmd_forms_list)
    snippet = forms_cmds.add_parser(
        "snippet", help="print copy-paste code that embeds a form on a website",
        description="Print embed code for one form: an <iframe> (any site; fill-time check "
                    "included), a plain HTML <form> (no script; needs allow_plain_html), or "
                    "a script posting JSON (CORS limited to the form's allowed_origins).")
    snippet.add_argument("--form", required=True, help="form id from the catalogue")
    snippet.add_argument("--kind", choices=list(embed.KINDS), default="iframe",
                         help="iframe (default), html or script")
    snippet.add_argument("--lang", choices=["en", "fr"], help="form language")
    snippet.add_argument("--base-url", help="public base URL (default: $PUBLIC_BASE_URL)")
    snippet.set_defaults(func=cmd_forms_snippet)

    hooks_out = groups.add_parser("webhooks", help="outbound webhooks: deliveries to subscribers")
    hooks_out_cmds = hooks_out.add_subparsers(dest="command", required=True, metavar="ACTION")
    hooks_status = hooks_out_cmds.add_parser(
        "status", help="deliveries not delivered yet (pending or failed) with their last answer",
        description="Each decision is POSTed to every WEBHOOK_SUBSCRIBERS URL; failures are "
                    "retried with backoff (1 min … 6 h), 8 attempts at most.")
    hooks_status.add_argument("--json", action="store_true", help="print JSON (with the log)")
    hooks_status.set_defaults(func=cmd_webhooks_status)
    hooks_retry = hooks_out_cmds.add_parser(
        "retry", help="try every pending delivery now, ignoring its backoff",
        description="Send the pending deliveries now. Exit 1 if any is still not delivered.")
    hooks_retry.add_argument("--failed", action="store_true",
                             help="also those that gave up after 8 attempts")
    hooks_retry.set_defaults(func=cmd_webhooks_retry)

    campaign = groups.add_parser("campaign", help="re-permission campaigns for Act! contacts")
    campaign_cmds = campaign.add_subparsers(dest="command", required=True, metavar="ACTION")
    start = campaign_cmds.add_parser(
        "start", help="define a campaign and run it: one confirmation link per contact",
        description="Record a campaign (id, purposes, audience, delivery) and run it: read the "
                    "contacts from Act!, mint one signed link each, and deliver it by writing it "
                    "into an Act! contact field (for an Act! emarketing merge), by mail, or to a "
                    "CSV file. Contacts without an address, a second contact with the same "
                    "address, erased addresses and people who already accepted every purpose are "
                    "skipped and counted. Interrupted or failed, run `campaign run` to finish: "
                    "nothing is delivered twice.")
    start.add_argument("--id", required=True, help="campaign id, e.g. repermission-2026-12")
    start.add_argument("--purpose", action="append", required=True,
                       help="a purpose id from the catalogue; repeat for several")
    who = start.add_mutually_exclusive_group(required=True)
    who.add_argument("--all", action="store_true", help="every contact of the Act! database")
    who.add_argument("--group", help="the contacts of this Act! group (its name)")
    who.add_argument("--filter", help="an OData $filter, e.g. \"businessAddress/country eq 'France'\"")
    start.add_argument("--delivery", choices=list(define.DELIVERIES), required=True,
                       help="act-field: write the link into --link-field; mail: we send it; "
                            "csv: export to --csv")
    start.add_argument("--link-field", help="Act! contact field (display name) for the link")
    start.add_argument("--create-link-field", action="store_true",
                       help="create --link-field in Act! if missing (needs 'Define Fields')")
    start.add_argument("--locale", choices=["en", "fr"], help="language of pages and mails")
    start.add_argument("--csv", help="file for the links (csv delivery)")
    start.add_argument("--concurrency", type=int, default=8,
                       help="contacts handled at once (default 8); Act! 429s slow it down")
    start.set_defaults(func=cmd_campaign_start)
    run = campaign_cmds.add_parser(
        "run", help="resume a campaign: deliver what is left or failed, nothing twice",
        description="Run a recorded campaign again: contacts already done are skipped, failed "
                    "and new contacts of the audience are handled.")
    run.add_argument("--id", required=True, help="campaign id")
    run.add_argument("--csv", help="file for the links (csv delivery)")
    run.add_argument("--concurrency", type=int, default=8, help="contacts at once (default 8)")
    run.set_defaults(func=cmd_campaign_run)
    remind = campaign_cmds.add_parser(
        "remind", help="send a new link to the contacts who did not answer",
        description="A reminder round of the same campaign: every contact that answered "
                    "nothing (and did not bounce) gets a new link, which replaces the old one; "
                    "events carry the campaign id and the round. Run again, it finishes the "
                    "same round (failed ones) and reminds nobody twice; --new-round starts the "
                    "next round.")
    remind.add_argument("--id", required=True, help="campaign id")
    remind.add_argument("--csv", help="file for the links (csv delivery)")
    remind.add_argument("--concurrency", type=int, default=8, help="contacts at once (default 8)")
    remind.add_argument("--new-round", action="store_true",
                        help="start another round (default: finish the current one)")
    remind.set_defaults(func=cmd_campaign_remind)
    report = campaign_cmds.add_parser(
        "report", help="per purpose: sent, accepted, refused, withdrawn, no answer, bounced",
        description="Count what the campaign's contacts answered through its links.")
    report.add_argument("--id", required=True, help="campaign id")
    report.add_argument("--no-answer-csv", help="also write the contacts without an answer")
    report.add_argument("--json", action="store_true", help="print JSON")
    report.set_defaults(func=cmd_campaign_report)
    export = campaign_cmds.add_parser(
        "export", help="write contact id, address, first name and link of every delivered contact",
        description="CSV of the campaign's links (re-signed from their recorded link ids).")
    export.add_argument("--id", required=True, help="campaign id")
    export.add_argument("--csv", required=True, help="output file")
    export.set_defaults(func=cmd_campaign_export)
    listing = campaign_cmds.add_parser(
        "list", help="every campaign with its run state (CLI runs and admin API runs)",
        description="The campaigns and their last run: state (running, paused, finished, "
                    "needs_attention), round, counts of the last pass.")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=cmd_campaign_list)
    work = campaign_cmds.add_parser(
        "work", help="work on campaigns started through the admin API (what the schedule does)",
        description="One pass over every campaign in state running (POST /admin/campaigns): "
                    "each resumes where it stopped and stops cleanly after --budget seconds. "
                    "In AWS the campaign_sweep function does this every minute; locally, or to "
                    "push a campaign on by hand, run this. Exit 1 if a campaign needs attention.")
    work.add_argument("--budget", type=float, default=240.0,
                      help="seconds one pass may take (default 240)")
    work.add_argument("--concurrency", type=int, default=8, help="contacts at once (default 8)")
    work.add_argument("--interval", type=float, default=0,
                      help="repeat every N seconds until interrupted (default: once)")
    work.set_defaults(func=cmd_campaign_work)

    erase = groups.add_parser(
        "erase", help="erase a person's personal data (GDPR art. 17), keep the proof",
        description="Remove the address, name, language, IP addresses and user agents of one "
                    "person from the table, end their consent states and links, leave a "
                    "tombstone under the keyed hash of the address, and clear or delete their "
                    "Act! contact (ERASURE_ACT or --act). The events stay, without personal "
                    "data, and their chain still verifies. Idempotent: run again to finish an "
                    "Act! step that failed.")
    who_erase = erase.add_mutually_exclusive_group(required=True)
    who_erase.add_argument("--email", help="the person's address")
    who_erase.add_argument("--subject", help="the subject key (64 hex characters)")
    erase.add_argument("--act", choices=list(erasure.ACT_MODES),
                       help="Act! contact: clear the consent fields, delete it, or keep it "
                            "(default: ERASURE_ACT, clear)")
    erase.add_argument("--yes", action="store_true", help="really erase (no undo)")
    erase.set_defaults(func=cmd_erase)

    evidence_cmd = groups.add_parser(
        "evidence", help="the evidence pack for one person: JSON + printable HTML",
        description="Write evidence-<key>.json (the subject export, schema v1, plus the mail "
                    "template versions, the forms and campaigns involved, and the verification "
                    "result) and evidence-<key>.html (the same, readable and printable). Exit 1 "
                    "if nothing is held or the chain does not verify.")
    who_evidence = evidence_cmd.add_mutually_exclusive_group(required=True)
    who_evidence.add_argument("--email", help="the person's address")
    who_evidence.add_argument("--subject", help="the subject key (64 hex characters)")
    evidence_cmd.add_argument("--out", default=".", help="directory for the two files (default .)")
    evidence_cmd.add_argument("--locale", choices=["en", "fr"], help="language of the HTML")
    evidence_cmd.set_defaults(func=cmd_evidence)

    breach_group = groups.add_parser("breach", help="personal-data breach notices (GDPR art. 34)")
    breach_cmds = breach_group.add_subparsers(dest="command", required=True, metavar="ACTION")
    notify = breach_cmds.add_parser(
        "notify", help="mail the notice to every affected person still reachable",
        description="Mails notice.<locale>.txt (first line may be 'Subject: ...') to each "
                    "selected person with an address on record, in their language (else the "
                    "catalogue's default), and records a breach_notified event per person. Run "
                    "it again to resume: nobody is mailed twice; failures are retried.")
    notify.add_argument("--id", required=True, help="breach id, e.g. breach-2026-12-crm-export")
    notify.add_argument("--notice-dir", required=True,
                        help="directory holding notice.en.txt, notice.fr.txt, ...")
    notify.add_argument("--purpose", help="only people holding this purpose in --state")
    notify.add_argument("--state", action="append", choices=list(breach.STATES),
                        help="with --purpose: the states that count (default accepted; repeat)")
    notify.add_argument("--addresses", help="only the addresses in this file (one per line)")
    notify.add_argument("--since", help="only people recorded or updated since (ISO date/time)")
    notify.add_argument("--aware-at", help="when the controller learned of the breach (ISO); "
                                           "the report shows the hours since")
    notify.add_argument("--rate", type=float, default=10.0, help="mails per second (default 10)")
    notify.add_argument("--dry-run", action="store_true", help="count, send nothing")
    notify.add_argument("--json", action="store_true", help="--dry-run counts as JSON")
    notify.set_defaults(func=cmd_breach_notify)
    breach_report = breach_cmds.add_parser(
        "report", help="who was notified, when, and how long after awareness",
        description="Counts of a breach notice and the first/last notification times.")
    breach_report.add_argument("--id", required=True, help="breach id")
    breach_report.add_argument("--json", action="store_true", help="print JSON")
    breach_report.set_defaults(func=cmd_breach_report)
    breach_preview = breach_cmds.add_parser(
        "preview", help="print the notice mail as it will be sent",
        description="Render the notice mail of one language without sending anything.")
    breach_preview.add_argument("--id", required=True, help="breach id")
    breach_preview.add_argument("--notice-dir", required=True, help="directory of notice.*.txt")
    breach_preview.add_argument("--locale", choices=["en", "fr"], help="language")
    breach_preview.add_argument("--html", action="store_true", help="the HTML part")
    breach_preview.set_defaults(func=cmd_breach_preview)

    infra_group = groups.add_parser("infra", help="AWS infrastructure chalice deploy does not create")
    infra_cmds = infra_group.add_subparsers(dest="command", required=True, metavar="ACTION")

    def stage_args(sub: argparse.ArgumentParser, domain: bool = False) -> None:
        sub.add_argument("--stage", required=True, help="dev or prod (as in .chalice/config.json)")
        sub.add_argument("--region", help="AWS region (default: AWS_REGION)")
        if domain:
            sub.add_argument("--sender-domain", help="the domain of MAIL_FROM, e.g. example.eu")

    create = infra_cmds.add_parser(
        "create", help="create the table, SES identity and secrets of a stage (idempotent)",
        description="Create what is missing, never change what exists: the consent table "
                    "(optinproof-<stage>: pending-sync index, TTL, stream, encryption, "
                    "point-in-time recovery), the SES identity of --sender-domain (prints the "
                    "DKIM records to add), and the generated secrets as SSM SecureString "
                    "parameters under /optinproof/<stage>/. Prints the stream ARN for "
                    "chalice deploy.")
    stage_args(create, domain=True)
    create.add_argument("--no-secrets", action="store_true", help="skip SSM")
    create.add_argument("--no-ses", action="store_true", help="skip the SES identity")
    create.set_defaults(func=cmd_infra_create)
    cfn = infra_cmds.add_parser(
        "template", help="CloudFormation for chalice package --merge-template",
        description="The table and SES identity as CloudFormation, and the stream handler "
                    "wired to the table's stream ARN (secrets: use `secrets init`).")
    cfn.add_argument("--stage", required=True, help="dev or prod")
    cfn.add_argument("--sender-domain", required=True, help="the domain of MAIL_FROM")
    cfn.add_argument("--out", help="file to write (default: standard output)")
    cfn.set_defaults(func=cmd_infra_template)
    pol = infra_cmds.add_parser(
        "policy", help="the stage's least-privilege IAM policy",
        description="Print (or --write to .chalice/policy-<stage>.json) the IAM policy of the "
                    "stage's functions: only its table, index and stream, its SES identity, its "
                    "SSM parameters, its logs.")
    pol.add_argument("--stage", required=True, help="dev or prod")
    pol.add_argument("--sender-domain", required=True, help="the domain of MAIL_FROM")
    pol.add_argument("--write", action="store_true", help="write .chalice/policy-<stage>.json")
    pol.set_defaults(func=cmd_infra_policy)

    secrets_group = groups.add_parser("secrets", help="the stage's secrets in SSM Parameter Store")
    secrets_cmds = secrets_group.add_subparsers(dest="command", required=True, metavar="ACTION")
    init = secrets_cmds.add_parser(
        "init", help="generate the missing generated secrets (never overwrites)",
        description="LINK_SECRET_KEYS, SUBJECT_PEPPER, ADMIN_SECRET_KEYS and the webhook "
                    "secrets, as SecureString parameters under /optinproof/<stage>/.")
    stage_args(init)
    init.set_defaults(func=cmd_secrets_init)
    put = secrets_cmds.add_parser(
        "set", help="store one secret, read from standard input (e.g. ACT_PASSWORD)",
        description="Store or replace one secret (a SecureString). The value is read from "
                    "standard input, or asked for without echo on a terminal. Rotating link "
                    "keys: set LINK_SECRET_KEYS to 'old,new' (newest last).")
    stage_args(put)
    put.add_argument("name", choices=list(secrets.SECRET_NAMES), help="which secret")
    put.set_defaults(func=cmd_secrets_set)
    lst = secrets_cmds.add_parser("list", help="names and dates of the stage's secrets",
                                  description="Never prints a value.")
    stage_args(lst)
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(func=cmd_secrets_list)

    admin_group = groups.add_parser("admin", help="access to the admin API")
    admin_cmds = admin_group.add_subparsers(dest="command", required=True, metavar="ACTION")
    token = admin_cmds.add_parser(
        "token", help="mint a short-lived admin API token for an operator",
        description="Print a bearer token for the admin API (/admin/...), signed with the newest "
                    "ADMIN_SECRET_KEYS key. Send it as 'Authorization: Bearer <token>'. It "
                    "expires by itself; removing the key from ADMIN_SECRET_KEYS revokes every "
                    "token it signed.")
    token.add_argument("--operator", required=True,
                       help="who will use it (logged with every call), e.g. alice@example.eu")
    token.add_argument("--ttl", default="1h",
                       help="lifetime: 90s, 15m, 1h … at most 12h (default 1h)")
    token.set_defaults(func=cmd_admin_token)
    link = admin_cmds.add_parser(
        "link", help="a sign-in link to the dashboard for an operator's browser",
        description="Print a link that signs a browser in to the dashboard (/admin/dashboard) "
                    "for --ttl (default 8h, at most 12h): opening it sets an HttpOnly, Secure, "
                    "SameSite=Strict cookie. Send it only to the operator it names.")
    link.add_argument("--operator", required=True, help="who will use it (logged)")
    link.add_argument("--ttl", default="8h", help="how long the session lasts (default 8h)")
    link.add_argument("--base-url", help="the app's address (default: PUBLIC_BASE_URL)")
    link.set_defaults(func=cmd_admin_link)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except OptinProofError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except (BotoCoreError, ClientError) as exc:
        print(f"error: DynamoDB call failed: {exc}. Check DYNAMODB_ENDPOINT / AWS credentials "
              "and region, and that the table exists (table create).", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
