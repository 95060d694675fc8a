"""The consent rules: issue a link, show the states, record decisions.

One purpose, one decision: a decision names exactly one purpose of the link, the text
version the person was shown, and the link it came through. Refusing after accepting
is a withdrawal. Repeating the very same decision through the same link and wording
is not a change and records nothing (a double click); everything else is a new event.

Size: decide, withdraw and "never downgrade" are one set of rules over the same
states; split, each would re-read what the others assume.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from chalicelib.consent import basis, links, stats, validity
from chalicelib.consent.catalogue import Catalogue
from chalicelib.consent.deliveries import delivery_items
from chalicelib.consent.subjects import mail_address, normalise_email, subject_key
from chalicelib.core.clock import iso, now_iso, utcnow
from chalicelib.core.errors import (
    BadInput,
    LinkPurposeRetired,
    LinkRevoked,
    LinkSuperseded,
    LinkTampered,
    LinkWithdrawn,
    NoChoice,
    OptinProofError,
    RequiredItemMissing,
    TextChanged,
)
from chalicelib.core.settings import Settings
from chalicelib.proof.chain import new_event_id
from chalicelib.store import keys
from chalicelib.store.ledger import Draft, Ledger, Plan, Reads, Snapshot

CHOICES = {"accept": "accepted", "refuse": "refused"}
#: Links outlive their signature by this much in the table, for audit of late clicks.
_LINK_RECORD_GRACE = timedelta(days=30)
MAX_PURPOSES_PER_LINK = 20


@dataclass(frozen=True)
class RequestContext:
    """Where a request came from: recorded with every event it causes."""

    ip: str | None = None
    user_agent: str | None = None
    accept_language: str | None = None

    def personal(self) -> dict[str, Any]:
        """The fields an event commits by hash only (erasable without breaking the chain)."""
        return {
            "ip": self.ip,
            "user_agent": self.user_agent,
            "accept_language": self.accept_language,
        }


@dataclass(frozen=True)
class IssuedLink:
    token: str
    link_id: str
    subject: str
    expires_at: str


@dataclass(frozen=True)
class PurposeState:
    """A purpose of a link as the page shows it."""

    purpose: str
    state: str | None
    decided_at: str | None
    changed: bool = False
    #: The link the state was decided through (a page re-opened from it shows it chosen).
    link_id: str | None = None


def _check_purposes(catalogue: Catalogue, purposes: list[str] | tuple[str, ...]) -> list[str]:
    unique = list(dict.fromkeys(purposes))
    if not unique:
        raise BadInput("Name at least one purpose.")
    if len(unique) > MAX_PURPOSES_PER_LINK:
        raise BadInput(f"A link can carry at most {MAX_PURPOSES_PER_LINK} purposes.")
    unknown = [p for p in unique if p not in catalogue.purposes]
    if unknown:
        raise BadInput(
            f"Unknown purpose(s): {', '.join(unknown)}. Known: {', '.join(catalogue.purposes)}."
        )
    return unique


@dataclass
class LinkDraft:
    """A link about to be issued: the token, and what recording it writes."""

    issued: IssuedLink
    event: Draft
    record: dict[str, Any]
    purposes: list[str]


def draft_link(
    settings: Settings,
    subject: str,
    kind: str,
    purposes: list[str],
    channel: str,
    at: str,
    ctx: RequestContext,
    **extra: Any,
) -> LinkDraft:
    """Mint a link and draft its ``link_issued`` event and ``LINK#`` record (not written)."""
    token, link_id = links.mint(settings, kind, subject, purposes)
    expires = utcnow() + timedelta(seconds=settings.link_max_age[kind])
    event = Draft(
        {
            "event_id": new_event_id(),
            "kind": "link_issued",
            "at": at,
            "link_id": link_id,
            "link_kind": kind,
            "purposes": purposes,
            "channel": channel,
            "link_expires_at": iso(expires),
            **extra,
        },
        ctx.personal(),
    )
    record = {
        **keys.item(keys.link(link_id)),
        "link_id": link_id,
        "kind": kind,
        "subject": subject,
        "purposes": purposes,
        "channel": channel,
        "issued_at": at,
        "link_expires_at": iso(expires),
        "expires_at": int((expires + _LINK_RECORD_GRACE).timestamp()),
    }
    return LinkDraft(IssuedLink(token, link_id, subject, iso(expires)), event, record, purposes)


