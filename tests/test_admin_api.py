"""The admin API: operator tokens, and campaigns started over HTTP and worked by the sweep."""
from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

import pytest

from chalicelib.web import admin_auth
from chalicelib.campaigns import jobs
from chalicelib.campaigns import define
from chalicelib.campaigns import runner as campaign_runner
from chalicelib.campaigns import pages
from chalicelib.act import fields
from chalicelib.act.client import ActClient
from chalicelib.mail import bounces
from chalicelib.core.services import get_catalogue, get_ledger
from chalicelib.core.settings import get_settings
from tests.conftest import KEY_NEW, new_secret
from tests.support.admin import ADMIN_KEY, auth, call, tools
from tests.support.rights import key


# -- tokens ---------------------------------------------------------------------------------

def test_token_round_trip_expiry_and_rotation(admin_env, monkeypatch):
    settings = get_settings()
    token = admin_auth.mint(settings, "alice", 60, now=1_000_000)
    assert admin_auth.verify(settings, token, now=1_000_059).name == "alice"
    with pytest.raises(admin_auth.AdminDenied, match="expired"):
        admin_auth.verify(settings, token, now=1_000_060)
    fresh = admin_auth.mint(settings, "alice", 60)
    newer = new_secret()
    monkeypatch.setenv("ADMIN_SECRET_KEYS", f"{ADMIN_KEY},{newer}")
    assert admin_auth.verify(get_settings(), fresh).name == "alice"  # old key still listed
    monkeypatch.setenv("ADMIN_SECRET_KEYS", newer)
    with pytest.raises(admin_auth.AdminDenied, match="retired"):
        admin_auth.verify(get_settings(), fresh)  # its key removed: revoked


@pytest.mark.parametrize("operator,ttl", [("", 60), ("a b", 60), ("x" * 65, 60),
                                          ("alice", 0), ("alice", 12 * 3600 + 1)])
def test_token_minting_refuses_bad_requests(admin_env, operator, ttl):
    with pytest.raises(admin_auth.AdminDenied):
        admin_auth.mint(get_settings(), operator, ttl)


def test_admin_routes_refuse_without_a_valid_token(client, admin_env, table_items):
    before = len(table_items())
    body = {"id": "no-entry", "purposes": ["newsletter"], "audience": "all", "delivery": "csv"}
    link_token = __import__("chalicelib.consent.links", fromlist=["mint"]).mint(
        get_settings(), "rights", "0" * 64, [])[0]
    forged = admin_auth.mint(get_settings(), "mallory", 600)[:-2] + "xx"
    for headers in ({"Content-Type": "application/json"},
                    {"Authorization": "Basic YWxpY2U6c2VjcmV0", "Content-Type": "application/json"},
                    auth(forged), auth(link_token)):
        answer = call(client, "post", "/admin/campaigns", body, headers)
        assert answer.status_code == 401, answer.body
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert json.loads(answer.body)["error"] == "unauthorised"
    expired = admin_auth.mint(get_settings(), "alice", 1, now=time.time() - 10)
    assert "expired" in json.loads(call(client, "get", "/admin/campaigns",
                                        headers=auth(expired)).body)["message"]
    assert len(table_items()) == before


def test_admin_api_is_off_without_keys(client, act_env, monkeypatch):
    monkeypatch.delenv("ADMIN_SECRET_KEYS", raising=False)
    answer = call(client, "get", "/admin/campaigns",
                  headers={"Authorization": "Bearer whatever"})
    assert answer.status_code == 403
    assert "ADMIN_SECRET_KEYS" in json.loads(answer.body)["message"]


def test_cli_mints_a_token_the_api_accepts(client, admin_env, capsys):
    from chalicelib.cli import main

    assert main(["admin", "token", "--operator", "bob", "--ttl", "5m"]) == 0
    token = capsys.readouterr().out.strip()
    answer = call(client, "get", "/admin/campaigns", headers=auth(token))
    assert answer.status_code == 200 and json.loads(answer.body) == {"campaigns": []}
    assert main(["admin", "token", "--operator", "bob", "--ttl", "13h"]) == 2


