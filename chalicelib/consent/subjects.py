"""Who a subject is: the normalised address and its keyed hash.

The table never keys anything by an address: a subject is ``HMAC-SHA256(pepper,
normalised address)``, so a leaked key list reveals no address, yet the same address
always finds the same subject (and its erasure tombstone).
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from typing import TYPE_CHECKING, Any

from chalicelib.core.errors import InvalidEmail

if TYPE_CHECKING:
    from chalicelib.core.settings import Settings


def _validated(address: str) -> Any:
    # Cold start: email_validator (its tables are large) loads with the first address
    # checked, not with every module that imports this one (a link page needs none).
    from email_validator import EmailNotValidError, validate_email

    candidate = (address or "").strip()
    if not candidate:
        raise InvalidEmail("An e-mail address is required.")
    if len(candidate) > 320:
        raise InvalidEmail("This e-mail address is too long.")
    try:
        return validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(f"This e-mail address is not valid: {exc}") from exc


def mail_address(address: str) -> str:
    """The address to write to: the mailbox name as typed (NFC), the domain normalised.

    Never case-folded: folding can change a domain (``faß.de`` is not ``fass.de``) or a
    mailbox name, and then the confirmation would reach someone else.
    """
    result = _validated(address)
    return unicodedata.normalize("NFC", f"{result.local_part}@{result.domain}")


def normalise_email(address: str) -> str:
    """The one spelling of an address used for keying (never for sending).

    Syntax is checked by email-validator (no DNS: deliverability is proven by the
    confirmation mail itself). The domain is IDNA-normalised by the validator; the
    whole address is NFC-normalised and lower-cased, because in practice every
    mailbox provider treats the local part case-insensitively.
    """
    result = _validated(address)
    # lower(), not casefold(): folding maps "ß" to "ss", and faß.de is not fass.de.
    return unicodedata.normalize("NFC", f"{result.local_part.lower()}@{result.domain.lower()}")


def subject_key(pepper: str, normalised_email: str) -> str:
    """Keyed hash of a normalised address (hex, 64 chars)."""
    return hmac.new(
        pepper.encode("utf-8"), normalised_email.encode("utf-8"), hashlib.sha256
    ).hexdigest()


def subject_of_address(settings: Settings, email: str) -> str:
    """The subject key of a typed address; InvalidEmail if it is not one."""
    return subject_key(settings.subject_pepper, normalise_email(mail_address(email)))