def supersede(
    snap: Snapshot, new: LinkDraft, at: str
) -> tuple[list[str], dict[str, Any], list[Any]]:
    """Which live confirm links the new one replaces, the new live-link map, the updates.

    A newer confirm link replaces an older one when it asks about every purpose the
    older one did: then there are never two live links for the same request. Links
    about other purposes stay live (a campaign link is not killed by a signup for
    another purpose).
    """
    live = dict((snap.profile or {}).get("live_links") or {})
    now = at
    replaced, kept = [], {}
    for link_id, info in live.items():
        if info.get("expires", "") <= now:
            continue
        if set(info.get("purposes", [])) <= set(new.purposes):
            replaced.append(link_id)
        else:
            kept[link_id] = info
    kept[new.issued.link_id] = {"purposes": new.purposes, "expires": new.issued.expires_at}
    grace = int((utcnow() + _LINK_RECORD_GRACE).timestamp())
    updates = [
        (*keys.link(link_id), {"superseded_by": new.issued.link_id, "superseded_at": at}, grace)
        for link_id in replaced
    ]
    return replaced, kept, updates


def pending_expiry(snap: Snapshot, draft: LinkDraft) -> int | None:
    """When a never-confirmed person's profile (address, name) disappears by itself.

    Someone who never answered leaves only the proof events, which hold no address;
    once any decision is recorded the profile stays (``decide`` removes the expiry).
    """
    if snap.states:
        return None
    return max(draft.record["expires_at"], int((snap.profile or {}).get("expires_at") or 0))


def issue_link(
    ledger: Ledger,
    settings: Settings,
    catalogue: Catalogue,
    email: str,
    purposes: list[str],
    kind: str = "confirm",
    channel: str = "cli",
    locale: str | None = None,
    ctx: RequestContext | None = None,
) -> IssuedLink:
    """Mint a signed link and record its issuance (event, link record, profile).

    A confirm link supersedes the person's older confirm links it covers.
    """
    purposes = _check_purposes(catalogue, purposes)
    address = mail_address(email)
    subject = subject_key(settings.subject_pepper, normalise_email(email))
    ctx = ctx or RequestContext()
    at = now_iso()
    draft = draft_link(settings, subject, kind, purposes, channel, at, ctx)

    def build(snap: Snapshot) -> Plan:
        profile = {
            "email": address,
            "locale": locale or (snap.profile or {}).get("locale"),
            "updated_at": at,
        }
        plan = Plan(events=[draft.event], puts=[draft.record], profile=profile)
        if kind == "confirm":
            replaced, live, plan.updates = supersede(snap, draft, at)
            draft.event.body["supersedes"] = replaced
            profile["live_links"] = live
            profile["expires_at"] = pending_expiry(snap, draft)
        return plan

    ledger.commit(subject, build)
    return draft.issued


def verify_link(
    settings: Settings, kind: str, token: str, catalogue: Catalogue | None = None
) -> links.Link:
    """The signature, lifetime and kind of a token (no table read); with ``catalogue``,
    a link naming a purpose the catalogue no longer offers is refused too (there is no
    wording left to show for it)."""
    link = links.verify(settings, kind, token)
    if catalogue is not None and any(p not in catalogue.purposes for p in link.purposes):
        raise LinkPurposeRetired(
            "This link asks about a purpose that is no longer offered.", link_id=link.link_id
        )
    return link


def check_record(link: links.Link, record: dict[str, Any] | None) -> dict[str, Any]:
    """The link's issuance record, if it still lets the link act; a LinkError saying
    why not (revoked, tampered, superseded, withdrawn)."""
    if record is None or "subject" not in record:
        raise LinkRevoked("This link is no longer valid.", link_id=link.link_id)
    if record.get("subject") != link.subject or record.get("kind") != link.kind:
        raise LinkTampered("This link does not match our records.", link_id=link.link_id)
    if record.get("superseded_by"):
        raise LinkSuperseded(
            "A newer link was sent to you; use the most recent e-mail.",
            link_id=link.link_id,
            superseded_at=record.get("superseded_at"),
        )
    if record.get("withdrawn_at"):
        raise LinkWithdrawn(
            "This link was withdrawn: the address it was sent for changed.", link_id=link.link_id
        )
    return record


