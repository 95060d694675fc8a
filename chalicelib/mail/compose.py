"""The mails OptinProof sends: composed from templates, versioned like purpose texts.

A confirmation mail is evidence too (what exactly did we send?), so each mail is
first rendered with markers in place of the personal parts (links, name). That
rendering is the *template version*: its SHA-256 goes into the ``mail_sent`` event
and its text is kept write-once in the table, and the mail actually sent is exactly
that text with the markers filled in.
"""

from __future__ import annotations

import hashlib
import html
import json
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTPUTF8
from email.utils import format_datetime, make_msgid, parseaddr

from chalicelib.consent.catalogue import Catalogue
from chalicelib.core.clock import utcnow
from chalicelib.core.i18n import translations
from chalicelib.core.settings import Settings
from chalicelib.core.templates import environment

MAIL_KINDS = ("confirm", "already", "rights", "receipt", "renew")


def N_(message: str) -> str:
    """Mark a string for translation (Babel's -k N_); translated where used."""
    return message


SUBJECTS = {
    "confirm": N_("Please confirm your choices for %(controller)s"),
    "already": N_("You are already subscribed to %(controller)s"),
    "rights": N_("Your data held by %(controller)s"),
    "receipt": N_("Your consent receipt from %(controller)s"),
    "renew": N_("Do you still want to hear from %(controller)s?"),
}

#: The personal parts of a mail, replaced by markers in the template version.
MARKED = ("confirm_url", "withdraw_url", "rights_url", "name")


def _marker(name: str) -> str:
    return f"\u27e6{name}\u27e7"  # ⟦name⟧: never produced by templates or escaping


@dataclass(frozen=True)
class Template:
    """A mail as rendered before personalisation: the thing that gets a version."""

    kind: str
    locale: str
    subject: str
    text: str
    html: str

    @property
    def sha256(self) -> str:
        canonical = json.dumps(
            {
                "kind": self.kind,
                "locale": self.locale,
                "subject": self.subject,
                "text": self.text,
                "html": self.html,
            },
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Composed:
    """A mail ready to hand to a transport, and what to record about it."""

    message: EmailMessage
    message_id: str
    template: Template


def render_template(
    settings: Settings,
    catalogue: Catalogue,
    kind: str,
    locale: str,
    purposes: tuple[str, ...],
    has_name: bool,
) -> Template:
    """The mail of ``kind`` for these purposes in ``locale``, with markers for personal parts."""
    if kind not in MAIL_KINDS:
        raise ValueError(f"unknown mail kind {kind!r}")
    env = environment(locale)
    context = {
        "locale": locale,
        "controller": catalogue.controller,
        "has_name": has_name,
        "purposes": [{"id": p, "title": catalogue.get(p).text(locale).title} for p in purposes],
        # A purpose not on consent: every mail offers its opt-out (consent/basis.py).
        "opt_outs": [
            {
                "title": catalogue.get(p).text(locale).title,
                "text": catalogue.get(p).opt_out[locale].text,
            }
            for p in purposes
            if catalogue.get(p).opt_out
        ],
        # Never promise more time than the link has: whole days, or whole hours below one.
        "days": settings.link_max_age["confirm"] // 86400,
        "hours": max(1, settings.link_max_age["confirm"] // 3600),
        "rights_hours": max(1, settings.link_max_age["rights"] // 3600),
        **{name: _marker(name) for name in MARKED},
    }
    subject = translations(locale).gettext(SUBJECTS[kind]) % {
        "controller": catalogue.controller.name
    }
    text = env.get_template(f"mail/{kind}.txt").render(**context)
    body = env.get_template(f"mail/{kind}.html").render(subject=subject, **context)
    # One final newline on each part: what MIME encoding produces, so the stored version
    # filled in is byte for byte the part that was sent.
    return Template(kind, locale, subject, text.strip() + "\n", body.strip() + "\n")


def _fill(template: str, values: dict[str, str], escape: bool) -> str:
    for name in MARKED:
        value = values.get(name, "")
        template = template.replace(_marker(name), html.escape(value) if escape else value)
    return template


def _sender_domain(sender: str) -> str:
    return parseaddr(sender)[1].rpartition("@")[2] or "optinproof.local"


def envelope(
    settings: Settings, catalogue: Catalogue, to: str, subject: str, mail_id: str | None
) -> tuple[EmailMessage, str]:
    """A message with the headers every mail of ours carries; returns it and its Message-ID."""
    from email_validator import validate_email  # cold start: see consent.subjects

    checked = validate_email(to, check_deliverability=False)
    if checked.local_part.isascii():  # the domain in IDNA 2008 form: any relay delivers it
        message = EmailMessage()
        message["To"] = Address(username=checked.local_part, domain=checked.ascii_domain)
    else:  # an internationalised mailbox name needs SMTPUTF8 end to end
        message = EmailMessage(policy=SMTPUTF8)
        message["To"] = f"{checked.local_part}@{checked.domain}"
    message["From"] = settings.mail.sender
    message["Reply-To"] = settings.mail.reply_to or catalogue.controller.contact_email
    message["Subject"] = subject
    message["Date"] = format_datetime(utcnow())
    message_id = make_msgid(idstring=mail_id, domain=_sender_domain(settings.mail.sender))
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    return message, message_id


def compose(
    settings: Settings,
    catalogue: Catalogue,
    kind: str,
    locale: str,
    to: str,
    purposes: tuple[str, ...],
    urls: dict[str, str],
    name: str | None = None,
    mail_id: str | None = None,
    attachment: tuple[str, bytes] | None = None,
) -> Composed:
    """Build the message: text and HTML parts, and the headers mail clients rely on.

    ``List-Unsubscribe`` + ``List-Unsubscribe-Post`` (RFC 8058) let the mail client
    offer one-click withdrawal; its POST goes to the withdraw link.
    """
    template = render_template(settings, catalogue, kind, locale, purposes, bool(name))
    values = {**urls, "name": (name or "").strip()}
    message, message_id = envelope(settings, catalogue, to, template.subject, mail_id)
    if urls.get("withdraw_url"):
        message["List-Unsubscribe"] = f"<{urls['withdraw_url']}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(_fill(template.text, values, escape=False))
    message.add_alternative(_fill(template.html, values, escape=True), subtype="html")
    if attachment is not None:  # e.g. the consent receipt: JSON, named, not inline
        filename, data = attachment
        message.add_attachment(data, maintype="application", subtype="json", filename=filename)
    message["Content-Language"] = locale  # after the body: set_content resets Content-*
    return Composed(message, message_id, template)


def template_record(template: Template) -> dict[str, str]:
    """What the table keeps of a template version (``MAILTPL#<sha256>``), for evidence."""
    return {
        "mail_kind": template.kind,
        "locale": template.locale,
        "subject": template.subject,
        "text": template.text,
        "html": template.html,
    }
