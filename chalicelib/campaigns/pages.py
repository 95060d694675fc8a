"""A campaign page: many contacts read, minted, delivered and finished together.

One contact on its own (``Runner.reach``) costs about ten DynamoDB requests: a lease,
its progress, the tombstone, the person, the address's owner, the link's commit, the
delivery's commit, the release. A page does the same for up to ``PAGE`` contacts in a
handful: one transaction of leases, BatchGetItem rounds for everything the decisions
read, the links committed in transactions of up to 100 items (each person's items in
one, conditioned on their chain head as a single commit is), the Act! PATCHes in
flight at the run's concurrency, the deliveries committed the same way, one
transaction giving the leases back.

The rules are the one-contact path's (``Runner.triage``, ``Runner.request_plan``,
``Runner.deliver``, ``Runner.finish_plan``). Whatever a page cannot settle safely goes
through that path, under the page's lease: an address met twice in the page, a
person whose snapshot the page cannot trust, a transaction refused because someone
moved meanwhile (nothing of it was written: the one-contact path reads again). A
contact another run holds sends the whole page down the one-contact path, where it is
"busy", as before.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from functools import partial
from typing import TYPE_CHECKING, Any

from chalicelib.campaigns.define import DONE, SKIPPED, Contact
from chalicelib.core.clock import now_iso
from chalicelib.core.errors import OptinProofError
from chalicelib.store import keys
from chalicelib.store.ledger import Plan, Reads, Snapshot

if TYPE_CHECKING:
    from chalicelib.campaigns.runner import Runner

#: Contacts per page: leases are taken in one transaction (100 items at most).
PAGE = 50
#: How long a page holds its contacts at most (a page takes seconds).
LEASE_SECONDS = 300

Count = Callable[[str, str], None]
Finish = tuple[dict[str, Any], str, dict[str, Any], list[dict[str, Any]]]


def page_size(contacts: int, concurrency: int) -> int:
    """Pages big enough to batch, small enough that a short run still gives every
    page worker some."""
    return max(1, min(PAGE, -(-contacts // in_flight(concurrency))))


def in_flight(concurrency: int) -> int:
    """Pages worked at once: while some commit (DynamoDB), others' PATCHes keep Act!
    busy, and the table gets several transactions at a time."""
    return max(1, min(8, concurrency // 2))


def run_page(runner: Runner, contacts: list[Contact], deliveries: Executor, count: Count) -> None:
    """Handle one page of contacts, counting each contact's outcome once."""
    page: dict[str, Contact] = {}
    again: list[Contact] = []  # one contact listed twice: the second is "busy", as before
    for contact in contacts:
        (again if contact.id in page else []).append(contact)
        page.setdefault(contact.id, contact)
    locks = [keys.campaign_contact_lock(runner.campaign.id, c) for c in page]
    if not runner.ledger.lease_many(locks, runner.run_id, LEASE_SECONDS):
        again = contacts  # someone else holds one of them: each on its own
    else:
        counted: set[str] = set()

        def once(contact: Contact, outcome: tuple[str, str]) -> None:
            counted.add(contact.id)
            count(*outcome)

        try:
            _work(runner, list(page.values()), deliveries, once)
        except (OptinProofError, OSError):
            for contact in page.values():  # the page's reads failed: each on its own
                if contact.id not in counted:
                    once(contact, runner.attempt(contact, runner._reach))
        finally:
            runner.ledger.release_many(locks, runner.run_id)
    for contact in again:
        count(*runner.attempt(contact, runner.reach))


