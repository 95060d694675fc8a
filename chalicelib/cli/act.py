"""``act``: check or prepare the Act! connection, its fields and webhooks, and
reconcile what changed in Act! (by webhook hints or by polling)."""

from __future__ import annotations

import os
from typing import Any

import click

from chalicelib.act import ask as actask
from chalicelib.act import dates, fields
from chalicelib.act import reconcile as acthooks
from chalicelib.cli.common import Bar, group, instant, print_data
from chalicelib.core.errors import OptinProofError
from chalicelib.core.services import (
    get_act_client,
    get_asker,
    get_catalogue,
    get_ledger,
    get_reconciler,
)
from chalicelib.core.settings import get_settings

act = group("act", "check or prepare the Act! connection and fields", "act check")


@act.command(
    "check",
    short_help="sign in to Act! and check every mapped contact field",
    help="Sign in with ACT_USERNAME/ACT_PASSWORD to ACT_DATABASE, read the contact "
    "field metadata and report, for each field the catalogue maps, whether it "
    "exists with a suitable type. Exit 1 if any does not.",
    example="act check --json",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="print one JSON document: the connection and every mapped field",
)
def act_check(as_json: bool) -> int:
    """Exit 1 on a missing or mistyped field: a sync would fail on it later."""
    settings = get_settings()
    client = get_act_client(settings)  # ConfigError first when Act! is not configured
    act = settings.act
    assert act is not None
    info = client.system()
    client.authorize()
    results = fields.check(client.contact_fields(), fields.wanted_fields(get_catalogue(settings)))
    triggers = _triggers(settings)
    bad = sum(1 for r in results if not r.ok) + sum(1 for t in triggers if not t["ok"])
    if as_json:
        print_data(
            {
                "api_url": act.api_url,
                "api_version": info.get("apiVersion"),
                "database": act.database,
                "username": act.username,
                "timezone": dates.describe(client.tz),
                "timezone_set": "ACT_TIMEZONE" in os.environ,
                "fields": [
                    {
                        "purpose": r.wanted.purpose,
                        "role": r.wanted.role,
                        "display_name": r.wanted.display_name,
                        "ok": r.ok,
                        "key": r.key,
                        "act_type": r.act_type,
                        "problem": r.problem,
                    }
                    for r in results
                ],
                "mapped": len(results),
                "ask_triggers": triggers,
                "poll": act.poll,
                "problems": bad,
            },
            True,
        )
        return 1 if bad else 0
    print(
        f"Act! {act.api_url} (API {info.get('apiVersion', '?')}), database "
        f"{act.database!r}: signed in as {act.username!r}"
    )
    zone_note = (
        ""
        if "ACT_TIMEZONE" in os.environ
        else " (ACT_TIMEZONE unset: set it to the Act! server's zone, e.g. Europe/Paris)"
    )
    print(
        f"  dates written as the Act! server's local time in {dates.describe(client.tz)}{zone_note}"
    )
    for result in results:
        mark = "ok     " if result.ok else "PROBLEM"
        detail = f"key {result.key}, {result.act_type}" if result.ok else result.problem
        print(
            f"  {mark} {result.wanted.purpose:<14} {result.wanted.role:<12} "
            f"{result.wanted.display_name!r}: {detail}"
        )
    if not triggers:
        print("  ask from inside Act!: no trigger (set ACT_ASK_GROUP and/or ACT_ASK_FIELD)")
    for trigger in triggers:
        mark = "ok     " if trigger["ok"] else "PROBLEM"
        print(f"  {mark} ask trigger  {trigger['trigger']:<6} {trigger['detail']}")
    print(f"{len(results)} field(s) mapped, {bad} problem(s)")
    return 1 if bad else 0


def _triggers(settings: Any) -> list[dict[str, Any]]:
    """Which "ask from inside Act!" triggers are configured, and whether Act! has them."""
    act = settings.act
    if not (act.ask_group or act.ask_field):
        return []
    try:
        asker = get_asker(settings)
    except OptinProofError as exc:  # e.g. an unknown purpose in ACT_ASK_PURPOSES
        return [{"trigger": "-", "ok": False, "detail": str(exc)}]
    found = []
    purposes = ", ".join(asker.purposes)
    if act.ask_group:
        try:
            group_id = asker.group_id()
            size = asker.client.group(group_id or "").get("contacts")
            detail = (
                f"group {act.ask_group!r} exists (id {group_id}, {size or 0} contact(s) "
                f"waiting); asks {purposes}"
            )
            found.append({"trigger": "group", "ok": True, "detail": detail})
        except OptinProofError as exc:
            found.append({"trigger": "group", "ok": False, "detail": str(exc)})
    if act.ask_field:
        try:
            key = asker.field_keys()["ask"]
            detail = f"field {act.ask_field!r} (key {key}) = {act.ask_value!r}; asks {purposes}"
            found.append({"trigger": "field", "ok": True, "detail": detail})
        except OptinProofError as exc:
            found.append({"trigger": "field", "ok": False, "detail": str(exc)})
    return found


