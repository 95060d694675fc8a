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

Size: a change seen in Act! (webhook hint, poll, reconcile) is read, compared and
answered here, so the rules for "whose contact is this now" live in one place.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from chalicelib.act import contacts, dates
from chalicelib.act import fields as actfields
from chalicelib.act.ask import Asker, AskOutcome
from chalicelib.act.client import ActClient, ActNotFound
from chalicelib.campaigns import define, jobs
from chalicelib.consent import rules as consent
from chalicelib.consent.catalogue import Catalogue
from chalicelib.consent.requests import draft_request, plan_request, remember_contact
from chalicelib.consent.rules import RequestContext
from chalicelib.consent.subjects import mail_address, normalise_email, subject_key
from chalicelib.core.clock import iso, now_iso, parse_iso, utcnow
from chalicelib.core.errors import ActError, BadInput, ConfigError, Contention, InvalidEmail
from chalicelib.core.logs import log
from chalicelib.core.settings import Settings
from chalicelib.proof.chain import new_event_id
from chalicelib.store import keys
from chalicelib.store.keys import purpose_sk, subject_pk, sync_shard
from chalicelib.store.ledger import Draft, Ledger, Plan, Snapshot

HINT_SHARD = contacts.HINT_SHARD
TRIGGERS = ("created", "updated")
MAX_BODY = 256 * 1024
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def authorised(header: str | None, token: str) -> bool:
    """``Authorization`` is our token, bare or as ``Bearer``; compared in constant time."""
    value = (header or "").strip()
    bare = value[7:].strip() if value.lower().startswith("bearer ") else value
    return bool(token) and hmac.compare_digest(bare.encode(), token.encode())


def parse_delivery(raw: bytes | str | None) -> list[dict[str, Any]]:
    """The records of a delivery: a JSON array (or one object) of ``{id, created, edited}``."""
    body = raw.encode("utf-8") if isinstance(raw, str) else raw or b""
    if len(body) > MAX_BODY:
        raise BadInput(f"The delivery is too large (over {MAX_BODY // 1024} KB).")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"The delivery is not JSON: {exc}.") from exc
    records = data if isinstance(data, list) else [data]
    for record in records:
        if (
            not isinstance(record, dict)
            or not isinstance(record.get("id"), str)
            or not _GUID.fullmatch(record["id"])
        ):
            raise BadInput("Each record needs an id (an Act! contact GUID).")
    return records


def queue_hints(ledger: Ledger, records: list[dict[str, Any]], trigger: str) -> int:
    """One hint per contact; a redelivery overwrites it (idempotent). Nothing else changes."""
    if trigger not in TRIGGERS:
        raise BadInput(f"Unknown trigger {trigger!r}: created or updated.")
    for record in records:
        contacts.queue_hint(ledger, record["id"], record.get("edited"), trigger == "created")
    return len(records)


@dataclass(frozen=True)
class Outcome:
    contact_id: str
    actions: tuple[str, ...]


