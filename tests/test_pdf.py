"""PDFs people and regulators read: the access report, the evidence dossier, the register.

Each PDF is made through the real path (the rights link, the admin API, the CLI,
against DynamoDB Local), then read back as a reader would: its text extracted by
pypdf and compared with the JSON the same data gives, its metadata (language,
title, outline, embedded fonts), and its pages rendered to PNG by PDFium.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

from chalicelib.cli import main
from chalicelib.consent import register
from chalicelib.consent.catalogue import PurposeText
from chalicelib.core.services import get_catalogue, get_ledger
from chalicelib.core.settings import get_settings
from chalicelib.proof import dossier, evidence
from tests.support import pdf
from tests.support.admin import auth
from tests.support.rights import key

#: A browser following a link: API Gateway looks at the first type only (text/html).
PDF_ACCEPT = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
SCREENSHOTS = os.environ.get("OPTINPROOF_SCREENSHOTS")


def _keep(data: bytes, name: str, tmp_path: Path) -> list[Path]:
    """Pages to PNG (in docs/screenshots/pdf with OPTINPROOF_SCREENSHOTS), none blank."""
    folder = Path(SCREENSHOTS) / "pdf" if SCREENSHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    pages = pdf.pngs(data, folder, name)
    assert pages and all(pdf.inked(page) > 0.004 for page in pages), name
    return pages


def _download(client: Any, path: str, headers: dict[str, str] | None = None) -> Any:
    answer = client.http.get(path, headers={**PDF_ACCEPT, **(headers or {})})
    assert answer.status_code == 200, answer.body[:300]
    assert answer.headers["Content-Type"] == "application/pdf"
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["Content-Disposition"].startswith('attachment; filename="')
    assert max(answer.body) < 128  # 7-bit: it travels through API Gateway as text
    return answer


# -- the access report ------------------------------------------------------------------------

def test_report_pdf_holds_what_the_report_page_shows_in_french(person, client, tmp_path):
    page = client.http.get(person["rights"] + "?lang=fr").body.decode()
    assert f'href="{person["rights"]}/report.pdf"' in page
    assert "Télécharger mes données (PDF)" in page

    answer = _download(client, person["rights"] + "/report.pdf?lang=fr")
    assert answer.headers["Content-Disposition"] == 'attachment; filename="my-data-fr.pdf"'
    data = json.loads(client.http.get(person["rights"] + "/export.json").body)
    words = pdf.text(answer.body)
    for expected in ("Les données que nous détenons sur vous", "zoe@example.eu", "Zoé",
                     "Accepté", "Refusé", "Tout ce qui s'est passé", "form:website",
                     "Combien de temps nous les gardons"):
        assert expected in words, expected
    for purpose in data["purposes"]:
        assert purpose["title"] in words
    for text in data["texts"]:  # the exact wording they saw, every paragraph
        for paragraph in text["text"].split("\n\n"):
            assert " ".join(paragraph.split()) in words
        assert text["sha256"] in pdf.squeezed(answer.body)
    assert len([e for e in data["events"]]) == data["chain"]["events"]

    document = pdf.reader(answer.body)
    assert document.trailer["/Root"]["/Lang"] == "fr"
    assert document.metadata.title == "Les données que nous détenons sur vous"
    assert document.trailer["/Root"]["/ViewerPreferences"]["/DisplayDocTitle"]
    assert document.trailer["/Root"]["/MarkInfo"]["/Marked"]  # section titles are tagged
    assert "/StructTreeRoot" in document.trailer["/Root"]
    assert pdf.outline(answer.body)[:3] == [
        "Les données que nous détenons sur vous", "Vous concernant",
        "Votre consentement, par finalité"]
    fonts = pdf.fonts(answer.body)
    assert fonts and all(embedded for _, embedded in fonts), fonts
    _keep(answer.body, "report-pdf-fr", tmp_path)


def test_report_pdf_in_english_and_the_same_errors_as_the_page(person, client, tmp_path):
    answer = _download(client, person["rights"] + "/report.pdf?lang=en")
    words = pdf.text(answer.body)
    assert "The data we hold about you" in words and "Accepted" in words
    assert pdf.reader(answer.body).trailer["/Root"]["/Lang"] == "en"
    _keep(answer.body, "report-pdf-en", tmp_path)

    bad = person["rights"][:-6] + "xxxxxx"
    page, download = client.http.get(bad), client.http.get(bad + "/report.pdf",
                                                            headers=PDF_ACCEPT)
    assert download.status_code == page.status_code >= 400
    assert download.headers["Content-Type"].startswith("text/html")
    assert download.body == page.body


def test_report_pdf_over_real_http_arrives_byte_for_byte(person, live_server):
    """Chalice's threaded HTTP server, a browser's Accept: the file as the test client got it."""
    import urllib.request

    request = urllib.request.Request(live_server + person["rights"] + "/report.pdf?lang=fr",
                                     headers=PDF_ACCEPT)
    with urllib.request.urlopen(request, timeout=60) as answer:
        assert answer.headers["Content-Type"] == "application/pdf"
        data = answer.read()
    assert int(answer.headers["Content-Length"]) == len(data)
    assert "zoe@example.eu" in pdf.text(data) and max(data) < 128


# -- the evidence dossier ---------------------------------------------------------------------

def test_dossier_through_the_admin_api_holds_the_pack_and_the_receipt(
        person, client, admin_env, tmp_path):
    pack = json.loads(client.http.get(f"/admin/evidence?email={person['email']}",
                                      headers=auth()).body)
    answer = _download(client, f"/admin/evidence?email={person['email']}&format=pdf&lang=fr",
                       headers=auth())
    _keep(answer.body, "dossier-pdf-fr", tmp_path)
    words, whole = pdf.text(answer.body), pdf.squeezed(answer.body)
    for expected in ("Preuve du consentement", "Vérification", "réussie",
                     "chaîne de %d événements" % len(pack["events"]),
                     "engagements sur l'adresse IP et le navigateur",
                     "le reçu de consentement cite les événements de la chaîne",
                     "Reçu de consentement", "zoe@example.eu"):
        assert expected in words, expected
    assert "ÉCHEC" not in words
    for event in pack["events"]:  # every event, its kind and its hash
        assert event["hash"] in whole and event["kind"] in words
    for number, text in enumerate(pack["texts"], 1):
        assert f"T{number}. {text['title']}" in words and text["sha256"] in whole
    for template in pack["evidence"]["mail_templates"]:  # the mails as sent
        assert template["sha256"] in whole and template["subject"] in words
    assert "⟦confirm_url⟧" in words
    receipt = json.loads(client.http.get(person["rights"] + "/receipt.json").body)
    assert receipt["receipt"]["consentReceiptID"] in words
    assert receipt["jws"].split(".")[0] in whole
    assert pdf.reader(answer.body).trailer["/Root"]["/Lang"] == "fr"
    assert {"Vérification", "La personne", "Tous les événements", "Reçu de consentement"} <= set(
        pdf.outline(answer.body))

    bad = client.http.get(f"/admin/evidence?email={person['email']}&format=pdf&lang=de",
                          headers={**auth(), "Accept": "application/pdf"})
    assert bad.status_code == 400 and "lang" in json.loads(bad.body)["message"]
    assert client.http.get(f"/admin/evidence?email={person['email']}&format=pdf").status_code \
        == 401


def test_dossier_renders_any_check_it_is_given(person):
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    subject = key(person["email"])
    data = evidence.pack(ledger, settings, catalogue, subject)
    data["evidence"]["verification"]["checks"].append(
        {"check": "anchor inclusion proof", "ok": False, "detail": "no timestamp token yet"})
    receipt = dossier.receipt_of(ledger, settings, catalogue, subject, "en")
    rows = dossier.verification_rows(data, receipt)
    assert ("anchor inclusion proof", False, "no timestamp token yet") in rows
    # the anchoring checks of the pack itself follow (none yet: coverage says so)
    assert any(check == "coverage" for check, _, _ in rows)
    words = pdf.text(dossier.render(data, receipt, "en"))
    assert "anchor inclusion proof FAILED no timestamp token yet" in words
    assert "event hashes and prev_hash links passed" in words


def test_dossier_of_a_person_without_decisions_says_why_there_is_no_receipt(env, mint):
    mint("nobody-decided@example.eu", "newsletter")
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    subject = key("nobody-decided@example.eu")
    receipt = dossier.receipt_of(ledger, settings, catalogue, subject, "en")
    assert "error" in receipt
    words = pdf.text(dossier.dossier(ledger, settings, catalogue, subject, "en"))
    assert "Consent receipt" in words and "a consent receipt records decisions" in words


def test_cli_evidence_writes_the_dossier_beside_the_pack(person, tmp_path, capsys):
    assert main(["evidence", "--email", person["email"], "--out", str(tmp_path),
                 "--locale", "en", "--pdf"]) == 0
    files = capsys.readouterr().out.splitlines()
    assert [Path(f).suffix for f in files] == [".json", ".html", ".pdf"]
    data = Path(files[2]).read_bytes()
    assert "Evidence of consent" in pdf.text(data)
    assert pdf.reader(data).trailer["/Root"]["/Lang"] == "en"


# -- the register of purposes -----------------------------------------------------------------

def test_register_has_a_page_per_purpose_with_every_text_and_version(env, tmp_path, capsys):
    out = tmp_path / "register-fr.pdf"
    assert main(["purposes", "register", "--locale", "fr", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    data, catalogue = out.read_bytes(), get_catalogue()
    words, whole = pdf.text(data), pdf.squeezed(data)
    assert "Registre des finalités" in words
    assert len(pdf.reader(data).pages) >= 1 + len(catalogue.purposes)
    for purpose in catalogue.purposes.values():
        assert f"({purpose.id})" in words and purpose.version in words
        for text in purpose.texts.values():
            assert text.title in words and text.sha256 in whole
            assert " ".join(text.text.split("\n\n")[0].split()) in words
        if purpose.validity_days:
            assert f"{purpose.validity_days} jours après le dernier contact actif" in words
    assert "consentement (RGPD, art. 6.1.a)" in words
    _keep(data, "register-pdf-fr", tmp_path)


def test_register_prints_each_basis_its_opt_out_and_a_consent_without_limit(env):
    catalogue = get_catalogue()
    first, *others = catalogue.purposes.values()
    objected = dataclasses.replace(
        first, legal_basis="legitimate_interest", validity_days=None, renewal_days=(),
        opt_out={"en": PurposeText("en", "", "You may object at any time, in one click.",
                                   "ab" * 32)}, opt_out_version="o1")
    purposes = {objected.id: objected, **{p.id: p for p in others}}
    words = pdf.text(register.render(dataclasses.replace(catalogue, purposes=purposes), "en"))
    assert "legitimate interests (GDPR art. 6(1)(f))" in words
    assert "no set limit: until withdrawn" in words
    assert "Opt-out offered at collection — en You may object at any time, in one click." in words
    for purpose in others:
        if purpose.validity_days and purpose.renewal_days:
            assert (f"{purpose.validity_days} days after the person's last active contact about "
                    f"it; renewal asked {', '.join(map(str, purpose.renewal_days))} days before"
                    ) in words


def test_admin_api_register_and_report_pdfs(person, client, admin_env):
    register_pdf = _download(client, "/admin/register.pdf?lang=en", headers=auth())
    no_accept = client.http.get("/admin/register.pdf?lang=en", headers=auth())
    assert no_accept.status_code == 200 and no_accept.body.startswith(b"%PDF-")
    assert "Register of purposes" in pdf.text(register_pdf.body)
    assert register_pdf.headers["Content-Disposition"] == 'attachment; filename="register-en.pdf"'
    report = _download(client, f"/admin/report.pdf?email={person['email']}", headers=auth())
    assert "zoe@example.eu" in pdf.text(report.body)
    missing = client.http.get("/admin/report.pdf?email=nobody@example.eu", headers=auth())
    assert missing.status_code == 404
    assert client.http.get("/admin/register.pdf?lang=xx", headers=auth()).status_code == 400


# -- the file itself ---------------------------------------------------------------------------

def test_a_pdf_is_seven_bit_ascii_with_a_cross_reference_that_points_at_each_object(env):
    data = register.render(get_catalogue(), "en")
    assert max(data) < 128 and data.startswith(b"%PDF-1.")
    start = int(data[data.rindex(b"startxref"):].split()[1])
    lines = data[start:].split(b"\n")
    assert lines[0] == b"xref"
    count = int(lines[1].split()[1])
    for number, entry in enumerate(lines[3:2 + count], 1):
        offset = int(entry[:10])
        assert data[offset:].startswith(b"%d 0 obj\n" % number), number
    document = pdf.reader(data)  # strict enough: a wrong /Length breaks the streams
    assert all(page.extract_text() for page in document.pages)
    assert b"/Filter [/ASCII85Decode /FlateDecode]" in data
