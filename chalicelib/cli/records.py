"""``records``: one person's consent records as ISO/IEC TS 27560 records (DPV, JSON-LD)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from chalicelib.cli.common import ExampleCommand, exactly_one, subject_of
from chalicelib.core.services import get_catalogue, get_ledger
from chalicelib.core.settings import get_settings
from chalicelib.proof import records27560


@click.command(
    "records",
    cls=ExampleCommand,
    short_help="one person's consent records: ISO/IEC TS 27560, W3C DPV, JSON-LD",
    help="Print (or write to --out) the person's consent records as ISO/IEC TS 27560 "
    "records in the W3C DPV vocabulary, JSON-LD with an inline context "
    "(schemas/consent-record-27560.v1.json): one record per purpose with its "
    "events, legal basis, validity, withdrawal method, retention, jurisdiction and "
    "recipients. The person is named by the keyed subject hash, never the address. "
    "Exit 1 if nothing is held.",
    example="records --email ann@example.eu --out ann.jsonld",
)
@click.option("--email", help="the person's address")
@click.option("--subject", help="the subject key (64 hex characters)")
@click.option("--out", help="write the document to this file instead of stdout")
def records(email: str | None, subject: str | None, out: str | None) -> int:
    """The JSON-LD document on stdout or in ``--out``; exit 1 when nothing is held."""
    exactly_one({"email": email, "subject": subject}, "email", "subject")
    settings = get_settings()
    ledger, key = get_ledger(settings), subject_of(email, subject)
    if not ledger.holds(key):
        print(f"nothing is held about {email or key}", file=sys.stderr)
        return 1
    document = records27560.for_subject(ledger, settings, get_catalogue(settings), key)
    text = json.dumps(document, ensure_ascii=False, indent=2)
    if out:
        Path(out).write_text(text + "\n", encoding="utf-8")
        print(out)
    else:
        print(text)
    print(f"{len(document['@graph'])} consent record(s)", file=sys.stderr)
    return 0
