"""Running a campaign: resumably, each link minted (with the contact's progress) in one
commit, then delivered (our mail, an Act! field, or a CSV) and recorded in another.

A run works in pages (:mod:`.pages`: a page's reads and writes batched, its PATCHes
concurrent); ``reach`` is the one-contact path, for a contact on its own (a changed
address) and for whatever a page cannot settle. Both follow the rules here
(``triage``, ``request_plan``, ``deliver``, ``finish_plan``).

Size: the runner's steps (lease, mint, deliver, finish) share one progress item and
one set of invariants; they read best together.
"""

from __future__ import annotations

import csv
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO

from chalicelib.act import contacts as actcontacts
from chalicelib.act.client import ActClient, ActError
from chalicelib.campaigns import pages, proof
from chalicelib.campaigns.define import DONE, FAILED, SKIPPED, Campaign, Contact, contact_items
from chalicelib.consent import links
from chalicelib.consent.catalogue import Catalogue
from chalicelib.consent.requests import draft_request, plan_request, remember_contact
from chalicelib.consent.rules import RequestContext
from chalicelib.consent.subjects import mail_address, normalise_email, subject_key
from chalicelib.core.clock import now_iso
from chalicelib.core.errors import (
    ConfigError,
    InvalidEmail,
    OptinProofError,
    RequiredItemMissing,
)
from chalicelib.core.logs import log
from chalicelib.core.settings import Settings
from chalicelib.mail.outbox import Postman
from chalicelib.proof.chain import new_event_id
from chalicelib.store import keys
from chalicelib.store.ledger import Draft, Ledger, Plan, Snapshot


@dataclass
class Progress:
    """Counters of one run, safe to update from the worker threads."""

    total: int = 0
    processed: int = 0
    delivered: int = 0
    already: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    #: The run reached its deadline before every contact was handled.
    stopped: bool = False
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, outcome: str, reason: str = "") -> None:
        with self.lock:
            self.processed += 1
            if outcome == DONE:
                self.delivered += 1
            elif outcome in ("already", "busy"):
                self.already += 1
            elif outcome == SKIPPED:
                self.skipped[reason] = self.skipped.get(reason, 0) + 1
            else:
                self.failed += 1
                if len(self.errors) < 20:
                    self.errors.append(reason)

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "processed": self.processed,
            "delivered": self.delivered,
            "already": self.already,
            "skipped": dict(self.skipped),
            "failed": self.failed,
            "errors": self.errors[:10],
            "stopped": self.stopped,
        }

    def line(self, verb: str) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.processed / elapsed
        left = (self.total - self.processed) / rate if rate > 0 else 0
        skipped = sum(self.skipped.values())
        return (
            f"{self.processed}/{self.total} contacts | {verb} {self.delivered} | "
            f"done before {self.already} | skipped {skipped} | failed {self.failed} | "
            f"{rate:.1f}/s | {int(left) // 60}:{int(left) % 60:02d} left"
        )


contact_sk = keys.campaign_contact_sk


@dataclass(frozen=True)
class Step:
    """What one contact needs (:meth:`Runner.triage`)."""

    action: str  # already | skipped | deliver | mint
    reason: str = ""
    address: str = ""
    subject: str = ""


