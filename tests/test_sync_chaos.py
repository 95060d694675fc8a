"""200 decisions while Act! fails 30 % of calls and expires tokens early.

Afterwards every decision is on its contact exactly once: the right field values, one
history entry per decision, nothing pending.
"""
from __future__ import annotations

from collections import Counter

import pytest

from chalicelib.act import sync
from tests.support.act import drain_all, field_key
from tests.support.consent import decide

pytestmark = pytest.mark.slow


def test_two_hundred_decisions_survive_a_flaky_act(act_sim, act_env, monkeypatch):
    from chalicelib.act.client import ActClient
    from chalicelib.core.services import get_catalogue, get_ledger
    from chalicelib.core.settings import get_settings
    from chalicelib.act.sync import Pusher

    monkeypatch.setenv("ACT_TIMEOUT", "0.25")  # a timed-out call costs a quarter second
    settings = get_settings()
    pusher = Pusher(get_ledger(), ActClient(settings.act, sleep=lambda s: None), get_catalogue(),
                    settings)
    people = [f"person{n:03d}@example.net" for n in range(100)]
    for email in people:
        act_sim.add_contact(emailAddress=email, firstName="Test", lastName=email[:9])
    expected = {}
    for n, email in enumerate(people):
        choices = {"newsletter": "accept" if n % 3 else "refuse",
                   "events": "refuse" if n % 4 else "accept"}
        issued = decide(email, **choices)
        expected[email] = (issued.subject, choices)

    act_sim.set_faults(error_rate=0.30, kinds=("500", "429", "503", "timeout"), retry_after=True,
                       token_expiry_rate=0.05, timeout_seconds=0.5, rng_seed=7)
    report = drain_all(pusher, rounds=60)
    act_sim.set_faults(error_rate=0.0, token_expiry_rate=0.0)
    assert sync.status_rows(pusher.ledger) == [], report.errors[:5]

    status_key = {p: field_key(act_sim, f"Consent {p.title()}") for p in ("newsletter", "events")}
    values = {"accept": "Accepted", "refuse": "Refused"}
    with act_sim.lock:
        contacts = {c["emailAddress"]: c for c in act_sim.contacts.values() if c.get("emailAddress") in expected}
        histories = list(act_sim.histories.values())
    per_contact = Counter(h["contacts"][0]["id"] for h in histories if h.get("contacts"))
    markers = Counter(line.split()[0] for h in histories for line in h.get("details", "").splitlines()
                      if line.startswith("event_id="))
    assert all(count == 1 for count in markers.values()), markers.most_common(3)
    for email, (subject, choices) in expected.items():
        contact = contacts[email]
        for purpose, choice in choices.items():
            assert contact["customFields"][status_key[purpose]] == values[choice], email
        assert per_contact[contact["id"]] == 2, email
    assert sum(per_contact[c["id"]] for c in contacts.values()) == 200
    assert report.failed > 0  # the faults really happened
    with act_sim.lock:
        statuses = Counter(status for _, _, status in act_sim.requests)
    print(f"\nchaos: {sum(statuses.values())} Act! calls, statuses {dict(statuses)}, "
          f"push attempts failed {report.failed}, synced {report.synced}")
