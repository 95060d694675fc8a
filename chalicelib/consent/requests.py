"""Signups (double opt-in requests) and "send me a new link".

A signup asks; it never decides. It records a ``requested`` event per purpose, a
confirmation link and a withdraw link, and queues the confirmation mail; consent
only exists once the person accepts on the confirmation page. So a stranger who
submits someone else's address can at most cause one throttled mail, and can never
raise, lower or un-refuse anything.

Every outcome (new, pending, already confirmed, throttled, bot) gets the same public
answer: nobody learns from the form whether an address is known, and a bot learns
nothing about why it was dropped. The reason is logged for operators.

Size: the one way to issue a request (draft, plan, commit) and its users' entry
points (signup, renewal) belong together, so there is a single path to reuse.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

from chalicelib.consent import links
from chalicelib.consent.catalogue import Catalogue, Form
from chalicelib.consent.rules import (
    LinkDraft,
    RequestContext,
    draft_link,
    pending_expiry,
    supersede,
)
from chalicelib.consent.subjects import mail_address, normalise_email, subject_key
from chalicelib.consent.throttle import Throttle, rate_key
from chalicelib.core.clock import now_iso, utcnow
from chalicelib.core.errors import (
    BadInput,
    BadName,
    Contention,
    CrossSite,
    FormExpired,
    LinkPurposeRetired,
    LinkRevoked,
    NoPurpose,
    OutcomeUnknown,
    StoreUnavailable,
)
from chalicelib.core.logs import log
from chalicelib.core.settings import Settings
from chalicelib.mail.outbox import MailOrder, new_mail_id, outbox_item
from chalicelib.proof.chain import new_event_id
from chalicelib.store import keys
from chalicelib.store.ledger import Draft, Ledger, Plan, Snapshot

#: The honeypot: hidden from people (CSS, aria-hidden, no tab stop), filled by bots.
HONEYPOT = "fax_number"
TOKEN_FIELD = "started"
MAX_NAME = 60
#: A first name: letters (any script), with inner spaces, hyphens, apostrophes or dots.
#: No digits, no "://", no line breaks: a stranger must not be able to write a message
#: of their own into a mail we send to someone else.
#: (A dot only ends an initial — "J. R." — so "evil.example" is no name.) At most
#: four words.
_NAME = re.compile(r"[^\W\d_]+(?:(?:[ '’-]|\. )[^\W\d_]+){0,3}\.?")
MAX_PAGE_URL = 300


@dataclass(frozen=True)
class Submission:
    """A signup as posted, before any check."""

    email: str
    purposes: tuple[str, ...]
    name: str | None = None
    texts: Mapping[str, str] = field(default_factory=dict)
    locale: str | None = None
    honeypot: str = ""
    token: str | None = None
    page_url: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What happened, for logs and tests; the visitor always sees the same answer."""

    status: str  # requested | already | dropped
    reason: str = ""
    subject: str | None = None
    mail_id: str | None = None


# -- reading a submission --------------------------------------------------------------


