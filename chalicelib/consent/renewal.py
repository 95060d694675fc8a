"""The validity sweep: renewal mails before an expiry, the expiry, the end of retention.

Run daily by the ``validity_sweep`` schedule (and ``optinproof consent sweep``). It
reads the validity index (``consent/validity.py``) one day partition at a time, from
the first day it has not finished (``VALIDITY#CURSOR``) to today: never the table.
For each person found there, one read of their profile and states, then:

- a **renewal** due: one mail (kind ``renew``) through the outbox asking to confirm
  the purposes due, with a fresh confirm link; the ``link_issued`` event names the
  expiry it is about (``renewal_of``) and the outbox records ``mail_sent``. Accepting
  on that page is a new decision, hence an active contact: the expiry starts again.
  At most ``RENEWAL_MAILS_PER_RUN`` mails per run; what is left waits for the next
  run, and the day stays unfinished until it is sent.
- an **expiry** due: an ``expired`` event per purpose on the person's chain (through
  ``Ledger.commit``, like every event), the state ``expired`` and pending for Act!,
  where the status field takes the fourth word of ``ACT_STATUS_VALUES`` and
  ``aemOptOut`` is recomputed as for a withdrawal.
- the end of **retention** (``[retention]`` in the catalogue): a person with no active
  contact for that long and no consent still running is erased (``erase``) or
  archived (``archive``: erased here, the Act! contact kept as it is); the proof
  events stay, as with every erasure.

Index items whose decision was replaced meanwhile are dropped (nothing is due for
them any more). Two runs never overlap (a lease). A dry run writes nothing and
reports what a run would do, ``as_of`` any day.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from chalicelib.consent import validity
from chalicelib.consent.catalogue import Catalogue
from chalicelib.consent.requests import draft_request, plan_request
from chalicelib.consent.rules import RequestContext
from chalicelib.core.clock import iso, now_iso, utcnow
from chalicelib.core.errors import OptinProofError
from chalicelib.core.logs import log
from chalicelib.core.settings import Settings
from chalicelib.proof.chain import new_event_id
from chalicelib.store import keys
from chalicelib.store.ledger import Draft, Ledger, Plan, Snapshot

_LEASE_SECONDS = 900


@dataclass
class SweepReport:
    """What one run did (or, dry, would do)."""

    days: list[str] = field(default_factory=list)
    renewal_mails: int = 0
    expired: int = 0
    erased: int = 0
    archived: int = 0
    retention_moved: int = 0
    stale: int = 0
    deferred: int = 0
    dry_run: bool = False
    busy: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _days(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


class Sweeper:
    """One run of the validity sweep over one table.

    ``erase(subject, act_mode)`` erases a person (``rights.erasure`` wired to Act!);
    ``deliver(mail_id)`` sends an outbox mail at once (else the stream and the mail
    sweep send it); ``progress(day, people)`` is told as each day is read.
    """

    def __init__(
        self,
        ledger: Ledger,
        settings: Settings,
        catalogue: Catalogue,
        erase: Callable[[str, str], Any] | None = None,
        deliver: Callable[[str], Any] | None = None,
        dry_run: bool = False,
        progress: Callable[[str, int], None] | None = None,
        seconds: float | None = None,
    ) -> None:
        self.ledger = ledger
        self.settings = settings
        self.catalogue = catalogue
        self.erase = erase
        self.deliver = deliver
        self.dry_run = dry_run
        self.progress = progress
        self.report = SweepReport(dry_run=dry_run)
        self.budget = settings.renewal_mails_per_run
        #: Stop between two people after this long (a Lambda's time): the rest of the
        #: day stays for the next run.
        self.deadline = time.monotonic() + seconds if seconds is not None else None

    def run(self, as_of: datetime | None = None, since: str | None = None) -> SweepReport:
        """Work every day from the cursor (or ``since``) to ``as_of``'s day (today)."""
        now = as_of or utcnow()
        today = iso(now)[:10]
        owner = secrets.token_hex(8)
        if not self.dry_run and not self.ledger.lease(*keys.VALIDITY_LEASE, owner, _LEASE_SECONDS):
            self.report.busy = True
            return self.report
        try:
            # No cursor yet: nothing was indexed before today (items are due from the
            # day they are written on), so the first run starts today.
            cursor = (
                since or (self.ledger.get(*keys.VALIDITY_CURSOR) or {}).get("day") or now_iso()[:10]
            )
            for day in _days(min(cursor, today), today):
                self.report.days.append(day)
                finished = self._day(day, now)
                if finished and day < today and not self.dry_run and since is None:
                    self.ledger.set_fields(*keys.VALIDITY_CURSOR, {"day": _next(day)})
        finally:
            if not self.dry_run:
                self.ledger.release(*keys.VALIDITY_LEASE, owner)
        log("validity_sweep", **{k: v for k, v in self.report.as_dict().items() if k != "days"})
        return self.report

    def _day(self, day: str, now: datetime) -> bool:
        """One day's partition; True when nothing of it is left for a later run."""
        people: dict[str, list[dict[str, Any]]] = {}
        for item in self.ledger.query_between(keys.validity_day(day), "0", "~"):  # all of it
            people.setdefault(item["subject"], []).append(item)
        if self.progress is not None:
            self.progress(day, len(people))
        left = 0
        for subject, items in people.items():
            if self.deadline is not None and time.monotonic() > self.deadline:
                self.report.deferred += len(items)
                left += len(items)
                continue
            try:
                left += self._person(subject, items, now)
            except OptinProofError as exc:  # one person's trouble stops no other
                log("validity_person_failed", level="warning", subject=subject, error=str(exc))
                left += 1
        return left == 0

    def _person(self, subject: str, items: list[dict[str, Any]], now: datetime) -> int:
        """What is due for one person on one day; returns how many items are left."""
        profile, states = self.ledger.current(subject)
        expire, renew, stale, retention = [], [], [], None
        moment = iso(now)
        for item in items:
            if item["sk"].endswith(keys.RETENTION_SK):
                retention = item
                continue
            state = states.get(item["purpose"], {})
            if (
                state.get("state") != "accepted"
                or state.get("event_id") != item.get("event_id")
                or item["purpose"] not in self.catalogue.purposes
            ):
                stale.append(item)
            elif item.get("action") == "expire" or item["valid_until"] <= moment:
                expire.append(item)
            else:
                renew.append(item)
        self._drop(stale)
        if expire:
            self._expire(subject, expire)
        left = self._renew(subject, profile, renew, now) if renew else 0
        if retention is not None:
            self._retention(subject, profile, states, retention, now)
        return left

    def _drop(self, items: list[dict[str, Any]]) -> None:
        self.report.stale += len(items)
        if not self.dry_run:
            for item in items:
                self.ledger.delete(item["pk"], item["sk"])

    # -- expiry ----------------------------------------------------------------------

    def _expire(self, subject: str, items: list[dict[str, Any]]) -> None:
        """One transaction: an ``expired`` event and state per purpose, index items gone."""
        if self.dry_run:
            self.report.expired += len(items)
            return
        at = now_iso()

        def build(snap: Snapshot) -> Plan:
            plan, seq = Plan(), snap.seq
            for item in items:
                state = snap.states.get(item["purpose"], {})
                plan.deletes.append((item["pk"], item["sk"]))
                if state.get("state") != "accepted" or state.get("event_id") != item["event_id"]:
                    continue  # decided again meanwhile
                seq += 1
                event, new_state = expired(snap.subject, state, at, seq)
                plan.events.append(Draft(event))
                plan.puts.append(new_state)
            return plan

        _, sealed = self.ledger.commit(subject, build)
        self.report.expired += len(sealed)

    # -- renewal ---------------------------------------------------------------------

    def _renew(
        self,
        subject: str,
        profile: dict[str, Any] | None,
        items: list[dict[str, Any]],
        now: datetime,
    ) -> int:
        """One renewal mail for the purposes due; the items move to their next step."""
        address = (profile or {}).get("email")
        mailing = self.settings.mail.transport != "none" and address
        if mailing and self.budget <= 0:
            self.report.deferred += len(items)
            return len(items)
        if self.dry_run:
            self.report.renewal_mails += 1 if mailing else 0
            self.budget -= 1 if mailing else 0
            return 0
        after = _next(iso(now)[:10])
        moves = [self._next_step(item, after) for item in items]
        if not mailing:  # nobody to write to (no transport, address erased): move on
            log("renewal_not_mailed", subject=subject, purposes=[i["purpose"] for i in items])
            self.ledger.put_many([m for m in moves if m is not None])
            for item in items:
                self.ledger.delete(item["pk"], item["sk"])
            return 0
        mail_ids: list[str] = []
        self.ledger.commit(
            subject, lambda snap: self._renewal_plan(snap, profile or {}, items, moves, mail_ids)
        )
        self.budget -= 1
        self.report.renewal_mails += 1
        if self.deliver is not None and mail_ids:
            self.deliver(mail_ids[-1])
        return 0

    def _next_step(self, item: dict[str, Any], after: str) -> dict[str, Any] | None:
        purpose = self.catalogue.get(item["purpose"])
        due = validity.next_due(item["valid_until"], purpose.renewal_days, after)
        return validity.index_item(
            item["subject"], item["purpose"], item["event_id"], item["valid_until"], due
        )

    def _renewal_plan(
        self,
        snap: Snapshot,
        profile: dict[str, Any],
        items: list[dict[str, Any]],
        moves: list[dict[str, Any] | None],
        mail_ids: list[str],
    ) -> Plan:
        at = now_iso()
        locale = snap.profile.get("locale") if snap.profile else None
        if locale not in self.catalogue.locales:
            locale = self.catalogue.default_locale
        purposes = [item["purpose"] for item in items]
        request = draft_request(
            self.settings,
            snap.subject,
            purposes,
            True,
            validity.RENEWAL_CHANNEL,
            locale,
            RequestContext(),
            at,
            renewal_of={item["purpose"]: item["valid_until"] for item in items},
        )
        if request.order is not None:
            request.order = dataclasses.replace(request.order, mail_kind="renew")
            mail_ids.append(request.order.mail_id)
        plan = plan_request(request, snap, (snap.profile or profile)["email"], None, locale, at)
        moved = {(m["pk"], m["sk"]) for m in moves if m is not None}
        plan.puts.extend(m for m in moves if m is not None)
        plan.deletes.extend(
            (item["pk"], item["sk"]) for item in items if (item["pk"], item["sk"]) not in moved
        )
        return plan

    # -- retention -------------------------------------------------------------------

    def _retention(
        self,
        subject: str,
        profile: dict[str, Any] | None,
        states: dict[str, dict[str, Any]],
        item: dict[str, Any],
        now: datetime,
    ) -> None:
        """Erase or archive a person nobody heard from, unless a consent still runs."""
        rule = self.catalogue.retention
        if (
            rule.days is None
            or profile is None
            or (profile.get("last_contact_at") != item.get("last_contact_at"))
        ):
            self._drop([item])
            return
        running = sorted(
            s["valid_until"]
            for s in states.values()
            if s.get("state") == "accepted" and s.get("valid_until", "") > iso(now)
        )
        never = any(
            s.get("state") == "accepted" and not s.get("valid_until") for s in states.values()
        )
        if never:  # a consent without expiry: kept as long as it holds
            self._drop([item])
            return
        if running:  # kept until the last consent runs out, then looked at again
            self.report.retention_moved += 1
            if not self.dry_run:
                day = validity.day_of(running[-1])
                moved = {
                    **item,
                    **dict(
                        zip(
                            ("pk", "sk"),
                            keys.validity_due(day, subject, keys.RETENTION_SK),
                            strict=True,
                        )
                    ),
                }
                self.ledger.set_profile_fields(subject, {"retention_due": day})
                self.ledger.put(moved)
                self.ledger.delete(item["pk"], item["sk"])
            return
        if rule.action == "erase":
            self.report.erased += 1
        else:
            self.report.archived += 1
        if self.dry_run or self.erase is None:
            return
        act_mode = self.settings.erasure_act if rule.action == "erase" else "keep"
        self.erase(subject, act_mode)
        self.ledger.delete(item["pk"], item["sk"])


def expired(
    subject: str, state: dict[str, Any], at: str, seq: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``expired`` event of an accepted state, and the state it leaves (pending for
    Act!). The wording and version stay those the person accepted: that is what ran out."""
    event_id = new_event_id()
    common = {
        "purpose": state["purpose"],
        "purpose_version": state.get("purpose_version"),
        "text_sha256": state.get("text_sha256"),
        "locale": state.get("locale"),
        "channel": validity.CHANNEL,
    }
    event = {
        "event_id": event_id,
        "kind": validity.EXPIRED,
        "at": at,
        **common,
        "previous_state": "accepted",
        "valid_until": state.get("valid_until"),
        "accepted_event_id": state.get("event_id"),
    }
    new_state = {
        **keys.item(keys.purpose(subject, state["purpose"])),
        **common,
        "subject": subject,
        "state": validity.EXPIRED,
        "decided_at": at,
        "event_id": event_id,
        "event_seq": seq,
        "valid_until": state.get("valid_until"),
        "sync_status": "pending",
        "sync_attempts": 0,
        "sync_shard": keys.sync_shard(subject),
        "sync_due": at,
    }
    return event, new_state


def _next(day: str) -> str:
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()
