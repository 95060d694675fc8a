"""A campaign's DynamoDB requests and Act! calls per contact, counted (issue "Reach the floors").

A page of contacts is read in BatchGetItem rounds and written in transactions of up to
100 items, so a contact costs a fraction of one request; Act! gets one PATCH per
contact, nothing else. The counts are deterministic, so they are asserted (a botocore
hook on the app's client, the simulator's request log): a change that adds a request
per contact fails here. Speed is measured in bench/proof.py, never asserted.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.campaigns import define
from chalicelib.core.services import get_ledger
from tests.support.campaigns import (
    LANGUAGE_FIELD,
    add_contacts,
    add_language_contacts,
    link_of,
    make_runner,
)

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
CONTACTS = 200


class Requests:
    """The DynamoDB operations the app's client sends."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def __call__(self, model: Any, **_: object) -> None:
        self.seen[model.name] += 1

    def take(self) -> Counter[str]:
        taken, self.seen = self.seen, Counter()
        return taken


@pytest.fixture
def requests(act_env: Any) -> Iterator[Requests]:
    counter = Requests()
    events = get_ledger().client.meta.events
    events.register("before-call.dynamodb", counter)
    yield counter
    events.unregister("before-call.dynamodb", counter)


def act_calls(sim: Any, mark: int) -> Counter[str]:
    with sim.lock:
        requests = list(sim.requests[mark:])
    return Counter(f"{method} {GUID.sub('{id}', path.split('?')[0])}" for method, path, _ in requests)


def audience(runner: Any, prefix: str) -> list[define.Contact]:
    return [c for c in define.audience(runner.client, runner.campaign)
            if (c.email or "").startswith(prefix)]


def test_an_act_field_campaign_costs_under_one_write_and_one_patch_per_contact(
        act_sim, requests):
    ids = add_contacts(act_sim, CONTACTS, prefix="floor")
    runner = make_runner("floor-camp")
    contacts = audience(runner, "floor")
    requests.take()
    mark = len(act_sim.requests)

    progress = runner.run(contacts, concurrency=16)

    assert progress.delivered == CONTACTS and progress.failed == 0, progress.errors
    assert act_calls(act_sim, mark) == {"PATCH /api/contacts/{id}": CONTACTS}
    seen = requests.take()
    writes = sum(n for name, n in seen.items() if name in WRITES)
    # Measured: 8 pages of 25 (8 in flight), each 1 lease transaction, 2 BatchGetItem
    # rounds, 3 link transactions, 2 delivery transactions and 1 release; plus the run's
    # settled query and the link field's registration: 74 requests, 57 of them writes
    # (a transaction that met another may be sent again: a little room above that).
    assert writes <= 60, seen  # the floor is 1 write per contact: 200
    assert sum(seen.values()) <= 80, seen
    assert set(seen) <= WRITES | {"BatchGetItem", "Query"}, seen
    assert all(link_of(act_sim, contact_id) for contact_id in ids)

    again = runner.run(contacts, concurrency=16)  # settled: one query, nothing written
    assert again.already == CONTACTS and requests.take() == {"Query": 1}


def test_the_language_rule_reads_the_languages_with_the_pages_not_per_contact(
        act_sim, requests):
    """Each contact's language comes in the audience's pages (``customFields``): one
    metadata read more per run, no Act! call more per contact; the run costs the same."""
    add_contacts(act_sim, CONTACTS - 3, prefix="lang")
    add_language_contacts(act_sim, "langx")
    fixed = make_runner("lang-fixed-floor")
    mark = len(act_sim.requests)
    assert len(audience(fixed, "lang")) == CONTACTS
    without = act_calls(act_sim, mark)
    runner = make_runner("lang-floor", locale="fr", locale_field=LANGUAGE_FIELD)
    mark = len(act_sim.requests)
    contacts = audience(runner, "lang")
    with_rule = act_calls(act_sim, mark)
    assert with_rule == without + Counter({"GET /api/metadata/contact/fields": 1}), with_rule
    assert {c.language for c in contacts} == {"Français", "English", None}
    requests.take()
    mark = len(act_sim.requests)

    progress = runner.run(contacts, concurrency=16)

    assert progress.delivered == CONTACTS and progress.failed == 0, progress.errors
    assert act_calls(act_sim, mark) == {"PATCH /api/contacts/{id}": CONTACTS}
    seen = requests.take()
    assert sum(n for name, n in seen.items() if name in WRITES) <= 60, seen  # as without
    assert sum(seen.values()) <= 80, seen
    locales = Counter(i["locale"] for i in define.contact_items(get_ledger(), "lang-floor"))
    assert locales == {"fr": CONTACTS - 1, "en": 1}


def test_a_killed_run_resumes_delivering_its_minted_links_without_minting_again(
        act_sim, requests):
    add_contacts(act_sim, 60, prefix="resume")
    runner = make_runner("resume-camp")
    contacts = audience(runner, "resume")
    act_sim.set_faults(error_rate=1.0, kinds=("503",))  # every PATCH fails: links minted only
    first = runner.run(contacts, concurrency=8)
    act_sim.set_faults()
    assert first.failed == 60 and first.delivered == 0
    minted = {i["contact_id"]: i["link_id"] for i in define.contact_items(get_ledger(), "resume-camp")}
    assert len(minted) == 60
    requests.take()
    mark = len(act_sim.requests)

    second = make_runner_again(runner).run(contacts, concurrency=8)

    assert second.delivered == 60, second.errors
    assert act_calls(act_sim, mark) == {"PATCH /api/contacts/{id}": 60}
    items = {i["contact_id"]: i for i in define.contact_items(get_ledger(), "resume-camp")}
    assert {cid: i["link_id"] for cid, i in items.items()} == minted  # delivered, not re-minted
    assert all(i["status"] == define.DONE for i in items.values())
    seen = requests.take()
    # 4 pages of 15: a lease, a delivery and a release transaction each; the link field
    assert sum(n for name, n in seen.items() if name in WRITES) <= 14, seen
    for item in list(items.values())[:5]:
        events = list(get_ledger().events(item["subject"]))
        assert [e["kind"] for e in events].count("link_issued") == 2  # confirm + withdraw
        assert [e["kind"] for e in events].count("link_written") == 1


def make_runner_again(runner: Any) -> Any:
    """A new run of the same campaign (a new process after a kill): a new run id."""
    from chalicelib.campaigns import runner as campaign_runner

    return campaign_runner.Runner(runner.ledger, runner.settings, runner.catalogue,
                                  runner.client, runner.campaign, runner.postman,
                                  runner.link_key, runner.round)
