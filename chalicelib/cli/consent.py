"""``consent``: consent over time — the validity sweep by hand, and expiries ahead."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, time, timedelta

import click

from chalicelib.cli.common import Bar, group, print_data
from chalicelib.core.errors import BadInput
from chalicelib.core.services import (
    get_act_client,
    get_catalogue,
    get_ledger,
    get_postman,
    get_pusher,
)
from chalicelib.core.settings import get_settings

consent = group(
    "consent",
    "consent over time: renewal mails, expiries, retention",
    "consent sweep --dry-run",
)


def _day(text: str | None, name: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise BadInput(f"{name} {text!r} is not a day (YYYY-MM-DD).") from exc


@consent.command(
    "sweep",
    short_help="send due renewal mails, record expiries, apply retention (what the schedule does)",
    help="Work the validity index from where the last run stopped to today: renewal "
    "mails due (at most RENEWAL_MAILS_PER_RUN), expiries (an expired event, the Act! "
    "status field, aemOptOut), and people past the catalogue's [retention]. The "
    "validity_sweep schedule does this every hour. --dry-run writes nothing and says "
    "what a run would do; with --as-of it looks at another day (e.g. next month).",
    example="consent sweep --dry-run --as-of 2027-01-31",
)
@click.option("--dry-run", is_flag=True, help="write nothing; report what a run would do")
@click.option("--as-of", "as_of", help="with --dry-run: the day to look at (YYYY-MM-DD)")
@click.option("--since", help="with --dry-run: the first day to read (default: where runs stand)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def consent_sweep(dry_run: bool, as_of: str | None, since: str | None, as_json: bool) -> int:
    """The schedule by hand: a real run only ever works up to today."""
    from chalicelib.consent import renewal
    from chalicelib.rights import erasure

    if (as_of or since) and not dry_run:
        raise BadInput("--as-of and --since only go with --dry-run: a real run works up to today.")
    day, first = _day(as_of, "--as-of"), _day(since, "--since")
    moment = datetime.combine(day, time(23, 59), tzinfo=UTC) if day else None
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()

    def erase(subject: str, act_mode: str) -> None:
        erasure.erase_with_act(
            ledger,
            catalogue,
            settings,
            subject,
            "retention",
            act_mode,
            get_act_client(settings) if settings.act else None,
            get_pusher(settings) if settings.act else None,
        )

    with Bar(None, "reading days") as bar:

        def progress(seen_day: str, people: int) -> None:
            bar.advance()
            if not bar.shown and people:
                print(f"{seen_day}: {people} person(s) due", file=sys.stderr, flush=True)

        report = renewal.Sweeper(
            ledger,
            settings,
            catalogue,
            erase=erase,
            deliver=get_postman().deliver_safely if settings.mail.transport != "none" else None,
            dry_run=dry_run,
            progress=progress,
        ).run(moment, first.isoformat() if first else None)
    if as_json:
        print_data(report.as_dict(), True)
        return 0
    if report.busy:
        print("another sweep is running; nothing done", file=sys.stderr)
        return 1
    days = f"{report.days[0]} to {report.days[-1]}" if report.days else "no day"
    verb = "would" if dry_run else "did"
    print(
        f"{days}: {verb} send {report.renewal_mails} renewal mail(s), expire "
        f"{report.expired} consent(s), erase {report.erased} and archive {report.archived} "
        f"person(s); {report.deferred} left for the next run, {report.stale} outdated "
        f"index item(s) dropped"
    )
    return 0


@consent.command(
    "expiries",
    short_help="per purpose: consents expiring in the next 30/90 days, expired in the last",
    help="The dashboard's expiry figures, from counters (no scan): per purpose, the "
    "acceptances that expire in the next 30 and 90 days, those that expired in the "
    "last 30 and 90 days, and the people whose consent is expired now.",
    example="consent expiries --json",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def consent_expiries(as_json: bool) -> int:
    """What runs out soon: the figures marketing plans a re-permission campaign on."""
    from chalicelib.consent import validity

    catalogue = get_catalogue()
    today = datetime.now(UTC).date()
    rows = {
        purpose: vars(figures)
        for purpose, figures in validity.outlook(get_ledger(), catalogue, today).items()
    }
    if as_json:
        print_data(rows, True)
        return 0
    print(
        f"{'purpose':<16}{'validity':>10}{'next 30d':>10}{'next 90d':>10}"
        f"{'last 30d':>10}{'last 90d':>10}{'expired':>9}"
    )
    for purpose, row in rows.items():
        days = catalogue.get(purpose).validity_days
        print(
            f"{purpose:<16}{(f'{days}d' if days else 'none'):>10}{row['ahead_30']:>10}"
            f"{row['ahead_90']:>10}{row['past_30']:>10}{row['past_90']:>10}"
            f"{row['expired_now']:>9}"
        )
    print(f"(as of {today.isoformat()}, {(today + timedelta(days=90)).isoformat()} ahead)")
    return 0


@consent.command(
    "backfill",
    short_help="give acceptances recorded before validities their expiry (once, after upgrading)",
    help="Acceptances recorded before purposes had a validity carry no expiry, so they "
    "would never run out. This gives each the validity its purpose has now, counted "
    "from the decision: a validity_set event on the person's chain, the state's "
    "valid_until, its renewal and expiry schedule. One already past is expired by the "
    "next validity sweep. It scans the table; running it again finds nothing to do. "
    "--dry-run writes nothing and counts.",
    example="consent backfill --dry-run",
)
@click.option("--dry-run", is_flag=True, help="write nothing; count what a run would stamp")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def consent_backfill(dry_run: bool, as_json: bool) -> int:
    """Stamp every acceptance that has no ``valid_until``; exit 0."""
    from chalicelib.consent import backfill

    ledger, catalogue = get_ledger(), get_catalogue()
    people = backfill.waiting(ledger)
    with Bar(len(people), "acceptances to date") as bar:
        report = backfill.run(ledger, catalogue, dry_run, bar.advance, people)
    print_data(report.as_dict(), as_json)
    return 0