@act.command(
    "setup",
    short_help="create the missing consent fields in Act! (needs 'Define Fields')",
    help="Create every mapped contact field that Act! lacks, with a suitable type, "
    "and the ACT_ASK_FIELD trigger field when set. Existing fields are never changed; "
    "a field of the wrong type is reported.",
    example="act setup",
)
def act_setup() -> int:
    """Never changes an existing field: someone's Act! layouts may depend on it."""
    settings = get_settings()
    client = get_act_client(settings)
    lines = fields.setup(client, get_catalogue(settings))
    if settings.act and settings.act.ask_field:  # "ask from inside Act!" by a field
        lines.append(fields.setup_named(client, settings.act.ask_field, fields.ASK_ROLE))
    for line in lines:
        print(line)
    return 1 if any(line.startswith("CONFLICT") for line in lines) else 0


webhooks = group(
    "webhooks",
    "register our endpoint for Act! webhooks",
    "act webhooks list",
    help="Act! webhooks exist on self-hosted Act! only.",
)
act.add_command(webhooks)


@webhooks.command(
    "register",
    short_help="register (or refresh) Contacts Created and Updated webhooks",
    help="POST /api/webhooks for Contacts Created and Updated, calling back "
    "<base>/hooks/act/<ACT_WEBHOOK_PATH_SECRET>/<trigger> with "
    "ACT_WEBHOOK_TOKEN in the Authorization header. Idempotent: existing "
    "registrations get the current URL and token.",
    example="act webhooks register --base-url https://consent.example.eu",
)
@click.option("--base-url", help="public base URL (default: $PUBLIC_BASE_URL)")
def act_webhooks_register(base_url: str | None) -> int:
    """Idempotent, so rotating the token is just running it again."""
    settings = get_settings()
    conf = settings.act
    if conf is None or not conf.webhook_token or not conf.webhook_path_secret:
        raise OptinProofError(
            "Set ACT_WEBHOOK_TOKEN and ACT_WEBHOOK_PATH_SECRET first (each "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))')."
        )
    base = (base_url or settings.public_base_url).rstrip("/")
    if not base:
        raise OptinProofError("PUBLIC_BASE_URL is not set (or pass --base-url).")
    client = get_act_client(settings)
    existing = {hook.get("callbackId"): hook for hook in client.webhooks()}
    for trigger in ("Created", "Updated"):
        body = {
            "monitor": "Contacts",
            "triggerEvent": trigger,
            "callbackUrl": f"{base}/hooks/act/{conf.webhook_path_secret}/{trigger.lower()}",
            "callbackId": f"optinproof-contacts-{trigger.lower()}",
            "callbackToken": conf.webhook_token,
            "description": f"OptinProof: contacts {trigger.lower()} (consent reconciliation)",
        }
        hook = existing.get(body["callbackId"])
        if hook is None:
            made = client.register_webhook(body)
            print(
                f"registered  Contacts.{trigger} -> {base}/hooks/act/…/{trigger.lower()} "
                f"(id {made.get('id')})"
            )
        else:
            client.update_webhook(hook["id"], body)
            print(f"updated     Contacts.{trigger} (id {hook['id']}): URL and token refreshed")
    return 0