def open_link(
    ledger: Ledger, settings: Settings, kind: str, token: str, catalogue: Catalogue | None = None
) -> tuple[links.Link, dict[str, Any]]:
    """Verify a token and find its issuance record; raise a LinkError saying why not."""
    link = verify_link(settings, kind, token, catalogue)
    return link, check_record(link, ledger.link(link.link_id))


@dataclass(frozen=True)
class OpenedPage:
    """What a link's page shows, from one read: the link, its record, its states."""

    link: links.Link
    record: dict[str, Any]
    states: list[PurposeState]


def open_page(
    ledger: Ledger,
    settings: Settings,
    kind: str,
    token: str,
    catalogue: Catalogue | None = None,
    widen: Callable[[links.Link], links.Link] | None = None,
) -> OpenedPage:
    """A link's page in one round trip: its record and the states of its purposes in
    one BatchGetItem (``widen`` turns the link into the purposes the page shows, e.g.
    every offered purpose for a preferences page)."""
    link = verify_link(settings, kind, token, catalogue)
    return read_page(ledger, widen(link) if widen is not None else link)


def read_page(ledger: Ledger, link: links.Link) -> OpenedPage:
    """A verified link's record (checked) and its purposes' states, in one BatchGetItem."""
    wanted = [keys.link(link.link_id), *(keys.purpose(link.subject, p) for p in link.purposes)]
    found = {(item["pk"], item["sk"]): item for item in ledger.get_many(wanted)}
    record = check_record(link, found.get(keys.link(link.link_id)))
    states = [_page_state(p, found.get(keys.purpose(link.subject, p), {})) for p in link.purposes]
    return OpenedPage(link, record, states)


def _page_state(purpose: str, current: dict[str, Any]) -> PurposeState:
    return PurposeState(
        purpose, current.get("state"), current.get("decided_at"), link_id=current.get("link_id")
    )


def withdraw_link(
    ledger: Ledger,
    link: links.Link,
    reason: str,
    extra: dict[str, Any],
    also: list[dict[str, Any]] | None = None,
) -> bool:
    """Take a link back for good: it was written where another person may open it.

    One transaction on the link's own person: a ``link_withdrawn`` event (the chain
    shows why the link stopped working), the link record marked, the link out of the
    person's live links, and ``also`` (e.g. the campaign's progress item). Repeating
    it changes nothing; False when there was nothing (left) to withdraw.
    """
    record = ledger.link(link.link_id)
    if record is None or record.get("withdrawn_at") or record.get("subject") != link.subject:
        return False
    at = now_iso()
    grace = int((utcnow() + _LINK_RECORD_GRACE).timestamp())

    def build(snap: Snapshot) -> Plan:
        if snap.seq == 0:
            return Plan()
        plan = Plan(
            events=[
                Draft(
                    {
                        "event_id": new_event_id(),
                        "kind": "link_withdrawn",
                        "at": at,
                        "link_id": link.link_id,
                        "reason": reason,
                        "channel": record.get("channel"),
                        **extra,
                    }
                )
            ],
            updates=[
                (*keys.link(link.link_id), {"withdrawn_at": at, "withdrawn_reason": reason}, grace)
            ],
            puts=list(also or ()),
        )
        live = (snap.profile or {}).get("live_links") or {}
        if link.link_id in live:
            plan.profile = {
                "live_links": {k: v for k, v in live.items() if k != link.link_id},
                "updated_at": at,
            }
        return plan

    _, sealed = ledger.commit(link.subject, build)
    return bool(sealed)


#: Links whose first opening this container already wrote (or is writing): a scanner
#: storm on one link costs one read per GET and a single write. Bounded: cleared when full.
_OPENED: set[str] = set()
_OPENED_LOCK = threading.Lock()
_OPENED_MAX = 10_000


