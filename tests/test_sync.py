"""Every decision lands on its Act! contact, exactly once, whatever Act! does.

Against the Act! simulator over real HTTP and DynamoDB Local; the only thing not real
is the client's sleep, which records the waits instead of spending them.
"""
from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from chalicelib.act import dates
from chalicelib.act import sync
from chalicelib.store.keys import purpose_sk, subject_pk
from chalicelib.core.services import get_catalogue, get_ledger
from chalicelib.core.settings import get_settings
from tests.support.act import contact_by_email, drain_all, field_key
from tests.support.consent import decide


def test_a_decision_reaches_the_contact_with_fields_and_history(act_sim, pusher):
    issued = decide("demo@example.com", newsletter="accept", events="refuse")
    report = drain_all(pusher)
    assert report.synced == 2 and report.failed == 0

    contact = contact_by_email(act_sim, "demo@example.com")
    fields = contact["customFields"]
    state = pusher.ledger.get(subject_pk(issued.subject), purpose_sk("newsletter"))
    assert fields[field_key(act_sim, "Consent Newsletter")] == "Accepted"
    assert fields[field_key(act_sim, "Consent Events")] == "Refused"
    # Act! keeps its server's wall time (the simulator's server is on French time)
    assert fields[field_key(act_sim, "Consent Newsletter At")] == dates.to_act(
        state["decided_at"], ZoneInfo("Europe/Paris"))
    assert fields[field_key(act_sim, "Consent Newsletter UTC")] == state["decided_at"]  # exact, with Z
    assert fields[field_key(act_sim, "Consent Newsletter Proof")] == state["event_id"]
    assert "aemOptOut" not in {k for k in fields}  # custom fields only; the flag is top-level
    assert state["sync_status"] == "synced" and state["act_contact_ids"] == [contact["id"]]
    histories = act_sim.history_for(contact["id"])
    regarding = sorted(h["regarding"] for h in histories)
    assert "Consent accepted: Monthly newsletter" in regarding
    assert "Consent refused: Invitations to events" in regarding
    entry = next(h for h in histories if "newsletter" in h["regarding"].lower())
    assert state["event_id"] in entry["details"] and "double opt-in via test" in entry["details"]
    assert entry["createUserName"] == "OptinProof Sync"
    assert sync.status_rows(pusher.ledger) == []


def test_pushing_again_changes_nothing_and_adds_no_history(act_sim, pusher):
    issued = decide("demo@example.com", newsletter="accept")
    drain_all(pusher)
    contact = contact_by_email(act_sim, "demo@example.com")
    before = (dict(contact["customFields"]), len(act_sim.history_for(contact["id"])))
    state_key = (subject_pk(issued.subject), purpose_sk("newsletter"))
    state = pusher.ledger.get(*state_key)
    # Force the same decision through the pusher again, as a redelivered stream record would.
    pusher.ledger.update_state(*state_key, state["event_id"], {"sync_status": "pending"})
    assert pusher.push(*state_key)[0] == "synced"
    contact = contact_by_email(act_sim, "demo@example.com")
    assert (contact["customFields"], len(act_sim.history_for(contact["id"]))) == before


def test_refusing_every_marketing_purpose_sets_aem_opt_out(act_sim, pusher):
    decide("demo@example.com", newsletter="accept", promotions="refuse")
    drain_all(pusher)
    assert contact_by_email(act_sim, "demo@example.com").get("aemOptOut") in (False, None)
    decide("demo@example.com", newsletter="refuse")  # withdrawal: no marketing purpose left
    drain_all(pusher)
    contact = contact_by_email(act_sim, "demo@example.com")
    assert contact["aemOptOut"] is True
    assert contact["customFields"][field_key(act_sim, "Consent Newsletter")] == "Withdrawn"


def test_a_newer_decision_is_never_overwritten_by_an_older_one(act_sim, pusher):
    first = decide("demo@example.com", newsletter="accept")
    decide("demo@example.com", newsletter="refuse")  # before any sync ran
    drain_all(pusher)
    contact = contact_by_email(act_sim, "demo@example.com")
    assert contact["customFields"][field_key(act_sim, "Consent Newsletter")] == "Withdrawn"
    events = [e for e in pusher.ledger.events(first.subject) if e.get("purpose") == "newsletter"]
    details = " ".join(h["details"] for h in act_sim.history_for(contact["id"]))
    assert events[-1]["event_id"] in details