def _work(
    runner: Runner,
    contacts: list[Contact],
    deliveries: Executor,
    count: Callable[[Contact, tuple[str, str]], None],
) -> None:
    ledger, campaign = runner.ledger, runner.campaign
    progress_keys = {c.id: keys.campaign_contact(campaign.id, c.id) for c in contacts}
    subjects = {c.id: runner.subject_of(c) for c in contacts}
    people = sorted({s for s in subjects.values() if s})
    extra = list(progress_keys.values())
    for subject in people:
        extra += [keys.tombstone(subject), keys.campaign_subject(campaign.id, subject)]
    snaps, found = ledger.snapshots(people, Reads(campaign.purposes), extra)

    at = now_iso()
    skips: list[tuple[Contact, dict[str, Any]]] = []
    mints: list[tuple[Contact, Snapshot, Plan]] = []
    delivering: list[tuple[Contact, dict[str, Any], Snapshot]] = []
    alone: list[Contact] = []  # taken by the one-contact path, under the page's lease
    used: set[str] = set()
    for contact in contacts:
        existing = found.get(progress_keys[contact.id])
        step = runner.triage(
            contact,
            existing,
            lambda s: keys.tombstone(s) in found,
            lambda s: bool((snaps[s].profile or {}).get("complained_at")),
        )
        if step.action == "already":
            count(contact, ("already", ""))
            continue
        if step.action == SKIPPED:
            skips.append((contact, runner.skip_item(contact, step.reason)))
            continue
        snap = snaps[step.subject]
        if step.subject in used or (step.action == "mint" and not _trusted(snap)):
            alone.append(contact)
            continue
        used.add(step.subject)
        if step.action == "deliver":
            delivering.append((contact, existing or {}, snap))
            continue
        owner = found.get(keys.campaign_subject(campaign.id, step.subject))
        if owner is not None and owner.get("contact_id") != contact.id:
            skip = runner.skip_item(contact, "duplicate_address", step.subject)
            skips.append((contact, skip))
            continue
        plan = runner.request_plan(contact, step.address, snap, at)
        if owner is None:
            plan.create.append(runner.owner_item(contact, step.subject))
        mints.append((contact, snap, plan))

    if skips:
        ledger.put_many([item for _, item in skips])
        for contact, item in skips:
            count(contact, (SKIPPED, item["reason"]))

    written = ledger.commit_many([(snap, plan) for _, snap, plan in mints])
    mailed: list[tuple[Contact, Future[tuple[str, str]]]] = []
    for (contact, snap, plan), sealed in zip(mints, written, strict=True):
        item = plan.puts[-1]
        if sealed is None:
            alone.append(contact)  # refused, nothing written: read again, one by one
        elif item.get("status") == SKIPPED or campaign.delivery == "mail":
            mailed.append((contact, deliveries.submit(runner.minted, contact, item)))
        else:
            head = Snapshot(
                snap.subject,
                snap.seq + len(sealed),
                sealed[-1]["hash"] if sealed else snap.head_hash,
                snap.states,
                snap.profile,
            )
            delivering.append((contact, item, head))

    started = [
        (contact, snap, deliveries.submit(runner.deliver, contact, item))
        for contact, item, snap in delivering
    ]
    for contact, future in mailed:
        count(contact, _outcome(runner, contact, future))
    finishing: list[tuple[Contact, Snapshot, Finish]] = []
    for contact, snap, delivered in started:
        try:
            finishing.append((contact, snap, delivered.result()))
        except (OptinProofError, OSError) as exc:
            count(contact, runner.attempt(contact, _raise(exc)))

    at = now_iso()
    plans = [(snap, runner.finish_plan(*finish, at)) for _, snap, finish in finishing]
    for (contact, _, finish), sealed in zip(finishing, ledger.commit_many(plans), strict=True):
        if sealed is None:
            count(contact, runner.attempt(contact, partial(_finish_again, runner, finish=finish)))
        else:
            count(contact, (DONE, ""))

    for contact in alone:
        count(contact, runner.attempt(contact, runner._reach))


def _trusted(snap: Snapshot) -> bool:
    """Whether a page's snapshot (the campaign's purposes only) tells all a request
    needs: whether the person holds any state (``pending_expiry``, the name rule). A
    profile keeps ``expires_at`` until a first decision removes it, so a known person
    with no state of these purposes and no expiry decided another: they go alone."""
    return not (snap.profile and not snap.states and "expires_at" not in snap.profile)


def _outcome(runner: Runner, contact: Contact, future: Future[tuple[str, str]]) -> tuple[str, str]:
    try:
        return future.result()
    except (OptinProofError, OSError) as exc:
        return runner.attempt(contact, _raise(exc))


def _raise(exc: Exception) -> Callable[[Contact], tuple[str, str]]:
    """A step that already failed, for ``Runner.attempt`` to record."""

    def step(_: Contact) -> tuple[str, str]:
        raise exc

    return step


def _finish_again(runner: Runner, contact: Contact, *, finish: Finish) -> tuple[str, str]:
    """A delivery whose batched finish was refused (or its answer lost): finished on
    its own, unless its progress says the batched write landed after all."""
    item, kind, extra, also = finish
    now = runner.ledger.get(*keys.campaign_contact(runner.campaign.id, contact.id)) or {}
    if now.get("status") == DONE and now.get("link_id") == item["link_id"]:
        return DONE, ""
    return runner._finish(contact, item, kind, extra, also)