class Runner:
    """Delivers one campaign's links, a page of contacts at a time, resumably."""

    def __init__(
        self,
        ledger: Ledger,
        settings: Settings,
        catalogue: Catalogue,
        client: ActClient | None,
        campaign: Campaign,
        postman: Postman | None = None,
        link_key: str | None = None,
        round_no: int = 1,
    ) -> None:
        self.ledger, self.settings, self.catalogue = ledger, settings, catalogue
        self.client, self.campaign, self.postman = client, campaign, postman
        self.link_key = link_key
        #: 1 for the campaign itself, 2+ for reminders (a new link to who did not answer).
        self.round = round_no
        self.pk = keys.campaign_pk(campaign.id)
        self.run_id = uuid.uuid4().hex
        self._field_registered = False

    def run(
        self,
        contacts: list[Contact],
        concurrency: int = 8,
        on_progress: Callable[[Progress], None] | None = None,
        deadline: float | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Progress:
        """Process every contact, a page at a time (:mod:`.pages`), with ``concurrency``
        deliveries (Act! PATCHes, mails) in flight; Act! 429s slow the client down.

        Contacts this round already settled are counted from one query, not re-read
        one by one. With a ``deadline`` (``time.monotonic()`` value) no page is
        started after it: the run stops cleanly (``progress.stopped``) and the next
        one resumes, which is how a Lambda with a time limit works through a big
        audience.
        """
        settled = self.settled()
        todo = [c for c in contacts if c.id not in settled]
        progress = Progress(total=len(contacts))
        progress.processed = progress.already = len(contacts) - len(todo)
        stop = threading.Event()

        def count(outcome: str, reason: str) -> None:
            progress.count(outcome, reason)
            if on_progress:
                on_progress(progress)

        def work(page: list[Contact]) -> None:
            if (deadline is not None and time.monotonic() > deadline) or (
                should_stop is not None and should_stop()
            ):
                stop.set()
            if not stop.is_set():
                pages.run_page(self, page, deliveries, count)

        if todo and self.campaign.delivery == "act-field":
            self._register_link_field()
        size = pages.page_size(len(todo), concurrency)
        try:
            with (
                ThreadPoolExecutor(max_workers=max(1, concurrency)) as deliveries,
                ThreadPoolExecutor(max_workers=pages.in_flight(concurrency)) as pool,
            ):
                list(pool.map(work, [todo[i : i + size] for i in range(0, len(todo), size)]))
        except KeyboardInterrupt:
            stop.set()
            raise
        progress.stopped = stop.is_set()
        log(
            "campaign_run",
            campaign=self.campaign.id,
            total=progress.total,
            delivered=progress.delivered,
            already=progress.already,
            skipped=progress.skipped,
            failed=progress.failed,
            stopped=progress.stopped,
        )
        return progress

    def settled(self) -> set[str]:
        """Contact ids this round needs no more: delivered at this round, or skipped."""
        return {
            item["contact_id"]
            for item in contact_items(self.ledger, self.campaign.id)
            if item.get("status") == SKIPPED
            or (item.get("status") == DONE and int(item.get("round", 1)) >= self.round)
        }

    def reach(self, contact: Contact, readdressed: bool = False) -> tuple[str, str]:
        """One contact: skip, or mint and deliver its link. Returns (outcome, reason).

        Under a per-contact lease, so two runs (or one contact listed twice) never
        handle the same contact at once. ``readdressed``: the contact's address changed
        after its link was written (and that link withdrawn); the new address gets its
        own link, whatever this round did before.
        """
        lock = keys.campaign_contact_lock(self.campaign.id, contact.id)[1]
        if not self.ledger.lease(self.pk, lock, self.run_id, 300):
            return "busy", ""
        try:
            return self._reach(contact, readdressed)
        finally:
            self.ledger.release(self.pk, lock, self.run_id)

    def _reach(self, contact: Contact, readdressed: bool = False) -> tuple[str, str]:
        existing = self.ledger.get(self.pk, contact_sk(contact.id))
        step = self.triage(
            contact,
            existing,
            lambda subject: bool(self.ledger.get(*keys.tombstone(subject))),
            lambda subject: bool((self.ledger.current(subject)[0] or {}).get("complained_at")),
            readdressed,
        )
        if step.action == "already":
            return "already", ""
        if step.action == SKIPPED:
            return self._skip(contact, step.reason)
        if step.action == "deliver":
            return self._deliver(contact, existing or {})
        if not self.ledger.put(self.owner_item(contact, step.subject), only_new=True):
            first = self.ledger.get(*keys.campaign_subject(self.campaign.id, step.subject)) or {}
            if first.get("contact_id") != contact.id:
                return self._skip(contact, "duplicate_address", step.subject)
        return self._mint(contact, step.address, step.subject)

    def triage(
        self,
        contact: Contact,
        existing: dict[str, Any] | None,
        tombstoned: Callable[[str], bool],
        complained: Callable[[str], bool],
        readdressed: bool = False,
    ) -> Step:
        """What a contact needs, by the rules both paths share (the one-contact path
        reads as it goes, a page reads everything first): ``already`` (settled this
        round), a skip, ``deliver`` (its minted link, the same person's), or ``mint``
        (then the address's owner decides: one address, one link)."""
        done_round = int((existing or {}).get("round", 1))
        if (
            existing
            and not readdressed
            and (
                existing.get("status") == SKIPPED
                or (existing.get("status") == DONE and done_round >= self.round)
            )
        ):
            return Step("already")
        if not contact.email:
            return Step(SKIPPED, "no_address")
        try:
            address = mail_address(contact.email)
        except InvalidEmail:
            return Step(SKIPPED, "invalid_address")
        subject = subject_key(self.settings.subject_pepper, normalise_email(address))
        if (
            existing
            and existing.get("status") == "minted"
            and done_round == self.round
            and existing.get("subject") == subject
        ):
            return Step(
                "deliver", "", address, subject
            )  # the same person's link, not yet delivered
        if tombstoned(subject):
            return Step(SKIPPED, "suppressed", address, subject)
        if complained(subject):
            return Step(SKIPPED, "complained", address, subject)  # marked our mail as spam
        return Step("mint", "", address, subject)

    def subject_of(self, contact: Contact) -> str:
        """The person a contact's address names ("" when it has none that is valid)."""
        try:
            address = mail_address(contact.email or "")
        except InvalidEmail:
            return ""
        return subject_key(self.settings.subject_pepper, normalise_email(address))

    def owner_item(self, contact: Contact, subject: str) -> dict[str, Any]:
        """Which contact this campaign reaches the person through (the first one)."""
        return {
            **keys.item(keys.campaign_subject(self.campaign.id, subject)),
            "contact_id": contact.id,
        }

    def _skip(self, contact: Contact, reason: str, subject: str | None = None) -> tuple[str, str]:
        self.ledger.put(self.skip_item(contact, reason, subject))
        return SKIPPED, reason

    def skip_item(
        self, contact: Contact, reason: str, subject: str | None = None
    ) -> dict[str, Any]:
        return {
            "pk": self.pk,
            "sk": contact_sk(contact.id),
            "contact_id": contact.id,
            "status": SKIPPED,
            "reason": reason,
            "subject": subject,
            "at": now_iso(),
        }

    def attempt(
        self, contact: Contact, step: Callable[[Contact], tuple[str, str]]
    ) -> tuple[str, str]:
        """One contact's step; a failure is recorded on its progress (tried again later)."""
        try:
            return step(contact)
        except (OptinProofError, OSError) as exc:
            self._record_failure(contact, str(exc))
            return FAILED, f"{contact.id}: {exc}"[:300]

    def _mint(self, contact: Contact, address: str, subject: str) -> tuple[str, str]:
        """Link (and, for mail, the outbox item) and the contact's progress, in one write."""
        at, built = now_iso(), {}

        def build(snap: Snapshot) -> Plan:
            plan = self.request_plan(contact, address, snap, at)
            built["item"] = plan.puts[-1]
            return plan

        try:
            self.ledger.commit(subject, build)
        except RequiredItemMissing:
            return self._skip(contact, "suppressed")
        return self.minted(contact, built["item"])

    def request_plan(self, contact: Contact, address: str, snap: Snapshot, at: str) -> Plan:
        """What minting a contact's link writes, built on the person's snapshot: the
        request (links, events, profile) and the contact's progress (the plan's last
        put), or only a skip ("already_confirmed") when every purpose asked is accepted
        already. Pure: a commit may build it several times."""
        campaign, subject = self.campaign, snap.subject
        accepted = {p for p, s in snap.states.items() if s.get("state") == "accepted"}
        if campaign.proof and not proof.targeted(campaign.proof, campaign.purposes, snap.states):
            return Plan(
                puts=[self._progress(contact, SKIPPED, subject, at, reason="proof_not_targeted")]
            )
        if not campaign.proof and set(campaign.purposes) <= accepted:
            return Plan(
                puts=[self._progress(contact, SKIPPED, subject, at, reason="already_confirmed")]
            )
        locale = campaign.locale_for(contact, self.catalogue.locales)  # the language rule
        request = draft_request(
            self.settings,
            subject,
            list(campaign.purposes),
            True,
            campaign.channel,
            locale,
            RequestContext(),
            at,
            campaign_id=campaign.id,
            act_contact_id=contact.id,
            round=self.round,
        )
        if campaign.delivery != "mail":
            request.order = None
        plan = plan_request(request, snap, address, contact.first_name, locale, at)
        remember_contact(plan, snap, contact.id)
        status = DONE if campaign.delivery == "mail" else "minted"
        plan.puts.append(
            self._progress(
                contact,
                status,
                subject,
                at,
                link_id=request.asking().issued.link_id,
                mail_id=request.order.mail_id if request.order else None,
                locale=locale,
            )
        )
        plan.absent.append(keys.tombstone(subject))  # erased meanwhile: never
        return plan

    def minted(self, contact: Contact, item: dict[str, Any]) -> tuple[str, str]:
        """After a mint's commit (``item``: the progress it wrote): mail the link, or
        deliver it (act-field, csv); a skip is said as such."""
        if item.get("status") == SKIPPED:
            return SKIPPED, str(item.get("reason") or "")
        if self.campaign.delivery == "mail":
            if self.postman is not None and item.get("mail_id"):
                self.postman.deliver_safely(item["mail_id"])  # a failure stays in the outbox
            return DONE, ""
        return self._deliver(contact, item)

    def _progress(
        self, contact: Contact, status: str, subject: str, at: str, **extra: Any
    ) -> dict[str, Any]:
        return {
            "pk": self.pk,
            "sk": contact_sk(contact.id),
            "contact_id": contact.id,
            "status": status,
            "subject": subject,
            "at": at,
            "round": self.round,
            **{k: v for k, v in extra.items() if v is not None},
        }

    def url(self, item: dict[str, Any]) -> str:
        """The contact's link, re-signed from its recorded link id (tokens are never stored),
        opening the page in the contact's language (``?lang=``)."""
        token, _ = links.mint(
            self.settings, "confirm", item["subject"], list(self.campaign.purposes), item["link_id"]
        )
        locale = item.get("locale") or self.campaign.locale
        return f"{self.settings.public_base_url}/c/{token}?lang={locale}"

    def _deliver(self, contact: Contact, item: dict[str, Any]) -> tuple[str, str]:
        """Second step of act-field and csv deliveries (a minted link not yet delivered)."""
        item, kind, extra, also = self.deliver(contact, item)
        return self._finish(contact, item, kind, extra, also)

    def deliver(
        self, contact: Contact, item: dict[str, Any]
    ) -> tuple[dict[str, Any], str, dict[str, Any], list[dict[str, Any]]]:
        """Deliver a minted link (the Act! PATCH; nothing for a CSV) and say what its
        finish records: the progress item, the event kind, its fields, other items."""
        if self.campaign.delivery == "csv":
            return item, "link_exported", {}, []
        if self.client is None or not self.link_key:
            raise ConfigError("Delivery act-field needs Act! (ACT_API_URL) and the link field.")
        self._register_link_field()
        url = self.url(item)
        written = self.client.patch_contact(contact.id, {"customFields": {self.link_key: url}})
        if (written.get("customFields") or {}).get(self.link_key) != url:
            written = self.client.contact(contact.id)  # some PATCHes answer 200 and change nothing
            if (written.get("customFields") or {}).get(self.link_key) != url:
                raise ActError(f"Act! did not store the link on contact {contact.id}.")
        # Which person the contact holds a link for, and that this edit of it was ours:
        # an address change later withdraws the link; a poll does not re-read our write.
        seen = actcontacts.seen_item(written, item["subject"], self.client.tz, ours=True)
        return (
            {**item, "link_key": self.link_key},
            "link_written",
            {"field": self.campaign.link_field, "act_contact_id": contact.id},
            [seen],
        )

    def _register_link_field(self) -> None:
        """List the field among the campaign link fields (what erasure and a change of
        address clear), once per runner."""
        if self.link_key and not self._field_registered:
            self.ledger.put(
                {
                    **keys.item(keys.link_field(self.link_key)),
                    "key": self.link_key,
                    "field": self.campaign.link_field,
                    "campaign_id": self.campaign.id,
                    "at": now_iso(),
                }
            )
            self._field_registered = True

    def _finish(
        self,
        contact: Contact,
        item: dict[str, Any],
        kind: str,
        extra: dict[str, Any],
        also: Sequence[dict[str, Any]] = (),
    ) -> tuple[str, str]:
        at = now_iso()
        self.ledger.commit(
            item["subject"], lambda snap: self.finish_plan(item, kind, extra, also, at)
        )
        return DONE, ""

    def finish_plan(
        self,
        item: dict[str, Any],
        kind: str,
        extra: dict[str, Any],
        also: Sequence[dict[str, Any]],
        at: str,
    ) -> Plan:
        """The delivery's event (``link_written`` / ``link_exported``) and the progress
        marked done (and ``also``: the Act! contact as our write left it)."""
        return Plan(
            events=[
                Draft(
                    {
                        "event_id": new_event_id(),
                        "kind": kind,
                        "at": at,
                        "link_id": item["link_id"],
                        "campaign_id": self.campaign.id,
                        "round": self.round,
                        "channel": self.campaign.channel,
                        **extra,
                    }
                )
            ],
            puts=[{**item, "status": DONE, "delivered_at": at, "error": None}, *also],
        )

    def _record_failure(self, contact: Contact, error: str) -> None:
        item = self.ledger.get(self.pk, contact_sk(contact.id)) or {
            "pk": self.pk,
            "sk": contact_sk(contact.id),
            "contact_id": contact.id,
        }
        if item.get("status") == DONE and int(item.get("round", 1)) >= self.round:
            log(
                "campaign_error_after_delivery",
                level="warning",
                campaign=self.campaign.id,
                contact_id=contact.id,
                error=error[:300],
            )  # delivered: never again
            return
        if item.get("status") == DONE:  # a failed reminder: the earlier round stands
            log(
                "campaign_reminder_failed",
                level="warning",
                campaign=self.campaign.id,
                contact_id=contact.id,
                error=error[:300],
            )
            return
        if item.get("status") == "minted":  # keep the link; the next run delivers it
            self.ledger.put(
                {**item, "error": error[:300], "attempts": int(item.get("attempts", 0)) + 1}
            )
            return
        self.ledger.put(
            {
                **item,
                "status": FAILED,
                "error": error[:300],
                "attempts": int(item.get("attempts", 0)) + 1,
                "at": now_iso(),
            }
        )


def _cell(value: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def export_csv(
    runner: Runner,
    out: TextIO,
    statuses: tuple[str, ...] = (DONE,),
    only: Callable[[dict[str, Any]], bool] | None = None,
) -> int:
    """contact id, address, link of every delivered contact (links re-signed)."""
    writer = csv.writer(out)
    writer.writerow(["act_contact_id", "email", "first_name", "link"])
    count = 0
    for item in contact_items(runner.ledger, runner.campaign.id):
        if item.get("status") not in statuses or not item.get("link_id"):
            continue
        if only is not None and not only(item):
            continue
        profile, _ = runner.ledger.current(item["subject"])
        if not profile or not profile.get("email"):
            continue  # erased since
        writer.writerow(
            [
                _cell(item["contact_id"]),
                _cell(profile["email"]),
                _cell(profile.get("name") or ""),
                runner.url(item),
            ]
        )
        count += 1
    return count
