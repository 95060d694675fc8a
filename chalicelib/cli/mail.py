"""``mail``: see, send and preview OptinProof's own mails."""

from __future__ import annotations

import sys
import time

import click

from chalicelib.cli.common import group, print_data
from chalicelib.core.errors import OptinProofError
from chalicelib.core.services import get_catalogue, get_ledger, get_postman
from chalicelib.core.settings import get_settings
from chalicelib.mail import compose, outbox

mail = group("mail", "see, send and preview OptinProof's own mails", "mail status --json")


@mail.command(
    "status",
    short_help="list mails waiting in the outbox (queued for a retry, or failed)",
    help="Mails whose first try failed wait in the outbox with their last error: "
    "queued ones are retried with backoff, failed ones gave up (permanent "
    "refusal, or MAIL_MAX_ATTEMPTS rounds).",
    example="mail status --json",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def mail_status(as_json: bool) -> int:
    """Mails that did not go out yet, with the error the mail server gave."""
    rows = outbox.outbox_rows(get_ledger())
    if as_json:
        print_data(rows, True)
        return 0
    if not rows:
        print("the outbox is empty: every mail was sent")
        return 0
    for row in rows:
        print(
            f"{row['status']:<7} {row['mail_id']} {row['mail_kind']:<8} "
            f"{(row['subject'] or '')[:12]}…  attempts {row['attempts']}  "
            f"queued {row['queued_at']}  next {row.get('sync_due') or '-'}  "
            f"{row.get('last_error') or ''}"
        )
    return 0


@mail.command(
    "sweep",
    short_help="send the queued mails that are due (--all: due or not)",
    help="Send outbox mails now: the local stand-in for the scheduled mail sweep. "
    "Exit 1 if any failed again.",
    example="mail sweep --all",
)
@click.option("--all", "all_", is_flag=True, help="also those waiting for backoff")
@click.option("--limit", type=int, default=200, help="at most this many per round")
@click.option("--interval", type=float, help="repeat every N seconds until stopped")
def mail_sweep(all_: bool, limit: int, interval: float | None) -> int:
    """The scheduled mail sweep by hand; with --interval the local stand-in for it."""
    settings = get_settings()
    if settings.mail.transport == "none":
        raise OptinProofError("MAIL_TRANSPORT is none: there is nothing to send.")
    while True:
        try:
            results = outbox.sweep(get_postman(settings), limit=limit, include_later=all_)
        except OptinProofError as exc:
            if not interval:
                raise
            print(f"error: {exc}; trying again in {interval:g}s", file=sys.stderr)
            results = []
        counts = {
            status: sum(1 for r in results if r.status == status)
            for status in ("sent", "retry", "failed", "skipped")
        }
        if results or not interval:
            print(", ".join(f"{n} {status}" for status, n in counts.items()))
            for result in results:
                if result.status in ("retry", "failed"):
                    print(f"  {result.mail_id}: {result.detail}")
        if not interval:
            return 1 if counts["failed"] or counts["retry"] else 0
        time.sleep(interval)


@mail.command(
    "preview",
    short_help="print a mail template as sent, with markers for links and name",
    help="Render a mail template for review, with ⟦markers⟧ where each person's "
    "links and name go, and print its template version (what mail_sent "
    "events cite).",
    example="mail preview --kind confirm --locale fr --html",
)
@click.option(
    "--kind",
    type=click.Choice(list(compose.MAIL_KINDS)),
    default="confirm",
    help="confirm (default) or already (already subscribed)",
)
@click.option("--locale", type=click.Choice(["en", "fr"]), default="en", help="language")
@click.option(
    "--purpose", multiple=True, help="purposes listed in the mail (default: all); repeatable"
)
@click.option("--with-name", is_flag=True, help="the variant with a name")
@click.option("--html", is_flag=True, help="print the HTML part")
@click.option("--json", "as_json", is_flag=True, help="print JSON (both parts)")
def mail_preview(
    kind: str, locale: str, purpose: tuple[str, ...], with_name: bool, html: bool, as_json: bool
) -> int:
    """Review the wording before it goes out; the version is what the proof cites."""
    settings = get_settings()
    catalogue = get_catalogue(settings)
    purposes = tuple(purpose or catalogue.purposes)
    template = compose.render_template(
        settings, catalogue, kind, locale, purposes, has_name=with_name
    )
    if as_json:
        print_data({"template_version": template.sha256, **compose.template_record(template)}, True)
        return 0
    print(f"template version {template.sha256}")
    print(f"Subject: {template.subject}\n")
    print(template.html if html else template.text)
    return 0
