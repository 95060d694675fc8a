"""The evidence dossier: one person's evidence pack as a PDF a regulator can read.

The content is ``evidence.pack`` (the same data as the pack's JSON and printable
HTML) plus the person's signed consent receipt, laid out for reading on paper, in
French or English: what was verified and how (a list of checks, each with its
result), the person, each purpose's state, every event with its exact time and the
text version it cites, the full wording of each of those versions, every mail
template version sent (the mail sent is that text with the links and name filled
in), the forms and campaigns involved, and the receipt with its JWS.

The verification list is rendered generically, one row per check: a check is a
plain description (it holds when the whole verification holds) or a mapping with
``check``, ``ok`` and ``detail``, so checks added later (anchoring) print as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.consent.catalogue import Catalogue
from chalicelib.core.clock import parse_iso
from chalicelib.core.errors import BadInput
from chalicelib.core.i18n import format_moment, translations
from chalicelib.core.pdf import Document
from chalicelib.core.settings import Settings
from chalicelib.mail.compose import N_
from chalicelib.proof import evidence, receipts
from chalicelib.store.ledger import Ledger

#: Event fields shown in their own columns or not at all (as in evidence.html).
_SHOWN_APART = ("seq", "at", "kind", "subject", "v", "personal_salt", "prev_hash", "hash")

#: The checks ``evidence.pack`` lists, marked for translation: a check is printed in
#: the dossier's language when its words are known, as written otherwise.
CHECK_WORDS = (
    N_("event hashes and prev_hash links"),
    N_("sequence and chain head"),
    N_("IP/user-agent commitments"),
    N_("purpose states follow from their last events"),
    N_("cited wordings and mail templates stored intact"),
    N_("consent receipt cites the chain's events (id and hash)"),
)


def dossier(
    ledger: Ledger, settings: Settings, catalogue: Catalogue, subject: str, locale: str
) -> bytes:
    """The dossier of ``subject`` in ``locale``: the pack, the receipt, as PDF bytes."""
    data = evidence.pack(ledger, settings, catalogue, subject)
    return render(data, receipt_of(ledger, settings, catalogue, subject, locale), locale)


def receipt_of(
    ledger: Ledger, settings: Settings, catalogue: Catalogue, subject: str, locale: str
) -> dict[str, Any]:
    """The signed receipt (``receipts.document``), or why there is none (``error``)."""
    try:
        return receipts.document(settings, receipts.for_subject(ledger, catalogue, subject, locale))
    except BadInput as exc:  # nothing decided yet, erased, or a wording missing
        return {"error": str(exc)}


def verification_rows(
    data: dict[str, Any], receipt: dict[str, Any], translate: Callable[[str], str] = str
) -> list[tuple[str, Any, str]]:
    """(check, ok, detail) for every check: the pack's list, then the receipt's; each
    check's words through ``translate`` (a gettext function; English by default)."""
    verdict = data["evidence"]["verification"]
    rows: list[tuple[str, Any, str]] = [
        (
            translate(N_("chain of %(num)d events")) % {"num": verdict["events"]},
            verdict["ok"],
            verdict.get("reason") or "",
        )
    ]
    for check in verdict.get("checks") or []:
        if isinstance(check, dict):
            rows.append(
                (
                    translate(str(check.get("check") or "")),
                    check.get("ok"),
                    str(check.get("detail") or ""),
                )
            )
        else:
            rows.append((translate(str(check)), verdict["ok"], ""))
    rows.extend(_anchor_rows(data, translate))
    if "receipt" in receipt:
        rows.append(
            (
                translate("consent receipt cites the chain's events (id and hash)"),
                receipts.matches_chain(receipt["receipt"], data["events"]),
                receipt["receipt"].get("consentReceiptID", ""),
            )
        )
    return rows


#: The anchoring checks' names (``proof/anchor_verify.py``), marked for translation.
_ANCHOR_WORDS = (
    N_("anchor"),
    N_("coverage"),
    N_("head"),
    N_("leaf"),
    N_("inclusion proof"),
    N_("token"),
    N_("token imprint"),
    N_("token signature"),
    N_("TSA certificate"),
    N_("trusted root"),
)


