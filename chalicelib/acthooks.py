"""Changes made in Act!: webhook deliveries (self-hosted Act!) and polling (Act! cloud).

A delivery is only a hint that a contact changed: we keep one hint per contact
(``ACTHINT#<contact id>``, so redeliveries collapse), answer at once, and reconcile
later (stream, sweep, or ``cli act poll``) by re-reading the contact from Act!:

- a new contact with an address and no consent on record is asked to confirm (when
  ``ACT_ASK_PURPOSES`` names purposes and a mail transport is configured);
- an address change never carries the old address's consent over: the change is
  recorded on the old address's chain, the contact leaves that person's Act! contacts,
  and its consent fields are set from the new address's own record (cleared if none);
- consent fields edited by hand in Act! are drift: our proof wins. The drift is
  recorded (``DRIFT#`` items, ``cli act drift``) and, with ``ACT_DRIFT=restore`` (the
  default), the fields are written back by the sync.
"""
from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable

from chalicelib import actfields
from chalicelib.act import ActClient, ActNotFound
from chalicelib.clock import now_iso
from chalicelib.consent import RequestContext
from chalicelib.errors import BadInput, InvalidEmail
from chalicelib.ledger import Draft, Ledger, Plan, Snapshot, purpose_sk, subject_pk, sync_shard
from chalicelib.logs import log
from chalicelib.proof import new_event_id
from chalicelib.purposes import Catalogue
from chalicelib.settings import Settings
from chalicelib.signup import draft_request, plan_request
from chalicelib.subjects import mail_address, normalise_email, subject_key

HINT_SHARD = "ACTHINT#QUEUE"
TRIGGERS = ("created", "updated")
MAX_BODY = 256 * 1024
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class Unauthorised(BadInput):
    """A delivery without our callback token."""


def authorised(header: str | None, token: str) -> bool:
    """``Authorization`` is our token, bare or as ``Bearer``; compared in constant time."""
    value = (header or "").strip()
    bare = value[7:].strip() if value.lower().startswith("bearer ") else value
    return bool(token) and hmac.compare_digest(bare.encode(), token.encode())


def parse_delivery(body: bytes | None) -> list[dict[str, Any]]:
    """The records of a delivery: a JSON array (or one object) of ``{id, created, edited}``."""
    body = body or b""
    if len(body) > MAX_BODY:
        raise BadInput(f"The delivery is too large (over {MAX_BODY // 1024} KB).")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"The delivery is not JSON: {exc}.") from exc
    records = data if isinstance(data, list) else [data]
    for record in records:
        if not isinstance(record, dict) or not isinstance(record.get("id"), str) \
                or not _GUID.fullmatch(record["id"]):
            raise BadInput("Each record needs an id (an Act! contact GUID).")
    return records


def queue_hints(ledger: Ledger, records: list[dict[str, Any]], trigger: str) -> int:
    """One hint per contact; a redelivery overwrites it (idempotent). Nothing else changes."""
    if trigger not in TRIGGERS:
        raise BadInput(f"Unknown trigger {trigger!r}: created or updated.")
    at = now_iso()
    for record in records:
        existing = ledger.get(f"ACTHINT#{record['id']}", "HINT") or {}
        created = trigger == "created" or bool(existing.get("created"))
        ledger.put({"pk": f"ACTHINT#{record['id']}", "sk": "HINT", "contact_id": record["id"],
                    "created": created, "edited": str(record.get("edited") or ""),
                    "received_at": at, "sync_shard": HINT_SHARD, "sync_due": at})
    return len(records)


def stream_hint_ids(images: Iterable[dict[str, Any] | None]) -> list[str]:
    """Contacts a stream batch just queued a hint for (low-level NewImage)."""
    found = [image["contact_id"]["S"] for image in (i or {} for i in images)
             if image.get("sk", {}).get("S") == "HINT" and "contact_id" in image]
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class Outcome:
    contact_id: str
    actions: tuple[str, ...]


