"""``anchor``: timestamp the chain heads that changed, by hand or as the local stand-in
for the ``anchor_sweep`` schedule (``make run``: ``chalice local`` has no stream)."""

from __future__ import annotations

import json
import sys
import time

import click

from chalicelib.cli.common import group
from chalicelib.core.errors import OptinProofError
from chalicelib.core.services import get_ledger
from chalicelib.core.settings import get_settings
from chalicelib.proof import anchor as anchoring

anchor = group(
    "anchor",
    "timestamp changed chain heads with an RFC 3161 TSA (Merkle root)",
    "anchor run --catch-up",
)


@anchor.command(
    "run",
    short_help="anchor the queued chain heads now; exit 1 if no TSA granted a token",
    help="Build a Merkle tree over the chain heads that changed since the last anchor "
    "(queued by the table stream), have the first TSA of TSA_URLS that answers "
    "timestamp its root, and record the token and each subject's inclusion path. "
    "--catch-up also anchors every head no anchor covers (one scan: a table older than "
    "anchoring, or a stack without a stream). Prints the outcome as JSON.",
    example="anchor run --catch-up",
)
@click.option("--catch-up", is_flag=True, help="also every unanchored head (scans the table)")
@click.option("--interval", type=float, help="repeat every N seconds until stopped")
def anchor_run(catch_up: bool, interval: float | None) -> int:
    """Exit 1 when heads wait because no TSA granted a token (cron notices)."""
    settings = get_settings()
    if not settings.anchor.tsa_urls:
        raise OptinProofError("TSA_URLS is not set: name at least one time-stamping authority.")
    while True:
        try:
            outcome = anchoring.run_leased(get_ledger(settings), settings.anchor, "cli", catch_up)
        except OptinProofError as exc:
            if not interval:
                raise
            print(f"error: {exc}; trying again in {interval:g}s", file=sys.stderr)
            outcome = None
        if outcome is not None and (outcome.anchor_id or outcome.failures or not interval):
            print(json.dumps(outcome.as_dict(), ensure_ascii=False), flush=True)
        if not interval:
            return 1 if outcome is not None and outcome.failures and not outcome.anchor_id else 0
        time.sleep(interval)
