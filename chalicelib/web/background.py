"""Work a request or an event starts beside its answer, tolerant of a missing Act!.

A decision's answer must not wait for, or fail because of, what follows it: the mail
sent inline, the receipt queued, the Act! contact reconciled. Each helper here wires
the services (``core.services``) for that work and logs instead of raising where the
outbox, the pending-sync index or a hint keeps the work for a sweep to finish.
"""

from __future__ import annotations

from typing import Any

from chalicelib.core.errors import ConfigError, OptinProofError
from chalicelib.core.logs import log
from chalicelib.core.services import (
    get_act_client,
    get_catalogue,
    get_ledger,
    get_postman,
    get_pusher,
    get_reconciler,
)
from chalicelib.core.settings import get_settings
from chalicelib.mail import outbox
from chalicelib.rights import erasure


def pusher_or_none() -> Any:
    """The pusher, or None (logged) when Act! is not configured: decisions stay pending."""
    try:
        return get_pusher()
    except ConfigError as exc:
        log("sync_not_configured", level="warning", detail=str(exc)[:300])
        return None


def act_client_or_none() -> Any:
    try:
        return get_act_client() if get_settings().act else None
    except ConfigError:
        return None


def reconciler_or_none() -> Any:
    try:
        return get_reconciler()
    except ConfigError as exc:
        log("act_hooks_not_configured", level="warning", detail=str(exc)[:300])
        return None


def erase(subject: str, requested_by: str, act_mode: str) -> erasure.Erasure:
    """Erase with Act! in the loop: unsent decisions pushed first, then cleared there."""
    return erasure.erase_with_act(
        get_ledger(),
        get_catalogue(),
        get_settings(),
        subject,
        requested_by,
        act_mode,
        act_client_or_none(),
        pusher_or_none(),
    )


def reconcile(contact_ids: list[str]) -> int:
    """Reconcile each contact on its own: one failure leaves its hint for the sweep."""
    if not contact_ids or get_settings().act is None:
        return 0
    reconciler = reconciler_or_none()
    if reconciler is None:
        return 0
    done = 0
    for contact_id in contact_ids:
        try:
            reconciler.process(contact_id)
            done += 1
        except OptinProofError as exc:  # the hint stays; the sweep tries again
            log(
                "act_change_deferred",
                level="warning",
                contact_id=contact_id,
                error=type(exc).__name__,
                detail=str(exc)[:300],
            )
    return done


def deliver(mail_id: str | None) -> None:
    """With MAIL_DELIVERY=inline, send a queued mail now (else the stream sends it)."""
    if not mail_id or get_settings().mail.delivery != "inline":
        return
    try:
        get_postman().deliver(mail_id)
    except OptinProofError as exc:  # the outbox keeps it; the sweep tries again
        log(
            "mail_deferred",
            level="warning",
            mail_id=mail_id,
            error=type(exc).__name__,
            detail=str(exc)[:300],
        )


def receipt_after(subject: str, locale: str, channel: str | None, changed: bool) -> None:
    """With RECEIPT_MAIL, a consent receipt follows each change (the decision stands alone
    if queuing it fails: the receipt can always be downloaded from the rights page)."""
    settings = get_settings()
    if not changed or not settings.receipt_mail or settings.mail.transport == "none":
        return
    try:
        deliver(outbox.queue_receipt(get_ledger(), settings, subject, locale, channel))
    except OptinProofError as exc:
        log("receipt_not_queued", level="warning", subject=subject, error=type(exc).__name__)