def _check_name(name: str, translate: Callable[[str], str]) -> str:
    """``anchor <id>: token signature`` in the dossier's language (the id as it is)."""
    if ": " not in name:
        return translate(name)
    head, part = name.split(": ", 1)
    word, _, ident = head.partition(" ")
    return f"{translate(word)} {ident}: {translate(part)}"


def _anchor_rows(
    data: dict[str, Any], translate: Callable[[str], str] = str
) -> list[tuple[str, Any, str]]:
    """The anchoring checks (``proof/anchor_verify.py``) beside the chain's: each
    anchor's head, leaf, Merkle path and RFC 3161 token. A check that cannot run where
    the dossier is made (the token's signature without ``cryptography``, e.g. in the
    Lambda) is shown as not checked (``None``), never as passed."""
    from chalicelib.proof import anchor_verify

    return [
        (_check_name(check.check, translate), None if check.skipped else check.ok, check.detail)
        for check in anchor_verify.verify_pack(data)
        if check.check != "chain"  # the pack's own chain row comes first
    ]


def render(data: dict[str, Any], receipt: dict[str, Any], locale: str) -> bytes:
    """The dossier of a pack (``evidence.pack``) and its receipt, as PDF bytes."""
    _ = translations(locale).gettext
    controller = data["controller"]
    title = _("Evidence of consent")
    doc = Document(
        f"{title} — {controller['name']}",
        locale,
        author=controller["name"],
        footer=f"{title} — {data['subject']['key'][:12]}",
        created=parse_iso(data["generated_at"]),
    )
    doc.heading(title, 0)
    doc.paragraph(
        _("Controller: %(name)s, %(address)s (%(email)s).")
        % {
            "name": controller["name"],
            "address": controller["address"],
            "email": controller["contact_email"],
        }
    )
    doc.paragraph(
        _(
            "Produced on %(moment)s for the person below. The JSON file produced with it "
            "holds the same data, machine-readable."
        )
        % {"moment": f"{format_moment(data['generated_at'], locale)} ({data['generated_at']})"}
    )
    _verification(doc, data, receipt, locale)
    _person(doc, data, locale)
    _events(doc, data, locale)
    _texts(doc, data, locale)
    _mails(doc, data, locale)
    _involved(doc, data, locale)
    _receipt(doc, receipt, locale)
    return doc.output()


def _verification(
    doc: Document, data: dict[str, Any], receipt: dict[str, Any], locale: str
) -> None:
    _ = translations(locale).gettext
    verdict = data["evidence"]["verification"]
    doc.heading(_("Verification"))
    if verdict["ok"]:
        doc.paragraph(_("All %(num)d events verify.") % {"num": verdict["events"]}, bold=True)
    else:
        doc.paragraph(
            _("Verification failed: %(reason)s") % {"reason": verdict.get("reason")}, bold=True
        )
    doc.table(
        [_("Check"), _("Result"), _("Detail")],
        [
            (
                check,
                _("not checked here") if ok is None else _("passed") if ok else _("FAILED"),
                detail,
            )
            for check, ok, detail in verification_rows(data, receipt, _)
        ],
        (50, 12, 38),
    )
    doc.paragraph(data["chain"]["how_to_verify"], small=True)


def _person(doc: Document, data: dict[str, Any], locale: str) -> None:
    _ = translations(locale).gettext
    doc.heading(_("The person"))
    doc.fields(list(data["subject"].items()), (28, 72))
    doc.heading(_("Current consent, per purpose"))
    doc.table(
        [_("Purpose"), _("State"), _("Since"), _("Channel"), _("Text version"), "Act!"],
        [
            (
                f"{item['title']} ({item['id']})",
                item.get("state"),
                item.get("decided_at"),
                item.get("channel"),
                item.get("purpose_version"),
                item["act_sync"].get("status"),
            )
            for item in data["purposes"]
        ],
        (25, 11, 25, 15, 15, 9),
        small=True,
    )


def _text_refs(data: dict[str, Any]) -> dict[str, str]:
    """T1, T2...: how an event points at the full wording printed further on."""
    return {text["sha256"]: f"T{n}" for n, text in enumerate(data["texts"], 1)}


