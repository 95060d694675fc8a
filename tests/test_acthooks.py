"""Changes made in Act!: the simulator's webhook service calls our real HTTP endpoint,
and reconciliation re-reads each contact before acting."""
from __future__ import annotations

import json
from typing import Any

import pytest
import urllib3

from chalicelib.act import reconcile
from chalicelib.mail import outbox
from chalicelib.act import sync
from chalicelib.core.services import get_ledger, get_postman, get_pusher, get_reconciler
from chalicelib.consent.subjects import subject_key
from tests.conftest import PEPPER
from tests.support.act import field_key
from tests.support.cli import run_cli
from tests.support.consent import decide

TOKEN = "t" * 40
SECRET = "s" * 40


@pytest.fixture
def hooks_env(act_env, mail_env, live_server, monkeypatch) -> dict[str, str]:
    values = {"ACT_WEBHOOK_TOKEN": TOKEN, "ACT_WEBHOOK_PATH_SECRET": SECRET,
              "ACT_ASK_PURPOSES": "newsletter", "PUBLIC_BASE_URL": live_server}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return {**act_env, **mail_env, **values, "live": live_server}


def post(url: str, body: Any, token: str | None = TOKEN) -> urllib3.BaseHTTPResponse:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = token
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return urllib3.request("POST", url, body=data, headers=headers, timeout=10, retries=False)


def test_register_then_a_new_contact_is_asked_to_confirm(hooks_env, act_sim, mail_sink):
    registered = run_cli("act", "webhooks", "register")
    assert registered.returncode == 0, registered.stderr
    assert registered.stdout.count("registered") == 2
    again = run_cli("act", "webhooks", "register")
    assert again.stdout.count("updated") == 2 and len(act_sim.webhooks) == 2
    contact = act_sim.add_contact(firstName="Hooked", emailAddress="hooked@example.eu")
    deliveries = act_sim.deliver_webhooks()
    assert any(d["ok"] and d["records"] for d in deliveries), deliveries
    assert contact["id"] in get_reconciler().pending()
    result = run_cli("act", "reconcile")
    assert result.returncode == 0 and "asked" in result.stdout, result.stdout + result.stderr
    assert [r.status for r in outbox.sweep(get_postman(), include_later=True)] == ["sent"]
    [mail] = mail_sink.wait_for("hooked@example.eu")
    assert "Hello Hooked," in mail.text() and "Monthly newsletter" in mail.text()
    assert get_reconciler().pending() == []
    # a redelivery of the same change is a hint again, and asks nobody twice
    act_sim.contacts[contact["id"]]["jobTitle"] = "x"
    get_reconciler().process(contact["id"])
    assert len(mail_sink.messages) == 1


def test_bad_deliveries_change_nothing(hooks_env, table_items):
    base = f"{hooks_env['live']}/hooks/act"
    before = table_items()
    good_record = [{"id": "8a1f0c7e-1b2c-4d5e-8f90-123456789abc", "edited": "2026-11-29T00:00:00Z"}]
    assert post(f"{base}/{'x' * 40}/updated", good_record).status == 404
    assert post(f"{base}/{SECRET}/updated", good_record, token=None).status == 401
    assert post(f"{base}/{SECRET}/updated", good_record, token="Bearer wrong").status == 401
    assert post(f"{base}/{SECRET}/updated", "{not json").status == 400
    assert post(f"{base}/{SECRET}/updated", [{"id": "not-a-guid"}]).status == 400
    assert post(f"{base}/{SECRET}/deleted", good_record).status == 400
    assert table_items() == before
    ok = post(f"{base}/{SECRET}/updated", good_record, token=f"Bearer {TOKEN}")
    assert ok.status == 200 and ok.json() == {"queued": 1}
    redelivered = post(f"{base}/{SECRET}/updated", good_record)
    assert redelivered.status == 200
    assert len([i for i in table_items() if i["pk"].startswith("ACTHINT#")]) == 1


def _synced_contact(act_sim: Any, email: str, **choices: str) -> dict[str, Any]:
    decide(email, **choices)
    pusher = get_pusher()
    sync.drain(pusher, sync.all_keys(pusher.ledger), force=True)
    return next(c for c in act_sim.contacts.values()
                if (c.get("emailAddress") or "").lower() == email)


def test_an_address_change_does_not_carry_consent_over(hooks_env, act_sim):
    contact = _synced_contact(act_sim, "demo@example.com", newsletter="accept")
    status_key = field_key(act_sim, "Consent Newsletter")
    assert contact["customFields"][status_key] == "Accepted"
    reconciler = get_reconciler()
    reconciler.process(contact["id"])  # first sight: remembered, nothing to do
    act_sim.contacts[contact["id"]]["emailAddress"] = "someone.else@example.eu"
    outcome = reconciler.process(contact["id"])
    assert "address_changed" in outcome.actions and "fields_cleared" in outcome.actions
    assert not act_sim.contacts[contact["id"]]["customFields"].get(status_key)
    old = subject_key(PEPPER, "demo@example.com")
    kinds = [e["kind"] for e in get_ledger().events(old)]
    assert kinds[-1] == "act_address_changed"
    profile, _ = get_ledger().current(old)
    assert contact["id"] not in (profile.get("act_contact_ids") or [])
    # the old person's next decision no longer reaches the contact that changed hands
    decide("demo@example.com", newsletter="refuse")
    pusher = get_pusher()
    sync.drain(pusher, sync.all_keys(pusher.ledger), force=True)
    assert not act_sim.contacts[contact["id"]]["customFields"].get(status_key)


