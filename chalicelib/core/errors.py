"""Every exception of OptinProof, in one hierarchy under :class:`OptinProofError`.

Each class names one thing that went wrong and carries a message a person can act
on. The web layer maps each class to its HTTP status, page and JSON answer in one
table (:mod:`chalicelib.web.errors`); the CLI prints the message and exits non-zero.
Only two private control-flow signals of the Act! sync live elsewhere (they never
leave :mod:`chalicelib.act.sync`).
"""

from __future__ import annotations


class OptinProofError(Exception):
    """Base class: every error the product raises on purpose."""


class ConfigError(OptinProofError):
    """A setting or the purpose catalogue is missing or wrong; the operator must fix it."""


class CatalogueError(ConfigError):
    """The purpose catalogue file is invalid; the message names the line and field."""


class InvalidEmail(OptinProofError):
    """An e-mail address that cannot receive mail (syntax)."""


class LinkError(OptinProofError):
    """A link that cannot be used. ``reason`` picks the page wording."""

    reason = "invalid"

    def __init__(self, message: str, link_id: str | None = None) -> None:
        super().__init__(message)
        self.link_id = link_id


class LinkTruncated(LinkError):
    """The token is shorter than any token we mint: usually a link cut by a mail client."""

    reason = "truncated"


class LinkTampered(LinkError):
    """The signature does not match: altered, or signed with a key that was retired."""

    reason = "tampered"


class LinkWrongKind(LinkError):
    """A valid link of another kind (e.g. a withdraw link used on the confirm page)."""

    reason = "wrong_kind"


class LinkExpired(LinkError):
    """A valid link past its kind's lifetime."""

    reason = "expired"


class LinkRevoked(LinkError):
    """Signed by us, but no issuance is on record any more (revoked or erased subject)."""

    reason = "revoked"


class LinkWithdrawn(LinkError):
    """We took the link back: it sat in an Act! field of a contact whose address changed,
    where someone else could have opened it."""

    reason = "withdrawn"


class LinkPurposeRetired(LinkError):
    """The link asks about a purpose the catalogue no longer offers."""

    reason = "retired"


class BadInput(OptinProofError):
    """A request body or parameter we cannot accept; nothing was changed."""


class FormTokenMissing(BadInput):
    """A decision POST without our anti-forgery field."""


class FormTokenInvalid(BadInput):
    """An anti-forgery field that is forged, damaged, or belongs to another link."""


class CrossSite(BadInput):
    """A state-changing POST that did not come from one of our own pages."""


class NoChoice(BadInput):
    """A decision form submitted without any Accept or Refuse chosen."""


class FormExpired(BadInput):
    """The page's anti-forgery field is too old; the person must submit the page again."""


class TextChanged(OptinProofError):
    """A purpose's wording changed between showing the page and submitting it."""


class StoreUnavailable(OptinProofError):
    """DynamoDB failed or is unreachable; nothing was written."""


class OutcomeUnknown(StoreUnavailable):
    """A write reached DynamoDB but its answer was lost: it may have been saved."""


class Contention(StoreUnavailable):
    """Too many concurrent writers on one subject; nothing was written, try again."""


class RequiredItemMissing(OptinProofError):
    """A write was refused because an item it depends on (e.g. a link record) is gone."""


class LinkSuperseded(LinkError):
    """A newer link for the same purposes was sent to the same person."""

    reason = "superseded"

    def __init__(
        self, message: str, link_id: str | None = None, superseded_at: str | None = None
    ) -> None:
        super().__init__(message, link_id)
        self.superseded_at = superseded_at


class NothingHeld(BadInput):
    """An operator asked about a person of whom nothing is held (no chain, no profile)."""


class UnknownCampaign(BadInput):
    """A campaign id nobody recorded."""


class UnknownForm(BadInput):
    """A signup for a form id the catalogue does not define."""


class MailError(OptinProofError):
    """A mail could not be handed to the transport. ``permanent``: retrying cannot help."""

    permanent = False


class MailTemporaryFailure(MailError):
    """The transport is down, busy or throttling us: try again later."""


class MailPermanentFailure(MailError):
    """The transport refused this mail for good (bad recipient, sender not verified)."""

    permanent = True


# -- Act! --------------------------------------------------------------------------------


class ActError(OptinProofError):
    """An Act! call failed; the message says what to check."""


class ActAuthError(ActError):
    """Act! refused the sign-in (user, password and database cannot be told apart)."""


class ActNotFound(ActError):
    """The record does not exist, or is private to another user (Act! answers 404 for both)."""


class ActBadRequest(ActError):
    """Act! rejected the request body or query (400)."""


class ActUnavailable(ActError):
    """Act! did not answer usefully after the retries; ``ambiguous`` if a write may have landed."""

    def __init__(
        self, message: str, ambiguous: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous
        #: Act! asked us to come back later than we can wait in one call (seconds).
        self.retry_after = retry_after


class SyncProblem(ActError):
    """Act! took a write but the contact does not show it (silently ignored PATCH)."""


class Unauthorised(BadInput):
    """A delivery without our callback token."""


# -- requests and access -----------------------------------------------------------------


class PayloadTooLarge(BadInput):
    """Body over :data:`MAX_FORM_BYTES`; mapped to HTTP 413."""


class UnsupportedType(BadInput):
    """Body not form-encoded; mapped to HTTP 415."""


class AdminDenied(OptinProofError):
    """An admin call without a valid token (401), or with the admin API off (403)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


class NoPurpose(BadInput):
    """A signup without any purpose ticked."""


class BadName(BadInput):
    """A first name that is not one (digits, links, a paragraph)."""


# -- SES notices through SNS -------------------------------------------------------------


class SnsRejected(OptinProofError, ValueError):
    """The message is not one SNS sent us; the message names the check that failed."""


class SnsUnavailable(SnsRejected):
    """The certificate could not be fetched: not the sender's fault, SNS may retry."""


# -- consent receipts --------------------------------------------------------------------


class ReceiptError(BadInput):
    """A signed receipt that does not verify. ``reason`` names why, for pages and logs."""

    reason = "invalid"


class ReceiptMalformed(ReceiptError):
    """Not a compact JWS we could have made: cut, re-encoded, or not JSON inside."""

    reason = "malformed"


class ReceiptAlgorithmRefused(ReceiptError):
    """The header asks for another algorithm (``none``, HS512, RS256...) or type."""

    reason = "algorithm"


class ReceiptUnknownKey(ReceiptError):
    """The ``kid`` names no listed key: signed by a retired key, or not by us."""

    reason = "unknown_key"


class ReceiptTampered(ReceiptError):
    """The signature does not match the header and receipt: something was edited."""

    reason = "tampered"


class NothingToReceipt(BadInput):
    """No receipt can be made: no address on record (erased, unknown) or no decision yet."""


class ReceiptEvidenceMissing(OptinProofError):
    """The table cannot back a receipt: a cited wording or proof event is missing or
    disagrees with the purpose state. An operator must look (``chain verify``)."""


class TimestampFailed(OptinProofError):
    """No time-stamping authority granted a token (down, refused, or an answer that
    does not cover our digest). Anchoring waits for the next run; no decision waits."""