def _events(doc: Document, data: dict[str, Any], locale: str) -> None:
    """One block per event (a block may break across pages; a table row may not)."""
    _ = translations(locale).gettext
    refs = _text_refs(data)
    doc.heading(_("Every event"))
    for event in data["events"]:
        lines = [
            f"{name}: {value}"
            for name, value in event.items()
            if name not in _SHOWN_APART and value not in (None, "", [])
        ]
        sha = event.get("text_sha256")
        if sha:
            lines.append(_("text shown: %(ref)s (below)") % {"ref": refs.get(sha, sha[:16])})
        lines += [f"prev_hash: {event.get('prev_hash')}", f"hash: {event.get('hash')}"]
        doc.paragraph(f"#{event.get('seq')}  {event.get('at')}  {event.get('kind')}", bold=True)
        doc.preformatted("\n".join(lines))


def _texts(doc: Document, data: dict[str, Any], locale: str) -> None:
    _ = translations(locale).gettext
    refs = _text_refs(data)
    doc.heading(_("The texts shown"))
    for text in data["texts"]:
        doc.heading(
            f"{refs[text['sha256']]}. {text.get('title')} — {text.get('locale')}, "
            f"{_('version')} {text.get('purpose_version')}",
            2,
        )
        doc.paragraph(f"SHA-256 {text['sha256']}", small=True)
        for paragraph in (text.get("text") or "").split("\n\n"):
            if paragraph.strip():
                doc.paragraph(paragraph.strip())
    if not data["texts"]:
        doc.paragraph("—")


def _mails(doc: Document, data: dict[str, Any], locale: str) -> None:
    _ = translations(locale).gettext
    doc.heading(_("The e-mails sent (template versions)"))
    templates = data["evidence"]["mail_templates"]
    if templates:
        doc.paragraph(
            _(
                "Each mail sent is exactly this text with the person's links and name "
                "filled in where the markers stand."
            ),
            small=True,
        )
    for template in templates:
        doc.heading(
            f"{template.get('subject')} ({template.get('mail_kind')}, {template.get('locale')})",
            2,
        )
        doc.paragraph(f"SHA-256 {template['sha256']}", small=True)
        doc.preformatted(template.get("text") or "")
    if not templates:
        doc.paragraph("—")


def _involved(doc: Document, data: dict[str, Any], locale: str) -> None:
    _ = translations(locale).gettext
    doc.heading(_("Forms and campaigns involved"))
    lines = [
        f"{_('Form')} {form['id']}: {', '.join(form.get('purposes') or [])}; "
        f"{', '.join(form.get('allowed_origins') or [])}"
        for form in data["evidence"]["forms"]
    ] + [
        f"{_('Campaign')} {campaign['campaign_id']}: "
        f"{', '.join(campaign.get('purposes') or [])}, {campaign.get('delivery') or ''}, "
        f"{campaign.get('created_at') or ''}"
        for campaign in data["evidence"]["campaigns"]
    ]
    doc.bullets(lines or ["—"])


def _receipt(doc: Document, receipt: dict[str, Any], locale: str) -> None:
    _ = translations(locale).gettext
    doc.heading(_("Consent receipt"))
    if "receipt" not in receipt:
        doc.paragraph(receipt.get("error") or "—")
        return
    body = receipt["receipt"]
    doc.fields(
        [
            ("consentReceiptID", body.get("consentReceiptID")),
            ("consentTimestamp", body.get("consentTimestamp")),
            ("collectionMethod", body.get("collectionMethod")),
            ("jurisdiction", body.get("jurisdiction")),
            ("language", body.get("language")),
        ],
        (28, 72),
    )
    rows = (body.get(receipts.EXTENSION) or {}).get("purposes") or []
    doc.table(
        [_("Purpose"), _("State"), _("Since"), _("Text version"), _("Event")],
        [
            (
                row.get("title"),
                row.get("state"),
                row.get("decided_at"),
                f"{row.get('purpose_version') or ''} {(row.get('text_sha256') or '')[:16]}",
                f"#{row.get('event_seq')} {(row.get('event_hash') or '')[:16]}",
            )
            for row in rows
        ],
        (26, 12, 22, 20, 20),
        small=True,
    )
    doc.paragraph(_("Signed (JWS, HMAC-SHA256); anyone holding the key can check it:"), small=True)
    doc.preformatted(receipt["jws"])
