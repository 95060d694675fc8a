"""Preferences, access, portability and erasure, through the pages, against the real parts."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from chalicelib.proof import audit
from chalicelib.rights import erasure
from chalicelib.consent import links
from chalicelib.act import sync
from chalicelib.core.errors import Contention
from chalicelib.core.services import get_catalogue, get_ledger
from chalicelib.core.settings import get_settings
from tests.conftest import ROOT
from tests.support.rights import FORM, ask_rights, confirmed, erase, key
from tests.support.signup import decide, links_in, sign_up

SCHEMA = json.loads((ROOT / "schemas" / "subject-export.v1.json").read_text())


# -- asking for access ---------------------------------------------------------------------

def test_rights_page_answers_the_same_for_known_unknown_and_throttled(mail_env, client,
                                                                      mail_sink):
    confirmed(client, mail_sink, "ann@example.eu")
    mail_sink.clear()
    known, unknown = ask_rights(client, "ann@example.eu"), ask_rights(client, "nobody@example.eu")
    assert known.status_code == unknown.status_code == 200
    strip = lambda page: re.sub(r'value="[^"]*"', "", page.body.decode())  # noqa: E731
    assert strip(known) == strip(unknown)
    assert [m.rcpt_tos for m in mail_sink.messages] == [("ann@example.eu",)]
    mail = mail_sink.messages[0]
    assert "ann@example.eu" in mail.message["To"] and "/r/" in mail.text()
    assert "List-Unsubscribe" not in mail.message  # a rights mail withdraws nothing
    for _ in range(5):  # per address throttle (3/24h by default): same answer, no mail
        assert ask_rights(client, "ann@example.eu").status_code == 200
    assert len(mail_sink.messages) == 3


def test_bad_address_and_other_website_change_nothing(mail_env, client, mail_sink, table_items):
    before = len(table_items())
    bad = ask_rights(client, "not an address")
    assert bad.status_code == 400 and "address" in bad.body.decode().lower()
    cross = ask_rights(client, "ann@example.eu", **{"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert len(table_items()) == before and not mail_sink.messages


# -- the report and the export ---------------------------------------------------------------

def test_report_shows_what_we_hold_and_why(person, client):
    page = client.http.get(person["rights"])
    assert page.status_code == 200, page.body
    html = page.body.decode()
    for expected in ("zoe@example.eu", "Zoé", "Accepted", "Refused", "asked through a form", "accepted",
                     "form:website", "export.json", "/erase", "/p/"):
        assert expected in html, expected
    assert page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


def test_export_validates_and_holds_nobody_else(person, client, mail_sink):
    confirmed(client, mail_sink, "other@example.eu", name="Otto")
    answer = client.http.get(person["rights"] + "/export.json")
    assert answer.status_code == 200
    assert answer.headers["Content-Disposition"].startswith("attachment")
    data = json.loads(answer.body)
    jsonschema.validate(data, SCHEMA)
    assert data["subject"]["email"] == "zoe@example.eu" and data["subject"]["name"] == "Zoé"
    assert {p["id"]: p["state"] for p in data["purposes"]} == {"newsletter": "accepted",
                                                               "events": "refused"}
    assert data["chain"]["verified"] and data["chain"]["events"] == len(data["events"])
    assert {e["subject"] for e in data["events"]} == {key("zoe@example.eu")}
    text = json.dumps(data)
    assert "other@example.eu" not in text and "Otto" not in text
    assert key("other@example.eu") not in text
    assert any(t["text"] for t in data["texts"])  # the wording actually shown
    # the file alone proves the chain, IP and user-agent commitments included
    from chalicelib.proof import chain
    assert chain.verify_chain(key("zoe@example.eu"), data["events"]).ok


@pytest.mark.parametrize("kind", ["confirm", "withdraw", "preferences"])
def test_only_a_rights_link_reads_data(person, client, kind):
    token, _ = links.mint(get_settings(), kind, key(person["email"]), ["newsletter"])
    for path in (f"/r/{token}", f"/r/{token}/export.json", f"/r/{token}/erase"):
        answer = client.http.get(path)
        assert answer.status_code == 400, (path, answer.status_code)
        assert "zoe@example.eu" not in answer.body.decode()


def test_a_rights_link_cannot_decide_or_withdraw(person, client, table_items):
    token = person["rights"].removeprefix("/r/")
    before = len(table_items())
    for path in (f"/c/{token}", f"/u/{token}"):
        answer = client.http.post(path, body="decision.newsletter=refuse",
                                  headers={"Content-Type": FORM})
        assert answer.status_code == 400, path
    assert len(table_items()) == before


def test_expired_rights_link_says_so(person, client, monkeypatch):
    monkeypatch.setenv("LINK_MAX_AGE_RIGHTS", "1s")
    import time
    time.sleep(2.1)
    answer = client.http.get(person["rights"])
    assert answer.status_code == 410 and "zoe@example.eu" not in answer.body.decode()


# -- preferences -----------------------------------------------------------------------------

def test_preferences_show_every_purpose_and_record_each_change(person, client):
    page = client.http.get(person["rights"]).body.decode()
    prefs = re.search(r'href="(/p/[^"]+)"', page).group(1)
    shown = client.http.get(prefs)
    assert shown.status_code == 200
    html = shown.body.decode()
    for purpose in get_catalogue().purposes:  # all offered purposes, decided or not
        assert f'name="decision.{purpose}"' in html
    answer = decide(client, prefs, events="accept", promotions="refuse")
    assert answer.status_code == 200, answer.body
    _, states = get_ledger().current(key(person["email"]))
    assert states["events"]["state"] == "accepted" and states["promotions"]["state"] == "refused"
    assert states["newsletter"]["state"] == "accepted"  # untouched
    assert states["events"]["link_kind"] if "link_kind" in states["events"] else True
    kinds = [e for e in get_ledger().events(key(person["email"]))
             if e.get("link_kind") == "preferences" and e["kind"] in ("accepted", "refused")]
    assert {e["purpose"] for e in kinds} == {"events", "promotions"}
    assert audit.verify_subject(get_ledger(), key(person["email"])).ok


# -- erasure -----------------------------------------------------------------------------------

def _contact(act_sim: Any, email: str) -> dict[str, Any]:
    return next(c for c in act_sim.contacts.values() if c.get("emailAddress") == email)


def _personal_traces(table_items: Any, *needles: str) -> list[dict[str, Any]]:
    found = []
    for item in table_items():
        text = json.dumps(item, default=str, ensure_ascii=False).lower()
        if any(n.lower() in text for n in needles):
            found.append(item)
    return found


def test_erasure_needs_the_explicit_confirmation(person, client, table_items):
    before = table_items()
    answer = erase(client, person["rights"], confirm=False)
    assert answer.status_code == 400 and "Tick the box" in answer.body.decode()
    assert len(table_items()) == len(before)


def test_erasure_is_complete_keeps_a_verifiable_chain_and_clears_act(person, client,
                                                                     table_items, act_sim,
                                                                     pusher):
    from chalicelib.act import sync
    sync.drain(pusher, sync.due_keys(get_ledger()))
    contact = next(c for c in act_sim.contacts.values()
                   if c.get("emailAddress") == "zoe@example.eu")
    assert any(v for v in (contact.get("customFields") or {}).values())
    events = [e for e in get_ledger().events(key(person["email"]))]
    ip = next(e["ip"] for e in events if e.get("ip"))
    assert any(e.get("user_agent") for e in events)
    user_agents = {e["user_agent"] for e in events if e.get("user_agent")}

    answer = erase(client, person["rights"])
    assert answer.status_code == 200, answer.body
    assert "erased on" in answer.body.decode()

    traces = _personal_traces(table_items, "zoe@example.eu", "Zoé", *user_agents)
    assert traces == []
    assert not [i for i in table_items() if i.get("pk", "").startswith("SUBJ#")
                and ip in json.dumps(i)]
    subject = key(person["email"])
    report = audit.verify_subject(get_ledger(), subject)
    assert report.ok, report
    assert [e["kind"] for e in get_ledger().events(subject)][-1] == "erased"
    tomb = erasure.tombstone(get_ledger(), subject)
    assert tomb["act_status"] == "done" and tomb["requested_by"] == "rights_page"
    contact = act_sim.contacts[contact["id"]]
    keys = [k for k, v in (contact.get("customFields") or {}).items() if v]
    assert not [k for k in keys if "newsletter" in k.lower() or "event" in k.lower()], keys
    # every link of the person is dead now
    for path in (person["rights"], person["confirm"]):
        assert client.http.get(path).status_code == 410
    # idempotent
    again = erasure.erase(get_ledger(), get_catalogue(), subject, "cli", "clear")
    assert again.already and again.events_stripped == 0


def test_erasure_can_delete_the_act_contact(person, client, act_sim, pusher, monkeypatch):
    from chalicelib.act import sync
    sync.drain(pusher, sync.due_keys(get_ledger()))
    contact_id = next(c["id"] for c in act_sim.contacts.values()
                      if c.get("emailAddress") == "zoe@example.eu")
    monkeypatch.setenv("ERASURE_ACT", "delete")
    assert erase(client, person["rights"]).status_code == 200
    assert contact_id not in act_sim.contacts


def test_signup_after_erasure_starts_afresh_and_says_so(person, client, mail_sink):
    assert erase(client, person["rights"]).status_code == 200
    mail_sink.clear()
    sign_up(client, "zoe@example.eu", ("newsletter",))
    subject = key(person["email"])
    requested = [e for e in get_ledger().events(subject) if e["kind"] == "requested"][-1]
    assert requested["after_erasure"] == erasure.tombstone(get_ledger(), subject)["erased_at"]
    _, states = get_ledger().current(subject)
    assert states == {}  # nothing carried over: a fresh double opt-in
    assert links_in(mail_sink.messages[-1])["confirm"]
    assert audit.verify_subject(get_ledger(), subject).ok


def test_cli_erase_and_unknown_address(mail_env, client, mail_sink, capsys):
    from chalicelib.cli import main

    confirmed(client, mail_sink, "cli@example.eu")
    assert main(["erase", "--email", "cli@example.eu", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "erased" in out
    assert get_ledger().current(key("cli@example.eu")) == (None, {})
    assert main(["erase", "--email", "cli@example.eu", "--yes"]) == 0
    assert "already" in capsys.readouterr().out
    assert main(["erase", "--email", "ghost@example.eu", "--yes"]) == 1


def test_erasure_switches_act_emarketing_off(person, client, act_sim, pusher):
    """Erasure closes Act!'s global e-marketing switch: no accepted marketing purpose is left."""
    sync.drain(pusher, sync.due_keys(get_ledger()))
    cid = _contact(act_sim, "zoe@example.eu")["id"]
    assert not act_sim.contacts[cid].get("aemOptOut")
    assert erase(client, person["rights"]).status_code == 200
    # the person holds no accepted e-mail marketing purpose any more, yet Act! emarketing
    # still may mail them
    assert act_sim.contacts[cid].get("aemOptOut") is True, act_sim.contacts[cid]


