"""Who a subject is: the normalised address and its keyed hash.

The table never keys anything by an address: a subject is ``HMAC-SHA256(pepper,
normalised address)``, so a leaked key list reveals no address, yet the same address
always finds the same subject (and its erasure tombstone).
"""
from __future__ import annotations

import hashlib
import hmac
import unicodedata

from email_validator import EmailNotValidError, validate_email

from chalicelib.errors import InvalidEmail


def normalise_email(address: str) -> str:
    """The one spelling of an address used for keying.

    Syntax is checked by email-validator (no DNS: deliverability is proven by the
    confirmation mail itself). The domain is IDNA-normalised by the validator; the
    whole address is NFC-normalised and case-folded, because in practice every
    mailbox provider treats the local part case-insensitively.
    """
    candidate = (address or "").strip()
    if not candidate:
        raise InvalidEmail("An e-mail address is required.")
    if len(candidate) > 320:
        raise InvalidEmail("This e-mail address is too long.")
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(f"This e-mail address is not valid: {exc}") from exc
    return unicodedata.normalize("NFC", result.normalized).casefold()


def subject_key(pepper: str, normalised_email: str) -> str:
    """Keyed hash of a normalised address (hex, 64 chars)."""
    return hmac.new(
        pepper.encode("utf-8"), normalised_email.encode("utf-8"), hashlib.sha256
    ).hexdigest()
