"""Mails to send, kept in the table until they are sent: a request is never lost to a
mail failure.

A signup writes its ``requested`` events and an outbox item in one transaction; the
mail is then sent right away, and the outbox item is removed in the same
transaction that appends the ``mail_sent`` event. If the transport fails, the item
stays with a due time (backoff), a ``mail_failed`` event says what happened, and
the sweep tries again until ``MAIL_MAX_ATTEMPTS`` rounds are spent. Outbox items
live in the pending-sync index under their own partition, so finding due mails
needs no scan. Delivery is at least once: a crash between the transport's "sent"
and our write means one more mail, never a lost one.

Size: queue, claim, send, back off and record are one outbox protocol; its
exactly-once-or-retried promise is checked in one module.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from chalicelib.consent import basis, links
from chalicelib.consent.catalogue import Catalogue
from chalicelib.core.clock import iso, now_iso, utcnow
from chalicelib.core.errors import (
    MailError,
    MailPermanentFailure,
    MailTemporaryFailure,
    OptinProofError,
)
from chalicelib.core.logs import log
from chalicelib.core.settings import Settings
from chalicelib.mail import compose
from chalicelib.mail.transports import Transport
from chalicelib.proof import receipts
from chalicelib.proof.chain import new_event_id
from chalicelib.store import keys
from chalicelib.store.ledger import Draft, Ledger, Plan, Snapshot

OUTBOX_SHARD = keys.OUTBOX_SHARD
#: Wait after the 1st, 2nd, ... failed round (the last value repeats).
BACKOFF_SECONDS = (60, 300, 1800, 7200, 21600)
#: Quick tries within one round (the request path must answer fast).
_TRIES_PER_ROUND = 2
_CLAIM_SECONDS = 120


_ADDRESS = re.compile(r"[^\s@<>()\[\]:;,\"']+@[^\s@<>()\[\]:;,\"']+")


def redact(text: str) -> str:
    """Text with every e-mail address replaced: errors go into events, which are forever."""
    return _ADDRESS.sub("<address>", text)


def new_mail_id() -> str:
    return secrets.token_hex(10)


@dataclass(frozen=True)
class MailOrder:
    """What to send to whom; the address itself is read from the profile at send time."""

    mail_id: str
    subject: str
    mail_kind: str
    locale: str
    purposes: tuple[str, ...]
    withdraw_link_id: str
    confirm_link_id: str | None = None
    channel: str | None = None
    #: A data-rights mail carries a rights link instead of a withdraw link.
    rights_link_id: str | None = None


def outbox_item(order: MailOrder, at: str, expires: int) -> dict[str, Any]:
    """The item a request writes beside its events; due at once."""
    return {
        **keys.item(keys.mail(order.mail_id)),
        "mail_id": order.mail_id,
        "subject": order.subject,
        "mail_kind": order.mail_kind,
        "locale": order.locale,
        "purposes": list(order.purposes),
        "withdraw_link_id": order.withdraw_link_id,
        "confirm_link_id": order.confirm_link_id,
        "channel": order.channel,
        "rights_link_id": order.rights_link_id,
        "status": "queued",
        "attempts": 0,
        "queued_at": at,
        "sync_shard": OUTBOX_SHARD,
        "sync_due": at,
        "expires_at": expires,
    }


def _order(item: dict[str, Any]) -> MailOrder:
    return MailOrder(
        item["mail_id"],
        item["subject"],
        item["mail_kind"],
        item["locale"],
        tuple(item["purposes"]),
        item["withdraw_link_id"],
        item.get("confirm_link_id"),
        item.get("channel"),
        item.get("rights_link_id"),
    )


@dataclass(frozen=True)
class Delivery:
    """How one delivery round ended: sent, retry (later), failed (for good), or skipped."""

    mail_id: str
    status: str
    detail: str = ""


class Postman:
    """Sends outbox items and records the outcome on the person's chain."""

    def __init__(
        self, ledger: Ledger, settings: Settings, catalogue: Catalogue, transport: Transport
    ) -> None:
        self.ledger = ledger
        self.settings = settings
        self.catalogue = catalogue
        self.transport = transport

    def urls(self, order: MailOrder) -> dict[str, str]:
        """Fresh tokens for the order's recorded link ids (the tokens are never stored)."""
        base, urls = self.settings.public_base_url, {}
        if order.withdraw_link_id:
            withdraw, _ = links.mint(
                self.settings, "withdraw", order.subject, order.purposes, order.withdraw_link_id
            )
            urls["withdraw_url"] = f"{base}/u/{withdraw}"
        if order.rights_link_id:
            rights, _ = links.mint(self.settings, "rights", order.subject, (), order.rights_link_id)
            urls["rights_url"] = f"{base}/r/{rights}"
        if order.confirm_link_id:
            confirm, _ = links.mint(
                self.settings, "confirm", order.subject, order.purposes, order.confirm_link_id
            )
            # The page opens in the mail's language (a campaign's contact's own, a form's).
            urls["confirm_url"] = f"{base}/c/{confirm}?lang={order.locale}"
        return urls

    def deliver_safely(self, mail_id: str) -> Delivery:
        """:meth:`deliver`, but a store failure only skips this mail (the sweep comes back)."""
        try:
            return self.deliver(mail_id)
        except OptinProofError as exc:
            log(
                "mail_deferred",
                level="warning",
                mail_id=mail_id,
                error=type(exc).__name__,
                detail=redact(str(exc))[:300],
            )
            return Delivery(mail_id, "skipped", type(exc).__name__)

    def deliver(self, mail_id: str) -> Delivery:
        """One delivery round for one outbox item, if nobody else is on it."""
        owner = secrets.token_hex(8)
        key = keys.mail(mail_id)
        if not self.ledger.claim(*key, owner, _CLAIM_SECONDS):
            return Delivery(mail_id, "skipped", "sent already, or another worker has it")
        item = self.ledger.get(*key)
        if item is None:
            return Delivery(mail_id, "skipped", "sent already")
        order = _order(item)
        profile, _ = self.ledger.current(order.subject)
        if not profile or not profile.get("email"):
            self._drop(order, "the person's address is no longer on record")
            return Delivery(mail_id, "skipped", "address erased")
        if profile.get("undeliverable"):
            self._drop(order, "the address bounced permanently (SES)")
            return Delivery(mail_id, "skipped", "address undeliverable")
        attempts = int(item.get("attempts", 0)) + 1
        if order.confirm_link_id:
            record = self.ledger.link(order.confirm_link_id) or {}
            if record.get("superseded_by") or "subject" not in record:
                # A newer mail already carries a newer link: this one would only confuse.
                self._drop(order, "its link was replaced by a newer one")
                return Delivery(mail_id, "skipped", "link superseded")
        try:
            attachment, receipt_id = self._receipt(order)
            composed = compose.compose(
                self.settings,
                self.catalogue,
                order.mail_kind,
                order.locale,
                profile["email"],
                order.purposes,
                self.urls(order),
                name=profile.get("name"),
                mail_id=order.mail_id,
                attachment=attachment,
            )
        except receipts.NothingToReceipt:
            self._drop(order, "no consent to put in a receipt any more")
            return Delivery(mail_id, "skipped", "nothing to receipt")
        except (KeyError, ValueError) as exc:  # e.g. a purpose retired since the request
            return self._failed(
                order,
                item,
                attempts,
                MailPermanentFailure(
                    f"The mail cannot be composed any more ({type(exc).__name__}: {exc})."
                ),
            )
        self.ledger.put_content(
            keys.MAIL_TEMPLATE, composed.template.sha256, compose.template_record(composed.template)
        )
        try:
            provider_id = self._send(composed)
        except MailError as exc:
            return self._failed(order, item, attempts, exc)
        self._record_sent(order, composed, provider_id, attempts, receipt_id)
        log(
            "mail_sent",
            subject=order.subject,
            mail_id=order.mail_id,
            kind=order.mail_kind,
            transport=self.transport.name,
            attempts=attempts,
        )
        return Delivery(mail_id, "sent")

    def _send(self, composed: compose.Composed) -> str:
        for attempt in range(_TRIES_PER_ROUND):
            try:
                return self.transport.send(composed.message)
            except MailTemporaryFailure:
                if attempt + 1 == _TRIES_PER_ROUND:
                    raise
                time.sleep(0.3 * (attempt + 1))
        raise AssertionError("unreachable")

    def _receipt(self, order: MailOrder) -> tuple[tuple[str, bytes] | None, str | None]:
        """A receipt mail carries the signed receipt of the consents in force when sent."""
        if order.mail_kind != "receipt":
            return None, None
        receipt = receipts.for_subject(self.ledger, self.catalogue, order.subject, order.locale)
        document = receipts.document(self.settings, receipt)
        data = json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")
        return ("consent-receipt.json", data), receipt["consentReceiptID"]

    def _record_sent(
        self,
        order: MailOrder,
        composed: compose.Composed,
        provider_id: str,
        attempts: int,
        receipt_id: str | None = None,
    ) -> None:
        # A purpose not on consent: the mail offered the opt-out (its withdraw link and
        # wording); the event cites the wording, stored first.
        opt_outs = basis.mail_opt_outs(self.catalogue, order.purposes, order.locale)
        basis.keep_opt_outs(self.ledger, self.catalogue, order.purposes, order.locale)

        def build(snap: Snapshot) -> Plan:
            return Plan(
                events=[
                    Draft(
                        {
                            "event_id": new_event_id(),
                            "kind": "mail_sent",
                            "at": now_iso(),
                            "mail_id": order.mail_id,
                            "mail_kind": order.mail_kind,
                            "message_id": composed.message_id,
                            "provider_message_id": provider_id,
                            "transport": self.transport.name,
                            "template_version": composed.template.sha256,
                            "locale": order.locale,
                            "purposes": list(order.purposes),
                            "link_ids": [
                                i
                                for i in (
                                    order.confirm_link_id,
                                    order.withdraw_link_id,
                                    order.rights_link_id,
                                )
                                if i
                            ],
                            "channel": order.channel,
                            "attempts": attempts,
                            "receipt_id": receipt_id,
                            **({"opt_outs_offered": opt_outs} if opt_outs else {}),
                        }
                    )
                ],
                deletes=[keys.mail(order.mail_id)],
            )

        self.ledger.commit(order.subject, build)

    def _failed(
        self, order: MailOrder, item: dict[str, Any], attempts: int, exc: MailError
    ) -> Delivery:
        error = redact(str(exc))[:300]  # providers quote the address; the chain must not
        final = exc.permanent or attempts >= self.settings.mail.max_attempts
        due = utcnow() + timedelta(seconds=BACKOFF_SECONDS[min(attempts, len(BACKOFF_SECONDS)) - 1])
        updated = {
            **item,
            "attempts": attempts,
            "last_error": error,
            "last_attempt_at": now_iso(),
            "status": "failed" if final else "queued",
        }
        for lease in ("claimed_by", "claimed_until"):
            updated.pop(lease, None)
        if final:  # out of the due index; kept (with its TTL) for `mail status`
            updated.pop("sync_shard", None)
            updated.pop("sync_due", None)
        else:
            updated["sync_due"] = iso(due)

        def build(snap: Snapshot) -> Plan:
            return Plan(
                events=[
                    Draft(
                        {
                            "event_id": new_event_id(),
                            "kind": "mail_failed",
                            "at": now_iso(),
                            "mail_id": order.mail_id,
                            "mail_kind": order.mail_kind,
                            "transport": self.transport.name,
                            "error": error,
                            "permanent": exc.permanent,
                            "attempts": attempts,
                            "will_retry": not final,
                            "channel": order.channel,
                        }
                    )
                ],
                puts=[updated],
            )

        self.ledger.commit(order.subject, build)
        log(
            "mail_failed",
            level="warning",
            subject=order.subject,
            mail_id=order.mail_id,
            error=error,
            attempts=attempts,
            will_retry=not final,
        )
        return Delivery(order.mail_id, "failed" if final else "retry", error)

    def _drop(self, order: MailOrder, why: str) -> None:
        self.ledger.commit(order.subject, lambda snap: Plan(deletes=[keys.mail(order.mail_id)]))
        log("mail_dropped", subject=order.subject, mail_id=order.mail_id, reason=why)


