"""Throttles: how often one address may be mailed, one IP may sign people up.

A sliding window kept in DynamoDB (a short list of hit times per key, with TTL), so
every Lambda container sees the same count and a burst at a window's edge cannot
double the limit. Keys are keyed hashes: the table never holds an IP address or an
e-mail address in a throttle item.
"""

from __future__ import annotations

import random
import time

from chalicelib.consent.subjects import subject_key
from chalicelib.core.errors import Contention, OptinProofError
from chalicelib.core.logs import log
from chalicelib.core.settings import Limit
from chalicelib.store import keys
from chalicelib.store.ledger import Ledger

_ATTEMPTS = 12


def rate_key(pepper: str, scope: str, value: str) -> str:
    """The throttle key of ``value`` (an IP, an address) in ``scope``: a keyed hash."""
    return subject_key(pepper, f"{scope}:{value}")


class Throttle:
    """Counts hits per key in the consent table."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def hit(
        self,
        scope: str,
        key: str,
        limit: Limit,
        now: float | None = None,
        taken: list[tuple[str, str, int]] | None = None,
    ) -> bool:
        """Count one hit; False (and nothing counted) when ``limit`` is already reached.

        ``taken`` collects what was counted, so a request that then fails to record
        anything can give its hits back (:meth:`refund`).
        """
        pk, sk = keys.rate(scope, key)
        for attempt in range(_ATTEMPTS):
            at = _millis(now)
            item = self.ledger.get(pk, sk) or {}
            hits = [h for h in item.get("hits", []) if h > at - limit.seconds * 1000]
            if len(hits) >= limit.count:
                return False
            written = self.ledger.put_versioned(
                {
                    "pk": pk,
                    "sk": sk,
                    "scope": scope,
                    "hits": [*hits, at],
                    "expires_at": at // 1000 + limit.seconds + 60,
                },
                int(item.get("version", 0)),
            )
            if written:
                if taken is not None:
                    taken.append((scope, key, at))
                return True
            time.sleep(random.uniform(0, 0.02 * (attempt + 1)))  # spread a burst out
        log("throttle_contention", level="warning", scope=scope)
        raise Contention("Too many simultaneous requests; please try again.")

    def refund(self, taken: list[tuple[str, str, int]]) -> None:
        """Give back hits of a request that recorded nothing (best effort)."""
        for scope, key, at in taken:
            for _ in range(_ATTEMPTS):
                try:
                    item = self.ledger.get(*keys.rate(scope, key))
                    if not item or at not in item.get("hits", []):
                        break
                    hits = [h for h in item["hits"] if h != at]
                    if self.ledger.put_versioned(
                        {**item, "hits": hits}, int(item.get("version", 0))
                    ):
                        break
                except OptinProofError:  # the store is still down: the hit stays
                    log("throttle_refund_failed", level="warning", scope=scope)
                    break

    def remaining(self, scope: str, key: str, limit: Limit, now: float | None = None) -> int:
        """How many hits are left in the current window (for status output and tests)."""
        at = _millis(now)
        item = self.ledger.get(*keys.rate(scope, key)) or {}
        recent = [h for h in item.get("hits", []) if h > at - limit.seconds * 1000]
        return max(0, limit.count - len(recent))


def _millis(now: float | None) -> int:
    """Hit times are whole milliseconds: DynamoDB numbers, no float rounding."""
    return int((time.time() if now is None else now) * 1000)
