"""Asking for consent from inside Act!: a group, or a field set to a value.

An Act! user who never leaves Act! asks one contact or a whole list by adding them to
the configured group (``ACT_ASK_GROUP``, e.g. "Demande de consentement") or by setting
the configured field to the request value (``ACT_ASK_FIELD`` = ``ACT_ASK_VALUE``, e.g.
"OptinProof Ask" = "Ask"). For each contact holding a trigger, :class:`Asker`:

1. re-reads the contact (and its groups) from Act!, under a per-contact lease, so a
   trigger seen twice at once (a webhook and the poll) is handled by one worker;
2. skips, and records why, a contact without an address or with an invalid one, an
   erased person (tombstone), one who reported our mail as spam, one who already
   accepted every purpose asked, or one asked too often (the signup throttle);
3. otherwise issues the confirmation request the one way requests are issued
   (``consent.requests``: link, withdraw link, outbox mail), with an ``act_ask`` event
   on the person's chain naming the trigger and the Act! user;
4. clears the trigger (the contact leaves the group; the field is emptied), shows
   ``ACT_ASK_STATUS`` ("Requested") in the consent status fields of the purposes asked
   and not yet decided, and adds a history entry saying what happened.

What was done is remembered per contact and trigger (``ACTASK#<contact>``), written in
the same transaction as the request: until the trigger is cleared, seeing it again
only finishes the clearing, so a trigger yields one mail however often it is seen.
Once cleared, a new trigger is a new request (throttled like a signup).

Size: the skip rules, the request, the clearing and the scan belong together: they
are one Act! user's gesture, end to end.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from chalicelib.act import contacts, dates
from chalicelib.act import fields as actfields
from chalicelib.act.client import ActClient, ActNotFound, odata_string
from chalicelib.act.sync import Pusher
from chalicelib.consent.catalogue import Catalogue
from chalicelib.consent.requests import draft_request, plan_request, remember_contact
from chalicelib.consent.rules import RequestContext
from chalicelib.consent.subjects import mail_address, normalise_email, subject_key
from chalicelib.consent.throttle import Throttle, rate_key
from chalicelib.core.clock import now_iso
from chalicelib.core.errors import (
    ActError,
    ConfigError,
    Contention,
    InvalidEmail,
    OptinProofError,
    RequiredItemMissing,
)
from chalicelib.core.i18n import locale_of
from chalicelib.core.logs import log
from chalicelib.core.settings import ActSettings, Settings
from chalicelib.proof.chain import new_event_id
from chalicelib.store import keys
from chalicelib.store.ledger import Draft, Ledger, Plan, Snapshot

TRIGGERS = ("group", "field")
ASKED, SKIPPED, CLEARED = "asked", "skipped", "cleared"
#: How long one worker may hold a contact (a request, a PATCH, a DELETE, a history).
LEASE_SECONDS = 120
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class AskOutcome:
    """What one contact's triggers led to: asked, skipped (and why), or cleared."""

    contact_id: str
    triggers: tuple[str, ...]
    outcome: str
    reason: str = ""
    mail_id: str | None = None


@dataclass
class AskReport:
    """One scan: each contact handled, and whether the deadline cut it short."""

    outcomes: list[AskOutcome] = field(default_factory=list)
    unfinished: bool = False
    errors: int = 0

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)

    def as_dict(self) -> dict[str, Any]:
        reasons: dict[str, int] = {}
        for o in self.outcomes:
            if o.outcome == SKIPPED:
                reasons[o.reason] = reasons.get(o.reason, 0) + 1
        return {
            "asked": self.count(ASKED),
            "skipped": reasons,
            "cleared": self.count(CLEARED),
            "errors": self.errors,
            "unfinished": self.unfinished,
        }


def default_purposes(catalogue: Catalogue) -> tuple[str, ...]:
    """Without ``ACT_ASK_PURPOSES``: the e-mail marketing purposes, or every purpose."""
    marketing = tuple(p.id for p in catalogue.purposes.values() if p.email_marketing)
    return marketing or tuple(catalogue.purposes)