def note_opened(ledger: Ledger, record: dict[str, Any]) -> None:
    """Count the first opening of a campaign or form link's page (the funnel's step
    between "sent" and "decided"). Mail scanners open links too: it is an upper bound.

    One request: the link's ``opened_at`` and the counter move together, and only for
    the first opening (the condition is DynamoDB's, so other containers agree)."""
    counters = stats.opened(record.get("channel"))
    if record.get("opened_at") or not counters:
        return
    with _OPENED_LOCK:
        if record["link_id"] in _OPENED:
            return
        if len(_OPENED) >= _OPENED_MAX:
            _OPENED.clear()
        _OPENED.add(record["link_id"])
    try:
        ledger.set_once_counted(*keys.link(record["link_id"]), "opened_at", now_iso(), counters)
    except OptinProofError:  # a count, never a reason to refuse the page
        with _OPENED_LOCK:
            _OPENED.discard(record["link_id"])


def renewable(ledger: Ledger, exc: Exception) -> bool:
    """Whether a refused confirm link may ask for a new one: authentic (expired or
    superseded) and its issuance still on record (so we know whom to write to)."""
    if getattr(exc, "reason", None) not in ("expired", "superseded") or not getattr(
        exc, "link_id", None
    ):
        return False
    try:
        record = ledger.link(exc.link_id)  # type: ignore[attr-defined]
    except OptinProofError:
        return False
    return bool(record and "subject" in record)


def _check_texts(
    catalogue: Catalogue, decisions: dict[str, str], locale: str, shown: dict[str, str]
) -> None:
    for purpose in decisions:
        current = catalogue.get(purpose).text(locale).sha256
        if shown.get(purpose) != current:
            raise TextChanged(
                "The wording of a purpose changed since this page was shown; please read "
                "it again and confirm your choices."
            )


def _new_state(previous: str | None, decision: str) -> str:
    if decision == "refused" and previous == "accepted":
        return "withdrawn"
    return decision


def _unchanged(current: dict[str, Any], decision: str, link_id: str, sha: str) -> bool:
    same_side = (current.get("state") == "accepted") == (decision == "accepted")
    return (
        bool(current)
        and same_side
        and current.get("link_id") == link_id
        and current.get("text_sha256") == sha
    )


def decide(
    ledger: Ledger,
    catalogue: Catalogue,
    link: links.Link,
    record: dict[str, Any] | None,
    choices: dict[str, str],
    locale: str,
    shown: dict[str, str],
    ctx: RequestContext,
    subscribers: tuple[str, ...] = (),
    reason: str | None = None,
) -> Decided:
    """Record one decision per chosen purpose, atomically; return every purpose's state.

    ``record``: the link's record when the caller opened the link already (or None).
    The decision reads and checks the record again in its own consistent read either
    way, so it is never decided on a record older than the chain head it is written on.
    A purpose on another basis than consent is answered keep / object
    (``consent/basis.py``); ``reason`` goes with each withdrawal the decision makes.
    """
    decisions = basis.parse_choices(catalogue, link.purposes, choices)
    if not decisions:
        raise NoChoice("Choose Accept or Refuse for at least one purpose.")
    if locale not in catalogue.locales:
        raise BadInput(f"Unsupported language {locale!r}.")
    _check_texts(catalogue, decisions, locale, shown)

    def keep_texts() -> None:
        for purpose in decisions:
            text = catalogue.get(purpose).text(locale)
            ledger.put_text(
                text.sha256,
                {
                    "purpose": purpose,
                    "locale": locale,
                    "title": text.title,
                    "text": text.text,
                    "purpose_version": catalogue.get(purpose).version,
                },
            )
        basis.keep_opt_outs(ledger, catalogue, list(decisions), locale)

    def change(purpose: str, current: dict[str, Any]) -> dict[str, Any] | None:
        decision, sha = decisions[purpose], catalogue.get(purpose).text(locale).sha256
        if not basis.on_consent(catalogue.get(purpose)):
            found = basis.objection_change(
                catalogue.get(purpose), current, decision, locale, None, sha
            )
            return basis.with_reason(found, reason)
        if _unchanged(current, decision, link.link_id, sha):
            return None
        new = {"state": _new_state(current.get("state"), decision), "text_sha256": sha}
        return basis.with_reason(new, reason)

    return _record(
        ledger, catalogue, link, list(decisions), locale, ctx, change, subscribers, keep_texts
    )