class Reconciler:
    """Brings our record and an Act! contact back in line after a change in Act!."""

    def __init__(
        self,
        ledger: Ledger,
        settings: Settings,
        catalogue: Catalogue,
        client: ActClient,
        ask_purposes: tuple[str, ...] = (),
        drift: str = "restore",
        ask_new_address: bool = False,
    ) -> None:
        self.ledger, self.settings, self.catalogue, self.client = (
            ledger,
            settings,
            catalogue,
            client,
        )
        self.ask_purposes, self.drift, self.ask_new_address = ask_purposes, drift, ask_new_address
        self._keys: dict[tuple[str, str], str] | None = None
        self._link_keys: dict[str, str] | None = None
        #: The "ask from inside Act!" triggers, checked on every contact reconciled.
        self.asker: Asker | None = None

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
            found.append(keys.hint_of(pk))
            if len(found) >= limit:
                break
        return found

    def process(self, contact_id: str) -> Outcome:
        """Reconcile one contact, then drop its hint. Safe to repeat."""
        hint = self.ledger.get(*keys.act_hint(contact_id)) or {}
        # A trigger first: its request is the contact's own, so a "new contact" ask
        # below finds the live link and sends nothing more.
        asked = self._ask_trigger(contact_id)
        seen = contacts.seen(self.ledger, contact_id)  # after the trigger's own write
        try:
            contact = self.client.contact(contact_id)
        except ActNotFound:
            actions = self._vanished(contact_id, seen)
        else:
            actions = self._reconcile(contact, seen, bool(hint.get("created")))
        if asked is not None:
            actions.insert(
                0, f"act_ask_{asked.outcome}" + (f":{asked.reason}" if asked.reason else "")
            )
        if hint and not self.ledger.delete(
            *keys.act_hint(contact_id), if_equal={"received_at": hint["received_at"]}
        ):
            log("act_change_again", contact_id=contact_id)  # a newer hint waits its turn
        log("act_change_reconciled", contact_id=contact_id, actions=list(actions))
        return Outcome(contact_id, tuple(actions))

    def _ask_trigger(self, contact_id: str) -> AskOutcome | None:
        """The contact's ask trigger, if any; a trigger that cannot be handled now (Act!
        failing, the group missing) never holds up the reconciliation: the next
        ``act_poll`` scan finds it again."""
        if self.asker is None:
            return None
        try:
            return self.asker.process(contact_id)
        except (ActError, ConfigError, Contention) as exc:
            log("act_ask_failed", level="warning", contact_id=contact_id, error=str(exc)[:300])
            return None

    def _vanished(self, contact_id: str, seen: dict[str, Any]) -> list[str]:
        if seen.get("subject"):
            self._forget_contact(seen["subject"], contact_id, "act_contact_deleted", {})
        self.ledger.delete(contacts.contact_pk(contact_id), contacts.SEEN)
        return ["contact_gone"] if seen else []

    def _reconcile(self, contact: dict[str, Any], seen: dict[str, Any], created: bool) -> list[str]:
        contact_id, actions = contact["id"], []
        address = self._address(contact.get("emailAddress"))
        subject = (
            subject_key(self.settings.subject_pepper, normalise_email(address)) if address else None
        )
        # Links of ours in the contact's link fields that were minted for someone else:
        # a later Act! mail merge would send them to this address.
        stale = [(key, link) for key, link in self._links_held(contact) if link.subject != subject]
        old = seen.get("subject") or next((link.subject for _, link in stale), None)
        moved = bool(old and old != subject)
        if old and moved:
            self._forget_contact(old, contact_id, "act_address_changed", {"new_subject": subject})
            actions.append("address_changed")
        profile, states = self.ledger.current(subject) if subject else (None, {})
        if subject and states and contact_id not in ((profile or {}).get("act_contact_ids") or []):
            # a contact of this person the sync does not know (added, or readdressed to
            # them): its next push searches by address instead of trusting the ids
            self.ledger.set_profile_fields(subject, {"act_contacts_changed_at": now_iso()})
        consent = self._consent_to_clear(contact, keep=set(states)) if moved else {}
        blank = {**consent, **{key: None for key, _ in stale}}
        patched = False
        if blank:  # nothing of the old person stays on it: consent fields and links, one PATCH
            contact = {
                **contact,
                **(self.client.patch_contact(contact_id, {"customFields": blank}) or {}),
            }
            contact["customFields"] = {**(contact.get("customFields") or {}), **blank}
            patched = True
        if consent:
            actions.append("fields_cleared")
        for key, link in stale:
            if self._withdraw(link, contact_id, key):
                actions.append("link_withdrawn")
        if subject and not states:
            if (
                self.ask_purposes
                and (created or (moved and self.ask_new_address))
                and self.settings.mail.transport != "none"
                and address
                and self._ask(contact, address, subject)
            ):
                actions.append("asked")
        elif subject:
            actions += self._check_drift(contact, subject, states, moved)
        item = contacts.seen_item(contact, subject, self.client.tz, ours=patched)
        if not patched and seen.get("ours_edited_at"):
            item["ours_edited_at"] = seen["ours_edited_at"]
        self.ledger.put(item)
        if stale and subject and self.ask_new_address:
            actions += self._relink(contact, address, stale)
        return actions

    def link_keys(self) -> dict[str, str]:
        """The contact fields campaigns write links into (read once per reconciler)."""
        if self._link_keys is None:
            self._link_keys = define.link_field_keys(self.ledger)
        return self._link_keys

    def _links_held(self, contact: dict[str, Any]) -> list[tuple[str, Any]]:
        fields = contact.get("customFields") or {}
        held = []
        for key in self.link_keys():
            link = define.link_in(fields.get(key), self.settings)
            if link is not None:
                held.append((key, link))
        return held

    def _withdraw(self, link: Any, contact_id: str, key: str) -> bool:
        """The link in a field of a contact that changed hands: withdrawn on its person's
        chain, and its campaign no longer counts it as delivered."""
        campaign_id = self._campaign_of(link)
        also = []
        if campaign_id:
            item = self.ledger.get(*keys.campaign_contact(campaign_id, contact_id))
            if item and item.get("link_id") == link.link_id:
                also.append(
                    {
                        **item,
                        "link_withdrawn_at": now_iso(),
                        "link_withdrawn_reason": "address_changed",
                    }
                )
        done = consent.withdraw_link(
            self.ledger,
            link,
            "act_address_changed",
            {
                "act_contact_id": contact_id,
                "field": self.link_keys().get(key, key),
                "campaign_id": campaign_id,
            },
            also,
        )
        if done:
            log(
                "act_link_withdrawn",
                contact_id=contact_id,
                link_id=link.link_id,
                campaign=campaign_id,
            )
        return done

    def _relink(
        self, contact: dict[str, Any], address: str | None, stale: list[tuple[str, Any]]
    ) -> list[str]:
        """``ACT_ASK_NEW_ADDRESS``: each campaign whose link was taken back writes the
        new address its own link (through the campaign, so it is counted and resumable)."""
        done = []
        for campaign_id in dict.fromkeys(self._campaign_of(link) for _, link in stale):
            campaign = define.find(self.ledger, campaign_id) if campaign_id else None
            if campaign is None or campaign.delivery != "act-field":
                continue
            tools = jobs.Tools(self.settings, self.catalogue, self.client)
            runner = jobs.runner_for(
                self.ledger, tools, campaign, define.current_round(self.ledger, campaign)
            )
            outcome, reason = runner.reach(
                define.Contact(
                    contact["id"], address, (contact.get("firstName") or "").strip() or None
                ),
                readdressed=True,
            )
            done.append(
                "link_rewritten"
                if outcome == define.DONE
                else f"link_not_rewritten:{reason or outcome}"
            )
        return done

    def _campaign_of(self, link: Any) -> str | None:
        channel = str((self.ledger.link(link.link_id) or {}).get("channel") or "")
        return channel.removeprefix("campaign:") if channel.startswith("campaign:") else None

    @staticmethod
    def _address(value: Any) -> str | None:
        try:
            return mail_address(value) if isinstance(value, str) and value.strip() else None
        except InvalidEmail:
            return None

    def _forget_contact(
        self, subject: str, contact_id: str, kind: str, extra: dict[str, Any]
    ) -> None:
        """The contact no longer is this person's: record it, stop pushing there."""

        def build(snap: Snapshot) -> Plan:
            if snap.seq == 0:
                return Plan()
            plan = Plan(
                events=[
                    Draft(
                        {
                            "event_id": new_event_id(),
                            "kind": kind,
                            "at": now_iso(),
                            "act_contact_id": contact_id,
                            "channel": "act",
                            **extra,
                        }
                    )
                ]
            )
            if snap.profile is not None:
                ids = [i for i in snap.profile.get("act_contact_ids") or [] if i != contact_id]
                plan.profile = {"act_contact_ids": ids, "updated_at": now_iso()}
            return plan

        self.ledger.commit(subject, build)

    def _consent_to_clear(self, contact: dict[str, Any], keep: set[str]) -> dict[str, None]:
        """The set consent fields of every purpose not in ``keep``."""
        current = contact.get("customFields") or {}
        return {
            key: None
            for (purpose, _), key in self.keys().items()
            if purpose not in keep and current.get(key) not in (None, "")
        }

    def _ask(self, contact: dict[str, Any], address: str, subject: str) -> bool:
        """Double opt-in for a contact created in Act!: a link, mailed by the outbox."""
        at, locale = now_iso(), self.catalogue.default_locale
        purposes = list(self.ask_purposes)
        if self.ledger.get(*keys.tombstone(subject)):
            log("act_ask_skipped", subject=subject, reason="erased")  # no silent re-adding
            return False

        def build(snap: Snapshot) -> Plan:
            live = (snap.profile or {}).get("live_links") or {}
            if snap.states or any(
                set(purposes) <= set(info.get("purposes", [])) and info.get("expires", "") > at
                for info in live.values()
            ):
                return Plan()  # decided meanwhile, or already asked (another reconciler)
            request = draft_request(
                self.settings,
                subject,
                purposes,
                True,
                "act:created",
                locale,
                RequestContext(),
                at,
                act_contact_id=contact["id"],
            )
            plan = plan_request(request, snap, address, contact.get("firstName"), locale, at)
            remember_contact(plan, snap, contact["id"])
            return plan

        _, sealed = self.ledger.commit(subject, build)
        return bool(sealed)

    def _check_drift(
        self, contact: dict[str, Any], subject: str, states: dict[str, dict[str, Any]], moved: bool
    ) -> list[str]:
        """Consent fields that do not say what our record says: restore or flag."""
        mapped, fields = self.keys(), contact.get("customFields") or {}
        words = self.settings.act.status_values if self.settings.act else {}
        drifted = []
        for purpose, state in states.items():
            key = mapped.get((purpose, "status_field"))
            if key and state.get("state") in words and fields.get(key) != words[state["state"]]:
                drifted.append(purpose)
        if not drifted:
            return []
        self.ledger.put(
            {
                **keys.item(keys.act_drift(contact["id"])),
                "contact_id": contact["id"],
                "subject": subject,
                "purposes": drifted,
                "found_at": now_iso(),
                "action": self.drift,
                "after_address_change": moved,
            }
        )
        log(
            "act_drift",
            level="warning",
            contact_id=contact["id"],
            purposes=drifted,
            action=self.drift,
        )
        if self.drift == "restore" or moved:  # after an address change: not a hand edit
            at = now_iso()
            for purpose in drifted:  # the sync writes our values back
                self.ledger.update_state(
                    subject_pk(subject),
                    purpose_sk(purpose),
                    states[purpose]["event_id"],
                    {"sync_status": "pending", "sync_due": at, "sync_shard": sync_shard(subject)},
                )
            return ["drift_restored"]
        return ["drift_flagged"]


