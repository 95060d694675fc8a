"""Legal basis per purpose (soft opt-in, legitimate interest) and withdrawal reasons.

A purpose not on consent is never offered as Accept / Refuse: the person is informed,
the opt-out wording offered is recorded (version, SHA-256, time) at collection and in
every mail, and an objection is honoured exactly like a withdrawal (state, Act!,
aemOptOut, counters). A withdrawal may give a reason in one optional click.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jsonschema
import pytest

from chalicelib.consent import rules, stats
from chalicelib.consent.catalogue import parse_catalogue
from chalicelib.core.errors import CatalogueError
from chalicelib.core.services import get_catalogue, get_ledger
from chalicelib.core.settings import get_settings
from chalicelib.proof import audit, receipts
from chalicelib.rights import access
from chalicelib.store import keys
from chalicelib.web import admin_auth, dashboard, dashboard_lifecycle
from tests.conftest import BASIS_PURPOSES, TEST_FORMS, form_fields, new_secret, scan_table
from tests.support.act import contact_by_email, field_key
from tests.support.consent import decide as decide_directly
from tests.support.rights import key
from tests.support.signup import FORM, decide, sign_up

ROOT = Path(__file__).resolve().parent.parent
EXPORT_SCHEMA = json.loads((ROOT / "schemas" / "subject-export.v1.json").read_text())
RECEIPT_SCHEMA = json.loads((ROOT / "schemas" / "consent-receipt.v1.json").read_text())
EMAIL = "demo@example.com"


def shipped(extra: str) -> str:
    return (ROOT / "catalogue.toml").read_text(encoding="utf-8").split("[[forms]]")[0] + extra


def kinds(subject: str, purpose: str) -> list[dict[str, Any]]:
    return [e for e in get_ledger().events(subject) if e.get("purpose") == purpose]


def counters(pk: str) -> dict[str, dict[str, int]]:
    return stats.per_purpose(get_ledger().query(pk, "S"))


# -- the catalogue -------------------------------------------------------------------------


def test_the_catalogue_states_each_purposes_basis_with_its_opt_out_versioned():
    catalogue = parse_catalogue(shipped(BASIS_PURPOSES + TEST_FORMS), "catalogue.toml")
    assert catalogue.get("newsletter").legal_basis == "consent"
    assert catalogue.get("newsletter").opt_out == {}
    tips = catalogue.get("customer_tips")
    assert tips.legal_basis == "soft_opt_in" and len(tips.opt_out_version or "") == 16
    assert catalogue.get("trade_news").legal_basis == "legitimate_interest"
    changed = parse_catalogue(
        shipped(BASIS_PURPOSES.replace("free of charge", "at no cost") + TEST_FORMS), "c.toml"
    ).get("customer_tips")
    assert changed.opt_out_version != tips.opt_out_version  # a word changed: a new version
    assert changed.opt_out["fr"].sha256 == tips.opt_out["fr"].sha256
    assert changed.version == tips.version  # the purpose text itself did not change


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ('legal_basis = "soft_opt_in"', 'legal_basis = "implied"'),
            "legal_basis 'implied' must be one of",
        ),
        (
            (
                'opt_out.fr = "Vous pouvez vous y opposer à tout moment, sans frais, avec le lien de '
                'chaque e-mail."\n',
                "",
            ),
            "opt_out.fr is missing or empty",
        ),
        (
            ('legal_basis = "legitimate_interest"\n', ""),
            "opt_out is only for a legal_basis other than consent",
        ),
    ],
)
def test_a_basis_without_its_opt_out_or_unknown_is_refused_naming_the_line(edit, message):
    raw = shipped(BASIS_PURPOSES.replace(*edit))
    with pytest.raises(CatalogueError, match=message) as caught:
        parse_catalogue(raw, "catalogue.toml")
    assert "catalogue.toml line " in str(caught.value)


def test_a_non_consent_purpose_without_any_opt_out_is_refused():
    raw = shipped(BASIS_PURPOSES.split("opt_out.en")[0] + "\n")
    with pytest.raises(CatalogueError, match="legal_basis soft_opt_in needs opt_out"):
        parse_catalogue(raw, "catalogue.toml")


# -- pages: informed, keep or object, never Accept -------------------------------------------


def test_the_page_offers_keep_or_object_and_never_accept_for_a_soft_opt_in(basis_env, client, mint):
    issued = mint("ann@example.eu", "newsletter", "customer_tips")
    for lang in ("en", "fr"):
        body = client.http.get(f"/c/{issued.token}?lang={lang}").body.decode()
        assert 'name="decision.customer_tips" value="keep"' in body
        assert 'name="decision.customer_tips" value="object"' in body
        assert 'name="decision.customer_tips" value="accept"' not in body
        assert 'name="decision.newsletter" value="accept"' in body  # consent stays asked
    en = client.http.get(f"/c/{issued.token}?lang=en").body.decode()
    assert "free of charge, with the link in every e-mail" in en
    assert "Existing customer (soft opt-in)" in en and "You have not objected." in en
    fr = client.http.get(f"/c/{issued.token}?lang=fr").body.decode()
    assert "sans frais, avec le lien de chaque e-mail" in fr and "Vous opposer" in fr


def test_an_objection_is_recorded_as_a_withdrawal_with_the_opt_out_offered(basis_env, client, mint):
    issued = mint("ann@example.eu", "newsletter", "customer_tips")
    answer = decide(client, f"/c/{issued.token}", newsletter="accept", customer_tips="object")
    assert answer.status_code == 200, answer.body
    assert "Objected" in answer.body.decode()
    tips = get_catalogue().get("customer_tips")
    [event] = kinds(issued.subject, "customer_tips")
    assert event["kind"] == "withdrawn" and event["objection"] is True
    assert event["legal_basis"] == "soft_opt_in" and event.get("previous_state") is None
    assert event["opt_out_version"] == tips.opt_out_version
    assert event["opt_out_sha256"] == tips.opt_out["en"].sha256 and event["at"]
    [accepted] = kinds(issued.subject, "newsletter")
    assert accepted["legal_basis"] == "consent" and "opt_out_sha256" not in accepted
    stored = get_ledger().get(*keys.content(keys.TEXT, tips.opt_out["en"].sha256))
    assert stored["text"] == tips.opt_out["en"].text and stored["wording"] == "opt_out"
    state = get_ledger().current(issued.subject)[1]["customer_tips"]
    assert state["state"] == "withdrawn" and state["legal_basis"] == "soft_opt_in"
    assert counters(keys.STATS_PURPOSES)["customer_tips"]["withdrawn"] == 1
    assert audit.verify_subject(get_ledger(), issued.subject).ok

    lifted = decide(client, f"/c/{issued.token}", customer_tips="keep")
    assert lifted.status_code == 200 and "Not objected" in lifted.body.decode()
    last = kinds(issued.subject, "customer_tips")[-1]
    assert last["kind"] == "accepted" and last["objection"] is False
    assert decide(client, f"/c/{issued.token}", customer_tips="keep").status_code == 200
    assert len(kinds(issued.subject, "customer_tips")) == 2  # keeping again changes nothing


def test_accept_for_a_soft_opt_in_or_object_for_a_consent_is_a_400_changing_nothing(
    basis_env, client, mint
):
    issued = mint("ann@example.eu", "newsletter", "customer_tips")
    before = scan_table(get_ledger())
    for choices, named in (
        ({"customer_tips": "accept"}, "keep or object"),
        ({"newsletter": "object"}, "accept or refuse"),
    ):
        answer = decide(client, f"/c/{issued.token}", **choices)
        assert answer.status_code == 400 and named in answer.body.decode()
    assert scan_table(get_ledger()) == before


def test_a_withdraw_link_objects_to_every_non_consent_purpose(basis_env, client, mint):
    mint("ann@example.eu", "newsletter", "trade_news")
    withdraw = rules.issue_link(
        get_ledger(),
        get_settings(),
        get_catalogue(),
        "ann@example.eu",
        ["newsletter", "trade_news"],
        kind="withdraw",
    )
    page = client.http.get(f"/u/{withdraw.token}").body.decode()
    assert "Legitimate interest (work address)" in page
    answer = client.http.post(
        f"/u/{withdraw.token}",
        body="",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200
    assert "your objection is recorded" in answer.body.decode()
    [objection] = kinds(withdraw.subject, "trade_news")
    assert objection["kind"] == "withdrawn" and objection["objection"] is True
    assert objection["legal_basis"] == "legitimate_interest" and objection["method"] == "page"
    [refusal] = kinds(withdraw.subject, "newsletter")  # never accepted: refused, as before
    assert refusal["kind"] == "refused" and "withdrawal_reason" not in refusal
    assert audit.verify_subject(get_ledger(), withdraw.subject).ok  # the opt-out is stored


# -- collection and mails --------------------------------------------------------------------


def test_signup_and_every_mail_record_the_opt_out_offered(mail_env, basis_env, client, mail_sink):
    sign_up(client, "tip@example.eu", ("newsletter", "customer_tips"), form_id="shop")
    [mail] = mail_sink.wait_for("tip@example.eu")
    text = mail.text()
    assert "Care tips for what you bought: you can object at any time with the same link." in text
    assert "free of charge, with the link in every e-mail" in text and "/u/" in text
    tips = get_catalogue().get("customer_tips")
    events = list(get_ledger().events(key("tip@example.eu")))
    requested = [e for e in events if e["kind"] == "requested"]
    by_purpose = {e["purpose"]: e for e in requested}
    assert by_purpose["customer_tips"]["legal_basis"] == "soft_opt_in"
    assert by_purpose["customer_tips"]["opt_out_sha256"] == tips.opt_out["en"].sha256
    assert by_purpose["newsletter"]["legal_basis"] == "consent"
    [sent] = [e for e in events if e["kind"] == "mail_sent"]
    assert sent["opt_outs_offered"] == [
        {
            "purpose": "customer_tips",
            "legal_basis": "soft_opt_in",
            "opt_out_version": tips.opt_out_version,
            "opt_out_sha256": tips.opt_out["en"].sha256,
        }
    ]
    export = access.export(get_ledger(), get_settings(), get_catalogue(), key("tip@example.eu"))
    assert tips.opt_out["en"].sha256 in {t["sha256"] for t in export["texts"]}


# -- exports and receipts ----------------------------------------------------------------------


def test_export_evidence_and_receipt_carry_the_basis(basis_env, mint):
    decide_directly("ann@example.eu", newsletter="accept", customer_tips="object")
    decide_directly("ann@example.eu", trade_news="keep")  # nothing objected: nothing recorded
    subject = key("ann@example.eu")
    ledger, catalogue = get_ledger(), get_catalogue()
    export = access.export(ledger, get_settings(), catalogue, subject)
    jsonschema.validate(export, EXPORT_SCHEMA)
    bases = {row["id"]: row["legal_basis"] for row in export["purposes"]}
    assert bases == {"newsletter": "consent", "customer_tips": "soft_opt_in"}
    profile, states = ledger.current(subject)
    receipt = receipts.build(catalogue, subject, profile, states, ledger.events(subject))
    jsonschema.validate(receipt, RECEIPT_SCHEMA)
    rows = {row["id"]: row for row in receipt["x-optinproof"]["purposes"]}
    assert rows["customer_tips"]["legal_basis"] == "soft_opt_in"
    assert rows["newsletter"]["legal_basis"] == "consent"
    assert len(receipt["services"][0]["purposes"]) == 1  # only the consent is a consent


def test_kantara_services_never_list_a_non_consent_purpose_as_consent(basis_env, client, mint):
    issued = mint("ann@example.eu", "customer_tips")
    decide(client, f"/c/{issued.token}", customer_tips="object")
    decide(client, f"/c/{issued.token}", customer_tips="keep")  # accepted, on soft opt-in
    ledger = get_ledger()
    profile, states = ledger.current(issued.subject)
    receipt = receipts.build(get_catalogue(), issued.subject, profile, states)
    jsonschema.validate(receipt, RECEIPT_SCHEMA)
    assert receipt["services"] == []
    assert receipt["x-optinproof"]["purposes"][0]["legal_basis"] == "soft_opt_in"


# -- Act! -----------------------------------------------------------------------------------


def test_an_objection_reaches_act_with_its_basis_in_the_same_patch(basis_env, act_sim, pusher):
    decide_directly(EMAIL, newsletter="accept", customer_tips="object")
    pusher.keys()
    pusher.history_type()
    tips = (keys.subject_pk(key(EMAIL)), keys.purpose_sk("customer_tips"))
    news = (keys.subject_pk(key(EMAIL)), keys.purpose_sk("newsletter"))
    assert pusher.push(*news, force=True)[0] == "synced"
    with act_sim.lock:
        mark = len(act_sim.requests)
    assert pusher.push(*tips, force=True)[0] == "synced"
    with act_sim.lock:
        calls = [(m, p.split("?")[0].rsplit("/", 1)[0]) for m, p, _ in act_sim.requests[mark:]]
    assert [m for m, _ in calls] == ["PATCH", "POST"]  # the floor: two calls per decision
    contact = contact_by_email(act_sim, EMAIL)
    fields = contact["customFields"]
    assert fields[field_key(act_sim, "Consent Tips")] == "Withdrawn"
    assert fields[field_key(act_sim, "Consent Tips Basis")] == "soft_opt_in"
    history = act_sim.history_for(contact["id"])
    assert any("legal_basis=soft_opt_in" in h["details"] for h in history)


def test_act_setup_creates_the_basis_field_and_check_reports_it(basis_env, act_sim, act_env):
    from chalicelib.act import fields
    from chalicelib.act.client import ActClient

    client = ActClient(get_settings().act)
    wanted = [w for w in fields.wanted_fields(get_catalogue()) if w.role == "basis_field"]
    assert [w.display_name for w in wanted] == ["Consent Tips Basis"]
    results = fields.check(client.contact_fields(), wanted)
    assert results[0].ok and results[0].act_type == "Character"


def test_an_objection_sets_aem_opt_out_like_a_withdrawal(basis_env, act_sim, pusher, monkeypatch):
    decide_directly(EMAIL, customer_tips="object")
    from tests.support.act import drain_all

    drain_all(pusher)
    contact = contact_by_email(act_sim, EMAIL)
    assert contact["customFields"][field_key(act_sim, "Consent Tips")] == "Withdrawn"
    if get_settings().act.aem_opt_out:
        assert contact.get("aemOptOut") is True


# -- withdrawal reasons ------------------------------------------------------------------------


def test_a_withdrawal_may_give_one_reason_counted_on_the_dashboard(
    basis_env, client, mint, monkeypatch
):
    issued = mint("ann@example.eu", "newsletter", "customer_tips")
    decide(client, f"/c/{issued.token}", newsletter="accept")
    withdraw = rules.issue_link(
        get_ledger(),
        get_settings(),
        get_catalogue(),
        "ann@example.eu",
        ["newsletter", "customer_tips"],
        kind="withdraw",
    )
    page = client.http.get(f"/u/{withdraw.token}").body.decode()
    assert 'name="reason" value="too_many"' in page and " checked" not in page
    before = scan_table(get_ledger())
    bad = client.http.post(
        f"/u/{withdraw.token}", body=urlencode({"reason": "spam"}), headers={"Content-Type": FORM}
    )
    assert bad.status_code == 400 and "too_many" in bad.body.decode()
    assert scan_table(get_ledger()) == before
    answer = client.http.post(
        f"/u/{withdraw.token}",
        body=urlencode({"reason": "too_many"}),
        headers={"Content-Type": FORM},
    )
    assert answer.status_code == 200
    for purpose in ("newsletter", "customer_tips"):
        assert kinds(issued.subject, purpose)[-1]["withdrawal_reason"] == "too_many"
    assert counters(keys.STATS_REASONS) == {
        "newsletter": {"too_many": 1},
        "customer_tips": {"too_many": 1},
    }

    monkeypatch.setenv("ADMIN_SECRET_KEYS", new_secret())
    token = admin_auth.mint(get_settings(), "olga@example.eu", 600)
    cookie = client.http.get(f"/admin/login?{urlencode({'token': token})}").headers["Set-Cookie"]
    cookie = cookie.split(";", 1)[0]
    board = client.http.get("/admin/dashboard", headers={"Cookie": cookie}).body.decode()
    assert "Why people withdraw" in board and "Existing customer (soft opt-in)" in board
    csv = client.http.get(
        "/admin/dashboard?format=csv&table=reasons", headers={"Cookie": cookie}
    ).body.decode()
    assert csv.splitlines()[0] == "purpose,title,too_many,not_relevant,never_signed_up,other,given"
    assert "newsletter,Monthly newsletter,1,0,0,0,1" in csv


def test_the_preferences_page_offers_an_optional_reason_for_a_withdrawal(basis_env, client, mint):
    issued = mint("ann@example.eu", "newsletter", "events")
    decide(client, f"/c/{issued.token}", newsletter="accept", events="accept")
    prefs = rules.issue_link(
        get_ledger(),
        get_settings(),
        get_catalogue(),
        "ann@example.eu",
        ["newsletter", "events"],
        kind="preferences",
    )
    path = f"/p/{prefs.token}"
    page = client.http.get(path).body.decode()
    assert 'name="reason" value="not_relevant"' in page
    fields = form_fields(page)
    fields.update({"decision.newsletter": "refuse", "reason": "not_relevant"})
    answer = client.http.post(path, body=urlencode(fields), headers={"Content-Type": FORM})
    assert answer.status_code == 200, answer.body
    last = kinds(issued.subject, "newsletter")[-1]
    assert last["kind"] == "withdrawn" and last["withdrawal_reason"] == "not_relevant"
    assert "withdrawal_reason" not in kinds(issued.subject, "events")[-1]  # unchanged, no reason
    fields.update({"decision.events": "refuse"})
    fields.pop("reason")
    assert (
        client.http.post(path, body=urlencode(fields), headers={"Content-Type": FORM}).status_code
        == 200
    )
    assert "withdrawal_reason" not in kinds(issued.subject, "events")[-1]  # never required
    rows = {
        r["purpose"]: r
        for r in dashboard_lifecycle.reasons(
            get_ledger(),
            get_catalogue(),
            dashboard.filters({}, get_catalogue(), get_ledger()),
            "en",
        )
    }
    assert rows["newsletter"]["not_relevant"] == 1 and rows["events"]["given"] == 0


def test_the_signup_form_offers_the_opt_out_at_collection(basis_env, client):
    from chalicelib.web import embed

    page = client.http.get("/signup/shop?lang=fr").body.decode()
    assert "sans frais, avec le lien de chaque e-mail" in page
    meta = json.loads(client.http.get("/signup/shop/form.json?lang=en").body)
    tips = next(p for p in meta["purposes"] if p["id"] == "customer_tips")
    assert tips["legal_basis"] == "soft_opt_in" and "free of charge" in tips["opt_out"]
    assert "opt_out" not in next(p for p in meta["purposes"] if p["id"] == "newsletter")
    form = get_catalogue().forms["shop"]
    assert "free of charge" in embed.snippet(
        "html", "http://testserver", form, get_catalogue(), "en"
    )


def test_the_rights_report_shows_an_objection_not_a_withdrawn_consent(basis_env, client, mint):
    issued = mint("ann@example.eu", "customer_tips")
    decide(client, f"/c/{issued.token}", customer_tips="object")
    from chalicelib.web import views

    export = access.export(get_ledger(), get_settings(), get_catalogue(), issued.subject)
    page = views.rights_report_page(
        get_settings(),
        get_catalogue(),
        "en",
        export,
        {"export": "/r/x/export.json", "erase": "/r/x/erase"},
    )
    assert "Objected (Existing customer (soft opt-in))" in page.body


def test_a_page_of_non_consent_purposes_only_asks_for_no_consent(basis_env, client, mint):
    issued = mint("ann@example.eu", "customer_tips", "trade_news")
    page = client.http.get(f"/c/{issued.token}?lang=en").body.decode()
    assert "does not need your consent for the messages below" in page
    assert "asks for your consent" not in page and 'value="accept"' not in page


def test_a_complaint_objects_to_a_soft_opt_in_and_the_chain_stays_verifiable(basis_env, mint):
    issued = mint("ann@example.eu", "newsletter", "customer_tips")
    origin = rules.Origin("ses", note={"kind": "complained"})
    get_ledger().commit(
        issued.subject,
        lambda snap: rules.plan_withdraw_all(
            snap, get_catalogue(), origin, "complaint", {"newsletter", "customer_tips"}
        ),
    )
    objection = kinds(issued.subject, "customer_tips")[-1]
    assert objection["kind"] == "withdrawn" and objection["objection"] is True
    assert objection["legal_basis"] == "soft_opt_in" and "opt_out_sha256" not in objection
    assert kinds(issued.subject, "newsletter")[-1]["kind"] == "refused"
    assert audit.verify_subject(get_ledger(), issued.subject).ok


def test_purposes_check_names_each_basis(basis_env):
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "chalicelib.cli", "purposes", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "(soft_opt_in)" in run.stdout and "(legitimate_interest)" in run.stdout
    lines = {line.split()[0]: line for line in run.stdout.splitlines()[1:]}
    assert "(" not in lines["newsletter"]
    data = json.loads(
        subprocess.run(
            [sys.executable, "-m", "chalicelib.cli", "purposes", "check", "--json"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    tips = next(p for p in data["purposes"] if p["id"] == "customer_tips")
    assert tips["legal_basis"] == "soft_opt_in" and tips["opt_out_version"]