def withdraw(
    ledger: Ledger,
    catalogue: Catalogue,
    link: links.Link,
    record: dict[str, Any] | None,
    locale: str,
    ctx: RequestContext,
    method: str,
    subscribers: tuple[str, ...] = (),
    reason: str | None = None,
) -> Decided:
    """Withdraw every purpose of a withdraw link at once: no choice, no second step.

    ``record`` as for :func:`decide` (re-read and checked in the decision's own read).

    Accepted becomes withdrawn; a purpose never accepted is recorded as refused (the
    person said no to being asked); already refused or withdrawn stays as it is.
    ``method`` says how (``one_click`` from the mail client, ``page`` from our button).
    """
    purposes = [p for p in link.purposes if p in catalogue.purposes]

    def change(purpose: str, current: dict[str, Any]) -> dict[str, Any] | None:
        return basis.with_reason(_withdrawal(catalogue, purpose, current, locale, method), reason)

    def keep() -> None:
        basis.keep_opt_outs(ledger, catalogue, purposes, locale)

    return _record(ledger, catalogue, link, purposes, locale, ctx, change, subscribers, keep)


def _withdrawal(
    catalogue: Catalogue, purpose: str, current: dict[str, Any], locale: str | None, method: str
) -> dict[str, Any] | None:
    """What withdrawing everything does to one purpose: a consent one as below, one on
    another basis is an objection (``withdrawn``, whatever it was)."""
    if not basis.on_consent(catalogue.get(purpose)):
        return basis.objection_change(catalogue.get(purpose), current, "withdrawn", locale, method)
    if current.get("state") in ("refused", "withdrawn"):
        return None
    return {"state": _new_state(current.get("state"), "refused"), "method": method}


@dataclass(frozen=True)
class Origin:
    """What caused a change: a link (its id and kind) or a notice with no link (a
    complaint); ``note`` is an event recorded before the changes (e.g. ``complained``)."""

    channel: str | None
    link_id: str | None = None
    link_kind: str | None = None
    note: dict[str, Any] | None = None


def _plan_changes(
    snap: Snapshot,
    catalogue: Catalogue,
    origin: Origin,
    purposes: list[str],
    locale: str | None,
    ctx: RequestContext,
    change: Callable[[str, dict[str, Any]], dict[str, Any] | None],
    subscribers: tuple[str, ...],
) -> Plan:
    """One event and one new state per purpose ``change`` says changed."""
    plan, at, seq = Plan(), now_iso(), snap.seq
    if origin.link_id:  # the link must still be on record when the decision is written
        plan.checks.append(keys.link(origin.link_id))
    if origin.note:
        seq += 1
        plan.events.append(
            Draft(
                {"event_id": new_event_id(), "at": at, "channel": origin.channel, **origin.note},
                ctx.personal(),
            )
        )
    for purpose in purposes:
        current = snap.states.get(purpose, {})
        changed = change(purpose, current)
        if changed is None:
            continue
        seq += 1
        event_id, state = new_event_id(), changed["state"]
        common = {
            "purpose": purpose,
            "purpose_version": catalogue.get(purpose).version,
            "text_sha256": changed.get("text_sha256"),
            "locale": locale,
            "link_id": origin.link_id,
            "channel": origin.channel,
            "legal_basis": catalogue.get(purpose).legal_basis,
        }
        event = {
            "event_id": event_id,
            "kind": state,
            "at": at,
            **common,
            "previous_state": current.get("state"),
            "link_kind": origin.link_kind,
            "method": changed.get("method"),
            **changed.get("extra", {}),
        }
        item = {
            **keys.item(keys.purpose(snap.subject, purpose)),
            **common,
            "subject": snap.subject,
            "state": state,
            "decided_at": at,
            "event_id": event_id,
            "event_seq": seq,
            "sync_status": "pending",
            "sync_attempts": 0,
            "sync_shard": keys.sync_shard(snap.subject),
            "sync_due": at,
        }
        validity.stamp(plan, snap.subject, catalogue.get(purpose), current, event, item)
        plan.events.append(Draft(event, ctx.personal()))
        plan.puts.append(item)
    if plan.events:  # a person who decided keeps their profile: no more expiry
        plan.profile, plan.profile_remove = {"updated_at": at}, ("expires_at",)
        if origin.link_id:  # a decision through our link: an active contact
            validity.note_contact(plan, snap, catalogue, at)
        if subscribers:
            plan.derived = lambda sealed: [
                item for event in sealed for item in delivery_items(event, subscribers)
            ]
    return plan


