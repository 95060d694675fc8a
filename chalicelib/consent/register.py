"""The register of purposes: one page per purpose, for the record of processing.

GDPR art. 30 asks the controller to keep a record of its processing. For what
OptinProof asks consent to, the catalogue already holds the facts; this prints them
in French or English, as a PDF to file with that record: per purpose its id, its
current title and text in every language with their versions (SHA-256), the legal
basis, how long a consent stays valid, whether it is e-mail marketing, the Act!
fields it is written to and the forms that ask it.

A purpose on another basis than consent also shows the opt-out wording offered at
collection, in every language.
"""

from __future__ import annotations

from datetime import datetime

from chalicelib.consent.catalogue import Catalogue, Purpose
from chalicelib.core.clock import iso, utcnow
from chalicelib.core.i18n import format_moment, translations
from chalicelib.core.pdf import Document
from chalicelib.mail.compose import N_

#: The words for the legal bases of GDPR art. 6(1); another value prints as written.
LEGAL_BASES = {
    "consent": N_("consent (GDPR art. 6(1)(a))"),
    "contract": N_("contract (GDPR art. 6(1)(b))"),
    "legal_obligation": N_("legal obligation (GDPR art. 6(1)(c))"),
    "vital_interests": N_("vital interests (GDPR art. 6(1)(d))"),
    "public_task": N_("public task (GDPR art. 6(1)(e))"),
    "legitimate_interests": N_("legitimate interests (GDPR art. 6(1)(f))"),
    "legitimate_interest": N_("legitimate interests (GDPR art. 6(1)(f))"),
    "soft_opt_in": N_(
        "existing customers, similar products (soft opt-in: ePrivacy Directive art. 13(2); "
        "GDPR art. 6(1)(f))"
    ),
}


def render(catalogue: Catalogue, locale: str, now: datetime | None = None) -> bytes:
    """The register of ``catalogue`` in ``locale``, as PDF bytes."""
    _ = translations(locale).gettext
    controller, moment = catalogue.controller, iso(now or utcnow())
    title = _("Register of purposes")
    doc = Document(
        f"{title} — {controller.name}",
        locale,
        author=controller.name,
        footer=f"{controller.name} — {title}",
        created=now or utcnow(),
    )
    doc.heading(title, 0)
    doc.paragraph(
        _("Controller: %(name)s, %(address)s (%(email)s).")
        % {
            "name": controller.name,
            "address": controller.address,
            "email": controller.contact_email,
        }
    )
    doc.paragraph(
        _(
            "The purposes %(controller)s records decisions for, as the purpose catalogue "
            "defines them on %(moment)s. Each text version is identified by its SHA-256: "
            "every recorded decision cites the version the person read."
        )
        % {"controller": controller.name, "moment": format_moment(moment, locale)}
    )
    doc.fields([(_("Privacy policy"), controller.privacy_policy_url)])
    for purpose in catalogue.purposes.values():
        _purpose(doc, catalogue, purpose, locale)
    return doc.output()


def _purpose(doc: Document, catalogue: Catalogue, purpose: Purpose, locale: str) -> None:
    _ = translations(locale).gettext
    doc.pdf.add_page()  # one page (at least) per purpose: each files on its own
    doc.heading(f"{purpose.text(locale).title} ({purpose.id})")
    basis = str(purpose.legal_basis or "consent")
    forms = [form.id for form in catalogue.forms.values() if purpose.id in form.purposes]
    doc.fields(
        [
            (_("Identifier"), purpose.id),
            (_("Version"), purpose.version),
            (_("Legal basis"), _(LEGAL_BASES[basis]) if basis in LEGAL_BASES else basis),
            (_("Validity"), _validity(purpose, locale)),
            (_("E-mail marketing"), _("yes") if purpose.email_marketing else _("no")),
            (_("Act! fields"), ", ".join(f"{k}: {v}" for k, v in purpose.act.items()) or "—"),
            (_("Forms asking it"), ", ".join(forms) or "—"),
        ],
        (28, 72),
    )
    for code in catalogue.locales:
        text = purpose.text(code)
        doc.heading(f"{text.title} — {code}", 2)
        for paragraph in text.text.split("\n\n"):
            if paragraph.strip():
                doc.paragraph(paragraph.strip())
        doc.paragraph(f"SHA-256 {text.sha256}", small=True)
    for code, opt_out in sorted(purpose.opt_out.items()):
        doc.heading(f"{_('Opt-out offered at collection')} — {code}", 2)
        doc.paragraph(opt_out.text)
        doc.paragraph(f"SHA-256 {opt_out.sha256} ({purpose.opt_out_version})", small=True)


def _validity(purpose: Purpose, locale: str) -> str:
    """How long an acceptance holds (``consent/validity.py``) and when renewal is asked."""
    _ = translations(locale).gettext
    if not purpose.validity_days:
        return _("no set limit: until withdrawn")
    words = _("%(days)d days after the person's last active contact about it") % {
        "days": purpose.validity_days
    }
    if purpose.renewal_days:
        days = ", ".join(str(d) for d in purpose.renewal_days)
        words = _("%(validity)s; renewal asked %(days)s days before") % {
            "validity": words,
            "days": days,
        }
    return words