# -- campaigns over the API ----------------------------------------------------------------

def add_contacts(act_sim: Any, count: int, country: str) -> None:
    for i in range(count):
        act_sim.add_contact(firstName=f"P{i}", lastName="Api", emailAddress=f"{country}{i}@x.eu",
                            businessAddress={"country": country})


def test_campaign_started_over_the_api_is_worked_by_the_sweep(client, admin_env, act_sim):
    add_contacts(act_sim, 30, "Belgium")
    body = {"id": "api-2027", "purposes": ["newsletter"], "delivery": "csv",
            "audience": {"filter": "businessAddress/country eq 'Belgium'"}}
    started = call(client, "post", "/admin/campaigns", body)
    assert started.status_code == 202, started.body
    assert json.loads(started.body)["run"]["state"] == "running"
    assert json.loads(started.body)["run"]["requested_by"] == "admin:alice@example.eu"

    first = jobs.work(get_ledger(), tools(), budget_seconds=0.0)  # no time: stops
    assert first[0]["state"] == "running" and first[0]["last_pass"]["stopped"]
    second = jobs.work(get_ledger(), tools(), budget_seconds=60)
    assert second[0]["state"] == "finished", second
    assert second[0]["last_pass"]["total"] == 30
    assert jobs.work(get_ledger(), tools(), budget_seconds=60) == []  # nothing left

    shown = json.loads(call(client, "get", "/admin/campaigns/api-2027").body)
    assert shown["report"]["purposes"]["newsletter"]["sent"] == 30
    assert shown["run"]["state"] == "finished"
    assert [c["campaign_id"] for c in json.loads(call(client, "get",
                                                      "/admin/campaigns").body)["campaigns"]] \
        == ["api-2027"]
    exported = call(client, "get", "/admin/campaigns/api-2027/links.csv")
    assert exported.status_code == 200 and exported.headers["Cache-Control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(exported.body.decode())))
    assert len(rows) == 30 and all(r["link"].startswith("http://testserver/c/") for r in rows)
    silent = call(client, "get", "/admin/campaigns/api-2027/links.csv?only=no-answer")
    assert len(list(csv.DictReader(io.StringIO(silent.body.decode())))) == 30
    # links are minted once: 30 confirm links for 30 people
    issued = [e for s in {i["subject"] for i in define.contact_items(get_ledger(), "api-2027")}
              for e in get_ledger().events(s) if e["kind"] == "link_issued"
              and e.get("link_kind") == "confirm"]
    assert len(issued) == 30


def test_pause_resume_and_remind(client, admin_env, act_sim):
    add_contacts(act_sim, 5, "Malta")
    body = {"id": "pause-2027", "purposes": ["newsletter"], "delivery": "csv",
            "audience": {"filter": "businessAddress/country eq 'Malta'"}}
    assert call(client, "post", "/admin/campaigns", body).status_code == 202
    paused = call(client, "post", "/admin/campaigns/pause-2027/pause")
    assert paused.status_code == 200 and json.loads(paused.body)["run"]["state"] == "paused"
    assert jobs.work(get_ledger(), tools(), 60) == []
    assert call(client, "post", "/admin/campaigns/pause-2027/run").status_code == 202
    assert jobs.work(get_ledger(), tools(), 60)[0]["state"] == "finished"
    reminded = call(client, "post", "/admin/campaigns/pause-2027/run", {"remind": True})
    assert reminded.status_code == 202 and json.loads(reminded.body)["run"]["round"] == 2
    result = jobs.work(get_ledger(), tools(), 60)[0]
    assert result["state"] == "finished" and result["last_pass"]["delivered"] == 5
    again = call(client, "post", "/admin/campaigns/pause-2027/run", {"remind": "yes"})
    assert again.status_code == 400


@pytest.mark.parametrize("body,needle", [
    ({"purposes": ["newsletter"], "audience": "all", "delivery": "csv"}, "Campaign id"),
    ({"id": "bad-1", "purposes": "newsletter", "audience": "all", "delivery": "csv"},
     "purposes"),
    ({"id": "bad-2", "purposes": ["nope"], "audience": "all", "delivery": "csv"}, "unknown"),
    ({"id": "bad-3", "purposes": ["newsletter"], "audience": {"sql": "x"}, "delivery": "csv"},
     "audience"),
    ({"id": "bad-4", "purposes": ["newsletter"], "audience": "all", "delivery": "fax"},
     "Delivery"),
    ({"id": "bad-5", "purposes": ["newsletter"], "audience": "all", "delivery": "act-field"},
     "link"),
])
def test_bad_campaign_requests_get_400_and_change_nothing(client, admin_env, table_items, body,
                                                          needle):
    before = len(table_items())
    answer = call(client, "post", "/admin/campaigns", body)
    assert answer.status_code == 400, answer.body
    assert needle in json.loads(answer.body)["message"]
    assert len(table_items()) == before


def test_admin_campaign_id_must_be_text(client, admin_env):
    """A campaign id that is not text is a 400, not a 500."""
    body = {"id": 5, "purposes": ["newsletter"], "audience": "all", "delivery": "csv"}
    answer = call(client, "post", "/admin/campaigns", body)
    assert answer.status_code == 400, (answer.status_code, answer.body)


def test_unknown_campaign_is_404_and_bad_json_400(client, admin_env):
    for method, path in (("get", "/admin/campaigns/nope-1"),
                         ("post", "/admin/campaigns/nope-1/run"),
                         ("post", "/admin/campaigns/nope-1/pause"),
                         ("get", "/admin/campaigns/nope-1/links.csv")):
        assert call(client, method, path).status_code == 404, path
    broken = client.http.post("/admin/campaigns", body=b"{not json", headers=auth())
    assert broken.status_code == 400


def test_scheduled_handler_runs_a_pass(client, admin_env, act_sim):
    add_contacts(act_sim, 3, "Iceland")
    body = {"id": "sched-2027", "purposes": ["newsletter"], "delivery": "csv",
            "audience": {"filter": "businessAddress/country eq 'Iceland'"}}
    assert call(client, "post", "/admin/campaigns", body).status_code == 202
    result = client.lambda_.invoke("campaign_sweep", client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))
    assert result.payload == {"campaigns": 1}
    entry = jobs.public_entry(get_ledger(), "sched-2027")
    assert entry["state"] == "finished" and entry["last_pass"]["delivered"] == 3


