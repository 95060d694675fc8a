"""Signups (double opt-in requests) and "send me a new link".

A signup asks; it never decides. It records a ``requested`` event per purpose, a
confirmation link and a withdraw link, and queues the confirmation mail; consent
only exists once the person accepts on the confirmation page. So a stranger who
submits someone else's address can at most cause one throttled mail, and can never
raise, lower or un-refuse anything.

Every outcome (new, pending, already confirmed, throttled, bot) gets the same public
answer: nobody learns from the form whether an address is known, and a bot learns
nothing about why it was dropped. The reason is logged for operators.

This is the one way to issue a request (``draft_request``, ``plan_request``): signup,
renewal, campaigns and Act! hooks all go through it. What a form post holds and the
checks it must pass are in ``consent.submissions``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.consent import basis, links
from chalicelib.consent.catalogue import Catalogue, Form
from chalicelib.consent.rules import (
    LinkDraft,
    RequestContext,
    draft_link,
    pending_expiry,
    supersede,
)
from chalicelib.consent.subjects import mail_address, normalise_email, subject_key
from chalicelib.consent.submissions import (
    Submission,
    bot_reason,
    check_purposes,
    clean_page_url,
)
from chalicelib.consent.throttle import Throttle, rate_key
from chalicelib.core.clock import now_iso
from chalicelib.core.errors import (
    Contention,
    LinkPurposeRetired,
    LinkRevoked,
    OutcomeUnknown,
    StoreUnavailable,
)
from chalicelib.core.logs import log
from chalicelib.core.settings import Settings
from chalicelib.mail.outbox import MailOrder, new_mail_id, outbox_item
from chalicelib.proof.chain import new_event_id
from chalicelib.store import keys
from chalicelib.store.ledger import Draft, Ledger, Plan, Snapshot


@dataclass(frozen=True)
class Outcome:
    """What happened, for logs and tests; the visitor always sees the same answer."""

    status: str  # requested | already | dropped
    reason: str = ""
    subject: str | None = None
    mail_id: str | None = None


# -- recording a request ---------------------------------------------------------------


@dataclass
class Request:
    """What one request writes: the confirm link (if anything is left to ask), the
    withdraw link, the outbox entry, and any extra events (``requested``)."""

    confirm: LinkDraft | None
    withdraw: LinkDraft
    order: MailOrder | None
    events: list[Draft]

    def asking(self) -> LinkDraft:
        """The confirmation link of a request drafted with ``ask``."""
        if self.confirm is None:
            raise ValueError("This request asks nothing: it has no confirmation link.")
        return self.confirm


def draft_request(
    settings: Settings,
    subject: str,
    purposes: list[str],
    ask: bool,
    channel: str,
    locale: str,
    ctx: RequestContext,
    at: str,
    **extra: Any,
) -> Request:
    """Draft the links and the mail of one request (nothing written yet).

    ``ask``: a confirmation link (and mail) for ``purposes``; otherwise only the
    withdraw link of an "already subscribed" mail. ``extra`` goes on the confirm
    link's ``link_issued`` event (e.g. the campaign id).
    """
    confirm = (
        draft_link(settings, subject, "confirm", purposes, channel, at, ctx, **extra)
        if ask
        else None
    )
    withdraw = draft_link(settings, subject, "withdraw", purposes, channel, at, ctx)
    order = (
        MailOrder(
            new_mail_id(),
            subject,
            "confirm" if ask else "already",
            locale,
            tuple(purposes),
            withdraw.issued.link_id,
            confirm.issued.link_id if confirm else None,
            channel,
        )
        if settings.mail.transport != "none"
        else None
    )
    return Request(confirm, withdraw, order, [])


def remember_contact(plan: Plan, snap: Snapshot, contact_id: str) -> None:
    """The Act! contact a request reaches the person through, kept on their profile (what
    erasure and a change of address in Act! look for)."""
    known = list((snap.profile or {}).get("act_contact_ids") or [])
    profile = plan.profile if plan.profile is not None else {}
    profile["act_contact_ids"] = known if contact_id in known else [*known, contact_id]
    plan.profile = profile


def plan_request(
    request: Request, snap: Snapshot, address: str, name: str | None, locale: str, at: str
) -> Plan:
    """The one transaction of a request: events, link records, supersede, outbox, profile."""
    plan = Plan(events=[*request.events, request.withdraw.event], puts=[request.withdraw.record])
    profile: dict[str, Any] = {"email": address, "locale": locale, "updated_at": at}
    if name and not (snap.profile or {}).get("name") and not snap.states:
        # Only a request of someone not yet known by their decisions may name them: a
        # stranger's re-submission can neither rename a person nor name a confirmed one.
        profile["name"] = name
    if request.confirm is not None:
        replaced, live, plan.updates = supersede(snap, request.confirm, at)
        request.confirm.event.body["supersedes"] = replaced
        plan.events.insert(len(request.events), request.confirm.event)
        plan.puts.append(request.confirm.record)
        profile["live_links"] = live
        profile["expires_at"] = pending_expiry(snap, request.confirm)
    if request.order is not None:
        plan.puts.append(outbox_item(request.order, at, request.withdraw.record["expires_at"]))
    plan.profile = profile
    return plan


class Signups:
    """The signup rules, on one table, with one transport choice."""

    def __init__(self, ledger: Ledger, settings: Settings, catalogue: Catalogue) -> None:
        self.ledger = ledger
        self.settings = settings
        self.catalogue = catalogue
        self.throttle = Throttle(ledger)

    def _throttled(
        self, ctx: RequestContext, address: str, taken: list[tuple[str, str, int]]
    ) -> str:
        try:
            return self._count(ctx, address, taken)
        except Contention:  # a burst on one key: treated like any throttled request
            return "throttle_contention"

    def _count(self, ctx: RequestContext, address: str, taken: list[tuple[str, str, int]]) -> str:
        pepper, mail = self.settings.subject_pepper, self.settings.mail
        if ctx.ip and not self.throttle.hit(
            "ip", rate_key(pepper, "ip", ctx.ip), mail.per_ip, taken=taken
        ):
            return "throttled_ip"
        if not self.throttle.hit(
            "address",
            rate_key(pepper, "address", normalise_email(address)),
            mail.per_address,
            taken=taken,
        ):
            return "throttled_address"
        return ""

    def _commit(self, subject: str, build: Any, taken: list[tuple[str, str, int]]) -> None:
        """Record; if nothing could be recorded, the throttle gets its hits back (else three
        outages would silently drop the person's next real signup for a day)."""
        try:
            self.ledger.commit(subject, build)
        except OutcomeUnknown:
            raise  # it may be recorded: the hits stand
        except StoreUnavailable:
            self.throttle.refund(taken)
            raise

    def submit(
        self, form: Form, submission: Submission, locale: str, ctx: RequestContext
    ) -> Outcome:
        """Check and record a signup; BadInput for a body a person must correct."""
        purposes = check_purposes(form, submission)
        address = mail_address(submission.email)
        reason, token_page = bot_reason(self.settings, form, submission)
        if reason:
            return self._dropped(form, reason)
        taken: list[tuple[str, str, int]] = []
        reason = self._throttled(ctx, address, taken)
        if reason:
            return self._dropped(form, reason)
        subject = subject_key(self.settings.subject_pepper, normalise_email(address))
        page_url = clean_page_url(token_page or submission.page_url)
        self.store_texts(purposes, locale)
        channel = f"form:{form.id}"
        at = now_iso()
        outcome: dict[str, Any] = {}
        erased = (self.ledger.get(*keys.tombstone(subject)) or {}).get("erased_at")

        def build(snap: Snapshot) -> Plan:
            accepted = {p for p, s in snap.states.items() if s.get("state") == "accepted"}
            to_ask = [p for p in purposes if p not in accepted]
            request = draft_request(
                self.settings,
                subject,
                to_ask or list(purposes),
                bool(to_ask),
                channel,
                locale,
                ctx,
                at,
            )
            request.events = [
                self._requested(
                    p, snap, locale, submission, form, page_url, request.confirm, ctx, at
                )
                for p in purposes
            ]
            for event in request.events:  # a fresh start after an erasure, said in the proof
                event.body["after_erasure"] = erased
            if not to_ask and not self.settings.mail.already_subscribed:
                request.order = None
            outcome.update(
                status="requested" if to_ask else "already",
                mail_id=request.order.mail_id if request.order else None,
            )
            plan = plan_request(request, snap, address, submission.name, locale, at)
            # Someone typed the address again: a past permanent bounce no longer stops mail.
            plan.profile_remove = ("undeliverable",)
            return plan

        self._commit(subject, build, taken)
        log(
            "signup_recorded",
            form=form.id,
            subject=subject,
            outcome=outcome["status"],
            purposes=list(purposes),
            mail_id=outcome["mail_id"],
        )
        return Outcome(outcome["status"], subject=subject, mail_id=outcome["mail_id"])

    def _dropped(self, form: Form, reason: str) -> Outcome:
        log("signup_dropped", level="warning", form=form.id, reason=reason)
        return Outcome("dropped", reason)

    def _requested(
        self,
        purpose: str,
        snap: Snapshot,
        locale: str,
        submission: Submission,
        form: Form,
        page_url: str | None,
        confirm: LinkDraft | None,
        ctx: RequestContext,
        at: str,
    ) -> Draft:
        text = self.catalogue.get(purpose).text(locale)
        return Draft(
            {
                "event_id": new_event_id(),
                "kind": "requested",
                "at": at,
                "purpose": purpose,
                "purpose_version": self.catalogue.get(purpose).version,
                "text_sha256": text.sha256,
                "text_shown": "verified"
                if submission.texts.get(purpose) == text.sha256
                else "unverified",
                "locale": locale,
                "form_id": form.id,
                "channel": f"form:{form.id}",
                "page_url": page_url,
                "state_before": snap.states.get(purpose, {}).get("state"),
                "link_id": confirm.issued.link_id if confirm else None,
                **basis.offered(self.catalogue.get(purpose), locale),
            },
            ctx.personal(),
        )

    def store_texts(self, purposes: tuple[str, ...], locale: str) -> None:
        """Keep the wording the form showed (content-addressed) before citing it."""
        for purpose in purposes:
            text = self.catalogue.get(purpose).text(locale)
            self.ledger.put_text(
                text.sha256,
                {
                    "purpose": purpose,
                    "locale": locale,
                    "title": text.title,
                    "text": text.text,
                    "purpose_version": self.catalogue.get(purpose).version,
                },
            )
        basis.keep_opt_outs(self.ledger, self.catalogue, purposes, locale)

    # -- "send me a new link" ----------------------------------------------------------

    def renew(self, token: str, locale: str, ctx: RequestContext) -> Outcome:
        """A new confirmation link replacing an expired or superseded one, mailed again."""
        link = links.verify_signature(self.settings, "confirm", token)
        record = self.ledger.link(link.link_id)
        if record is None or record.get("subject") != link.subject:
            raise LinkRevoked("This link is no longer valid.", link_id=link.link_id)
        purposes = [p for p in link.purposes if p in self.catalogue.purposes]
        if not purposes:
            raise LinkPurposeRetired(
                "This link asks about a purpose that is no longer offered.", link_id=link.link_id
            )
        profile, _ = self.ledger.current(link.subject)
        if not profile or not profile.get("email"):
            return self._dropped_renewal(link.link_id, "address_not_on_record")
        taken: list[tuple[str, str, int]] = []
        reason = self._throttled(ctx, profile["email"], taken)
        if reason:
            return self._dropped_renewal(link.link_id, reason)
        channel, at = record.get("channel") or "renewal", now_iso()
        outcome: dict[str, Any] = {}

        def build(snap: Snapshot) -> Plan:
            request = draft_request(
                self.settings,
                link.subject,
                purposes,
                True,
                channel,
                locale,
                ctx,
                at,
                renewed_from=link.link_id,
            )
            outcome["mail_id"] = request.order.mail_id if request.order else None
            return plan_request(request, snap, profile["email"], None, locale, at)

        self._commit(link.subject, build, taken)
        log(
            "link_renewed",
            subject=link.subject,
            old_link_id=link.link_id,
            mail_id=outcome["mail_id"],
        )
        return Outcome("requested", subject=link.subject, mail_id=outcome["mail_id"])

    def _dropped_renewal(self, link_id: str, reason: str) -> Outcome:
        log("renewal_dropped", level="warning", link_id=link_id, reason=reason)
        return Outcome("dropped", reason)