class Reconciler:
    """Brings our record and an Act! contact back in line after a change in Act!."""

    def __init__(self, ledger: Ledger, settings: Settings, catalogue: Catalogue,
                 client: ActClient, ask_purposes: tuple[str, ...] = (),
                 drift: str = "restore", ask_new_address: bool = False) -> None:
        self.ledger, self.settings, self.catalogue, self.client = ledger, settings, catalogue, client
        self.ask_purposes, self.drift, self.ask_new_address = ask_purposes, drift, ask_new_address
        self._keys: dict[tuple[str, str], str] | None = None

    def keys(self) -> dict[tuple[str, str], str]:
        if self._keys is None:
            self._keys = actfields.resolve(self.client, self.catalogue)
        return self._keys

    def pending(self) -> list[str]:
        return self.pending_in(self.ledger)

    @staticmethod
    def pending_in(ledger: Ledger, limit: int = 500) -> list[str]:
        """Contacts with a hint waiting (oldest first), without a scan."""
        found = []
        for pk, _ in ledger.sync_keys([HINT_SHARD]):
            found.append(pk.removeprefix("ACTHINT#"))
            if len(found) >= limit:
                break
        return found

    def process(self, contact_id: str) -> Outcome:
        """Reconcile one contact, then drop its hint. Safe to repeat."""
        seen = self.ledger.get(f"ACTCONTACT#{contact_id}", "SEEN") or {}
        hint = self.ledger.get(f"ACTHINT#{contact_id}", "HINT") or {}
        try:
            contact = self.client.contact(contact_id)
        except ActNotFound:
            actions = self._vanished(contact_id, seen)
        else:
            actions = self._reconcile(contact, seen, bool(hint.get("created")))
        if hint and not self.ledger.delete(f"ACTHINT#{contact_id}", "HINT",
                                           if_equal={"received_at": hint["received_at"]}):
            log("act_change_again", contact_id=contact_id)  # a newer hint waits its turn
        log("act_change_reconciled", contact_id=contact_id, actions=list(actions))
        return Outcome(contact_id, tuple(actions))

    def _vanished(self, contact_id: str, seen: dict[str, Any]) -> list[str]:
        if seen.get("subject"):
            self._forget_contact(seen["subject"], contact_id, "act_contact_deleted", {})
        self.ledger.delete(f"ACTCONTACT#{contact_id}", "SEEN")
        return ["contact_gone"] if seen else []

    def _reconcile(self, contact: dict[str, Any], seen: dict[str, Any], created: bool) -> list[str]:
        contact_id, actions = contact["id"], []
        address = self._address(contact.get("emailAddress"))
        subject = subject_key(self.settings.subject_pepper, normalise_email(address)) \
            if address else None
        old = seen.get("subject")
        if old and old != subject:
            self._forget_contact(old, contact_id, "act_address_changed",
                                 {"new_subject": subject})
            actions.append("address_changed")
        states = self.ledger.current(subject)[1] if subject else {}
        moved = bool(old and old != subject)
        if moved and self._clear_fields(contact, keep=set(states)):
            actions.append("fields_cleared")  # nothing of the old person stays on it
        if subject and not states:
            if self.ask_purposes and (created or (old and old != subject and self.ask_new_address)) \
                    and self.settings.mail.transport != "none" \
                    and self._ask(contact, address, subject):
                actions.append("asked")
        elif subject:
            actions += self._check_drift(contact, subject, states, moved)
        self.ledger.put({"pk": f"ACTCONTACT#{contact_id}", "sk": "SEEN", "contact_id": contact_id,
                         "subject": subject, "edited": contact.get("edited"), "at": now_iso()})
        return actions

    @staticmethod
    def _address(value: Any) -> str | None:
        try:
            return mail_address(value) if isinstance(value, str) and value.strip() else None
        except InvalidEmail:
            return None

    def _forget_contact(self, subject: str, contact_id: str, kind: str,
                        extra: dict[str, Any]) -> None:
        """The contact no longer is this person's: record it, stop pushing there."""
        def build(snap: Snapshot) -> Plan:
            if snap.seq == 0:
                return Plan()
            plan = Plan(events=[Draft({"event_id": new_event_id(), "kind": kind, "at": now_iso(),
                                       "act_contact_id": contact_id, "channel": "act", **extra})])
            if snap.profile is not None:
                ids = [i for i in snap.profile.get("act_contact_ids") or [] if i != contact_id]
                plan.profile = {"act_contact_ids": ids, "updated_at": now_iso()}
            return plan

        self.ledger.commit(subject, build)

    def _clear_fields(self, contact: dict[str, Any], keep: set[str]) -> bool:
        """Empty the consent fields of every purpose not in ``keep``; True if any was set."""
        current = contact.get("customFields") or {}
        cleared = {key: None for (purpose, _), key in self.keys().items()
                   if purpose not in keep and current.get(key) not in (None, "")}
        if cleared:
            self.client.patch_contact(contact["id"], {"customFields": cleared})
            contact["customFields"] = {**current, **cleared}
        return bool(cleared)

    def _ask(self, contact: dict[str, Any], address: str, subject: str) -> bool:
        """Double opt-in for a contact created in Act!: a link, mailed by the outbox."""
        at, locale = now_iso(), self.catalogue.default_locale
        purposes = list(self.ask_purposes)
        if self.ledger.get(subject_pk(subject), "TOMBSTONE"):
            log("act_ask_skipped", subject=subject, reason="erased")  # no silent re-adding
            return False

        def build(snap: Snapshot) -> Plan:
            live = (snap.profile or {}).get("live_links") or {}
            if snap.states or any(set(purposes) <= set(info.get("purposes", []))
                                  and info.get("expires", "") > at for info in live.values()):
                return Plan()  # decided meanwhile, or already asked (another reconciler)
            request = draft_request(self.settings, subject, purposes, True, "act:created",
                                    locale, RequestContext(), at, act_contact_id=contact["id"])
            plan = plan_request(request, snap, address, contact.get("firstName"), locale, at)
            known = list((snap.profile or {}).get("act_contact_ids") or [])
            plan.profile["act_contact_ids"] = known if contact["id"] in known \
                else [*known, contact["id"]]
            return plan

        _, sealed = self.ledger.commit(subject, build)
        return bool(sealed)

    def _check_drift(self, contact: dict[str, Any], subject: str,
                     states: dict[str, dict[str, Any]], moved: bool) -> list[str]:
        """Consent fields that do not say what our record says: restore or flag."""
        keys, fields = self.keys(), contact.get("customFields") or {}
        words = self.settings.act.status_values if self.settings.act else {}
        drifted = []
        for purpose, state in states.items():
            key = keys.get((purpose, "status_field"))
            if key and state.get("state") in words and fields.get(key) != words[state["state"]]:
                drifted.append(purpose)
        if not drifted:
            return []
        self.ledger.put({"pk": f"DRIFT#{contact['id']}", "sk": "DRIFT", "contact_id": contact["id"],
                         "subject": subject, "purposes": drifted, "found_at": now_iso(),
                         "action": self.drift, "after_address_change": moved})
        log("act_drift", level="warning", contact_id=contact["id"], purposes=drifted,
            action=self.drift)
        if self.drift == "restore" or moved:  # after an address change: not a hand edit
            at = now_iso()
            for purpose in drifted:  # the sync writes our values back
                self.ledger.update_state(subject_pk(subject), purpose_sk(purpose),
                                         states[purpose]["event_id"],
                                         {"sync_status": "pending", "sync_due": at,
                                          "sync_shard": sync_shard(subject)})
            return ["drift_restored"]
        return ["drift_flagged"]


def drift_rows(ledger: Ledger) -> list[dict[str, Any]]:
    """Every drift found, for ``cli act drift`` (an operator's scan)."""
    return sorted(ledger.scan_items("DRIFT#", "DRIFT"), key=lambda r: r.get("found_at", ""))