def test_a_complainer_is_never_reminded(client, admin_env, act_sim):
    """Someone who marked our mail as spam is not counted "no answer" and reminded."""
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


def test_a_reminder_asked_during_a_pass_is_kept(client, admin_env, act_sim, monkeypatch):
    """A reminder asked while a pass is finishing is kept for the next pass, not marked finished."""
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


def test_pause_stops_a_pass_under_way(client, admin_env, act_sim, monkeypatch):
    """Pause stops a pass already under way, not only the next one: the page under way
    is finished, no other page starts."""
    add_contacts(act_sim, 120, "Fiji")
    body = {"id": "pz-2027", "purposes": ["newsletter"], "delivery": "csv",
            "audience": {"filter": "businessAddress/country eq 'Fiji'"}}
    assert call(client, "post", "/admin/campaigns", body).status_code == 202
    original, calls = campaign_runner.Runner.deliver, []

    def deliver(self, contact, item):
        calls.append(contact.id)
        if len(calls) == 1:
            jobs.pause(get_ledger(), "pz-2027", "admin:bob")
        return original(self, contact, item)

    monkeypatch.setattr(campaign_runner.Runner, "deliver", deliver)
    monkeypatch.setattr(jobs, "PAUSE_CHECK_SECONDS", 0.0)  # production: every 2 s
    jobs.work(get_ledger(), tools(), 60, concurrency=1)
    assert len(calls) <= pages.PAGE, f"{len(calls)} contacts handled after pause"
    assert jobs.public_entry(get_ledger(), "pz-2027")["state"] == "paused"


def test_a_failed_reminder_write_is_retried(client, admin_env, act_sim):
    """A reminder whose Act! write failed is retried by the next run, not left minted forever."""
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