def queue_receipt(
    ledger: Ledger, settings: Settings, subject: str, locale: str, channel: str | None
) -> str | None:
    """Queue a consent-receipt mail after a change of choices (``RECEIPT_MAIL``).

    The receipt itself is built when the mail leaves, from the consents then in force,
    so a burst of changes never mails a stale one. Returns the mail id, or None when
    the person has no address on record (nothing to send to).
    """
    at, mail_id = now_iso(), new_mail_id()

    def build(snap: Snapshot) -> Plan:
        if not (snap.profile or {}).get("email") or not snap.states:
            return Plan()
        # No purposes named: the receipt (built at sending) says which, retired ones too.
        order = MailOrder(mail_id, subject, "receipt", locale, (), "", channel=channel)
        return Plan(puts=[outbox_item(order, at, int(time.time()) + 30 * 86400)])

    _, _ = ledger.commit(subject, build)
    return mail_id if ledger.get(*keys.mail(mail_id)) else None


def due_mail_ids(ledger: Ledger, include_later: bool = False) -> Iterator[str]:
    """Outbox items due now (or all queued ones), oldest first, without a scan."""
    for pk, _ in ledger.sync_keys([OUTBOX_SHARD], None if include_later else now_iso()):
        yield keys.mail_of(pk)


def sweep(postman: Postman, limit: int = 200, include_later: bool = False) -> list[Delivery]:
    """Deliver due mails (the scheduled safety net, and ``cli mail retry``)."""
    results: list[Delivery] = []
    for mail_id in due_mail_ids(postman.ledger, include_later):
        if len(results) >= limit:
            break
        results.append(postman.deliver_safely(mail_id))
    return results


def outbox_rows(ledger: Ledger) -> list[dict[str, Any]]:
    """Queued and failed mails, for ``cli mail status`` (a scan: an operator's command)."""
    rows = []
    for item in ledger.scan_items(keys.MAIL_PREFIX, keys.MAIL):
        rows.append(
            {
                key: item.get(key)
                for key in (
                    "mail_id",
                    "subject",
                    "mail_kind",
                    "status",
                    "attempts",
                    "queued_at",
                    "sync_due",
                    "last_error",
                )
            }
        )
    return sorted(rows, key=lambda row: row.get("queued_at") or "")
