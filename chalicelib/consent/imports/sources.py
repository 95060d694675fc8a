"""One parser per source of existing consent evidence: CSV columns → :class:`Row`.

- ``mailchimp``: an audience export (``Email Address``, ``OPTIN_TIME``, ``OPTIN_IP``,
  ``CONFIRM_TIME``, ``CONFIRM_IP``, ``UNSUB_TIME``, ``CLEAN_TIME``, ...). Mailchimp
  exports subscribed, unsubscribed and cleaned contacts in separate files: an
  unsubscribe is imported as a refusal, a cleaned (bounced) address is rejected.
- ``brevo``: a contact export (``EMAIL``, ``DOUBLE_OPT-IN``, ``OPT_IN``,
  ``ADDED_TIME``, ``EMAIL_BLACKLISTED``). Brevo exports no IP address, so a Brevo row
  is never grade A.
- ``act``: an Act! contact export or the Act! Web API (:mod:`.act_api`): the
  ``E-mail`` column and the fields the company kept its opt-in in, named by the
  operator (``--act-flag``, ``--act-date``); a time without a zone is Act!'s clock.
- ``generic``: our documented format (docs/reference.md), for every other tool.

A parser sees one row and returns a Row or a Reject with the reason; it never reads
the table, so a dry run grades a file without touching anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from chalicelib.consent.imports.rows import Columns, Reject, Row, flag, instant

SOURCES = ("act", "mailchimp", "brevo", "generic")
#: The columns of the generic format, in the order docs/reference.md lists them.
GENERIC_COLUMNS = (
    "email",
    "purpose",
    "consent",
    "opted_in_at",
    "optin_ip",
    "confirmed_at",
    "confirm_ip",
    "double_opt_in",
    "refused_at",
    "wording",
)


@dataclass(frozen=True)
class Options:
    """What the operator tells about the file that the file does not say itself."""

    #: The wording people were shown when they opted in (the same for every row).
    wording: str | None = None
    #: Act!: the contact field (display name) holding the opt-in flag, and its date.
    act_flag: str | None = None
    act_date: str | None = None
    #: Act!'s clock, for Act! times written without a zone.
    act_zone: ZoneInfo | None = None


Parser = Callable[[int, Columns, Options], Row | Reject]


def _reject(line: int, cols: Columns, reason: str) -> Reject:
    return Reject(line, reason, dict(cols.raw))


def mailchimp(line: int, cols: Columns, options: Options) -> Row | Reject:
    """A Mailchimp audience export row (subscribed, unsubscribed or cleaned file)."""
    email = cols.get("Email Address", "EMAIL", "E-mail")
    if cols.get("CLEAN_TIME"):
        return _reject(line, cols, "cleaned by Mailchimp (the address bounced): no consent")
    unsub = cols.get("UNSUB_TIME")
    if unsub:
        return Row(line, email, "refused", refused_at=instant(unsub), columns=dict(cols.raw))
    confirmed = instant(cols.get("CONFIRM_TIME"))
    return Row(
        line,
        email,
        "accepted",
        opted_in_at=instant(cols.get("OPTIN_TIME")),
        optin_ip=cols.get("OPTIN_IP") or None,
        confirmed_at=confirmed,
        confirm_ip=cols.get("CONFIRM_IP") or None,
        double_opt_in=confirmed is not None,
        wording=options.wording,
        columns=dict(cols.raw),
    )


def brevo(line: int, cols: Columns, options: Options) -> Row | Reject:
    """A Brevo contact export row: DOUBLE_OPT-IN yes is a confirmed opt-in (Brevo adds
    the contact when the link is clicked, hence ADDED_TIME as its time); OPT_IN yes
    alone is a single opt-in; a blocklisted address is a refusal."""
    email = cols.get("EMAIL", "Email Address")
    added = instant(cols.get("ADDED_TIME", "CREATED_AT"))
    if flag(cols.get("EMAIL_BLACKLISTED", "BLACKLISTED", "EMAIL_BLOCKLISTED")):
        refused = instant(cols.get("MODIFIED_TIME")) or added
        return Row(line, email, "refused", refused_at=refused, columns=dict(cols.raw))
    double = flag(cols.get("DOUBLE_OPT-IN", "DOUBLE_OPT_IN"))
    single = flag(cols.get("OPT_IN", "OPT-IN"))
    if not double and not single:
        return _reject(line, cols, "neither DOUBLE_OPT-IN nor OPT_IN says yes: no consent")
    return Row(
        line,
        email,
        "accepted",
        opted_in_at=None if double else added,
        confirmed_at=added if double else None,
        double_opt_in=bool(double),
        wording=options.wording,
        columns=dict(cols.raw),
    )


def act(line: int, cols: Columns, options: Options) -> Row | Reject:
    """An Act! contact (CSV export or Web API): the opt-in flag field, its date field."""
    if not options.act_flag:
        return _reject(line, cols, "name the Act! field holding the opt-in (--act-flag)")
    email = cols.get("E-mail", "Email", "Email Address", "emailAddress")
    said = flag(cols.get(options.act_flag))
    if said is None:
        return _reject(line, cols, f"the field {options.act_flag!r} is blank or not yes/no")
    if not said:
        return _reject(line, cols, f"the field {options.act_flag!r} says no: no consent")
    dated = instant(cols.get(options.act_date), options.act_zone) if options.act_date else None
    # a history found through the Web API (``act_api``) dates an undated flag
    dated = dated or instant(cols.get("History date"), options.act_zone)
    return Row(
        line,
        email,
        "accepted",
        opted_in_at=dated,
        wording=options.wording,
        columns=dict(cols.raw),
    )


def generic(line: int, cols: Columns, options: Options) -> Row | Reject:
    """Our documented format: see ``GENERIC_COLUMNS`` and docs/reference.md."""
    consent = cols.get("consent")
    said = flag(consent) if consent else None
    if consent and said is None:
        return _reject(line, cols, f"consent {consent!r} is not yes or no")
    opted, confirmed = instant(cols.get("opted_in_at")), instant(cols.get("confirmed_at"))
    refused = instant(cols.get("refused_at"))
    if said is False or (said is None and refused and not (opted or confirmed)):
        return Row(
            line,
            cols.get("email"),
            "refused",
            refused_at=refused,
            purpose=cols.get("purpose") or None,
            columns=dict(cols.raw),
        )
    if said is None and not (opted or confirmed):
        return _reject(line, cols, "no consent column and no date: nothing says yes")
    double = cols.get("double_opt_in")
    return Row(
        line,
        cols.get("email"),
        "accepted",
        opted_in_at=opted,
        optin_ip=cols.get("optin_ip") or None,
        confirmed_at=confirmed,
        confirm_ip=cols.get("confirm_ip") or None,
        double_opt_in=bool(flag(double)) if double else confirmed is not None,
        wording=cols.get("wording") or options.wording,
        purpose=cols.get("purpose") or None,
        columns=dict(cols.raw),
    )


PARSERS: dict[str, Parser] = {
    "act": act,
    "mailchimp": mailchimp,
    "brevo": brevo,
    "generic": generic,
}