def ask_purposes(act: ActSettings, catalogue: Catalogue) -> tuple[str, ...]:
    """The purposes a trigger asks; ConfigError naming an id the catalogue lacks."""
    unknown = [p for p in act.ask_purposes if p not in catalogue.purposes]
    if unknown:
        raise ConfigError(
            f"ACT_ASK_PURPOSES names unknown purpose(s): {', '.join(unknown)}; the "
            f"catalogue has {', '.join(catalogue.purposes)}."
        )
    return act.ask_purposes or default_purposes(catalogue)


class Asker:
    """Handles the "ask from inside Act!" triggers of contacts, one contact at a time."""

    def __init__(
        self, ledger: Ledger, settings: Settings, catalogue: Catalogue, client: ActClient
    ) -> None:
        if settings.act is None:
            raise ConfigError("Act! is not configured: set ACT_API_URL and friends.")
        self.ledger, self.settings, self.catalogue, self.client = (
            ledger,
            settings,
            catalogue,
            client,
        )
        self.act: ActSettings = settings.act
        self.purposes = ask_purposes(self.act, catalogue)
        if self.act.ask_locale and self.act.ask_locale not in catalogue.locales:
            raise ConfigError(
                f"ACT_ASK_LOCALE={self.act.ask_locale!r} is not a catalogue language "
                f"({', '.join(catalogue.locales)})."
            )
        self.owner = uuid.uuid4().hex
        self._group_id: str | None = None
        self._keys: dict[str, str | None] | None = None
        self._history_type: int | None = None

    # -- configuration, resolved in Act! on first use ------------------------------------

    def configured(self) -> tuple[str, ...]:
        """The triggers set up: ``group`` and/or ``field``."""
        return tuple(
            t for t, on in (("group", self.act.ask_group), ("field", self.act.ask_field)) if on
        )

    def group_id(self) -> str | None:
        """The id of ``ACT_ASK_GROUP`` (a name or an id); ConfigError if Act! lacks it."""
        name = self.act.ask_group
        if not name or self._group_id:
            return self._group_id
        if _GUID.fullmatch(name):
            try:
                self._group_id = str(self.client.group(name)["id"])
            except ActNotFound as exc:
                raise ConfigError(
                    f"ACT_ASK_GROUP={name!r}: Act! has no group with that id."
                ) from exc
            return self._group_id
        found = self.client.groups_named(name)
        if len(found) != 1:
            raise ConfigError(
                f"ACT_ASK_GROUP={name!r}: Act! has "
                + (
                    "no group of that name: create it in Act! (Groups), or fix the name."
                    if not found
                    else f"{len(found)} groups of that name: set ACT_ASK_GROUP to the id "
                    "of the one to use."
                )
            )
        self._group_id = str(found[0]["id"])
        return self._group_id

    def field_keys(self) -> dict[str, str | None]:
        """``customFields`` keys: the trigger field, the language field, the status fields."""
        if self._keys is None:
            found: dict[str, str | None] = {"ask": None, "locale": None}
            if self.act.ask_field:
                found["ask"] = actfields.named_key(
                    self.client, self.act.ask_field, actfields.ASK_ROLE, "ACT_ASK_FIELD"
                )
            if self.act.ask_locale_field:
                found["locale"] = actfields.named_key(
                    self.client,
                    self.act.ask_locale_field,
                    actfields.LOCALE_ROLE,
                    "ACT_ASK_LOCALE_FIELD",
                )
            mapped = actfields.resolve(self.client, self.catalogue)
            for purpose in self.purposes:
                found[f"status:{purpose}"] = mapped.get((purpose, "status_field"))
            self._keys = found
        return self._keys

    # -- finding the contacts that hold a trigger ----------------------------------------

    def triggered(self) -> list[str]:
        """Contacts in the group or with the field set, each once (group first)."""
        found: dict[str, None] = {}
        group_id = self.group_id()
        if group_id:  # every member read before any leaves the group: no page shifts
            found.update((c["id"], None) for c in self.client.iter_contacts(group_id=group_id))
        key = self.field_keys()["ask"]
        if key:
            wanted = f"customFields/{key} eq {odata_string(self.act.ask_value)}"
            found.update((c["id"], None) for c in self.client.iter_contacts(odata_filter=wanted))
        return list(found)

    def scan(self, deadline: float | None = None) -> AskReport:
        """Handle every contact holding a trigger, until ``deadline`` (``time.monotonic``)."""
        report = AskReport()
        if not self.configured():
            return report
        for contact_id in self.triggered():
            if deadline is not None and time.monotonic() > deadline:
                report.unfinished = True  # the rest waits for the next run: nothing is lost
                break
            try:
                outcome = self.process(contact_id)
            except (ActError, Contention) as exc:  # this contact waits; the others go on
                report.errors += 1
                log("act_ask_failed", level="warning", contact_id=contact_id, error=str(exc)[:300])
                continue
            if outcome is not None:
                report.outcomes.append(outcome)
        log("act_ask_scan", **report.as_dict())
        return report

    # -- one contact -----------------------------------------------------------------------

    def process(self, contact_id: str) -> AskOutcome | None:
        """One contact, re-read under its lease; None when it holds no trigger (or is busy)."""
        if not self.configured():
            return None
        lock = keys.act_ask_lock(contact_id)
        if not self.ledger.lease(*lock, self.owner, LEASE_SECONDS):
            log("act_ask_busy", contact_id=contact_id)
            return None
        try:
            try:
                contact = self.client.contact(contact_id)
            except ActNotFound:
                return None
            held = self._held(contact)
            if not held:
                return None
            return self._handle(contact, held)
        finally:
            self.ledger.release(*lock, self.owner)

    def _held(self, contact: dict[str, Any]) -> tuple[str, ...]:
        held = []
        group_id = self.group_id()
        if group_id and any(
            str(g.get("id") or "").casefold() == group_id.casefold()
            for g in self.client.contact_groups(contact["id"])
        ):
            held.append("group")
        key = self.field_keys()["ask"]
        value = str((contact.get("customFields") or {}).get(key) or "") if key else ""
        if key and value.strip().casefold() == self.act.ask_value.casefold():
            held.append("field")
        return tuple(held)

    def _handle(self, contact: dict[str, Any], held: tuple[str, ...]) -> AskOutcome:
        contact_id = contact["id"]
        claims = {t: self.ledger.get(*keys.act_ask(contact_id, t)) for t in held}
        open_claim = next(
            (c for c in claims.values() if c and not c.get("cleared_at")), None
        )  # acted on, not yet cleared: the same trigger, seen again
        if open_claim is not None:
            done = AskOutcome(
                contact_id,
                held,
                CLEARED,
                open_claim.get("reason") or open_claim.get("status", ""),
                open_claim.get("mail_id"),
            )
            claim = open_claim
        else:
            done, claim = self._decide(contact, held)
        self._clear(contact, held, claim)
        log(
            "act_ask",
            contact_id=contact_id,
            triggers=list(held),
            outcome=done.outcome,
            reason=done.reason,
            mail_id=done.mail_id,
        )
        return done

    def _claims(self, contact: dict[str, Any], held: tuple[str, ...], **fields: Any) -> list[dict]:
        at = now_iso()
        return [
            {
                **keys.item(keys.act_ask(contact["id"], trigger)),
                "contact_id": contact["id"],
                "trigger": trigger,
                "instance": self._group_id if trigger == "group" else contact.get("edited"),
                "at": at,
                **fields,
            }
            for trigger in held
        ]

    def _skip(
        self, contact: dict[str, Any], held: tuple[str, ...], reason: str
    ) -> tuple[AskOutcome, dict[str, Any]]:
        """A skip nobody's chain can hold (no address, erased...): only our memory of it."""
        claims = self._claims(contact, held, status=SKIPPED, reason=reason)
        for claim in claims:
            self.ledger.put(claim)
        return AskOutcome(contact["id"], held, SKIPPED, reason), claims[0]

    def _locale(self, contact: dict[str, Any]) -> str:
        key = self.field_keys()["locale"]
        found = locale_of((contact.get("customFields") or {}).get(key), self.catalogue.locales)
        return found or self.act.ask_locale or self.catalogue.default_locale

    def _decide(
        self, contact: dict[str, Any], held: tuple[str, ...]
    ) -> tuple[AskOutcome, dict[str, Any]]:
        raw = contact.get("emailAddress")
        if not isinstance(raw, str) or not raw.strip():
            return self._skip(contact, held, "no_address")
        try:
            address = mail_address(raw)
        except InvalidEmail:
            return self._skip(contact, held, "invalid_address")
        if self.settings.mail.transport == "none":
            return self._skip(contact, held, "mail_not_configured")
        subject = subject_key(self.settings.subject_pepper, normalise_email(address))
        if self.ledger.get(*keys.tombstone(subject)):
            return self._skip(contact, held, "erased")  # no silent re-adding after erasure
        profile, states = self.ledger.current(subject)
        if (profile or {}).get("complained_at"):
            return self._record_skip(contact, held, subject, "complained")
        if set(self.purposes) <= {p for p, s in states.items() if s.get("state") == "accepted"}:
            return self._record_skip(contact, held, subject, "already_accepted")
        limit = self.settings.mail.per_address
        key = rate_key(self.settings.subject_pepper, "address", normalise_email(address))
        if not Throttle(self.ledger).hit("address", key, limit):
            return self._skip(contact, held, "throttled_address")
        return self._request(contact, held, subject, address)

    def _event(self, contact: dict[str, Any], held: tuple[str, ...], at: str, **body: Any) -> Draft:
        return Draft(
            {
                "event_id": new_event_id(),
                "kind": "act_ask",
                "at": at,
                "channel": "act",
                "trigger": "+".join(held),
                "act_contact_id": contact["id"],
                "act_group_id": self._group_id if "group" in held else None,
                "act_user": contact.get("editedBy") if "field" in held else None,
                **body,
            }
        )

    def _record_skip(
        self, contact: dict[str, Any], held: tuple[str, ...], subject: str, reason: str
    ) -> tuple[AskOutcome, dict[str, Any]]:
        """A skip of a known person: an ``act_ask`` event on their chain says why."""
        claims = self._claims(contact, held, status=SKIPPED, reason=reason)

        def build(snap: Snapshot) -> Plan:
            event = self._event(contact, held, now_iso(), outcome=SKIPPED, reason=reason)
            plan = Plan(events=[event] if snap.seq else [], puts=list(claims))
            plan.absent.append(keys.tombstone(subject))
            return plan

        try:
            self.ledger.commit(subject, build)
        except RequiredItemMissing:  # erased meanwhile
            return self._skip(contact, held, "erased")
        return AskOutcome(contact["id"], held, SKIPPED, reason), claims[0]

    def _request(
        self, contact: dict[str, Any], held: tuple[str, ...], subject: str, address: str
    ) -> tuple[AskOutcome, dict[str, Any]]:
        """The confirmation request, its ``act_ask`` event and our memory, in one write."""
        at, locale = now_iso(), self._locale(contact)
        result: dict[str, Any] = {}

        def build(snap: Snapshot) -> Plan:
            accepted = {p for p, s in snap.states.items() if s.get("state") == "accepted"}
            to_ask = [p for p in self.purposes if p not in accepted]
            if not to_ask:  # accepted meanwhile
                result.update(outcome=SKIPPED, reason="already_accepted", purposes=[])
                claims = self._claims(contact, held, status=SKIPPED, reason="already_accepted")
                return Plan(puts=claims)
            request = draft_request(
                self.settings,
                subject,
                to_ask,
                True,
                f"act:{'+'.join(held)}",
                locale,
                RequestContext(),
                at,
                act_contact_id=contact["id"],
            )
            mail_id = request.order.mail_id if request.order else None
            link_id = request.asking().issued.link_id
            undecided = [p for p in to_ask if p not in snap.states]
            request.events = [
                self._event(
                    contact,
                    held,
                    at,
                    outcome=ASKED,
                    purposes=to_ask,
                    link_id=link_id,
                    locale=locale,
                )
            ]
            plan = plan_request(request, snap, address, contact.get("firstName"), locale, at)
            remember_contact(plan, snap, contact["id"])
            claims = self._claims(
                contact,
                held,
                status=ASKED,
                reason="",
                mail_id=mail_id,
                link_id=link_id,
                purposes=to_ask,
                undecided=undecided,
            )
            plan.puts += claims
            plan.absent.append(keys.tombstone(subject))  # erased meanwhile: never
            result.update(outcome=ASKED, reason="", mail_id=mail_id, claim=claims[0])
            return plan

        try:
            self.ledger.commit(subject, build)
        except RequiredItemMissing:
            return self._skip(contact, held, "erased")
        if result["outcome"] == SKIPPED:
            return AskOutcome(contact["id"], held, SKIPPED, "already_accepted"), {
                "status": SKIPPED,
                "reason": "already_accepted",
            }
        return AskOutcome(contact["id"], held, ASKED, "", result["mail_id"]), result["claim"]

    # -- clearing the trigger and showing the state ----------------------------------------

    def _clear(self, contact: dict[str, Any], held: tuple[str, ...], claim: dict[str, Any]) -> None:
        """The contact leaves the group, the field is emptied, "Requested" is shown; each
        step is safe to repeat, and the claims say cleared only once all are done."""
        contact_id, found = contact["id"], self.field_keys()
        patch: dict[str, Any] = {}
        if "field" in held and found["ask"]:
            patch[found["ask"]] = None
        if claim.get("status") == ASKED:
            current = contact.get("customFields") or {}
            for purpose in claim.get("undecided") or []:
                key = found.get(f"status:{purpose}")
                if key and current.get(key) in (None, ""):
                    patch[key] = self.act.ask_status
        if patch:
            answer = self.client.patch_contact(contact_id, {"customFields": patch})
            contacts.note_write(self.ledger, answer or {}, self.client.tz)  # the poll's "ours"
        if "group" in held and self._group_id:
            try:
                self.client.remove_from_group(self._group_id, contact_id)
            except ActNotFound:
                pass  # the group or the contact is gone: nothing holds the trigger
        if not claim.get("history"):
            self._history(contact_id, claim)
        at = now_iso()
        for trigger in held:
            self.ledger.set_fields(
                *keys.act_ask(contact_id, trigger), {"cleared_at": at, "history": True}
            )

    def _history(self, contact_id: str, claim: dict[str, Any]) -> None:
        """What happened, where the Act! user looks: the contact's history (best effort)."""
        if claim.get("status") == ASKED:
            titles = [
                self.catalogue.get(p).text(self.catalogue.default_locale).title
                for p in claim.get("purposes") or []
                if p in self.catalogue.purposes
            ]
            regarding = "OptinProof: consent requested"
            details = f"Confirmation request e-mailed for: {', '.join(titles)}."
        else:
            regarding = "OptinProof: consent not requested"
            details = f"Not asked: {_REASONS.get(claim.get('reason', ''), claim.get('reason'))}."
        at = now_iso()
        try:
            if self._history_type is None:
                self._history_type = Pusher(
                    self.ledger, self.client, self.catalogue, self.settings
                ).history_type()
            self.client.post_history(
                {
                    "contacts": [{"id": contact_id}],
                    "regarding": regarding,
                    "details": f"{details}\noptinproof:act_ask link={claim.get('link_id') or '-'}",
                    "startTime": dates.to_act(at, self.client.tz),
                    "endTime": dates.to_act(at, self.client.tz),
                    "historyTypeID": self._history_type,
                }
            )
        except OptinProofError as exc:  # the request stands; only the note is missing
            log(
                "act_ask_history_failed",
                level="warning",
                contact_id=contact_id,
                error=str(exc)[:300],
            )


#: Why a contact was not asked, in the words its Act! history shows.
_REASONS = {
    "no_address": "the contact has no e-mail address",
    "invalid_address": "the contact's e-mail address is not valid",
    "mail_not_configured": "OptinProof sends no mail (MAIL_TRANSPORT is none)",
    "erased": "this person asked for their data to be erased",
    "complained": "this person reported our mail as spam",
    "already_accepted": "this person already accepted every purpose asked",
    "throttled_address": "this address was sent too many requests lately; try again tomorrow",
}


def claims(ledger: Ledger) -> list[dict[str, Any]]:
    """Every trigger handled (newest first), for ``cli act ask``."""
    rows = [
        row
        for row in ledger.scan_items(keys.ACT_ASK_PREFIX)
        if str(row.get("sk", "")).startswith(keys.ACT_ASK_TRIGGER)
    ]
    return sorted(rows, key=lambda r: r.get("at", ""), reverse=True)
