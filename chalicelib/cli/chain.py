"""``chain``: verify the tamper-evident event chains (what an auditor would check)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import click

from chalicelib.cli.common import Bar, exactly_one, group, print_data
from chalicelib.consent.subjects import normalise_email, subject_key
from chalicelib.core.services import get_ledger
from chalicelib.core.settings import get_settings
from chalicelib.proof import audit
from chalicelib.proof import chain as proof

chain = group("chain", "verify the tamper-evident event chains", "chain verify --all --quiet")


def report_line(report: proof.ChainReport) -> str:
    """One line per subject: ``ok`` or ``BROKEN`` with the first bad event."""
    if report.ok:
        return f"ok      {report.subject}  {report.events} events"
    where = f"at event {report.broken_seq}: " if report.broken_seq else ""
    return f"BROKEN  {report.subject}  {where}{report.reason} ({report.events} events verified)"


def _as_dict(report: proof.ChainReport) -> dict[str, Any]:
    return {
        "subject": report.subject,
        "ok": report.ok,
        "events": report.events,
        "broken_seq": report.broken_seq,
        "reason": report.reason,
    }


@chain.command(
    "verify",
    short_help="verify one subject's chain or every chain; exit 1 if one is broken",
    help="Recompute every event hash and link, check the chain head, that each "
    "purpose state follows from its last event, and that every cited wording "
    "is stored intact; report the first problem of each subject. Exit status 1 "
    "when any is found.",
    example="chain verify --email ann@example.eu",
)
@click.option("--email", help="the subject with this address")
@click.option("--subject", help="the subject with this key (hex)")
@click.option("--all", "all_", is_flag=True, help="every subject in the table")
@click.option("--quiet", is_flag=True, help="print only broken chains")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="print one JSON document: the reports (with --quiet only broken ones) and the counts",
)
def chain_verify(
    email: str | None, subject: str | None, all_: bool, quiet: bool, as_json: bool
) -> int:
    """Exit 1 on any broken chain so cron and CI notice without reading the output."""
    exactly_one({"email": email, "subject": subject, "all": all_}, "email", "subject", "all")
    settings = get_settings()
    ledger = get_ledger(settings)
    subjects: Iterable[str]
    if email:
        subjects = [subject_key(settings.subject_pepper, normalise_email(email))]
    elif subject:
        subjects = [subject]
    else:
        subjects = ledger.subjects()
    checked = broken = 0
    shown: list[dict[str, Any]] = []
    with Bar(None, "verifying chains", show=all_) as bar:
        for one in subjects:
            report = audit.verify_subject(ledger, one)
            bar.advance()
            checked += 1
            if not report.ok:
                broken += 1
            if not report.ok or not quiet:
                if as_json:
                    shown.append(_as_dict(report))
                else:
                    print(report_line(report))
    if as_json:
        print_data({"checked": checked, "broken": broken, "subjects": shown}, True)
    if checked == 0:
        if not as_json:
            print("no subject found" if not all_ else "the table holds no subject yet")
        return 1 if not all_ else 0
    if not as_json:
        print(f"{checked} subject(s) checked, {broken} broken")
    return 1 if broken else 0
