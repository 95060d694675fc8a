"""The non-HTTP entry points: the table's stream and the schedules.

The stream is the fast path (mails out, decisions to Act!, hints reconciled,
webhooks delivered); each sweep is the safety net for what the stream missed or
what failed. None of them fails its batch: work left stays where a sweep finds it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from chalice import Blueprint, Rate

from chalicelib.core.errors import ConfigError, OptinProofError
from chalicelib.core.logs import log
from chalicelib.core.services import (
    get_act_client,
    get_catalogue,
    get_ledger,
    get_postman,
    get_settings,
)

# Cold start: the handlers are declared at import time, and each imports what it
# uses (the sync, the outbox, the campaign jobs...) on its first call.

bp = Blueprint(__name__)


#: Where the stream handler is wired when nobody said: never a real stream.
PLACEHOLDER_STREAM_ARN = "arn:aws:dynamodb:eu-west-1:000000000000:table/optinproof/stream/unset"
_NO_STREAM = (
    "CONSENT_TABLE_STREAM_ARN is not set, so the stream handler on_table_change would be "
    "wired to a placeholder ARN and no mail or Act! sync would ever run from the stream. "
    "Export the ARN that `optinproof infra create --stage STAGE` prints, or package with "
    "`--merge-template` and the fragment of `optinproof infra template` (see "
    "docs/operators.md, 'Deploying to AWS')."
)


def stream_arn(argv: list[str] | None = None) -> str:
    """The table stream the handler listens to.

    Read when Chalice imports the app. Unset, ``chalice deploy`` is refused (it would
    create a Lambda listening to nothing) and ``chalice package`` warns on stderr (a
    ``--merge-template`` may still wire the real stream); tests, ``chalice local`` and
    the Lambda runtime itself take the placeholder quietly.
    """
    arn = os.environ.get("CONSENT_TABLE_STREAM_ARN")
    if arn:
        return arn
    args = sys.argv[1:] if argv is None else argv
    if "chalice.cli" in sys.modules and "deploy" in args:
        raise ConfigError(_NO_STREAM)
    if "chalice.cli" in sys.modules and "package" in args and "--merge-template" not in args:
        print(f"warning: {_NO_STREAM}", file=sys.stderr)
    return PLACEHOLDER_STREAM_ARN


CONSENT_STREAM_ARN = stream_arn()


@bp.on_dynamodb_record(stream_arn=CONSENT_STREAM_ARN, batch_size=50, starting_position="LATEST")
def on_table_change(event: Any) -> dict[str, Any]:
    """The table's stream: send new mails, push new decisions to Act!. Never fails the batch.

    Mails leave here rather than inside the signup request, so a request's answer
    neither waits for the mail nor shows whether one was sent.
    """
    from chalicelib.act import sync
    from chalicelib.store import stream
    from chalicelib.web import background

    routed = stream.route_records(event)
    result = {"synced": 0, "failed": 0}
    _count_expiries(routed.expired_profiles)
    pusher = background.pusher_or_none()
    if pusher is not None:  # decisions to Act! first: the most important work of the batch
        report = sync.drain(pusher, routed.syncs)
        log(
            "sync_stream",
            synced=report.synced,
            failed=report.failed,
            held=report.held,
            skipped=report.skipped,
        )
        result.update(synced=report.synced, failed=report.failed)
    result["mailed"] = _send_new_mails(routed.mails)
    reconciled = background.reconcile(routed.hints)
    if reconciled:
        result["reconciled"] = reconciled
    delivered = _deliver_webhooks(routed.hookouts)
    if delivered:
        result["webhooks"] = delivered
    _note_heads(routed.heads)  # logged, not in the result: the anchor is its own job
    return result


def _note_heads(heads: list[tuple[str, int, str]]) -> int:
    """Queue moved chain heads for the next anchor; a failure is logged (the anchor's
    catch-up scan finds them), never a reason to fail the batch."""
    from chalicelib.proof import anchor

    if not heads:
        return 0
    try:
        noted = anchor.enqueue(get_ledger(), [anchor.Head(*head) for head in heads])
        log("anchor_queued", heads=noted)
        return noted
    except OptinProofError as exc:
        log("anchor_not_queued", level="warning", error=type(exc).__name__, heads=len(heads))
        return 0


def _count_expiries(profiles: list[dict[str, Any]]) -> None:
    """A never-decided person's profile removed by TTL: the dashboard's "expired"."""
    from chalicelib.consent import stats

    for old in profiles:
        try:
            get_ledger().add_counters(stats.expired(old))
        except OptinProofError as exc:  # a count, never a reason to fail the batch
            log("stats_not_counted", level="warning", error=type(exc).__name__)


def _deliver_webhooks(keys: list[tuple[str, str]]) -> int:
    """Each delivery on its own: one failing store call or subscriber stops no other."""
    from chalicelib.web import webhooks_out

    if not keys:
        return 0
    dispatcher, delivered = webhooks_out.Dispatcher(get_ledger(), get_settings()), 0
    for key in keys:
        try:
            delivered += dispatcher.deliver(*key) == "delivered"
        except OptinProofError as exc:  # it stays pending; the sweep tries again
            log("webhook_deferred", level="warning", error=type(exc).__name__)
    return delivered


def _send_new_mails(mail_ids: list[str]) -> int:
    if not mail_ids or get_settings().mail.transport == "none":
        return 0
    results = [get_postman().deliver_safely(mail_id) for mail_id in mail_ids]
    return sum(1 for r in results if r.status == "sent")


@bp.schedule(Rate(1, unit=Rate.MINUTES))
def mail_sweep(event: Any) -> dict[str, Any]:
    """Send mails whose first try failed, with backoff (the outbox's safety net)."""
    from chalicelib.mail import outbox

    if get_settings().mail.transport == "none":
        return {"sent": 0}
    results = outbox.sweep(get_postman())
    counts: dict[str, Any] = {
        status: sum(1 for r in results if r.status == status)
        for status in ("sent", "retry", "failed", "skipped")
    }
    if results:
        log("mail_sweep", **counts)
    return counts


@bp.schedule(Rate(1, unit=Rate.MINUTES))
def webhooks_sweep(event: Any) -> dict[str, Any]:
    """Retry outbound webhook deliveries that failed, after their backoff."""
    from chalicelib.web import webhooks_out

    return {"delivered": _deliver_webhooks(webhooks_out.due_keys(get_ledger()))}


@bp.schedule(Rate(1, unit=Rate.MINUTES))
def campaign_sweep(event: Any) -> dict[str, Any]:
    """Work on campaigns started through the admin API, until the Lambda's time is up."""
    from chalicelib.campaigns import jobs

    context = getattr(event, "context", None)
    remaining = context.get_remaining_time_in_millis() / 1000 if context else 60.0
    tools = jobs.Tools(
        get_settings(),
        get_catalogue(),
        get_act_client() if get_settings().act else None,
        get_postman,
    )
    results = jobs.work(get_ledger(), tools, max(5.0, remaining - 30))
    return {"campaigns": len(results)}


@bp.schedule(Rate(1, unit=Rate.MINUTES))
def sync_sweep(event: Any) -> dict[str, Any]:
    """Push every sync that is due: missed stream records, and retries after backoff."""
    from chalicelib.act import reconcile, sync
    from chalicelib.rights import erasure
    from chalicelib.web import background

    pusher = background.pusher_or_none()
    if pusher is None:
        return {"synced": 0, "failed": 0}
    background.reconcile(reconcile.Reconciler.pending_in(pusher.ledger))
    settings = get_settings()
    erasure.retry_act(
        pusher.ledger,
        get_catalogue(),
        pusher.client,
        settings.erasure_act,
        settings.act.aem_opt_out if settings.act else True,
    )
    report = sync.drain(pusher, sync.due_keys(pusher.ledger), limit=500)
    log(
        "sync_sweep",
        synced=report.synced,
        failed=report.failed,
        held=report.held,
        skipped=report.skipped,
    )
    return {"synced": report.synced, "failed": report.failed}


@bp.schedule(Rate(5, unit=Rate.MINUTES))
def act_poll(event: Any) -> dict[str, Any]:
    """Act! cloud has no webhooks: contacts edited since the last poll, and the "ask
    from inside Act!" triggers (``ACT_POLL``: true, triggers or false), under a lease."""
    from chalicelib.act import schedule
    from chalicelib.core.services import get_reconciler

    act = get_settings().act
    if act is None or act.poll == "off":
        return {"off": True}
    context = getattr(event, "context", None)
    remaining = context.get_remaining_time_in_millis() / 1000 if context else 60.0
    return schedule.run(get_ledger(), act.poll, get_reconciler(), max(5.0, remaining - 30))


@bp.schedule(Rate(1, unit=Rate.HOURS))
def validity_sweep(event: Any) -> dict[str, Any]:
    """Consent over time: renewal mails before an expiry, the expiry itself, and the
    end of retention (``consent/renewal.py``), until the Lambda's time is up."""
    from chalicelib.consent import renewal
    from chalicelib.rights import erasure
    from chalicelib.web import background

    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    pusher = background.pusher_or_none()

    def erase(subject: str, act_mode: str) -> None:
        client = pusher.client if pusher is not None else None
        erasure.erase_with_act(
            ledger, catalogue, settings, subject, "retention", act_mode, client, pusher
        )

    context = getattr(event, "context", None)
    remaining = context.get_remaining_time_in_millis() / 1000 if context else 300.0
    report = renewal.Sweeper(
        ledger,
        settings,
        catalogue,
        erase=erase,
        deliver=get_postman().deliver_safely if settings.mail.transport != "none" else None,
        seconds=max(5.0, remaining - 60),
    ).run()
    return {k: v for k, v in report.as_dict().items() if k != "days"}


def anchor_minutes(env: dict[str, str] | None = None) -> int:
    """How often ``anchor_sweep`` runs (``ANCHOR_SCHEDULE_MINUTES``, default 60).

    Read when Chalice imports the app, like the stream ARN: the rate is part of the
    deployed CloudWatch rule, so a change takes effect at the next deploy."""
    value = (env if env is not None else os.environ).get("ANCHOR_SCHEDULE_MINUTES", "").strip()
    if not value:
        return 60
    if not value.isdigit() or not 1 <= int(value) <= 1440:
        raise ConfigError(
            f"ANCHOR_SCHEDULE_MINUTES={value!r}: write a whole number of minutes from 1 to 1440."
        )
    return int(value)


@bp.schedule(Rate(anchor_minutes(), unit=Rate.MINUTES))
def anchor_sweep(event: Any) -> dict[str, Any]:
    """Timestamp a Merkle root over the chain heads that changed since the last anchor
    (RFC 3161). A TSA that is down raises an alarm and the heads wait: no decision does."""
    from chalicelib.proof import anchor

    return anchor.run_leased(get_ledger(), get_settings().anchor, "anchor_sweep").as_dict()