@webhooks.command(
    "list",
    short_help="the webhooks registered in Act!",
    help="List registrations, suspended ones first to look at (Act! suspends after 3 failures).",
    example="act webhooks list --json",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def act_webhooks_list(as_json: bool) -> int:
    """Shows suspended hooks: Act! stops calling after 3 failures and says nothing."""
    hooks: list[dict[str, Any]] = get_act_client().webhooks()
    act = get_settings().act
    secret = (act.webhook_path_secret or "") if act else ""
    for hook in hooks:  # the path secret stays out of terminals and logs
        if secret and secret in str(hook.get("callbackUrl") or ""):
            hook["callbackUrl"] = hook["callbackUrl"].replace(secret, "…")
    if as_json:
        print_data(hooks, True)
        return 0
    for hook in hooks:
        state = "SUSPENDED" if hook.get("suspended") else "active"
        print(
            f"{state:<10} {hook.get('monitor')}.{hook.get('triggerEvent'):<8} "
            f"{hook.get('callbackId') or '-'}  failed attempts {hook.get('failedAttempts', 0)}  "
            f"last sent {hook.get('lastNotificationSent') or '-'}"
        )
    if not hooks:
        print("no webhook registered (act webhooks register)")
    return 0


@act.command(
    "reconcile",
    short_help="reconcile the contacts Act! said changed (queued webhook hints)",
    help="Re-read each contact a webhook named and act on it (ask a new contact, "
    "record an address change, restore or flag hand-edited consent fields).",
    example="act reconcile",
)
def act_reconcile() -> int:
    """Works off the queued hints, so a webhook burst is handled at our pace."""
    reconciler = get_reconciler()
    pending = reconciler.pending()
    for contact_id in pending:
        outcome = reconciler.process(contact_id)
        print(f"{contact_id}: {', '.join(outcome.actions) or 'nothing to do'}")
    print(f"{len(pending)} change(s) reconciled")
    return 0


@act.command(
    "poll",
    short_help="find contacts edited in Act! since the last poll (Act! cloud: no webhooks)",
    help="GET /api/contacts?$filter=edited gt <since>, then reconcile each. The "
    "watermark is kept in the table; the first poll looks back 24 hours.",
    example="act poll --since 2026-11-01T00:00:00Z",
)
@click.option("--since", help="ISO 8601 UTC, e.g. 2026-11-01T00:00:00Z")
def act_poll(since: str | None) -> int:
    """Act! cloud has no webhooks: polling is how its edits reach us."""
    ledger, reconciler = get_ledger(), get_reconciler()
    start = instant(since, "--since") if since else None
    with Bar(None, "reconciling contacts") as bar:

        def show(outcome: acthooks.Outcome) -> None:
            bar.advance()
            if outcome.actions:
                print(f"{outcome.contact_id}: {', '.join(outcome.actions)}")

        report = acthooks.poll(ledger, reconciler, start, on_contact=show)
    print(
        f"{report.read} contact(s) edited since {report.since} read: "
        f"{len(report.reconciled)} reconciled, {report.own_writes} were our own writes, "
        f"{report.already_seen} already seen; watermark {report.watermark}"
    )
    return 0


@act.command(
    "drift",
    short_help="contacts whose consent fields were edited by hand",
    help="Drift found by reconciliation, restored or flagged per ACT_DRIFT.",
    example="act drift --json",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def act_drift(as_json: bool) -> int:
    """Hand edits in Act! are not consent: this lists them for a person to look at."""
    rows = acthooks.drift_rows(get_ledger())
    if as_json:
        print_data(rows, True)
        return 0
    for row in rows:
        print(
            f"{row['found_at']}  contact {row['contact_id']}  {', '.join(row['purposes'])}  "
            f"{row['action']}{'  (after an address change)' if row.get('after_address_change') else ''}"
        )
    print(f"{len(rows)} contact(s) with consent fields edited by hand in Act!")
    return 0


@act.command(
    "ask",
    short_help="contacts asked for consent from inside Act! (a group, a field)",
    help="List what the ACT_ASK_GROUP / ACT_ASK_FIELD triggers led to (asked, or "
    "skipped and why); with --process, handle every contact holding a trigger now "
    "(what the act_poll schedule and the webhooks do): ask, clear the trigger, show "
    "the state on the contact.",
    example="act ask --process",
)
@click.option("--process", is_flag=True, help="handle the triggers now")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def act_ask(process: bool, as_json: bool) -> int:
    """An Act! user's gesture, handled now or listed."""
    if process:
        asker = get_asker()
        if not asker.configured():
            raise OptinProofError("No trigger: set ACT_ASK_GROUP and/or ACT_ASK_FIELD.")
        report = asker.scan()
        if as_json:
            print_data(
                {
                    **report.as_dict(),
                    "contacts": [
                        {
                            "contact_id": o.contact_id,
                            "triggers": list(o.triggers),
                            "outcome": o.outcome,
                            "reason": o.reason,
                        }
                        for o in report.outcomes
                    ],
                },
                True,
            )
            return 1 if report.errors else 0
        for o in report.outcomes:
            why = f" ({o.reason})" if o.reason else ""
            print(f"{o.contact_id}: {'+'.join(o.triggers)} -> {o.outcome}{why}")
        print(
            f"{report.count(actask.ASKED)} asked, {report.count(actask.SKIPPED)} skipped, "
            f"{report.count(actask.CLEARED)} cleared, {report.errors} error(s)"
        )
        return 1 if report.errors else 0
    rows = actask.claims(get_ledger())
    if as_json:
        print_data(rows, True)
        return 0
    for row in rows:
        why = f" ({row['reason']})" if row.get("reason") else ""
        print(
            f"{row.get('at', '')}  contact {row['contact_id']}  {row.get('trigger')}  "
            f"{row.get('status')}{why}{'' if row.get('cleared_at') else '  (trigger not cleared)'}"
        )
    print(f"{len(rows)} trigger(s) handled")
    return 0