def test_hand_edited_consent_fields_are_restored(hooks_env, act_sim):
    contact = _synced_contact(act_sim, "demo@example.com", newsletter="refuse")
    status_key = field_key(act_sim, "Consent Newsletter")
    act_sim.contacts[contact["id"]]["customFields"][status_key] = "Accepted"  # by hand
    outcome = get_reconciler().process(contact["id"])
    assert outcome.actions == ("drift_restored",)
    [row] = reconcile.drift_rows(get_ledger())
    assert row["purposes"] == ["newsletter"] and row["action"] == "restore"
    pusher = get_pusher()
    sync.drain(pusher, sync.all_keys(pusher.ledger), force=True)
    assert act_sim.contacts[contact["id"]]["customFields"][status_key] == "Refused"
    history = act_sim.history_for(contact["id"])
    assert len(history) == 1, "restoring adds no second history entry"


def test_drift_is_only_flagged_when_configured(hooks_env, act_sim, monkeypatch):
    contact = _synced_contact(act_sim, "demo@example.com", newsletter="refuse")
    status_key = field_key(act_sim, "Consent Newsletter")
    act_sim.contacts[contact["id"]]["customFields"][status_key] = "Accepted"
    monkeypatch.setenv("ACT_DRIFT", "flag")
    assert get_reconciler().process(contact["id"]).actions == ("drift_flagged",)
    assert act_sim.contacts[contact["id"]]["customFields"][status_key] == "Accepted"
    listed = run_cli("act", "drift")
    assert "newsletter" in listed.stdout and "flag" in listed.stdout


def test_poll_finds_edited_contacts_for_act_cloud(hooks_env, act_sim, mail_sink):
    act_sim.add_contact(firstName="Polled", emailAddress="polled@example.eu")
    result = run_cli("act", "poll", "--since", "2000-01-01T00:00:00Z")
    assert result.returncode == 0, result.stderr
    assert "asked" in result.stdout
    outbox.sweep(get_postman(), include_later=True)
    mail_sink.wait_for("polled@example.eu")
    again = run_cli("act", "poll")
    assert "0 contact(s) edited" in again.stdout or "asked" not in again.stdout


def test_a_deleted_contact_is_recorded(hooks_env, act_sim):
    contact = _synced_contact(act_sim, "demo@example.com", newsletter="accept")
    reconciler = get_reconciler()
    reconciler.process(contact["id"])
    with act_sim.lock:
        del act_sim.contacts[contact["id"]]
    assert reconciler.process(contact["id"]).actions == ("contact_gone",)
    kinds = [e["kind"] for e in get_ledger().events(subject_key(PEPPER, "demo@example.com"))]
    assert kinds[-1] == "act_contact_deleted"


def test_an_address_change_seen_first_time_still_drops_the_old_consent(hooks_env, act_sim):
    """The sync remembers what it wrote where, so the very first hint catches a change."""
    contact = _synced_contact(act_sim, "demo@example.com", newsletter="accept")
    status_key = field_key(act_sim, "Consent Newsletter")
    act_sim.contacts[contact["id"]]["emailAddress"] = "someone.else@example.eu"
    outcome = get_reconciler().process(contact["id"])  # no earlier reconciliation
    assert "address_changed" in outcome.actions
    assert not act_sim.contacts[contact["id"]]["customFields"].get(status_key)
    decide("demo@example.com", newsletter="refuse")  # even before any reconciliation,
    pusher = get_pusher()                           # the sync checks the address
    sync.drain(pusher, sync.all_keys(pusher.ledger), force=True)
    assert not act_sim.contacts[contact["id"]]["customFields"].get(status_key)


def test_a_change_to_a_known_address_keeps_none_of_the_old_fields(hooks_env, act_sim, monkeypatch):
    monkeypatch.setenv("ACT_DRIFT", "flag")  # an address change is not a hand edit
    contact = _synced_contact(act_sim, "demo@example.com", newsletter="accept")
    decide("bob@example.eu", events="refuse")
    act_sim.contacts[contact["id"]]["emailAddress"] = "bob@example.eu"
    outcome = get_reconciler().process(contact["id"])
    assert "address_changed" in outcome.actions and "fields_cleared" in outcome.actions
    fields = act_sim.contacts[contact["id"]]["customFields"]
    assert not fields.get(field_key(act_sim, "Consent Newsletter")), "demo's consent is gone"
    pusher = get_pusher()
    sync.drain(pusher, sync.all_keys(pusher.ledger), force=True)
    assert act_sim.contacts[contact["id"]]["customFields"][field_key(act_sim, "Consent Events")] \
        == "Refused"


def test_poll_paging_misses_nothing_edited_meanwhile(hooks_env, act_sim):
    """Keyset paging: a contact edited during the poll cannot hide another one."""
    import time

    for i in range(5):
        act_sim.add_contact(firstName=f"E{i}", emailAddress=f"e{i}@example.eu")
        time.sleep(0.01)
    client = get_reconciler().client
    since = "2000-01-01T00:00:00Z"
    before = [c["id"] for c in client.edited_since(since, page_size=2)]
    pages = client.edited_since(since, page_size=2)
    seen = [next(pages)["id"], next(pages)["id"]]
    client.patch_contact(seen[0], {"jobTitle": "edited during the poll"})
    seen += [c["id"] for c in pages]
    assert not [i for i in before if i not in seen]