def plan_withdraw_all(
    snap: Snapshot,
    catalogue: Catalogue,
    origin: Origin,
    method: str,
    asked: set[str],
    subscribers: tuple[str, ...] = (),
    ctx: RequestContext = RequestContext(),
) -> Plan:
    """Withdraw every purpose of a person with no link (a mail complaint): same rule as
    a withdraw link. Accepted becomes withdrawn, ``asked``-but-undecided becomes
    refused, refused and withdrawn stay; ``origin.note`` is recorded first in any case."""

    locale = (snap.profile or {}).get("locale")

    def change(purpose: str, current: dict[str, Any]) -> dict[str, Any] | None:
        found = _withdrawal(catalogue, purpose, current, locale, method)
        if found and "extra" in found:  # a complaint objects; it offered no opt-out wording
            extra = {k: v for k, v in found["extra"].items() if not k.startswith("opt_out")}
            found = {**found, "extra": extra}
        return found

    purposes = sorted(p for p in {*snap.states, *asked} if p in catalogue.purposes)
    return _plan_changes(
        snap,
        catalogue,
        origin,
        purposes,
        (snap.profile or {}).get("locale"),
        ctx,
        change,
        subscribers,
    )


def asked_purposes(ledger: Ledger, subject: str) -> set[str]:
    """Every purpose a person was ever asked about (decided or not), from their chain."""
    asked: set[str] = set()
    for event in ledger.events(subject):
        if event.get("kind") == "link_issued" and event.get("link_kind") == "confirm":
            asked.update(event.get("purposes") or ())  # not a preferences page's list
        elif event.get("purpose"):
            asked.add(event["purpose"])
    return asked


@dataclass(frozen=True)
class Decided:
    """What a decision through a link left: each purpose's state, and the link's record
    as the decision found it (its channel says where the person came from)."""

    states: list[PurposeState]
    record: dict[str, Any]


def _record(
    ledger: Ledger,
    catalogue: Catalogue,
    link: links.Link,
    purposes: list[str],
    locale: str,
    ctx: RequestContext,
    change: Callable[[str, dict[str, Any]], dict[str, Any] | None],
    subscribers: tuple[str, ...] = (),
    before_write: Callable[[], None] | None = None,
) -> Decided:
    """Append one event and one new state per purpose ``change`` says changed, atomically.

    Two round trips: one consistent read of the chain head, the profile, the link's
    purposes and the link's record, and the transaction. The record is checked on every
    read (a rebuild after a lost race sees a link superseded meanwhile), and the
    transaction still requires it on record. With ``subscribers``, each event's outbound
    webhook deliveries are written in the same transaction. ``before_write`` runs once
    the link is known good, before the first write (e.g. keep the wordings the events
    cite): a refused link writes nothing at all.
    """
    seen: dict[str, dict[str, Any]] = {}

    def build(snap: Snapshot) -> Plan:
        record = check_record(link, snap.items.get(keys.link(link.link_id)))
        seen["record"] = record
        if snap.profile is None:
            raise LinkRevoked("This link is no longer valid.", link_id=link.link_id)
        if before_write is not None and "prepared" not in seen:
            before_write()
            seen["prepared"] = record
        origin = Origin(record.get("channel"), link.link_id, link.kind)
        return _plan_changes(snap, catalogue, origin, purposes, locale, ctx, change, subscribers)

    reads = Reads(tuple(link.purposes), (keys.link(link.link_id),))
    try:
        snap, sealed = ledger.commit(link.subject, build, reads)
    except RequiredItemMissing as exc:
        raise LinkRevoked("This link is no longer valid.", link_id=link.link_id) from exc
    written = {event["purpose"]: event for event in sealed}
    result = []
    for purpose in link.purposes:
        if purpose in written:
            result.append(
                PurposeState(
                    purpose,
                    written[purpose]["kind"],
                    written[purpose]["at"],
                    True,
                    written[purpose].get("link_id", link.link_id),
                )
            )
        else:
            result.append(_page_state(purpose, snap.states.get(purpose, {})))
    return Decided(result, seen["record"])
