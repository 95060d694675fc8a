"""Erasure (GDPR art. 17): remove every personal datum of a subject, keep the proof.

What goes: the profile (address, name, language, Act! contact ids), every purpose
state, every link of the person (so no old link opens anything), and from every event
the IP address, user agent and Accept-Language with their salt. What stays: the
events themselves, which hold no address or name and commit to the erased fields by
hash only, so the chain still verifies (see ``chalicelib/proof.py``); and a
``TOMBSTONE`` under the keyed hash of the address recording that and when an erasure
happened, so a campaign or an Act! re-import cannot silently re-add the person, and a
new signup of the address starts a fresh double opt-in that notes the tombstone.

Keeping pseudonymous proof events is the controller's legal-claims exception (art.
17(3)(e)): without an address they point at nobody unless the address is typed again.

Erasing twice is harmless: a second run finishes what a first one could not (events
not yet stripped, an Act! contact not yet cleared) and changes nothing else.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from chalicelib.act import fields
from chalicelib.act.client import ActClient, ActError, ActNotFound
from chalicelib.campaigns import define
from chalicelib.consent.catalogue import Catalogue
from chalicelib.core.clock import iso, now_iso, utcnow
from chalicelib.core.errors import ConfigError, Contention, OptinProofError
from chalicelib.core.logs import log
from chalicelib.proof.chain import PERSONAL_FIELDS, new_event_id
from chalicelib.store import keys
from chalicelib.store.keys import event_sk, purpose_sk, subject_pk
from chalicelib.store.ledger import Draft, Ledger, Plan, Snapshot

ACT_MODES = ("clear", "delete", "keep")
_STRIPPED = (*PERSONAL_FIELDS, "personal_salt")
#: Items one transaction may touch besides the event, chain head and tombstone.
_BATCH = 80
#: Tombstones whose Act! step must be tried again, in the pending-sync index.
ACT_RETRY_SHARD = keys.ERASE_ACT_SHARD
_LOCK_SECONDS = 120


@dataclass
class Erasure:
    """What an erasure did (for the person's page, the CLI and the logs)."""

    subject: str
    erased_at: str
    already: bool = False
    events_stripped: int = 0
    links_revoked: int = 0
    act: dict[str, str] = field(default_factory=dict)


def erase(
    ledger: Ledger,
    catalogue: Catalogue,
    subject: str,
    requested_by: str,
    act_mode: str,
    client: ActClient | None = None,
    aem_opt_out: bool = True,
    push_pending: Callable[[str, str], Any] | None = None,
    lock_wait: float = 15.0,
) -> Erasure:
    """Erase one subject; idempotent. ``act_mode``: clear the Act! consent fields,
    delete the contact, or keep it as it is.

    Decisions not yet in Act! are pushed first (``push_pending``), so erasure never
    swallows a withdrawal; then the person's sync lock is held to the end, so no push
    that started earlier can write consent back into Act! after the erasure.
    """
    if act_mode not in ACT_MODES:
        raise ConfigError(f"ERASURE_ACT={act_mode!r}: choose one of {', '.join(ACT_MODES)}.")
    pk = subject_pk(subject)
    if push_pending is not None:
        for purpose, state in ledger.current(subject)[1].items():
            if state.get("sync_status") not in (None, "synced"):
                try:
                    push_pending(pk, keys.purpose_sk(purpose))
                except OptinProofError as exc:  # Act! down: the tombstone records the rest
                    log(
                        "erase_push_failed",
                        level="warning",
                        subject=subject,
                        error=type(exc).__name__,
                    )
    owner = uuid.uuid4().hex
    _take_lock(ledger, subject, owner, lock_wait)
    try:
        return _erase_locked(
            ledger, catalogue, subject, requested_by, act_mode, client, aem_opt_out
        )
    finally:
        ledger.release_lock(subject, owner)


def erase_with_act(
    ledger: Ledger,
    catalogue: Catalogue,
    settings: Any,
    subject: str,
    requested_by: str,
    act_mode: str,
    client: ActClient | None,
    pusher: Any | None,
) -> Erasure:
    """:func:`erase` wired to the configured Act!: its aemOptOut rule, and the pusher
    that sends unsent decisions first."""
    return erase(
        ledger,
        catalogue,
        subject,
        requested_by,
        act_mode,
        client,
        aem_opt_out=settings.act.aem_opt_out if settings.act else True,
        push_pending=(lambda pk, sk: pusher.push(pk, sk, force=True))
        if pusher is not None
        else None,
    )


def _take_lock(ledger: Ledger, subject: str, owner: str, wait: float = 15.0) -> None:
    deadline = time.monotonic() + wait
    while not ledger.acquire_lock(subject, owner, _LOCK_SECONDS):
        if time.monotonic() > deadline:
            raise Contention(
                "This person's data is being sent to Act! right now; nothing "
                "was erased. Please try again in a minute."
            )
        time.sleep(0.2)


def _erase_locked(
    ledger: Ledger,
    catalogue: Catalogue,
    subject: str,
    requested_by: str,
    act_mode: str,
    client: ActClient | None,
    aem_opt_out: bool,
) -> Erasure:
    pk = subject_pk(subject)
    tombstone = ledger.get(pk, keys.TOMBSTONE)
    profile, states = ledger.current(subject)
    link_ids = _link_ids(ledger, subject)
    contact_ids = sorted(
        {
            *((profile or {}).get("act_contact_ids") or []),
            *((tombstone or {}).get("act_contact_ids") or []),
        }
    )
    already = tombstone is not None and profile is None and not states
    at = (tombstone or {}).get("erased_at") or now_iso()
    if not already:
        at = now_iso()
        _commit_erasure(ledger, subject, requested_by, act_mode, contact_ids, at, link_ids)
    result = Erasure(subject, at, already)
    result.links_revoked = _revoke(ledger, link_ids)
    result.events_stripped = _strip_events(ledger, subject)
    result.act = _act(ledger, catalogue, subject, contact_ids, act_mode, client, aem_opt_out)
    log(
        "erased",
        subject=subject,
        by=requested_by,
        already=already,
        events_stripped=result.events_stripped,
        act=result.act,
    )
    return result


def _link_ids(ledger: Ledger, subject: str) -> list[str]:
    return sorted(
        {
            e["link_id"]
            for e in ledger.events(subject)
            if e.get("kind") == "link_issued" and e.get("link_id")
        }
    )


def _commit_erasure(
    ledger: Ledger,
    subject: str,
    requested_by: str,
    act_mode: str,
    contact_ids: list[str],
    at: str,
    link_ids: list[str],
) -> None:
    """One transaction: the ``erased`` event, profile and states gone, the tombstone."""
    pk = subject_pk(subject)

    def build(snap: Snapshot) -> Plan:
        tombstone = {
            "pk": pk,
            "sk": keys.TOMBSTONE,
            "subject": subject,
            "erased_at": at,
            "requested_by": requested_by,
            "act_mode": act_mode,
            "act_contact_ids": contact_ids,
            "act_status": "pending" if contact_ids and act_mode != "keep" else "none",
        }
        deletes = [(pk, purpose_sk(p)) for p in snap.states]
        if snap.profile is not None:
            deletes.append(keys.profile(subject))
        # The dashboard's erasure log: when, and which way; nobody named.
        logged = {
            **keys.item(keys.erasure_log(at)),
            "erased_at": at,
            "requested_by": requested_by.split(":", 1)[0],
            "act_mode": act_mode,
        }
        return Plan(
            events=[
                Draft(
                    {
                        "event_id": new_event_id(),
                        "kind": "erased",
                        "at": at,
                        "channel": requested_by,
                        "purposes": sorted(snap.states),
                        "links_revoked": len(link_ids),
                        "act_mode": act_mode,
                        "act_contacts": len(contact_ids),
                    }
                )
            ],
            puts=[tombstone, logged],
            deletes=deletes[:_BATCH],
        )

    ledger.commit(subject, build)


def _revoke(ledger: Ledger, link_ids: list[str]) -> int:
    """Delete the person's link records: every old link says it is no longer valid."""
    revoked = 0
    for link_id in link_ids:
        if ledger.get(*keys.link(link_id)) is not None:
            ledger.delete(*keys.link(link_id))
            revoked += 1
    return revoked


def _strip_events(ledger: Ledger, subject: str) -> int:
    """Remove IP, user agent, Accept-Language and their salt from every event."""
    stripped = 0
    for event in ledger.events(subject):
        if any(name in event for name in _STRIPPED):
            ledger.remove_attributes(subject_pk(subject), event_sk(event["seq"]), _STRIPPED)
            stripped += 1
    _strip_imported(ledger, subject)
    return stripped


def _strip_imported(ledger: Ledger, subject: str) -> None:
    """Imported rows keep their original columns (address, name, IPs) beside the event:
    they go too; the event's commitment to them stays, so the chain still verifies."""
    for item in ledger.query(subject_pk(subject), keys.IMPORTED_PREFIX):
        if "columns" in item:
            ledger.remove_attributes(item["pk"], item["sk"], ("columns", "columns_salt"))


def _act(
    ledger: Ledger,
    catalogue: Catalogue,
    subject: str,
    contact_ids: list[str],
    act_mode: str,
    client: ActClient | None,
    aem_opt_out: bool,
) -> dict[str, str]:
    """Clear or delete the person's Act! contacts; the outcome is kept on the tombstone.

    ``keep`` still switches Act! e-marketing off (``aemOptOut``) when configured: an
    erased person holds no consent, so Act! must not keep mailing them.
    """
    link_keys = list(define.link_field_keys(ledger)) if act_mode != "delete" else []
    if not contact_ids or (act_mode == "keep" and not aem_opt_out and not link_keys):
        return {}
    done = tombstone(ledger, subject) or {}
    if done.get("act_status") == "done":
        return dict(done.get("act_outcome") or {})
    if client is None:
        outcome = {cid: "pending: Act! is not configured" for cid in contact_ids}
        _note_act(ledger, subject, outcome)
        return outcome
    try:
        keys = list(fields.resolve(client, catalogue).values()) if act_mode == "clear" else []
    except (ActError, ConfigError) as exc:
        outcome = {cid: f"failed: {str(exc)[:200]}" for cid in contact_ids}
        _note_act(ledger, subject, outcome)
        return outcome
    outcome = {
        cid: _act_one(client, cid, act_mode, keys, link_keys, aem_opt_out) for cid in contact_ids
    }
    _note_act(ledger, subject, outcome)
    return outcome


def _act_one(
    client: ActClient,
    contact_id: str,
    act_mode: str,
    keys: list[str],
    link_keys: list[str],
    aem_opt_out: bool,
) -> str:
    """One contact: deleted, or its campaign link fields emptied (every mode: a link
    embeds the person's key) with, for ``clear``, the consent fields too."""
    body: dict[str, Any] = {"aemOptOut": True} if aem_opt_out else {}
    try:
        if act_mode == "delete":
            client.delete_contact(contact_id)
            return "deleted"
        blank = {k: None for k in [*(keys if act_mode == "clear" else []), *link_keys]}
        if blank:
            body["customFields"] = blank
        client.patch_contact(contact_id, body)
        if act_mode == "clear":
            return "cleared"
        return "opted out" if aem_opt_out else "link cleared"
    except ActNotFound:
        return "gone"
    except ActError as exc:
        return f"failed: {str(exc)[:200]}"


def _note_act(ledger: Ledger, subject: str, outcome: dict[str, str]) -> None:
    """Record the Act! outcome; a failed one waits in the index for the sweep's retry."""
    item = ledger.get(*keys.tombstone(subject))
    if item is None:
        return
    done = all(not v.startswith(("failed", "pending")) for v in outcome.values())
    item.update(
        act_status="done" if done else "failed", act_outcome=outcome, act_checked_at=now_iso()
    )
    if done:
        item.pop("sync_shard", None)
        item.pop("sync_due", None)
    else:
        item.update(sync_shard=ACT_RETRY_SHARD, sync_due=iso(utcnow() + timedelta(minutes=10)))
    ledger.put(item)


def retry_act(
    ledger: Ledger,
    catalogue: Catalogue,
    client: ActClient | None,
    act_mode: str,
    aem_opt_out: bool,
    limit: int = 50,
) -> int:
    """The sweep's retry of Act! steps that failed (Act! down during an erasure)."""
    retried = 0
    for pk, _sk in ledger.sync_keys([ACT_RETRY_SHARD], due_before=now_iso()):
        if retried >= limit:
            break
        item = ledger.get(pk, keys.TOMBSTONE) or {}
        subject = keys.subject_of(pk)
        _act(
            ledger,
            catalogue,
            subject,
            list(item.get("act_contact_ids") or []),
            item.get("act_mode") or act_mode,
            client,
            aem_opt_out,
        )
        retried += 1
    return retried


def tombstone(ledger: Ledger, subject: str) -> dict[str, Any] | None:
    return ledger.get(*keys.tombstone(subject))
