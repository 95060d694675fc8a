"""The scheduled ``act_poll``: what Act! cloud cannot tell us by webhook, looked for.

Every few minutes: the contacts edited since the last poll (``reconcile.poll``, its
watermark rules unchanged) and the "ask from inside Act!" triggers (``ask.Asker``),
until a deadline under the function's timeout, and under a lease, so two invocations
(a slow one and the next) never work at once.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from chalicelib.act import reconcile
from chalicelib.core.errors import OptinProofError
from chalicelib.core.logs import log
from chalicelib.store import keys
from chalicelib.store.ledger import Ledger

#: The lease outlives the deadline by this much: a run killed at its timeout frees the
#: lease by itself soon after, and a live run never loses it.
LEASE_MARGIN = 60


def run(
    ledger: Ledger, mode: str, reconciler: reconcile.Reconciler, seconds: float
) -> dict[str, Any]:
    """One scheduled pass: ``mode`` is ``on`` (edits and triggers) or ``triggers``."""
    owner = uuid.uuid4().hex
    lease = keys.ACT_POLL_LEASE
    if not ledger.lease(*lease, owner, int(seconds) + LEASE_MARGIN):
        log("act_poll_busy")
        return {"busy": True}
    try:
        deadline = time.monotonic() + seconds
        result: dict[str, Any] = {}
        if mode == "on":
            report = reconcile.poll(ledger, reconciler, deadline=deadline)
            result["poll"] = {
                "read": report.read,
                "reconciled": len(report.reconciled),
                "own_writes": report.own_writes,
                "already_seen": report.already_seen,
                "watermark": report.watermark,
                "unfinished": report.unfinished,
            }
        if reconciler.asker is not None:
            try:
                result["ask"] = reconciler.asker.scan(deadline).as_dict()
            except OptinProofError as exc:  # e.g. the group was deleted in Act!
                log("act_ask_scan_failed", level="error", error=str(exc)[:300])
                result["ask"] = {"error": str(exc)[:300]}
        log("act_poll", **result)
        return result
    finally:
        ledger.release(*lease, owner)
