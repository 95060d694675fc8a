"""Pushing decisions to Act!: exactly once, eventually, never older over newer.

Each purpose state carries its own sync bookkeeping, written in the same transaction
as the decision (``sync_status = pending`` and a place in the pending-sync index).
Two drivers push it: the DynamoDB stream (fast path) and a scheduled sweep of the
index (safety net). Pushes for one person are serialised by a lock item (renewed
before every write to Act!), so the two never push the same person at once, and an
older decision can never land after a newer one.

A push is idempotent: the contact's consent fields are PATCHed to the decision's
values (checked in PATCH's answer, the contact as Act! stored it, because Act! sometimes
answers 200 and stores nothing), and the history entry is posted once per proof event
and contact: the state remembers the entries written (``act_history``), and marks an
entry ``?`` before posting it, so only an uncertain earlier attempt looks for it in Act!.

Two Act! calls per decision in the normal case: the contacts found by address before
are remembered on the profile (``act_contact_ids``, with ``act_contacts_searched_at``)
and PATCHed by id; the search runs again only for a first sync, after a 404, after
PATCH's answer shows another address, or once reconciliation saw a contact with the
person's address that is not remembered (``act_contacts_changed_at``).
Failures are retried with backoff; after ``SYNC_MAX_ATTEMPTS`` the state is marked
``failed`` (an alert in the logs) and the sweep keeps retrying, slowly. A newer
decision replaces the pending one: the older is then never pushed.

Size: the push, its lock, its backoff and the field mapping are one exactly-once
protocol; its invariants are easier to check in one module.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from chalicelib.act import contacts as actcontacts
from chalicelib.act import dates
from chalicelib.act import fields as actfields
from chalicelib.act.client import ActBadRequest, ActClient, ActError, ActNotFound, ActUnavailable
from chalicelib.consent import stats
from chalicelib.consent.catalogue import Catalogue
from chalicelib.consent.subjects import normalise_email
from chalicelib.core.clock import iso, now_iso, parse_iso, utcnow
from chalicelib.core.errors import ConfigError, InvalidEmail, OptinProofError, SyncProblem
from chalicelib.core.logs import log
from chalicelib.core.settings import ActSettings, Settings
from chalicelib.store import keys
from chalicelib.store.keys import SYNC_HOLD, sync_shard
from chalicelib.store.ledger import Ledger

#: A push for one person holds its lock this long, renewed before every write to Act!;
#: longer than any single Act! request can take (ACT_TIMEOUT and capped waits).
LEASE_SECONDS = 180
#: After a write whose fate is unknown (timeout, 5xx), wait this long before looking
#: for it: it may still land.
_AMBIGUOUS_WAIT = 60.0
_BACKOFF_BASE = 5.0
_BACKOFF_MAX = 3600.0
VERBS = {
    "accepted": "accepted",
    "refused": "refused",
    "withdrawn": "withdrawn",
    "expired": "expired",
}
#: In a state's ``act_history``: a history post for that contact was about to be sent.
UNSURE = "?"
SWEEP_SHARDS = keys.SWEEP_SHARDS


@dataclass
class DrainReport:
    """What one drain did; ``sync drain`` and the sweep log it."""

    synced: int = 0
    failed: int = 0
    held: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, outcome: str, error: str = "") -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        if error:
            self.errors.append(error)


@dataclass
class Pusher:
    """Everything needed to push decisions of one deployment to its Act! database."""

    ledger: Ledger
    client: ActClient
    catalogue: Catalogue
    settings: Settings
    _keys: dict[tuple[str, str], str] | None = None
    _history_type: int | None = None
    _lock: tuple[str, str] | None = None
    #: This push's history entries per contact (for the state's ``act_history``).
    _history: dict[str, str] = field(default_factory=dict)

    def keys(self) -> dict[tuple[str, str], str]:
        if self._keys is None:
            self._keys = actfields.resolve(self.client, self.catalogue)
        return self._keys

    @property
    def act(self) -> ActSettings:
        """The Act! settings; a pusher exists only once Act! is configured."""
        if self.settings.act is None:
            raise ConfigError(
                "Act! is not configured: set ACT_API_URL, ACT_DATABASE, "
                "ACT_USERNAME and ACT_PASSWORD."
            )
        return self.settings.act

    def history_type(self) -> int:
        if self._history_type is None:
            wanted = self.act.history_type.casefold()
            types = self.client.history_types()
            chosen = next((t for t in types if str(t.get("name", "")).casefold() == wanted), None)
            if chosen is None:
                names = ", ".join(str(t.get("name")) for t in types[:20])
                raise ConfigError(
                    f"Act! has no history type named {self.act.history_type!r} "
                    f"(ACT_HISTORY_TYPE); available: {names}"
                )
            self._history_type = int(chosen["id"])
        return self._history_type

    # -- one decision ------------------------------------------------------------------

    def push(self, pk: str, sk: str, force: bool = False, _again: bool = True) -> tuple[str, str]:
        """Push one purpose state if it still needs it; returns ``(outcome, error)``.

        Pushes for one person are serialised by a lock item that decisions never
        overwrite, and everything is re-read under it: a newer decision waits for an
        older push to finish, then goes out with fresh values (never the reverse).
        Without ``force`` a state in backoff (``sync_due`` later) is left alone.
        """
        state = self.ledger.get(pk, sk)
        if state is None or not _needs_push(state, force):
            return "skipped", ""
        subject, owner = state["subject"], uuid.uuid4().hex
        if not self.ledger.acquire_lock(subject, owner, LEASE_SECONDS):
            return "skipped", ""  # another push for this person runs; it stays pending
        self._lock = (subject, owner)
        try:
            state = self.ledger.get(pk, sk)
            if state is None or not _needs_push(state, force):
                return "skipped", ""
            outcome, error, superseded = self._push_locked(pk, sk, state)
        except _LockLost:
            log("sync_lock_lost", level="warning", subject=subject)
            return "skipped", ""
        finally:
            self._lock = None
            self.ledger.release_lock(subject, owner)
        if superseded and _again:  # a newer decision arrived meanwhile: push it now
            return self.push(pk, sk, force=True, _again=False)
        return outcome, error

    def _push_locked(self, pk: str, sk: str, state: dict[str, Any]) -> tuple[str, str, bool]:
        event_id = state["event_id"]
        self._history = dict(state.get("act_history") or {})
        try:
            contact_ids = self._push_state(pk, sk, state)
        except _Hold as hold:
            self._finish(pk, sk, event_id, hold.status, str(hold))
            log(
                "sync_held",
                level="warning",
                subject=state["subject"],
                purpose=state["purpose"],
                status=hold.status,
            )
            return "held", str(hold), False
        except (ActError, ConfigError) as exc:
            return (*self._failed(pk, sk, state, exc), False)
        if not self._finish(pk, sk, event_id, "synced", "", contact_ids):
            return "synced", "", True
        log(
            "sync_done",
            subject=state["subject"],
            purpose=state["purpose"],
            event_id=event_id,
            contacts=len(contact_ids),
        )
        self._count_synced(state)
        return "synced", "", False

    def _count_synced(self, state: dict[str, Any]) -> None:
        """The campaign funnel's last step; a counter, so a failure only loses a count."""
        counters = stats.synced(state.get("channel"))
        if counters:
            try:
                self.ledger.add_counters(counters)
            except OptinProofError as exc:
                log("stats_not_counted", level="warning", error=type(exc).__name__)

    def _keep_lock(self) -> None:
        """Before each write to Act!: still ours? Else stop, the new holder carries on."""
        if self._lock and not self.ledger.renew_lock(*self._lock, LEASE_SECONDS):
            raise _LockLost()

    def _push_state(self, pk: str, sk: str, state: dict[str, Any]) -> list[str]:
        subject = state["subject"]
        profile, states = self.ledger.current(subject)
        if not profile or not profile.get("email"):
            raise _Hold("no_address", "the person's address is no longer held (erased)")
        # The cheap path: the contacts found before, PATCHed by id, checked in the answer.
        written: dict[str, dict[str, Any]] = {}
        gone: set[str] = set()
        remembered = _remembered(profile)
        for contact_id in remembered:
            stored = self._write_by_id(contact_id, state, states, profile["email"])
            if stored is None:
                gone.add(contact_id)
            else:
                written[contact_id] = stored
        if not remembered or gone:  # first sync, a 404, another address: search
            for contact in self._contacts(subject, profile, written, gone):
                if contact["id"] not in written:
                    self._write_fields(contact, state, states)
                    written[contact["id"]] = contact
        self._write_histories(pk, sk, state, list(written))
        return list(written)

    def _contacts(
        self,
        subject: str,
        profile: dict[str, Any],
        written: dict[str, dict[str, Any]] | None = None,
        gone: set[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Every Act! contact with the person's address, plus those found before.

        Searched on a first sync and whenever the remembered contacts cannot be trusted
        (see :func:`_remembered`), so a contact added later (or a duplicate) gets the
        consent too; a cached contact that now answers 404 is dropped and logged.
        ``written`` are remembered contacts just PATCHed (their answer showed the
        address), ``gone`` those that answered 404 or another address: neither is read
        again.
        """
        written, gone = written or {}, gone or set()
        cached = list(profile.get("act_contact_ids") or [])
        searched_at = now_iso()  # before the search: a contact added meanwhile is searched again
        found = self.client.contacts_by_email(profile["email"])
        known = {contact["id"] for contact in found}
        for contact_id in cached:
            if contact_id in known or contact_id in gone:
                continue
            if contact_id in written:
                found.append(written[contact_id])
                continue
            try:
                contact = self.client.contact(contact_id)
            except ActNotFound:
                log("act_contact_missing", level="warning", subject=subject, contact_id=contact_id)
                continue
            if _same_address(contact.get("emailAddress"), profile["email"]):
                found.append(contact)
            else:
                self._changed_address(subject, contact)
        if not found and cached:
            raise _Hold("contact_deleted", "the Act! contact was deleted (or made private) in Act!")
        if not found and self.act.create_contacts:
            self._keep_lock()
            # The name a signup form collected, so the new contact is not anonymous.
            fields = {"emailAddress": profile["email"]}
            if profile.get("name"):
                fields["firstName"] = profile["name"]
            found = [self.client.create_contact(fields)]
        if not found:
            raise _Hold(
                "no_contact", "no Act! contact has this address and ACT_CREATE_CONTACTS is off"
            )
        ids = [contact["id"] for contact in found]
        remember: dict[str, Any] = {"act_contacts_searched_at": searched_at}
        if ids != cached:
            remember["act_contact_ids"] = ids
        self.ledger.set_profile_fields(subject, remember)
        for contact in (c for c in found if c["id"] not in cached):
            # what reconciliation compares a later address change with
            self.ledger.put(actcontacts.seen_item(contact, subject, self.client.tz))
        return found

    def _changed_address(self, subject: str, contact: dict[str, Any]) -> None:
        """The contact now has another address: it is no longer this person's;
        reconciliation records it and clears its fields."""
        log(
            "act_contact_changed_address",
            level="warning",
            subject=subject,
            contact_id=contact["id"],
        )
        actcontacts.queue_hint(self.ledger, contact["id"], contact.get("edited"))

    def _values(self, state: dict[str, Any]) -> dict[str, Any]:
        keys, purpose = self.keys(), state["purpose"]
        decided = state["decided_at"]
        values: dict[str, Any] = {}
        roles = {
            "status_field": self.act.status_values[state["state"]],
            # Act! keeps DateTime fields as its server's wall time without zone: the
            # decision's time there (ACT_TIMEZONE); the exact instant goes in the UTC field.
            "date_field": dates.to_act(decided, self.client.tz),
            "utc_field": decided,
            "proof_field": state["event_id"],
            "basis_field": state.get("legal_basis") or _basis_of(self.catalogue, purpose),
        }
        for role, value in roles.items():
            if (purpose, role) in keys:
                values[keys[(purpose, role)]] = value
        return values

    def _aem_opt_out(self, state: dict[str, Any], states: dict[str, dict[str, Any]]) -> bool | None:
        """Act!'s one e-marketing switch: on when no e-mail-marketing purpose is accepted."""
        act = self.act
        purpose = self.catalogue.purposes.get(state["purpose"])
        if not act.aem_opt_out or purpose is None or not purpose.email_marketing:
            return None
        marketing = [p.id for p in self.catalogue.purposes.values() if p.email_marketing]
        any_accepted = any(states.get(p, {}).get("state") == "accepted" for p in marketing)
        if not any_accepted:
            return True
        if state["state"] == "accepted" and act.aem_clear_on_accept:
            return False
        return None

    def _write_fields(
        self, contact: dict[str, Any], state: dict[str, Any], states: dict[str, dict[str, Any]]
    ) -> None:
        """A contact just read (searched): only what differs is PATCHed, never over newer."""
        values = self._values(state)
        current = contact.get("customFields") or {}
        utc_key = self.keys().get((state["purpose"], "utc_field"))
        if utc_key and _newer(current.get(utc_key), state["decided_at"]):
            log("sync_newer_on_contact", subject=state["subject"], purpose=state["purpose"])
            return
        body: dict[str, Any] = {}
        date_key = self.keys().get((state["purpose"], "date_field"))
        changed = {
            k: v for k, v in values.items() if not self._same(current.get(k), v, k == date_key)
        }
        if changed:
            body["customFields"] = changed
        opt_out = self._aem_opt_out(state, states)
        if opt_out is not None and bool(contact.get("aemOptOut")) != opt_out:
            body["aemOptOut"] = opt_out
        if not body:
            return
        self._keep_lock()
        stored = self._patched(contact["id"], self.client.patch_contact(contact["id"], body))
        actcontacts.note_write(self.ledger, stored, self.client.tz)
        self._check_stored(contact["id"], body, stored, date_key)

    def _write_by_id(
        self,
        contact_id: str,
        state: dict[str, Any],
        states: dict[str, dict[str, Any]],
        address: str,
    ) -> dict[str, Any] | None:
        """A remembered contact, PATCHed unread with the decision's values; the contact
        as stored, or None when it is gone (404) or no longer has the person's address."""
        body: dict[str, Any] = {"customFields": self._values(state)}
        opt_out = self._aem_opt_out(state, states)
        if opt_out is not None:
            body["aemOptOut"] = opt_out
        self._keep_lock()
        try:
            stored = self._patched(contact_id, self.client.patch_contact(contact_id, body))
        except ActNotFound:
            log(
                "act_contact_missing",
                level="warning",
                subject=state["subject"],
                contact_id=contact_id,
            )
            return None
        if not _same_address(stored.get("emailAddress"), address):
            self._changed_address(state["subject"], stored)
            return None
        actcontacts.note_write(self.ledger, stored, self.client.tz)
        self._check_stored(
            contact_id, body, stored, self.keys().get((state["purpose"], "date_field"))
        )
        return stored

    def _patched(self, contact_id: str, answer: Any) -> dict[str, Any]:
        """The contact as Act! stored it: PATCH's own answer (Act!'s Swagger: 200
        ``Contact``), read back only when the answer is not that contact."""
        if (
            isinstance(answer, dict)
            and str(answer.get("id", "")).casefold() == contact_id.casefold()
            and isinstance(answer.get("customFields"), dict)
        ):
            return answer
        log("act_patch_answer_not_contact", level="warning", contact_id=contact_id)
        return self.client.contact(contact_id)

    def _check_stored(
        self, contact_id: str, body: dict[str, Any], stored: dict[str, Any], date_key: str | None
    ) -> None:
        """Act! sometimes answers 200 and stores nothing: every value sent must be there."""
        stored_fields = stored.get("customFields") or {}
        missing = [
            k
            for k, v in (body.get("customFields") or {}).items()
            if not self._same(stored_fields.get(k), v, k == date_key)
        ]
        if missing or ("aemOptOut" in body and bool(stored.get("aemOptOut")) != body["aemOptOut"]):
            raise SyncProblem(
                f"Act! answered the update of contact {contact_id} but did not "
                f"store it ({', '.join(missing) or 'aemOptOut'}); will retry"
            )

    def _write_histories(
        self, pk: str, sk: str, state: dict[str, Any], contact_ids: list[str]
    ) -> None:
        """One history entry per proof event and contact, whatever happened before.

        ``self._history`` (saved on the state by ``_finish`` and ``_failed``) maps each
        contact to the entry written for this event, or ``?`` once a post was about to
        be sent: only then (or for a state an older version tried) is Act! searched for
        the event's marker before posting.
        """
        marker = f"event_id={state['event_id']}"
        history, legacy = self._history, _tried_without_memory(state)
        todo = []
        for contact_id in contact_ids:
            done = history.get(contact_id)
            if done and done != UNSURE:
                continue  # written by an earlier attempt for this event
            if done == UNSURE or legacy:
                found = self.client.contact_history(contact_id, marker)
                if found:
                    history[contact_id] = str(found[0].get("id") or "found")
                    continue
            todo.append(contact_id)
        if not todo:
            return
        history.update({contact_id: UNSURE for contact_id in todo})
        self._keep_lock()
        # False: a newer decision replaced this one. This event is never pushed again, so
        # its entry cannot be duplicated: it is still posted (the person's record of what
        # they decided), and ``_finish`` sees the newer decision and pushes it next.
        self.ledger.update_state(pk, sk, state["event_id"], {"act_history": history})
        for count, contact_id in enumerate(todo):
            if count:
                self._keep_lock()
            made = self.client.post_history(self._history_body(contact_id, state, marker))
            history[contact_id] = str((made or {}).get("id") or "posted")

    def _history_body(self, contact_id: str, state: dict[str, Any], marker: str) -> dict[str, Any]:
        purpose = self.catalogue.purposes.get(state["purpose"])
        title = purpose.text(self.catalogue.default_locale).title if purpose else state["purpose"]
        verb = VERBS.get(state["state"], state["state"])
        channel = state.get("channel") or "unknown channel"
        return {
            "contacts": [{"id": contact_id}],
            "regarding": f"Consent {verb}: {title}",
            "details": (
                f"Consent {verb}: {title} — proof {state['event_id']}, double opt-in via "
                f"{channel}.\n{marker} purpose={state['purpose']} decision={state['state']} "
                f"text_sha256={state.get('text_sha256', '')} decided_at={state['decided_at']}"
                + _basis_note(state)
            ),
            "startTime": dates.to_act(state["decided_at"], self.client.tz),
            "endTime": dates.to_act(state["decided_at"], self.client.tz),
            "historyTypeID": self.history_type(),
        }

    def _same(self, current: Any, wanted: Any, is_date: bool) -> bool:
        """Whether a field already holds our value (a date as Act! answers it, any zone)."""
        if is_date:
            return dates.same_wall_time(current, wanted, self.client.tz)
        return current == wanted

    # -- bookkeeping ---------------------------------------------------------------------

    def _finish(
        self,
        pk: str,
        sk: str,
        event_id: str,
        status: str,
        error: str,
        contact_ids: list[str] | None = None,
    ) -> bool:
        fields: dict[str, Any] = {
            "sync_status": status,
            "sync_error": error or "-",
            "synced_at" if status == "synced" else "sync_checked_at": now_iso(),
        }
        if contact_ids is not None:
            fields["act_contact_ids"] = contact_ids
        fields["act_history"] = self._history
        remove: tuple[str, ...] = ("sync_shard", "sync_due")
        if status != "synced":  # held: stays listed by `sync status`, never swept
            fields.update({"sync_shard": SYNC_HOLD, "sync_due": now_iso()})
            remove = ()
        return self.ledger.update_state(pk, sk, event_id, fields, remove)

    def _failed(self, pk: str, sk: str, state: dict[str, Any], exc: Exception) -> tuple[str, str]:
        attempts = int(state.get("sync_attempts", 0)) + 1
        delay = min(_BACKOFF_MAX, _BACKOFF_BASE * 2 ** (attempts - 1)) * random.uniform(0.5, 1.0)
        if isinstance(exc, ActUnavailable):
            if exc.ambiguous:  # a write may still land: search for it only once it has
                delay = max(delay, _AMBIGUOUS_WAIT)
            delay = max(delay, exc.retry_after or 0)
        if isinstance(exc, (ActBadRequest, ConfigError)):
            self._keys = None  # fields may have been renamed in Act!: map them again
        status = "failed" if attempts >= self.settings.sync_max_attempts else "pending"
        self.ledger.update_state(
            pk,
            sk,
            state["event_id"],
            {
                "sync_status": status,
                "sync_attempts": attempts,
                "sync_error": str(exc)[:500],
                "sync_due": iso(utcnow() + timedelta(seconds=delay)),
                "sync_shard": sync_shard(state["subject"]),
                "act_history": self._history,  # what is known written, and what may be
            },
        )
        log(
            "sync_alert" if status == "failed" else "sync_retry",
            level="error" if status == "failed" else "warning",
            subject=state["subject"],
            purpose=state["purpose"],
            attempts=attempts,
            error=str(exc)[:300],
        )
        return "failed", str(exc)


class _LockLost(Exception):
    """Our per-person lock expired and another push took it over."""


def _remembered(profile: dict[str, Any]) -> list[str]:
    """The contact ids a push may PATCH without searching: found by the last search,
    and no contact with the person's address seen by reconciliation since."""
    ids = list(profile.get("act_contact_ids") or [])
    searched = str(profile.get("act_contacts_searched_at") or "")
    if not ids or not searched or searched <= str(profile.get("act_contacts_changed_at") or ""):
        return []
    return ids


def _tried_without_memory(state: dict[str, Any]) -> bool:
    """A state pushed before by a version that kept no ``act_history``: its entries may
    exist, so they are looked for."""
    return "act_history" not in state and bool(
        int(state.get("sync_attempts", 0)) or state.get("synced_at")
    )


def _needs_push(state: dict[str, Any] | None, force: bool) -> bool:
    if not state or state.get("sync_status") not in ("pending", "failed"):
        return False
    return force or str(state.get("sync_due", "")) <= now_iso()


class _Hold(Exception):
    """A sync that retrying cannot fix; it waits for a person (listed by `sync status`)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


def _newer(current: Any, ours: str) -> bool:
    try:
        return isinstance(current, str) and parse_iso(current) > parse_iso(ours)
    except ValueError:
        return False


def drain(
    pusher: Pusher, keys: Iterable[tuple[str, str]], limit: int | None = None, force: bool = False
) -> DrainReport:
    """Push each given purpose state; never raises for one state's failure.

    ``force`` pushes states still waiting for their backoff (``sync drain --all``).
    """
    report = DrainReport()
    for count, (pk, sk) in enumerate(keys):
        if limit is not None and count >= limit:
            break
        try:
            outcome, error = pusher.push(pk, sk, force=force)
        except OptinProofError as exc:  # e.g. DynamoDB briefly unavailable: the sweep retries
            log("sync_push_error", level="error", pk=pk, sk=sk, error=str(exc)[:300])
            outcome, error = "failed", str(exc)
        report.add(outcome, error)
    return report


def due_keys(ledger: Ledger) -> Iterable[tuple[str, str]]:
    """Purpose states whose sync is due now, across the sweep shards."""
    return list(ledger.sync_keys(SWEEP_SHARDS, due_before=now_iso()))


def all_keys(ledger: Ledger) -> Iterable[tuple[str, str]]:
    """Every purpose state with a sync not done, due or not (for `sync drain --all`)."""
    return list(ledger.sync_keys(SWEEP_SHARDS))


def status_rows(ledger: Ledger) -> list[dict[str, Any]]:
    """Pending, failed and held syncs with their last error, for `sync status`."""
    rows = []
    for pk, sk in ledger.sync_keys(SWEEP_SHARDS + [SYNC_HOLD]):
        state = ledger.get(pk, sk)
        if not state:
            continue
        rows.append(
            {
                "subject": state["subject"],
                "purpose": state["purpose"],
                "state": state["state"],
                "decided_at": state["decided_at"],
                "sync_status": state.get("sync_status"),
                "attempts": state.get("sync_attempts", 0),
                "due": state.get("sync_due"),
                "error": state.get("sync_error", ""),
                "event_id": state["event_id"],
            }
        )
    return rows


def requeue_held(
    ledger: Ledger, statuses: tuple[str, ...] = ("no_contact", "contact_deleted")
) -> int:
    """Put held syncs back in the queue, after a person fixed the cause in Act!.

    The cached Act! contact ids are forgotten, so the next push searches by address
    again (finding a contact created or restored since).
    """
    count = 0
    for pk, sk in list(ledger.sync_keys([SYNC_HOLD])):
        state = ledger.get(pk, sk)
        if not state or state.get("sync_status") not in statuses:
            continue
        ledger.set_profile_fields(state["subject"], {"act_contact_ids": []})
        if ledger.update_state(
            pk,
            sk,
            state["event_id"],
            {
                "sync_status": "pending",
                "sync_attempts": 0,
                "sync_due": now_iso(),
                "sync_shard": sync_shard(state["subject"]),
            },
        ):
            count += 1
    return count


def _same_address(value: Any, address: str) -> bool:
    try:
        return isinstance(value, str) and normalise_email(value) == normalise_email(address)
    except InvalidEmail:
        return False


def subject_state_key(subject: str, purpose: str) -> tuple[str, str]:
    return keys.purpose(subject, purpose)


def _basis_of(catalogue: Catalogue, purpose: str) -> str:
    """The legal basis of a state recorded before states carried it: the catalogue's."""
    found = catalogue.purposes.get(purpose)
    return found.legal_basis if found is not None else "consent"


def _basis_note(state: dict[str, Any]) -> str:
    """A history entry names a basis other than consent (an objection, not a withdrawal)."""
    basis = state.get("legal_basis") or "consent"
    return "" if basis == "consent" else f" legal_basis={basis}"
