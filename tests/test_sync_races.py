"""Two pushers (the stream and the sweep, or two Lambdas) racing on one person.

Each test interleaves them by hooking the Act! client of the first pusher, so the
second one runs exactly in the window a real race would hit.
"""
from __future__ import annotations

import time

from chalicelib.act import sync
from chalicelib.store import stream
from chalicelib.act.client import ActClient
from chalicelib.store.keys import purpose_sk, subject_pk
from chalicelib.core.services import get_catalogue, get_ledger, get_reconciler
from chalicelib.core.settings import get_settings
from chalicelib.act.sync import Pusher
from tests.support.act import contact_by_email, drain_all, field_key
from tests.support.consent import decide


def new_pusher() -> Pusher:
    settings = get_settings()
    return Pusher(get_ledger(), ActClient(settings.act, sleep=lambda s: None), get_catalogue(), settings)


def test_a_newer_decision_made_during_a_push_ends_on_the_contact(act_sim, act_env):
    a, b = new_pusher(), new_pusher()
    issued = decide("demo@example.com", newsletter="accept")
    key = (subject_pk(issued.subject), purpose_sk("newsletter"))
    real_patch = a.client.patch_contact
    seen = []

    def patch_while_the_person_changes_their_mind(contact_id, body):
        a.client.patch_contact = real_patch  # once
        decide("demo@example.com", newsletter="refuse")
        seen.append(b.push(*key)[0])  # the stream fires for the refusal: must wait its turn
        return real_patch(contact_id, body)

    a.client.patch_contact = patch_while_the_person_changes_their_mind
    assert a.push(*key)[0] == "synced"
    assert seen == ["skipped"]
    contact = contact_by_email(act_sim, "demo@example.com")
    state = a.ledger.get(*key)
    assert contact["customFields"][field_key(act_sim, "Consent Newsletter")] == "Withdrawn"
    assert state["state"] == "withdrawn" and state["sync_status"] == "synced"
    assert len(act_sim.history_for(contact["id"])) == 2  # one per decision


def test_a_push_that_lost_its_lock_writes_nothing_more(act_sim, act_env, monkeypatch):
    monkeypatch.setattr(sync, "LEASE_SECONDS", 1)
    a, b = new_pusher(), new_pusher()
    issued = decide("demo@example.com", newsletter="accept")
    key = (subject_pk(issued.subject), purpose_sk("newsletter"))
    real_patch = a.client.patch_contact

    def slow_patch(contact_id, body):
        stored = real_patch(contact_id, body)
        time.sleep(1.2)  # A stalls past its lock; the sweep takes over and finishes
        assert b.push(*key)[0] == "synced"
        return stored

    a.client.patch_contact = slow_patch
    assert a.push(*key)[0] == "skipped"
    contact = contact_by_email(act_sim, "demo@example.com")
    assert len(act_sim.history_for(contact["id"])) == 1


def test_after_an_uncertain_write_the_stream_waits_for_the_backoff(act_sim, act_env):
    a = new_pusher()
    issued = decide("demo@example.com", newsletter="accept")
    key = (subject_pk(issued.subject), purpose_sk("newsletter"))
    a.history_type()
    a.keys()
    real_post = a.client.post_history

    def post_that_times_out(body):
        act_sim.set_faults(error_rate=1.0, kinds=("timeout",), timeout_seconds=1.5)
        try:
            return real_post(body)
        finally:
            act_sim.set_faults(error_rate=0.0)

    a.client.post_history = post_that_times_out
    assert a.push(*key)[0] == "failed"
    a.client.post_history = real_post
    record = {"eventName": "MODIFY", "dynamodb": {"NewImage": {
        "pk": {"S": key[0]}, "sk": {"S": key[1]}, "sync_status": {"S": "pending"}}}}
    for _ in range(5):  # the stream sees the failure bookkeeping: nothing is pushed early
        assert sync.drain(a, stream.route_records([record]).syncs).skipped == 1
    state = a.ledger.get(*key)
    assert state["sync_attempts"] == 1 and state["sync_due"] > state["decided_at"]
    time.sleep(2)  # the uncertain write lands meanwhile
    assert drain_all(a).synced == 1  # operator forces it: the entry is found, not re-posted
    contact = contact_by_email(act_sim, "demo@example.com")
    assert len(act_sim.history_for(contact["id"])) == 1


def test_two_purposes_at_once_create_one_contact(act_sim, act_env, monkeypatch):
    monkeypatch.setenv("ACT_CREATE_CONTACTS", "true")
    a, b = new_pusher(), new_pusher()
    issued = decide("new@example.org", newsletter="accept", events="accept")
    newsletter = (subject_pk(issued.subject), purpose_sk("newsletter"))
    events = (subject_pk(issued.subject), purpose_sk("events"))
    real_search = a.client.contacts_by_email
    seen = []

    def search(email):
        a.client.contacts_by_email = real_search  # once
        found = real_search(email)
        seen.append(b.push(*events)[0])
        return found

    a.client.contacts_by_email = search
    assert a.push(*newsletter)[0] == "synced"
    assert seen == ["skipped"]
    assert drain_all(b).synced == 1
    with act_sim.lock:
        made = [c for c in act_sim.contacts.values() if c.get("emailAddress") == "new@example.org"]
    assert len(made) == 1
    fields = made[0]["customFields"]
    assert fields[field_key(act_sim, "Consent Newsletter")] == "Accepted"
    assert fields[field_key(act_sim, "Consent Events")] == "Accepted"


def test_a_contact_added_later_with_the_same_address_gets_the_consent(act_sim, pusher):
    decide("demo@example.com", newsletter="accept")
    drain_all(pusher)
    added = act_sim.add_contact(emailAddress="demo@example.com", firstName="Duplicate")
    get_reconciler().process(added["id"])  # Act!'s webhook (or the poll) tells us of it
    decide("demo@example.com", newsletter="refuse")
    drain_all(pusher)
    key = field_key(act_sim, "Consent Newsletter")
    with act_sim.lock:
        values = [c["customFields"].get(key) for c in act_sim.contacts.values()
                  if c.get("emailAddress") == "demo@example.com"]
    assert values == ["Withdrawn", "Withdrawn"]


def test_aem_opt_out_follows_the_newest_states(act_sim, act_env, monkeypatch):
    monkeypatch.setenv("ACT_AEM_CLEAR_ON_ACCEPT", "true")
    a, b = new_pusher(), new_pusher()
    issued = decide("demo@example.com", newsletter="accept", promotions="refuse")
    drain_all(a)
    decide("demo@example.com", newsletter="refuse")  # no marketing purpose left: opt out
    newsletter = (subject_pk(issued.subject), purpose_sk("newsletter"))
    promotions = (newsletter[0], purpose_sk("promotions"))
    real_patch = a.client.patch_contact

    def patch(contact_id, body):
        a.client.patch_contact = real_patch  # once
        decide("demo@example.com", promotions="accept")  # meanwhile: accepts promotions
        b.push(*promotions)
        return real_patch(contact_id, body)

    a.client.patch_contact = patch
    a.push(*newsletter)
    drain_all(b)
    assert contact_by_email(act_sim, "demo@example.com")["aemOptOut"] is False
    assert sync.status_rows(a.ledger) == []