def test_a_withdrawal_not_yet_synced_reaches_act_before_erasure(person, client, act_sim, pusher, monkeypatch):
    """A withdrawal not yet pushed reaches Act! even when erasure keeps the contact."""
    sync.drain(pusher, sync.due_keys(get_ledger()))
    subject = key(person["email"])
    wid = next(e["link_id"] for e in get_ledger().events(subject)
               if e["kind"] == "link_issued" and e.get("link_kind") == "withdraw")
    token, _ = links.mint(get_settings(), "withdraw", subject, ["newsletter", "events"], wid)
    answer = client.http.post(f"/u/{token}", body="List-Unsubscribe=One-Click",
                              headers={"Content-Type": FORM})
    assert answer.status_code == 200
    monkeypatch.setenv("ERASURE_ACT", "keep")
    assert erase(client, person["rights"]).status_code == 200
    sync.drain(pusher, sync.due_keys(get_ledger()))
    contact = _contact(act_sim, "zoe@example.eu")
    values = [str(v) for v in (contact.get("customFields") or {}).values() if v]
    assert "Accepted" not in values and contact.get("aemOptOut") is True, contact


def test_erasure_waits_for_a_push_in_flight_then_clears_act(person, act_sim, pusher,
                                                           monkeypatch):
    subject = key(person["email"])
    original = sync.Pusher._contacts
    refused = []

    def contacts(self: Any, *args: Any) -> Any:
        found = original(self, *args)
        if not refused:  # the person erases while this push is between read and PATCH
            with pytest.raises(Contention):
                erasure.erase(get_ledger(), get_catalogue(), subject, "rights_page", "clear",
                              self.client, lock_wait=0.3)
            refused.append(True)
        return found

    monkeypatch.setattr(sync.Pusher, "_contacts", contacts)
    sync.drain(pusher, sync.due_keys(get_ledger()))
    assert refused and get_ledger().current(subject)[0] is not None  # nothing erased yet
    monkeypatch.setattr(sync.Pusher, "_contacts", original)
    done = erasure.erase(get_ledger(), get_catalogue(), subject, "rights_page", "clear",
                         pusher.client)
    assert done.act and all(v == "cleared" for v in done.act.values())
    left = {k: v for k, v in (_contact(act_sim, "zoe@example.eu").get("customFields") or {})
            .items() if v}
    assert "Accepted" not in map(str, left.values()), left