def drift_rows(ledger: Ledger) -> list[dict[str, Any]]:
    """Every drift found, for ``cli act drift`` (an operator's scan)."""
    return sorted(
        ledger.scan_items(keys.DRIFT_PREFIX, keys.DRIFT), key=lambda r: r.get("found_at", "")
    )


# -- Act! cloud: no webhooks, so a poll of what was edited since the last poll ------------

POLL_PK = keys.ACT_POLL[0]
#: Each poll reads again this far before its watermark: an edit Act! stamped a little
#: late (its clock, its transaction) is still found; what was already read is dropped.
POLL_OVERLAP = timedelta(minutes=2)
#: A first poll looks back this far.
POLL_FIRST_LOOK_BACK = timedelta(hours=24)


@dataclass
class PollReport:
    """What one poll did: the window read, and how each edited contact was handled."""

    since: str
    watermark: str
    read: int = 0
    reconciled: list[Outcome] = field(default_factory=list)
    already_seen: int = 0
    own_writes: int = 0
    #: The deadline stopped it before the last contact: the watermark is where it got.
    unfinished: bool = False


def poll(
    ledger: Ledger,
    reconciler: Reconciler,
    since: str | None = None,
    on_contact: Callable[[Outcome], None] | None = None,
    deadline: float | None = None,
) -> PollReport:
    """Reconcile every contact edited in Act! since the last poll; safe to repeat.

    The watermark is a UTC instant taken from Act!'s own ``edited`` stamps (so our clock
    does not matter), read back with ``POLL_OVERLAP``; contacts already reconciled at
    that same ``edited`` are dropped, and so are edits that are our own writes coming
    back (what the sync and campaigns remember writing), so neither a skewed clock, the
    zone, nor our own PATCHes loses, repeats or re-reads an edit one by one.

    ``deadline`` (``time.monotonic``): contacts come oldest edit first, so stopping
    early leaves the watermark at the last one handled; the rest is read next time.
    """
    tz = reconciler.client.tz
    mark = ledger.get(*keys.ACT_POLL) or {}
    watermark = (
        since
        or mark.get("watermark")
        or dates.from_act_iso(mark.get("edited"), tz)
        or iso(utcnow() - POLL_FIRST_LOOK_BACK)
    )
    start = watermark if since else iso(parse_iso(watermark) - POLL_OVERLAP)
    recent: dict[str, str] = {} if since else dict(mark.get("recent") or {})
    report = PollReport(since=start, watermark=watermark)
    changed = [
        (c, dates.from_act_iso(c.get("edited"), tz)) for c in reconciler.client.edited_since(start)
    ]
    report.read = len(changed)
    known = {
        item["contact_id"]: item
        for item in ledger.get_many(
            [(contacts.contact_pk(c["id"]), contacts.SEEN) for c, _ in changed]
        )
    }
    for contact, edited_at in changed:
        if deadline is not None and time.monotonic() > deadline:
            report.unfinished = True
            break
        if edited_at and recent.get(contact["id"]) == edited_at:
            report.already_seen += 1
            continue
        if contacts.is_own_edit(known.get(contact["id"]) or {}, edited_at):
            report.own_writes += 1
        else:
            created_at = dates.from_act_iso(contact.get("created"), tz) or ""
            contacts.queue_hint(
                ledger, contact["id"], contact.get("edited"), created=created_at > start
            )
            outcome = reconciler.process(contact["id"])
            report.reconciled.append(outcome)
            if on_contact:
                on_contact(outcome)
        if edited_at:
            recent[contact["id"]] = edited_at
            report.watermark = max(report.watermark, edited_at)
    floor = iso(parse_iso(report.watermark) - POLL_OVERLAP)
    ledger.put(
        {
            **keys.item(keys.ACT_POLL),
            "watermark": report.watermark,
            "recent": {k: v for k, v in recent.items() if v >= floor},
            "at": now_iso(),
        }
    )
    return report
