"""Outbound webhooks: other tools follow consent through a signed POST per decision.

Each decision event writes, in its own transaction, one delivery item per configured
subscriber (``HOOKOUT#<event id>`` / ``TO#<n>``), so no decision can be recorded
without its deliveries. The stream sends them at once; a failure is retried with
backoff by the sweep, and every attempt is kept in the item's log (``cli webhooks
status``). The body is signed like Stripe's:

    X-OptinProof-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

so a receiver checks the signature and refuses old timestamps (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any

import urllib3

from chalicelib.consent.deliveries import QUEUE
from chalicelib.core.clock import iso, now_iso, utcnow
from chalicelib.core.logs import log
from chalicelib.core.settings import Settings
from chalicelib.store import keys
from chalicelib.store.ledger import Ledger

BACKOFF_SECONDS = (60, 300, 1800, 7200, 21600)
MAX_ATTEMPTS = 8
_POOL = urllib3.PoolManager(num_pools=4, maxsize=8, retries=False)
_LOG_KEEP = 10


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header value for ``body``."""
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def verify(secret: str, body: bytes, header: str, tolerance: int = 300) -> bool:
    """What a receiver does (and our tests): right signature, recent timestamp."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        stamp = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(time.time() - stamp) > tolerance:
        return False
    expected = sign(secret, body, stamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected.encode(), parts.get("v1", "").encode("utf-8", "replace"))


class Dispatcher:
    """Sends delivery items and keeps their log."""

    def __init__(self, ledger: Ledger, settings: Settings) -> None:
        self.ledger = ledger
        self.settings = settings

    def deliver(self, pk: str, sk: str) -> str:
        """One attempt; returns the item's new status (delivered, pending, failed)."""
        item = self.ledger.get(pk, sk)
        if item is None or item.get("status") != "pending":
            return "skipped"
        owner = hashlib.sha256(f"{time.time()}{pk}{sk}".encode()).hexdigest()[:16]
        if not self.ledger.claim(pk, sk, owner, 60):
            return "skipped"
        body = item["body"].encode()
        secret = self.settings.webhook_secret or ""
        status, error = None, ""
        try:
            response = _POOL.request(
                "POST",
                item["url"],
                body=body,
                timeout=5.0,
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": "OptinProof-Webhooks/1",
                    "X-OptinProof-Signature": sign(secret, body),
                    "X-OptinProof-Event": json.loads(body)["event_id"],
                },
            )
            status = response.status
            ok = 200 <= status < 300
            error = "" if ok else f"HTTP {status}"
        except urllib3.exceptions.HTTPError as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"[:200]
        attempts = int(item.get("attempts", 0)) + 1
        entry = {"at": now_iso(), "status": status, "error": error}
        updated = {**item, "attempts": attempts, "log": [*item.get("log", []), entry][-_LOG_KEEP:]}
        for lease in ("claimed_by", "claimed_until"):
            updated.pop(lease, None)
        if ok:
            updated.update(status="delivered", delivered_at=entry["at"])
            updated.pop("sync_shard", None)
            updated.pop("sync_due", None)
        elif attempts >= MAX_ATTEMPTS:
            updated["status"] = "failed"
            updated.pop("sync_shard", None)
            updated.pop("sync_due", None)
            log("webhook_alert", level="error", url=item["url"], attempts=attempts, error=error)
        else:
            wait = BACKOFF_SECONDS[min(attempts, len(BACKOFF_SECONDS)) - 1]
            updated["sync_due"] = iso(utcnow() + timedelta(seconds=wait))
        self.ledger.put(updated)
        log("webhook_delivery", url=item["url"], status=status, ok=ok, attempts=attempts)
        return updated["status"]


def requeue_failed(ledger: Ledger) -> int:
    """Put deliveries that gave up back in the queue (after the subscriber was fixed)."""
    count = 0
    for item in ledger.scan_items(keys.HOOKOUT_PREFIX):
        if item.get("status") != "failed":
            continue
        ledger.put(
            {**item, "status": "pending", "attempts": 0, "sync_shard": QUEUE, "sync_due": now_iso()}
        )
        count += 1
    return count


def due_keys(
    ledger: Ledger, include_later: bool = False, limit: int = 200
) -> list[tuple[str, str]]:
    due = []
    for key in ledger.sync_keys([QUEUE], None if include_later else now_iso()):
        due.append(key)
        if len(due) >= limit:
            break
    return due


def status_rows(ledger: Ledger) -> list[dict[str, Any]]:
    """Every delivery not delivered (pending or failed) with its log, for the CLI."""
    rows = [
        item for item in ledger.scan_items(keys.HOOKOUT_PREFIX) if item.get("status") != "delivered"
    ]
    return sorted(rows, key=lambda r: r.get("created_at", ""))