def test_unknown_address_is_held_as_no_contact(act_sim, pusher):
    decide("stranger@example.org", newsletter="accept")
    report = drain_all(pusher)
    assert report.held == 1
    rows = sync.status_rows(pusher.ledger)
    assert [row["sync_status"] for row in rows] == ["no_contact"]
    assert "ACT_CREATE_CONTACTS" in rows[0]["error"]
    assert drain_all(pusher).held == 0  # held syncs are not retried by the sweep


def test_contact_created_when_configured(act_sim, act_env, monkeypatch):
    monkeypatch.setenv("ACT_CREATE_CONTACTS", "true")
    from chalicelib.act.client import ActClient
    from chalicelib.act.sync import Pusher

    settings = get_settings()
    pusher = Pusher(get_ledger(), ActClient(settings.act, sleep=lambda s: None), get_catalogue(), settings)
    decide("newcomer@example.org", events="accept")
    assert drain_all(pusher).synced == 1
    contact = contact_by_email(act_sim, "newcomer@example.org")
    assert contact["customFields"][field_key(act_sim, "Consent Events")] == "Accepted"


def test_contact_deleted_in_act_is_recorded_not_retried(act_sim, pusher):
    decide("demo@example.com", newsletter="accept")
    drain_all(pusher)
    contact = contact_by_email(act_sim, "demo@example.com")
    with act_sim.lock:
        del act_sim.contacts[contact["id"]]
    decide("demo@example.com", newsletter="refuse")
    report = drain_all(pusher)
    assert report.held == 1 and report.failed == 0
    assert [row["sync_status"] for row in sync.status_rows(pusher.ledger)] == ["contact_deleted"]


def test_silently_ignored_patch_is_detected_and_retried(act_sim, pusher):
    act_sim.set_faults(ignore_patch=True)
    decide("demo@example.com", newsletter="accept")
    report = sync.drain(pusher, sync.all_keys(pusher.ledger), force=True)
    assert report.failed == 1 and "did not store it" in report.errors[0]
    row = sync.status_rows(pusher.ledger)[0]
    assert row["sync_status"] == "pending" and row["attempts"] == 1
    act_sim.set_faults(ignore_patch=False)
    assert drain_all(pusher).synced == 1
    contact = contact_by_email(act_sim, "demo@example.com")
    assert contact["customFields"][field_key(act_sim, "Consent Newsletter")] == "Accepted"


def test_after_max_attempts_a_sync_is_failed_and_still_retried(act_sim, pusher, monkeypatch, capsys):
    monkeypatch.setenv("SYNC_MAX_ATTEMPTS", "2")
    from chalicelib.act.sync import Pusher

    slow_pusher = Pusher(pusher.ledger, pusher.client, pusher.catalogue, get_settings())
    act_sim.set_faults(error_rate=1.0, kinds=("500",))
    decide("demo@example.com", newsletter="accept")
    for _ in range(2):
        sync.drain(slow_pusher, sync.all_keys(slow_pusher.ledger), force=True)
    row = sync.status_rows(slow_pusher.ledger)[0]
    assert row["sync_status"] == "failed" and row["attempts"] == 2 and "500" in row["error"]
    assert '"event": "sync_alert"' in capsys.readouterr().out
    assert row["due"] > row["decided_at"]  # backoff: not due right away
    act_sim.set_faults(error_rate=0.0)
    assert drain_all(slow_pusher).synced == 1


def test_act_not_configured_leaves_decisions_pending(env, mint):
    from chalicelib.core.errors import ConfigError
    from chalicelib.core.services import get_pusher

    with pytest.raises(ConfigError, match="ACT_API_URL"):
        get_pusher()


def test_held_sync_is_retried_after_the_contact_is_created(act_sim, pusher, capsys):
    decide("late@example.org", newsletter="accept")
    assert drain_all(pusher).held == 1
    act_sim.add_contact(emailAddress="Late@Example.org", firstName="Late")
    from chalicelib import cli

    assert cli.main(["sync", "retry"]) == 0
    assert "1 held sync(s) queued again" in capsys.readouterr().out
    assert drain_all(pusher).synced == 1
    contact = contact_by_email(act_sim, "late@example.org")
    assert contact["customFields"][field_key(act_sim, "Consent Newsletter")] == "Accepted"
    assert sync.status_rows(pusher.ledger) == []