def _text(value: Any, name: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadInput(f"The field {name!r} must be text.")
    if len(value) > limit:
        raise BadInput(f"The field {name!r} is too long (at most {limit} characters).")
    return value.strip()


def _name(value: Any) -> str | None:
    name = " ".join(_text(value, "name", 500).split())
    if not name:
        return None
    if len(name) > MAX_NAME or not _NAME.fullmatch(name):
        raise BadName("Please enter just your first name (letters only).")
    return name


def from_form(fields: Mapping[str, str], page_url: str | None) -> Submission:
    """A form-encoded post: ``email``, ``name``, ``purpose.<id>`` checkboxes, ``text.<id>``."""
    return Submission(
        email=_text(fields.get("email"), "email", 320),
        name=_name(fields.get("name")),
        purposes=tuple(
            k.removeprefix("purpose.") for k, v in fields.items() if k.startswith("purpose.") and v
        ),
        texts={k.removeprefix("text."): v for k, v in fields.items() if k.startswith("text.")},
        locale=fields.get("lang") or None,
        honeypot=fields.get(HONEYPOT, ""),
        token=fields.get(TOKEN_FIELD) or None,
        page_url=page_url,
    )


def from_json(data: Mapping[str, Any], page_url: str | None) -> Submission:
    """A JSON post: ``{"email", "name", "purposes": [...], "texts": {id: sha}, ...}``."""
    purposes = data.get("purposes", [])
    if not isinstance(purposes, list) or not all(isinstance(p, str) for p in purposes):
        raise BadInput("purposes must be a list of purpose ids.")
    texts = data.get("texts", {})
    if not isinstance(texts, dict) or not all(isinstance(v, str) for v in texts.values()):
        raise BadInput("texts must map purpose ids to text versions.")
    return Submission(
        email=_text(data.get("email"), "email", 320),
        name=_name(data.get("name")),
        purposes=tuple(purposes),
        texts=texts,
        locale=_text(data.get("locale"), "locale", 10) or None,
        honeypot=_text(data.get(HONEYPOT), HONEYPOT, 500),
        token=_text(data.get(TOKEN_FIELD), TOKEN_FIELD, 2000) or None,
        page_url=_text(data.get("page_url"), "page_url", 2000) or page_url,
    )


def clean_page_url(value: str | None) -> str | None:
    """The form page's address without query or fragment (they may hold personal data)."""
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))[:MAX_PAGE_URL]


def check_purposes(form: Form, submission: Submission) -> tuple[str, ...]:
    """The ticked purposes, each one the form offers; NoPurpose when none is ticked."""
    unknown = [p for p in submission.purposes if p not in form.purposes]
    if unknown:
        raise BadInput(
            f"This form does not offer the purpose(s) {', '.join(unknown)}; it "
            f"offers {', '.join(form.purposes)}."
        )
    ticked = tuple(dict.fromkeys(submission.purposes))
    if not ticked:
        raise NoPurpose("Tick at least one of the choices.")
    return ticked


def check_origin(form: Form, headers: Mapping[str, str]) -> None:
    """A browser post from a website that is not one of the form's is refused.

    Posts from our own iframe page are same-origin (or ``Origin: null`` under our
    no-referrer policy); posts without an Origin (non-browser clients) pass and meet
    the throttles like everyone else.
    """
    origin = (headers.get("origin") or "").rstrip("/").lower()
    host = (headers.get("host") or "").lower()
    site = headers.get("sec-fetch-site")
    if origin == "null":  # our own page (no-referrer), or a page hiding where it is
        if site in (None, "same-origin", "none"):
            return
    elif not origin or (host and origin.split("://", 1)[-1] == host):
        return
    elif site == "same-origin" or form.allows(origin):
        return
    raise CrossSite(
        f"This form may not be used from {origin}: add it to the form's "
        "allowed_origins in the catalogue."
    )


# -- the form's start token: proves we served the form, and when ------------------------


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return links.signer(settings, "optinproof.signup")


def start_token(settings: Settings, form_id: str, page_url: str | None) -> str:
    """Signed ``{form, page}`` with the time the form was served."""
    return _serializer(settings).dumps({"f": form_id, "u": clean_page_url(page_url)})


def _read_token(settings: Settings, form: Form, token: str) -> tuple[dict[str, Any] | None, float]:
    """``(payload, age in seconds)``; ``(None, 0)`` for a forged token or another form's."""
    serializer = _serializer(settings)
    try:
        payload, signed_at = serializer.loads(
            token, max_age=settings.form_token_max_age, return_timestamp=True
        )
    except SignatureExpired as exc:
        raise FormExpired("This form was open for a long time; please send it again.") from exc
    except BadData:
        return None, 0.0
    if not isinstance(payload, dict) or payload.get("f") != form.id:
        return None, 0.0
    return payload, (utcnow() - signed_at).total_seconds()


def bot_reason(settings: Settings, form: Form, submission: Submission) -> tuple[str, str | None]:
    """Why this looks like a bot (``""`` if it does not), and the page URL the token holds."""
    if submission.honeypot:
        return "honeypot", None
    if not submission.token:
        return ("" if form.allow_plain_html else "no_start_token"), None
    payload, age = _read_token(settings, form, submission.token)
    if payload is None:
        return "bad_start_token", None
    if age < form.min_fill_seconds:
        return "too_fast", None
    return "", payload.get("u")


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
