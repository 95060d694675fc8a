"""``breach``: personal-data breach notices to the people affected (GDPR art. 34)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from chalicelib.cli.common import Bar, group, operator, print_data, progress_printer
from chalicelib.core.services import get_catalogue, get_ledger
from chalicelib.core.settings import get_settings
from chalicelib.mail.transports import get_transport
from chalicelib.rights import breach as notices

breach = group(
    "breach",
    "personal-data breach notices (GDPR art. 34)",
    "breach report --id breach-2026-11-shop --json",
)


@breach.command(
    "notify",
    short_help="mail the notice to every affected person still reachable",
    help="Mails notice.<locale>.txt (first line may be 'Subject: ...') to each "
    "selected person with an address on record, in their language (else the "
    "catalogue's default), and records a breach_notified event per person. Run "
    "it again to resume: nobody is mailed twice; failures are retried.",
    example="breach notify --id breach-2026-11-shop --notice-dir breach --dry-run",
)
@click.option("--id", "breach_id", required=True, help="breach id, e.g. breach-2026-12-crm-export")
@click.option(
    "--notice-dir", required=True, help="directory holding notice.en.txt, notice.fr.txt, ..."
)
@click.option("--purpose", help="only people holding this purpose in --state")
@click.option(
    "--state",
    multiple=True,
    type=click.Choice(list(notices.STATES)),
    help="with --purpose: the states that count (default accepted; repeat)",
)
@click.option("--addresses", help="only the addresses in this file (one per line)")
@click.option("--since", help="only people recorded or updated since (ISO date/time)")
@click.option(
    "--aware-at",
    help="when the controller learned of the breach (ISO); the report shows the hours since",
)
@click.option("--rate", type=float, default=10.0, help="mails per second (default 10)")
@click.option("--dry-run", is_flag=True, help="count, send nothing")
@click.option("--json", "as_json", is_flag=True, help="--dry-run counts as JSON")
def breach_notify(
    breach_id: str,
    notice_dir: str,
    purpose: str | None,
    state: tuple[str, ...],
    addresses: str | None,
    since: str | None,
    aware_at: str | None,
    rate: float,
    dry_run: bool,
    as_json: bool,
) -> int:
    """Resumable and exactly-once per person, so an interrupted run is simply rerun."""
    settings = get_settings()
    ledger, catalogue = get_ledger(settings), get_catalogue(settings)
    notice = notices.load_notice(breach_id, Path(notice_dir), catalogue, aware_at)
    selected = notices.select(
        ledger,
        settings,
        catalogue,
        notices.Selection(
            purpose=purpose,
            states=tuple(state or ("accepted",)),
            addresses=notices.read_addresses(Path(addresses)) if addresses else None,
            since=notices.parse_moment(since, "--since") if since else None,
        ),
    )
    if selected.unknown or selected.invalid_lines:
        print(
            f"{selected.unknown} listed address(es) we hold nothing about; lines that are no "
            f"address: {selected.invalid_lines[:20] or 'none'}",
            file=sys.stderr,
        )
    if dry_run:
        print_data(notices.survey(ledger, breach_id, selected.subjects), as_json)
        return 0
    with Bar(len(selected.subjects), "people notified") as bar:
        progress = notices.notify(
            ledger,
            settings,
            catalogue,
            get_transport(settings.mail, settings.aws_region),
            notice,
            selected.subjects,
            rate,
            progress_printer("notified", bar),
            operator=operator(),
        )
    unreachable = ", ".join(f"{n} {why}" for why, n in sorted(progress.unreachable.items()))
    print(
        f"{progress.total} people: {progress.notified} notified now, {progress.before} before, "
        f"unreachable {unreachable or 'none'}, {progress.failed} failed (retried by the next "
        f"run), {progress.permanent} refused for good, {progress.busy} busy"
    )
    for error in progress.errors[:10]:
        print(f"  {error}")
    return 1 if progress.failed or progress.busy else 0


@breach.command(
    "report",
    short_help="who was notified, when, and how long after awareness",
    help="Counts of a breach notice and the first/last notification times.",
    example="breach report --id breach-2026-11-shop --json",
)
@click.option("--id", "breach_id", required=True, help="breach id")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def breach_report(breach_id: str, as_json: bool) -> int:
    """The numbers the supervisory authority asks for."""
    print_data(notices.report(get_ledger(), breach_id).as_dict(), as_json)
    return 0


@breach.command(
    "preview",
    short_help="print the notice mail as it will be sent",
    help="Render the notice mail of one language without sending anything.",
    example="breach preview --id breach-2026-11-shop --notice-dir breach --locale fr",
)
@click.option("--id", "breach_id", required=True, help="breach id")
@click.option("--notice-dir", required=True, help="directory of notice.*.txt")
@click.option("--locale", type=click.Choice(["en", "fr"]), help="language")
@click.option("--html", is_flag=True, help="the HTML part")
def breach_preview(breach_id: str, notice_dir: str, locale: str | None, html: bool) -> int:
    """Read the notice as people will before sending it to thousands."""
    catalogue = get_catalogue()
    notice = notices.load_notice(breach_id, Path(notice_dir), catalogue)
    template = notices.preview(catalogue, notice, locale or catalogue.default_locale)
    print(f"Subject: {template.subject}\n")
    print(template.html if html else template.text)
    return 0
