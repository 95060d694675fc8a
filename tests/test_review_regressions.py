"""Regressions found by review: erasure and Act!, complaints, campaign jobs, receipts."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from chalicelib.act import fields
from chalicelib.campaigns import jobs
from chalicelib.campaigns import define
from chalicelib.campaigns import runner as campaign_runner
from chalicelib.rights import erasure
from chalicelib.consent import links
from chalicelib.mail import bounces
from chalicelib.act import sync
from chalicelib.act.client import ActClient
from chalicelib.core.errors import Contention
from chalicelib.core.services import get_catalogue, get_ledger
from chalicelib.core.settings import get_settings
from tests.support.admin import call, tools
from tests.support.rights import confirmed, erase as _erase, key
from tests.support.signup import links_in
from tests.test_admin_api import add_contacts

FORM = "application/x-www-form-urlencoded"


def _contact(act_sim: Any, email: str) -> dict[str, Any]:
    return next(c for c in act_sim.contacts.values() if c.get("emailAddress") == email)


# 1. erasure leaves Act!'s global e-marketing switch open
def test_erasure_switches_act_emarketing_off(person, client, act_sim, pusher):
    sync.drain(pusher, sync.due_keys(get_ledger()))
    cid = _contact(act_sim, "zoe@example.eu")["id"]
    assert not act_sim.contacts[cid].get("aemOptOut")
    assert _erase(client, person["rights"]).status_code == 200
    # the person holds no accepted e-mail marketing purpose any more, yet Act! emarketing
    # still may mail them
    assert act_sim.contacts[cid].get("aemOptOut") is True, act_sim.contacts[cid]


# 2. a withdrawal not yet synced is lost by erasure (keep mode)
def test_a_withdrawal_not_yet_synced_reaches_act_before_erasure(person, client, act_sim, pusher, monkeypatch):
    sync.drain(pusher, sync.due_keys(get_ledger()))
    subject = key(person["email"])
    wid = next(e["link_id"] for e in get_ledger().events(subject)
               if e["kind"] == "link_issued" and e.get("link_kind") == "withdraw")
    token, _ = links.mint(get_settings(), "withdraw", subject, ["newsletter", "events"], wid)
    answer = client.http.post(f"/u/{token}", body="List-Unsubscribe=One-Click",
                              headers={"Content-Type": FORM})
    assert answer.status_code == 200
    monkeypatch.setenv("ERASURE_ACT", "keep")
    assert _erase(client, person["rights"]).status_code == 200
    sync.drain(pusher, sync.due_keys(get_ledger()))
    contact = _contact(act_sim, "zoe@example.eu")
    values = [str(v) for v in (contact.get("customFields") or {}).values() if v]
    assert "Accepted" not in values and contact.get("aemOptOut") is True, contact


# 3. a complainer is counted "no answer" and reminded
def test_a_complainer_is_never_reminded(client, admin_env, act_sim):
    act_sim.add_contact(firstName="C", lastName="X", emailAddress="spam@x.eu",
                        businessAddress={"country": "Peru"})
    body = {"id": "cmp-2027", "purposes": ["newsletter"], "delivery": "csv",
            "audience": {"filter": "businessAddress/country eq 'Peru'"}}
    assert call(client, "post", "/admin/campaigns", body).status_code == 202
    assert jobs.work(get_ledger(), tools(), 60)[0]["state"] == "finished"
    notice = bounces.Notice("complaint", ("spam@x.eu",), None, {"feedback_type": "abuse"})
    out = bounces.apply(get_ledger(), get_settings(), get_catalogue(), notice, "sns-1")
    assert out.recorded == 1
    subject = key("spam@x.eu")
    assert get_ledger().current(subject)[1]["newsletter"]["state"] == "refused"
    reminded = call(client, "post", "/admin/campaigns/cmp-2027/run", {"remind": True})
    jobs.work(get_ledger(), tools(), 60)
    issued = [e for e in get_ledger().events(subject) if e["kind"] == "link_issued"
              and e.get("link_kind") == "confirm"]
    assert reminded.status_code == 400 and len(issued) == 1, (reminded.status_code, len(issued))


# 4. a remind requested while a pass runs is marked finished and never worked
def test_a_reminder_asked_during_a_pass_is_kept(client, admin_env, act_sim, monkeypatch):
    add_contacts(act_sim, 3, "Chile")
    body = {"id": "race-2027", "purposes": ["newsletter"], "delivery": "csv",
            "audience": {"filter": "businessAddress/country eq 'Chile'"}}
    assert call(client, "post", "/admin/campaigns", body).status_code == 202
    original = campaign_runner.Runner.run

    def run(self, contacts, **kw):
        progress = original(self, contacts, **kw)
        # operator asks a reminder while the pass is finishing
        jobs.schedule(get_ledger(), define.load(get_ledger(), "race-2027"),
                               "admin:bob", remind=True)
        return progress

    monkeypatch.setattr(campaign_runner.Runner, "run", run)
    jobs.work(get_ledger(), tools(), 60)
    monkeypatch.setattr(campaign_runner.Runner, "run", original)
    entry = jobs.public_entry(get_ledger(), "race-2027")
    rounds = [int(i.get("round", 1)) for i in define.contact_items(get_ledger(), "race-2027")]
    assert entry["round"] == 2 and max(rounds) == 1
    assert entry["state"] == "running", entry  # else round 2 is never worked


# 5. pause does not stop a pass under way
def test_pause_stops_a_pass_under_way(client, admin_env, act_sim, monkeypatch):
    add_contacts(act_sim, 6, "Fiji")
    body = {"id": "pz-2027", "purposes": ["newsletter"], "delivery": "csv",
            "audience": {"filter": "businessAddress/country eq 'Fiji'"}}
    assert call(client, "post", "/admin/campaigns", body).status_code == 202
    original, calls = campaign_runner.Runner.reach, []

    def reach(self, contact):
        calls.append(contact.id)
        if len(calls) == 1:
            jobs.pause(get_ledger(), "pz-2027", "admin:bob")
        return original(self, contact)

    monkeypatch.setattr(campaign_runner.Runner, "reach", reach)
    monkeypatch.setattr(jobs, "PAUSE_CHECK_SECONDS", 0.0)  # production: every 2 s
    jobs.work(get_ledger(), tools(), 60, concurrency=1)
    assert len(calls) <= 2, f"{len(calls)} contacts handled after pause"
    assert jobs.public_entry(get_ledger(), "pz-2027")["state"] == "paused"


# 6. admin API: a non-string id is a 500
def test_admin_campaign_id_must_be_text(client, admin_env):
    body = {"id": 5, "purposes": ["newsletter"], "audience": "all", "delivery": "csv"}
    answer = call(client, "post", "/admin/campaigns", body)
    assert answer.status_code == 400, (answer.status_code, answer.body)


# 8. reminder whose Act! write failed stays minted forever (job path)
def test_a_failed_reminder_write_is_retried(client, admin_env, act_sim):
    settings = get_settings()
    fields.link_field_key(ActClient(settings.act), "OptinProof Link", create=True)
    add_contacts(act_sim, 1, "Oman")
    body = {"id": "af-2027", "purposes": ["newsletter"], "delivery": "act-field",
            "link_field": "OptinProof Link",
            "audience": {"filter": "businessAddress/country eq 'Oman'"}}
    assert call(client, "post", "/admin/campaigns", body).status_code == 202, "start"
    assert jobs.work(get_ledger(), tools(), 60)[0]["state"] == "finished"
    assert call(client, "post", "/admin/campaigns/af-2027/run", {"remind": True}).status_code == 202
    act_sim.set_faults(ignore_patch=True)
    first = jobs.work(get_ledger(), tools(), 60)[0]
    act_sim.set_faults()
    assert first["state"] == "needs_attention", first
    [item] = list(define.contact_items(get_ledger(), "af-2027"))
    assert item["status"] == "minted"
    assert call(client, "post", "/admin/campaigns/af-2027/run", {}).status_code == 202
    second = jobs.work(get_ledger(), tools(), 60)[0]
    [item] = list(define.contact_items(get_ledger(), "af-2027"))
    assert item["status"] == "done", (second, item)


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


def test_erasure_waits_for_a_push_in_flight_then_clears_act(person, act_sim, pusher,
                                                           monkeypatch):
    subject = key(person["email"])
    original = sync.Pusher._contacts
    refused = []

    def contacts(self: Any, subj: str, profile: Any) -> Any:
        found = original(self, subj, profile)
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
    answer = _erase(client, person["rights"])
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


def test_a_campaign_never_asks_someone_erased_meanwhile(act_env, act_sim):
    """The tombstone is checked inside the link's transaction, not only before it."""
    from chalicelib.store.keys import subject_pk
    from tests.support.campaigns import make_runner

    act_sim.add_contact(firstName="Late", lastName="Erased", emailAddress="late@example.eu")
    runner = make_runner("race-erase", delivery="csv", purposes=("newsletter",))
    contact = next(c for c in define.audience(runner.client, runner.campaign)
                   if c.email == "late@example.eu")
    subject = key("late@example.eu")
    get_ledger().put({"pk": subject_pk(subject), "sk": "TOMBSTONE", "subject": subject,
                      "erased_at": "2026-11-29T00:00:00.000Z"})  # erased after _reach looked
    assert runner._mint(contact, "late@example.eu", subject) == ("skipped", "suppressed")
    assert list(get_ledger().events(subject)) == []