def test_erasure_when_act_is_down_is_finished_by_the_sweep(person, client, act_sim, pusher):
    sync.drain(pusher, sync.due_keys(get_ledger()))
    act_sim.set_faults(error_rate=1.0, kinds=("503",))
    answer = erase(client, person["rights"])
    act_sim.set_faults()
    subject = key(person["email"])
    assert answer.status_code == 200, answer.status_code
    assert get_ledger().current(subject) == (None, {})  # erased in the table
    tomb = erasure.tombstone(get_ledger(), subject)
    assert tomb["act_status"] == "failed" and tomb["sync_shard"] == erasure.ACT_RETRY_SHARD
    get_ledger().put({**tomb, "sync_due": "2000-01-01T00:00:00.000Z"})  # due now
    assert erasure.retry_act(get_ledger(), get_catalogue(), pusher.client, "clear", True) == 1
    tomb = erasure.tombstone(get_ledger(), subject)
    assert tomb["act_status"] == "done" and "sync_shard" not in tomb
    assert _contact(act_sim, "zoe@example.eu").get("aemOptOut") is True


# -- evidence for a regulator, and operators' erasure ---------------------------------------

def test_evidence_pack_cli_and_admin_api(person, client, tmp_path, capsys, monkeypatch):
    from chalicelib.web import admin_auth
    from chalicelib.cli import main

    assert main(["evidence", "--email", "zoe@example.eu", "--out", str(tmp_path)]) == 0
    stem = tmp_path / f"evidence-{key('zoe@example.eu')[:12]}"
    data = json.loads(stem.with_suffix(".json").read_text())
    jsonschema.validate(data, SCHEMA)  # the export, extended
    assert data["evidence"]["verification"]["ok"]
    assert [f["id"] for f in data["evidence"]["forms"]] == ["website"]
    templates = data["evidence"]["mail_templates"]
    assert templates and all(t["text"] and "⟦confirm_url⟧" in t["text"] or t["mail_kind"] !=
                             "confirm" for t in templates)
    html = stem.with_suffix(".html").read_text()
    assert "Evidence of consent" in html and "zoe@example.eu" in html
    assert "<script" not in html and "http://" not in html.split("<main")[0]
    assert main(["evidence", "--email", "nobody@example.eu", "--out", str(tmp_path)]) == 1

    monkeypatch.setenv("ADMIN_SECRET_KEYS", "k" * 40)
    token = admin_auth.mint(get_settings(), "regulator-desk", 300)
    answer = client.http.get("/admin/evidence?email=Zoe@Example.eu",
                             headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and json.loads(answer.body)["subject"]["email"] == \
        "zoe@example.eu"
    page = client.http.get("/admin/evidence?email=zoe@example.eu&format=html",
                           headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 200 and "Evidence of consent" in page.body.decode()
    assert client.http.get("/admin/evidence?email=zoe@example.eu").status_code == 401
    assert client.http.get("/admin/evidence?email=nobody@example.eu",
                           headers={"Authorization": f"Bearer {token}"}).status_code == 404
    erased = client.http.post("/admin/erasures", body=json.dumps({"email": "zoe@example.eu"}),
                              headers={"Authorization": f"Bearer {token}",
                                       "Content-Type": "application/json"})
    assert erased.status_code == 200 and not json.loads(erased.body)["already"]
    assert get_ledger().current(key("zoe@example.eu")) == (None, {})


def test_consent_receipt_download_verifies(person, client):
    from chalicelib.proof import receipts

    answer = client.http.get(person["rights"] + "/receipt.json")
    assert answer.status_code == 200, answer.body
    document = json.loads(answer.body)
    verified = receipts.verify(get_settings(), document["jws"])
    assert verified == document["receipt"]
    assert verified["piiPrincipalId"] == "zoe@example.eu"
    accepted = [p for p in verified["x-optinproof"]["purposes"] if p["state"] == "accepted"]
    assert [p["id"] for p in accepted] == ["newsletter"]
    schema = json.loads((ROOT / "schemas" / "consent-receipt.v1.json").read_text())
    jsonschema.validate(verified, schema)


def test_receipt_mailed_after_each_change_when_configured(mail_env, client, mail_sink,
                                                          monkeypatch):
    from chalicelib.proof import receipts

    monkeypatch.setenv("RECEIPT_MAIL", "true")
    confirmed(client, mail_sink, "rec@example.eu")  # accept newsletter, refuse events
    mails = [m for m in mail_sink.messages if "receipt" in m.subject.lower()]
    assert len(mails) == 1
    attachment = next(part for part in mails[0].message.iter_attachments())
    assert attachment.get_filename() == "consent-receipt.json"
    document = json.loads(attachment.get_content())
    assert receipts.verify(get_settings(), document["jws"])["piiPrincipalId"] == "rec@example.eu"
    sent = [e for e in get_ledger().events(key("rec@example.eu")) if e["kind"] == "mail_sent"
            and e["mail_kind"] == "receipt"]
    assert sent[0]["receipt_id"] == document["receipt"]["consentReceiptID"]
    # a click that changes nothing mails nothing
    page = links_in(next(m for m in mail_sink.messages if "/c/" in m.text()))["confirm"]
    decide(client, page, newsletter="accept", events="refuse")
    assert len([m for m in mail_sink.messages if "receipt" in m.subject.lower()]) == 1


def test_no_receipt_mail_by_default(mail_env, client, mail_sink):
    confirmed(client, mail_sink, "norec@example.eu")
    assert not [m for m in mail_sink.messages if "receipt" in m.subject.lower()]


def test_receipt_mail_survives_a_retired_purpose(mail_env, client, mail_sink, monkeypatch,
                                                        tmp_path):
    monkeypatch.setenv("RECEIPT_MAIL", "true")
    confirmed(client, mail_sink, "ret@example.eu")  # newsletter accepted, events refused
    withdraw = next(links_in(m)["withdraw"] for m in mail_sink.messages if "/u/" in m.text())
    text = Path(mail_env["CONSENT_CATALOGUE"]).read_text()
    start = text.index('[[purposes]]\nid = "events"')
    end = text.index("[[forms]]")
    text = text[:start] + text[end:]
    text = text.replace('"promotions", "events"]', '"promotions"]')
    path = tmp_path / "retired.toml"
    path.write_text(text)
    monkeypatch.setenv("CONSENT_CATALOGUE", str(path))
    mail_sink.clear()
    answer = client.http.post(withdraw, body="List-Unsubscribe=One-Click",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200
    failed = [e for e in get_ledger().events(key("ret@example.eu")) if e["kind"] == "mail_failed"]
    assert not failed, failed
    assert any("receipt" in m.subject.lower() for m in mail_sink.messages)
