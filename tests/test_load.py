"""A bounded load from a second process, over real HTTP on loopback: nothing is lost.

The app runs behind Chalice's threaded local HTTP server (one thread per connection,
listen backlog 128: ``bench.load.QuietServer``, the ``live_server`` fixture without an
access-log line per request) on DynamoDB Local. 200 people each get a confirm link for
2 or 3 purposes; ``bench/load.py --drive`` then runs as a separate Python process with
a urllib3 pool of 20 connections to 127.0.0.1 and, like a browser, GETs each page,
reads its anti-forgery ``form_token`` and ``text.<purpose>`` hashes, and POSTs:
600 decisions here (500 flipping choices round-robin over the subjects, some double
clicks, and 10 bursts of 10 simultaneous clicks with different choices on one person).

The full-size run is ``.venv/bin/python -m bench.load --decisions 2000 --subjects 200
--concurrency 20`` (it starts its own DynamoDB Local and server, and checks the same).

What must hold with no fault injected: no 5xx and no connection error; every POST
that the result page says recorded k purposes wrote exactly k decision events, tagged
with that request's User-Agent (none lost, none doubled, none from a request that was
not answered 200); each person's chain verifies (``audit.verify_subject``: hashes,
sequence, head, states); each purpose's state is its last decision event.
"""
from __future__ import annotations

import contextlib
import io
import json
from collections import Counter
from pathlib import Path

import pytest

from bench.load import (
    QuietServer, counting_transactions, latency_table, log_counts, mint_subjects, run_driver,
)
from chalicelib.proof import audit
from chalicelib.proof.audit import DECISIONS

SUBJECTS, DECISIONS_POSTED, CONCURRENCY, BURSTS, BURST_SIZE = 200, 600, 20, 10, 10


@pytest.mark.slow
def test_bounded_load_from_a_second_process_loses_nothing(env, ledger, tmp_path: Path):
    subjects = mint_subjects(SUBJECTS)
    plan_file = tmp_path / "plan.json"
    logs = io.StringIO()
    with QuietServer(backlog=128) as server, counting_transactions() as transactions:
        plan_file.write_text(json.dumps({"base": server.url, "subjects": subjects}))
        with contextlib.redirect_stdout(logs):  # the app's JSON log lines, counted below
            report = run_driver(plan_file, DECISIONS_POSTED, CONCURRENCY, BURSTS, BURST_SIZE)
    app_logs = log_counts(logs.getvalue())

    print()
    print(latency_table(report))
    print(json.dumps({key: report[key] for key in
                      ("status", "decisions", "throughput", "changes", "samples")}))
    print(json.dumps({"transactions": dict(transactions), "app_log_events": dict(app_logs)}))

    # -- what the driver saw: every request answered, no server error ---------------------
    assert report["decisions"]["posted"] == DECISIONS_POSTED
    assert report["status_5xx"] == 0 and report["transport_errors"] == 0, report["samples"]
    assert report["status"] == {"GET": {"200": DECISIONS_POSTED},
                                "POST": {"200": DECISIONS_POSTED}}, report["samples"]
    assert not app_logs.get("request_failed") and not app_logs.get("store_error")
    assert not app_logs.get("chain_contention")  # no click gave up after its retries
    assert app_logs["decisions_recorded"] == DECISIONS_POSTED
    # the load really changed states, and double clicks / lost bursts recorded nothing
    assert report["changes"]["seen"] >= 0.8 * report["changes"]["expected_main_if_in_order"]
    assert report["changes"]["unchanged_answers"] > 0

    # -- what the table holds: exactly what the pages said, on unbroken chains -----------
    by_agent: Counter[str] = Counter()
    decision_events = 0
    for subject in subjects:
        verdict = audit.verify_subject(ledger, subject["id"])
        assert verdict.ok, verdict
        events = list(ledger.events(subject["id"]))
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        decisions = [e for e in events if e["kind"] in DECISIONS]
        decision_events += len(decisions)
        assert len(decisions) == report["per_subject"][subject["id"]]["changed"], subject["id"]
        by_agent.update(e["user_agent"] for e in decisions)
        states = ledger.snapshot(subject["id"]).states
        for purpose in subject["purposes"]:
            mine = [e for e in decisions if e["purpose"] == purpose]
            if not mine:
                assert purpose not in states
                continue
            assert (states[purpose]["state"], states[purpose]["event_id"]) == \
                (mine[-1]["kind"], mine[-1]["event_id"])
            previous = None  # each transition follows from the one before it
            for event in mine:
                assert event.get("previous_state") == previous
                previous = event["kind"]
    assert decision_events == report["changes"]["seen"]
    # per request: the events carrying its User-Agent are the changes its page listed
    assert set(by_agent) <= set(report["per_request"])
    assert {agent: n for agent, n in report["per_request"].items() if n} == dict(by_agent)
