"""Act! calls per decision synced, counted in the simulator's request log, per path.

The floor (issue "Reach the floors"): two calls in the normal case, a warm container and
a person synced before: PATCH the remembered contact by id (checked in PATCH's own
answer, the contact as Act! stored it) and POST the history entry. The search by
address and the history lookup only run when the cheap path cannot be sure: a first
sync, a 404, an address changed in Act!, a contact reconciliation saw, an uncertain
earlier attempt. Each case below asserts the exact calls, so a regression fails CI.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from chalicelib.act import sync
from chalicelib.core.services import get_reconciler
from chalicelib.store.keys import purpose_sk, subject_of, subject_pk
from tests.support.act import contact_by_email, field_key
from tests.support.consent import decide

GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
SEARCH = "GET /api/contacts"
READ = "GET /api/contacts/{id}"
PATCH = "PATCH /api/contacts/{id}"
LOOKUP = "GET /api/contacts/{id}/history"
POST = "POST /api/History"
EMAIL = "demo@example.com"


@pytest.fixture
def warm(pusher: Any) -> Any:
    """A pusher in a warm container: field map and history type already resolved."""
    pusher.keys()
    pusher.history_type()
    return pusher


def calls_since(sim: Any, mark: int) -> list[str]:
    with sim.lock:
        requests = list(sim.requests[mark:])
    return [f"{method} {GUID.sub('{id}', path.split('?')[0])}" for method, path, _ in requests]


def push(sim: Any, pusher: Any, key: tuple[str, str]) -> tuple[str, list[str]]:
    """Push one state now; its outcome and the Act! calls it made."""
    with sim.lock:
        mark = len(sim.requests)
    outcome, _ = pusher.push(*key, force=True)
    return outcome, calls_since(sim, mark)


def decided(purpose: str = "newsletter", email: str = EMAIL, choice: str = "accept") -> tuple[str, str]:
    issued = decide(email, **{purpose: choice})
    return subject_pk(issued.subject), purpose_sk(purpose)


def status(sim: Any, email: str = EMAIL, purpose: str = "Newsletter") -> Any:
    return contact_by_email(sim, email)["customFields"][field_key(sim, f"Consent {purpose}")]


def synced_once(sim: Any, pusher: Any) -> tuple[tuple[str, str], dict[str, Any]]:
    """A person whose first decision is on their contact (the first sync searched)."""
    key = decided()
    assert push(sim, pusher, key) == ("synced", [SEARCH, PATCH, POST])
    return key, contact_by_email(sim, EMAIL)


# -- the normal case -----------------------------------------------------------------------


def test_a_person_synced_before_costs_two_calls_per_decision(act_sim, warm):
    key, contact = synced_once(act_sim, warm)
    decided(choice="refuse")
    assert push(act_sim, warm, key) == ("synced", [PATCH, POST])
    assert status(act_sim) == "Withdrawn"
    events = decided("events")  # another purpose of the same person: the same two calls
    assert push(act_sim, warm, events) == ("synced", [PATCH, POST])
    assert status(act_sim, purpose="Events") == "Accepted"
    details = [h["details"] for h in act_sim.history_for(contact["id"])]
    assert len(details) == 3
    state = warm.ledger.get(*key)
    assert state["sync_status"] == "synced" and state["act_contact_ids"] == [contact["id"]]
    assert state["act_history"][contact["id"]] not in ("", sync.UNSURE)


def test_a_redelivered_push_only_patches(act_sim, warm):
    key, contact = synced_once(act_sim, warm)
    before = dict(contact_by_email(act_sim, EMAIL)["customFields"])
    state = warm.ledger.get(*key)
    warm.ledger.update_state(*key, state["event_id"], {"sync_status": "pending"})
    assert push(act_sim, warm, key) == ("synced", [PATCH])  # the entry is remembered
    assert contact_by_email(act_sim, EMAIL)["customFields"] == before
    assert len(act_sim.history_for(contact["id"])) == 1


# -- first syncs: the search is needed ----------------------------------------------------------


def test_a_first_sync_searches_by_address(act_sim, warm):
    key = decided()
    assert push(act_sim, warm, key) == ("synced", [SEARCH, PATCH, POST])
    assert status(act_sim) == "Accepted"


def test_contact_ids_the_sync_did_not_search_for_are_searched_once(act_sim, warm):
    """A campaign remembers the contact it reached; the sync still searches first (a
    duplicate with the same address gets the consent too), then trusts its search."""
    key = decided()
    contact = contact_by_email(act_sim, EMAIL)
    warm.ledger.set_profile_fields(subject_of(key[0]), {"act_contact_ids": [contact["id"]]})
    assert push(act_sim, warm, key) == ("synced", [SEARCH, PATCH, POST])
    decided(choice="refuse")
    assert push(act_sim, warm, key) == ("synced", [PATCH, POST])


# -- the contact changed in Act! -------------------------------------------------------------


def test_a_deleted_contact_answers_404_then_the_search_finds_none(act_sim, warm):
    key, contact = synced_once(act_sim, warm)
    with act_sim.lock:
        del act_sim.contacts[contact["id"]]
    decided(choice="refuse")
    assert push(act_sim, warm, key) == ("held", [PATCH, SEARCH])
    assert [row["sync_status"] for row in sync.status_rows(warm.ledger)] == ["contact_deleted"]


def test_a_deleted_and_recreated_contact_is_found_by_the_search(act_sim, warm):
    key, contact = synced_once(act_sim, warm)
    with act_sim.lock:
        del act_sim.contacts[contact["id"]]
    again = act_sim.add_contact(emailAddress=EMAIL, firstName="Again")
    decided(choice="refuse")
    assert push(act_sim, warm, key) == ("synced", [PATCH, SEARCH, PATCH, POST])
    assert status(act_sim) == "Withdrawn"
    assert warm.ledger.get(*key)["act_contact_ids"] == [again["id"]]
    decided(choice="accept")  # the new contact is remembered: the normal case again
    assert push(act_sim, warm, key) == ("synced", [PATCH, POST])
    assert len(act_sim.history_for(again["id"])) == 2


def test_an_address_changed_in_act_is_seen_in_the_patch_answer(act_sim, warm):
    key, contact = synced_once(act_sim, warm)
    with act_sim.lock:
        act_sim.contacts[contact["id"]]["emailAddress"] = "new.owner@example.com"
    decided(choice="refuse")
    assert push(act_sim, warm, key) == ("held", [PATCH, SEARCH])
    assert contact["id"] in get_reconciler().pending()  # reconciliation clears its fields
    assert len(act_sim.history_for(contact["id"])) == 1  # no entry for the new owner
    outcome = get_reconciler().process(contact["id"])
    assert "address_changed" in outcome.actions and "fields_cleared" in outcome.actions
    assert act_sim.contacts[contact["id"]]["customFields"][field_key(act_sim, "Consent Newsletter")] is None


def test_after_an_address_change_the_persons_other_contact_gets_the_decision(act_sim, warm):
    key, contact = synced_once(act_sim, warm)
    with act_sim.lock:
        act_sim.contacts[contact["id"]]["emailAddress"] = "new.owner@example.com"
    other = act_sim.add_contact(emailAddress=EMAIL, firstName="Other")
    decided(choice="refuse")
    assert push(act_sim, warm, key) == ("synced", [PATCH, SEARCH, PATCH, POST])
    assert status(act_sim) == "Withdrawn" and contact_by_email(act_sim, EMAIL)["id"] == other["id"]
    assert warm.ledger.get(*key)["act_contact_ids"] == [other["id"]]


def test_a_contact_reconciliation_saw_with_the_address_makes_the_sync_search(act_sim, warm):
    key, contact = synced_once(act_sim, warm)
    duplicate = act_sim.add_contact(emailAddress=EMAIL, firstName="Duplicate")
    outcome = get_reconciler().process(duplicate["id"])  # the webhook or poll of a new contact
    assert "drift_restored" in outcome.actions  # it lacks the consent: pushed again
    # searched: the known contact holds the values already, the duplicate gets them
    assert push(act_sim, warm, key) == ("synced", [SEARCH, PATCH, POST])
    assert act_sim.contacts[duplicate["id"]]["customFields"][field_key(act_sim, "Consent Newsletter")] == "Accepted"
    assert [len(act_sim.history_for(c)) for c in (contact["id"], duplicate["id"])] == [1, 1]
    decided(choice="refuse")  # both remembered now: one PATCH and one entry each
    assert push(act_sim, warm, key) == ("synced", [PATCH, PATCH, POST, POST])


# -- earlier attempts --------------------------------------------------------------------------


def _failing_post(sim: Any, pusher: Any, kind: str) -> None:
    real_post = pusher.client.post_history

    def post(body: dict[str, Any]) -> Any:
        sim.set_faults(error_rate=1.0, kinds=(kind,), timeout_seconds=1.5)
        try:
            return real_post(body)
        finally:
            sim.set_faults(error_rate=0.0)

    pusher.client.post_history = post


def test_after_a_timed_out_history_post_the_entry_is_looked_for_not_posted_again(act_sim, warm):
    key = decided()
    real_post = warm.client.post_history
    _failing_post(act_sim, warm, "timeout")
    with act_sim.lock:
        mark = len(act_sim.requests)
    assert warm.push(*key, force=True)[0] == "failed"
    warm.client.post_history = real_post
    assert warm.ledger.get(*key)["act_history"] == {contact_by_email(act_sim, EMAIL)["id"]: sync.UNSURE}
    time.sleep(1)  # the post lands after the client gave up (and is logged then)
    assert calls_since(act_sim, mark) == [SEARCH, PATCH, POST]
    assert push(act_sim, warm, key) == ("synced", [PATCH, LOOKUP])
    assert len(act_sim.history_for(contact_by_email(act_sim, EMAIL)["id"])) == 1


def test_after_a_5xx_history_post_the_lookup_finds_nothing_and_posts(act_sim, warm):
    key = decided()
    real_post = warm.client.post_history
    _failing_post(act_sim, warm, "500")
    assert push(act_sim, warm, key) == ("failed", [SEARCH, PATCH, POST])
    warm.client.post_history = real_post
    assert push(act_sim, warm, key) == ("synced", [PATCH, LOOKUP, POST])
    assert len(act_sim.history_for(contact_by_email(act_sim, EMAIL)["id"])) == 1


def test_a_failure_before_any_history_post_needs_no_lookup(act_sim, warm):
    key = decided()
    act_sim.set_faults(ignore_patch=True)  # Act! answers 200 and stores nothing
    outcome, calls = push(act_sim, warm, key)
    assert (outcome, calls) == ("failed", [SEARCH, PATCH])  # seen in the answer: no read-back
    assert "did not store it" in sync.status_rows(warm.ledger)[0]["error"]
    act_sim.set_faults(ignore_patch=False)
    assert push(act_sim, warm, key) == ("synced", [PATCH, POST])
    assert status(act_sim) == "Accepted"


def test_a_state_pushed_by_an_older_version_looks_for_its_entry(act_sim, warm):
    """States synced before ``act_history`` existed: their entries are looked for."""
    key, contact = synced_once(act_sim, warm)
    state = warm.ledger.get(*key)
    warm.ledger.remove_attributes(*key, ("act_history",))
    warm.ledger.update_state(*key, state["event_id"], {"sync_status": "pending"})
    assert push(act_sim, warm, key) == ("synced", [PATCH, LOOKUP])
    assert len(act_sim.history_for(contact["id"])) == 1


# -- hand edits ---------------------------------------------------------------------------------


def test_a_hand_edited_field_is_restored_with_one_patch(act_sim, warm):
    key, contact = synced_once(act_sim, warm)
    with act_sim.lock:
        act_sim.contacts[contact["id"]]["customFields"][field_key(act_sim, "Consent Newsletter")] = "Refused"
    assert "drift_restored" in get_reconciler().process(contact["id"]).actions
    assert push(act_sim, warm, key) == ("synced", [PATCH])
    assert status(act_sim) == "Accepted"
    assert len(act_sim.history_for(contact["id"])) == 1


def test_a_patch_answer_that_is_not_the_contact_is_read_back(act_sim, warm):
    key, _ = synced_once(act_sim, warm)
    real_patch = warm.client.patch_contact
    warm.client.patch_contact = lambda contact_id, body: (real_patch(contact_id, body), None)[1]
    decided(choice="refuse")
    assert push(act_sim, warm, key) == ("synced", [PATCH, READ, POST])
    assert status(act_sim) == "Withdrawn"
