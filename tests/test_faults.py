"""Faults in the middle of a run: DynamoDB Local stopped and restarted, a mail relay that hangs.

Each DynamoDB test starts its OWN DynamoDB Local (the session one is shared by every
other test), on a free loopback port, keeping its data on disk (``-sharedDb -dbPath``)
so that what was written before the stop is still there after the restart, as with a
real DynamoDB outage. The app is pointed at it through the environment with
``DYNAMODB_TIMEOUT=1``; boto3 clients are cached per endpoint, so it gets its own.

What must hold:
- while the store is down, every request that needs it answers 503: the "Please try
  again in a moment" page for pages, ``{"error": "store_unavailable"}`` for JSON; never
  a 500, never a stack trace or an internal name; pages that need no table still work;
- nothing is written while it is down, and what was written before survives;
- after the restart, the very same requests (same bodies, same anti-forgery tokens)
  succeed; repeating them records nothing more; every subject's chain verifies
  (``audit.verify_subject``: hashes, sequence, head, every purpose state backed by its
  last decision event and no decision event without its state);
- stopped (SIGTERM) under concurrent clicks over real HTTP, each decision ends up
  recorded exactly once, whichever attempt wrote it, and nothing is half-written. (An
  attempt whose transaction was in flight may be written although it was answered 503;
  its retry then says it was already recorded.)

Mail relay faults already covered elsewhere (not repeated here):
``tests/test_mail.py::test_smtp_server_down_is_temporary`` (nothing listening on the
SMTP port: a temporary failure) and ``tests/test_signup.py::
test_mail_failure_keeps_the_request_and_the_sweep_retries`` (a signup while the relay
answers 451: the request is kept, the mail queued, the sweep sends it later). Added
here: a relay that accepts the connection and never speaks (a hung relay).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlencode

import pytest
import urllib3

from bench.load import log_counts
from chalicelib.proof import audit
from chalicelib.consent import rules
from chalicelib.store import schema
from chalicelib.proof.audit import DECISIONS
from chalicelib.core.services import dynamodb_client, get_catalogue, get_ledger
from chalicelib.core.settings import get_settings
from chalicelib.consent.subjects import subject_key
from devstack.dynamodb_local import DynamoDBLocal, ServiceError
from tests.conftest import KEY_NEW, PEPPER, ROOT, SHOP, TEST_FORMS, form_fields, scan_table

FORM = "application/x-www-form-urlencoded"
#: Words that must never reach a person: internals, hosts, stack traces.
LEAKS = ("Traceback", "botocore", "boto3", "Endpoint", "ClientError", "Exception", "DynamoDB",
         "File \"", "127.0.0.1")


# -- a private DynamoDB Local, with its data on disk -------------------------------------

@pytest.fixture
def store(tmp_path: Path) -> Iterator[DynamoDBLocal]:
    server = DynamoDBLocal(data_dir=tmp_path / "ddb", log_path=tmp_path / "ddb.log")
    try:
        server.start()
    except ServiceError as exc:
        pytest.fail(f"DynamoDB Local is needed for these tests: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def fault_env(store: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch,
              tmp_path: Path) -> dict[str, str]:
    """Like conftest's ``env``, on the private store; forms from the test catalogue."""
    shipped = (ROOT / "catalogue.toml").read_text(encoding="utf-8")
    catalogue_file = tmp_path / "catalogue.toml"
    catalogue_file.write_text(shipped.split("[[forms]]")[0] + TEST_FORMS, encoding="utf-8")
    values = {
        "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1",
        "DYNAMODB_ENDPOINT": store.endpoint, "DYNAMODB_TIMEOUT": "1",
        "CONSENT_TABLE": f"faults-{uuid.uuid4().hex[:12]}",
        "LINK_SECRET_KEYS": KEY_NEW, "SUBJECT_PEPPER": PEPPER,
        "PUBLIC_BASE_URL": "http://testserver", "CONSENT_CATALOGUE": str(catalogue_file),
        "MAIL_TRANSPORT": "none", "SIGNUP_MIN_RESPONSE": "0",
        "THROTTLE_SIGNUPS_PER_IP": "1000/1h",
    }
    for name in ("FORM_TOKEN_MAX_AGE", "LINK_MAX_AGE_CONFIRM", "AWS_PROFILE",
                 "WEBHOOK_SUBSCRIBERS", "RECEIPT_MAIL", "ACT_API_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith(("MAIL_", "THROTTLE_")):
            monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    schema.create_table(dynamodb_client(), values["CONSENT_TABLE"])
    dynamodb_client().update_table(TableName=values["CONSENT_TABLE"],
                                   StreamSpecification={"StreamEnabled": False})
    return values


def everything() -> list[dict[str, Any]]:
    return scan_table(get_ledger())


def audit_all() -> dict[str, int]:
    """Every subject's chain verifies; returns decision events per subject."""
    ledger, counts = get_ledger(), {}
    for subject in ledger.subjects():
        report = audit.verify_subject(ledger, subject)
        assert report.ok, report
        counts[subject] = sum(1 for e in ledger.events(subject) if e["kind"] in DECISIONS)
    return counts


def decision_events(subject: str) -> list[dict[str, Any]]:
    return [e for e in get_ledger().events(subject) if e["kind"] in DECISIONS]


def assert_clear_503(status: int, headers: Any, body: str, kind: str = "html") -> None:
    """A 503 a person (or a script) can act on, and nothing of our internals."""
    headers = {k.lower(): v for k, v in dict(headers).items()}
    assert status == 503, (status, body[:500])
    if kind == "head":
        assert body == ""
        return
    if kind == "json":
        assert headers["content-type"].startswith("application/json")
        data = json.loads(body)
        assert data["error"] == "store_unavailable" and "nothing was recorded" in data["message"]
    else:
        assert headers["content-type"].startswith("text/html")
        assert headers.get("cache-control") == "no-store"
        body = re.sub(r"<style>.*?</style>", "", body, flags=re.S)
        # A store lost mid-transaction cannot say whether the write landed: that page
        # says so (and that sending again is safe) instead of "nothing was changed".
        assert ("Please try again in a moment" in body and "Nothing was changed" in body) \
            or "The service is not available right now. Nothing was changed" in body \
            or ("We could not confirm that your choice was saved" in body
                and "Open your link again" in body), body[:800]
    for leak in LEAKS:
        assert leak not in body, (leak, body[:800])


def parts(response: Any) -> tuple[int, Any, str]:
    """(status, headers, body) of a Chalice test client response."""
    return response.status_code, response.headers, response.body.decode()


# -- 1. stopped between requests: every request a clear 503, then the same ones succeed ---

def test_store_stopped_mid_sequence_then_the_same_requests_succeed_once(fault_env, store):
    from chalice.test import Client

    from app import app

    settings, catalogue, ledger = get_settings(), get_catalogue(), get_ledger()
    people = [rules.issue_link(ledger, settings, catalogue, f"p{i}@example.eu",
                                 ["newsletter", "events"] if i % 2 else
                                 ["newsletter", "promotions", "events"], channel="test")
              for i in range(4)]
    first = [{"newsletter": "accept", "events": "refuse"}, {"events": "accept"},
             {"newsletter": "refuse"}, {"newsletter": "accept", "events": "accept"}]
    second = [{"newsletter": "refuse", "events": "accept"}, {"newsletter": "accept"},
              {"newsletter": "accept", "events": "refuse"}, {"events": "refuse"}]
    withdraw = rules.issue_link(ledger, settings, catalogue, "p3@example.eu",
                                  ["newsletter", "events"], kind="withdraw", channel="test")
    one_click = {"content-type": FORM}, "List-Unsubscribe=One-Click"

    def post(client: Any, path: str, fields: dict[str, str], **extra: str) -> Any:
        return client.http.post(path, headers={"content-type": FORM, "user-agent": "faults"},
                                body=urlencode({**fields, **extra}))

    logs = io.StringIO()
    with Client(app, stage_name="test", project_dir=str(ROOT)) as client, \
            contextlib.redirect_stdout(logs):
        # -- up: a first decision each, a signup --------------------------------------
        pages = []
        for person, choices in zip(people, first):
            page = client.http.get(f"/c/{person.token}")
            assert page.status_code == 200
            pages.append(form_fields(page.body.decode()))
            done = post(client, f"/c/{person.token}", pages[-1],
                        **{f"decision.{p}": c for p, c in choices.items()})
            assert done.status_code == 200 and "Your choices were recorded" in done.body.decode()
        signup_page = client.http.get("/signup/website")
        assert signup_page.status_code == 200
        signup_form = {**form_fields(signup_page.body.decode()), "purpose.newsletter": "yes",
                       "purpose.events": "yes"}
        assert post(client, "/signup/website", signup_form, email="early@example.eu").status_code == 200
        before_stop = everything()

        store.stop()

        # -- down: the rest of the sequence, every route that needs the table ---------
        def second_decision(i: int) -> Callable[[], Any]:
            return lambda: post(client, f"/c/{people[i].token}", pages[i],
                                **{f"decision.{p}": c for p, c in second[i].items()})

        signup_json = json.dumps({"email": "json@example.eu", "purposes": ["newsletter"],
                                  "started": signup_form["started"]})
        down: list[tuple[str, Callable[[], Any], str]] = [
            *[(f"decision {i}", second_decision(i), "html") for i in range(4)],
            ("confirm page", lambda: client.http.get(f"/c/{people[0].token}"), "html"),
            ("confirm HEAD", lambda: client.http.head(f"/c/{people[0].token}"), "head"),
            ("one-click withdraw", lambda: client.http.post(
                f"/u/{withdraw.token}", headers=one_click[0], body=one_click[1]), "html"),
            ("withdraw page", lambda: client.http.get(f"/u/{withdraw.token}"), "html"),
            ("signup form post", lambda: post(client, "/signup/website", signup_form,
                                              email="late@example.eu"), "html"),
            ("signup json post", lambda: client.http.post(
                "/signup/website", body=signup_json,
                headers={"content-type": "application/json", "origin": SHOP}), "json"),
        ]
        timings = {}
        for name, call, kind in down:
            started = time.monotonic()
            response = call()
            timings[name] = round(time.monotonic() - started, 2)
            assert_clear_503(*parts(response), kind)
        print(f"answer times while the store is down (s): {timings}", file=sys.stderr)
        assert max(timings.values()) < 15
        # what needs no table still works: the form page, the health check
        assert client.http.get("/signup/website").status_code == 200
        assert client.http.get("/health").status_code == 200

        store.start()  # the same port, the same data directory
        assert everything() == before_stop, "something was written while the store was down"

        # -- back: the very same requests succeed ------------------------------------
        for i in range(4):
            response = second_decision(i)()
            assert response.status_code == 200, response.body[:500]
            assert "Your choices were recorded" in response.body.decode()
        withdrawn = client.http.post(f"/u/{withdraw.token}", headers=one_click[0], body=one_click[1])
        assert withdrawn.status_code == 200
        assert post(client, "/signup/website", signup_form, email="late@example.eu").status_code == 200
        json_answer = client.http.post("/signup/website", body=signup_json, headers={
            "content-type": "application/json", "origin": SHOP})
        assert json_answer.status_code == 200 and json.loads(json_answer.body)["status"] == "ok"
        counts = audit_all()

        # -- and again (a person pressing "save" twice, a mail client retrying) ------
        for i in range(4):
            again = second_decision(i)()
            assert again.status_code == 200
            assert "Nothing changed: these choices were already recorded." in again.body.decode()
        assert client.http.post(f"/u/{withdraw.token}", headers=one_click[0],
                                body=one_click[1]).status_code == 200
        assert audit_all() == counts

    app_logs = log_counts(logs.getvalue())
    print(f"app log events: {dict(app_logs)}", file=sys.stderr)
    assert not app_logs.get("request_failed")  # no unexpected exception anywhere
    assert app_logs["store_error"] >= len(down) - 1
    # each decision recorded once: the first, the second (retried after the outage), then
    # the withdrawal of what p3 had not refused; the same side again is no change
    expected = {}
    for i, person in enumerate(people):
        state: dict[str, str] = {}
        for choices in (first[i], second[i]):
            for purpose, choice in choices.items():
                accept = choice == "accept"
                if purpose in state and (state[purpose] == "accepted") == accept:
                    continue
                expected[person.subject] = expected.get(person.subject, 0) + 1
                state[purpose] = "accepted" if accept else (
                    "withdrawn" if state.get(purpose) == "accepted" else "refused")
        if i == 3:
            expected[person.subject] += sum(1 for p in ("newsletter", "events")
                                            if state.get(p) not in ("refused", "withdrawn"))
        assert len(decision_events(person.subject)) == expected[person.subject], person.subject
    for email, purposes in (("early@example.eu", 2), ("late@example.eu", 2), ("json@example.eu", 1)):
        subject = subject_key(PEPPER, email)
        kinds = [e["kind"] for e in get_ledger().events(subject)]
        assert kinds.count("requested") == purposes, (email, kinds)  # one request, not two
        assert kinds.count("link_issued") == 2, (email, kinds)  # its confirm + withdraw links
    assert {s: counts[s] for s in expected} == expected


# -- 2. stopped under concurrent clicks: each decision recorded once -----------------------

# Stopped, not killed: with SIGKILL, DynamoDB Local itself sometimes loses writes it had
# acknowledged, even after its restart (its on-disk engine, not DynamoDB's guarantee).
def test_store_lost_under_concurrent_clicks_records_each_decision_once(fault_env, store):
    """Eight people click away over real HTTP (Chalice's threaded server); DynamoDB Local
    is stopped (SIGTERM) in the middle, down for 3 s, restarted, on
    the same data. Each decision flips both purposes and is re-submitted as it was (same
    form token) until it is answered 200; every attempt carries its own User-Agent,
    which the events record, so we know which attempt wrote what.

    A transaction in flight when the store stops may have been written although its
    answer was lost: that attempt gets a 503 page, and its retry then says "Nothing
    changed: these choices were already recorded." The decision is still recorded once;
    the test counts such cases and prints them.
    """
    from bench.load import QuietServer

    settings, catalogue, ledger = get_settings(), get_catalogue(), get_ledger()
    people = [rules.issue_link(ledger, settings, catalogue, f"k{i}@example.eu",
                                 ["newsletter", "events"], channel="test") for i in range(8)]
    stopping = threading.Event()
    attempts: dict[int, list[dict[str, Any]]] = defaultdict(list)  # person -> every request
    failures: list[BaseException] = []

    with QuietServer() as server:
        http = urllib3.PoolManager(maxsize=len(people), retries=False,
                                   timeout=urllib3.Timeout(connect=5, read=60))

        def send(i: int, method: str, path: str, agent: str, **what: Any) -> dict[str, Any]:
            started = time.monotonic()
            body = what.pop("body", None)
            response = http.request(method, path, body=body, headers={
                "user-agent": agent, **({"content-type": FORM} if body else {})})
            seen = {"method": method, "agent": agent, "started": started,
                    "ended": time.monotonic(), "status": response.status,
                    "headers": dict(response.headers), "body": response.data.decode(), **what}
            attempts[i].append(seen)
            return seen

        def worker(i: int) -> None:
            path, number = f"{server.url}/c/{people[i].token}", 0
            try:
                while not stopping.is_set():
                    choice = "accept" if number % 2 == 0 else "refuse"
                    tries, fields = 0, None
                    while fields is None:  # the page (503 while the store is down)
                        page = send(i, "GET", path, f"k{i}-d{number}-page{tries}")
                        if page["status"] == 200:
                            fields = form_fields(page["body"])
                        else:
                            tries += 1
                            time.sleep(0.2)
                    body = urlencode({**fields, "decision.newsletter": choice,
                                      "decision.events": choice})
                    while send(i, "POST", path, f"k{i}-d{number}-a{tries}", body=body,
                               decision=number)["status"] != 200:
                        tries += 1  # the same submission again, as a person would
                        time.sleep(0.2)
                    number += 1
            except BaseException as exc:  # noqa: BLE001 - reported by the test thread
                failures.append(exc)

        threads = [threading.Thread(target=worker, args=(i,), daemon=True)
                   for i in range(len(people))]
        logs = io.StringIO()
        with contextlib.redirect_stdout(logs):  # the app's log lines, counted below
            for thread in threads:
                thread.start()
            time.sleep(2.0)
            killed_at = time.monotonic()
            store.stop()
            time.sleep(3.0)
            store.start()  # the same port, the same data directory
            restarted_at = time.monotonic()
            time.sleep(2.5)
            stopping.set()
            for thread in threads:
                thread.join(120)
                assert not thread.is_alive()
    assert not failures, failures
    app_logs = log_counts(logs.getvalue())
    assert not app_logs.get("request_failed")  # no unexpected exception anywhere

    every = [a for per in attempts.values() for a in per]
    statuses: dict[str, int] = defaultdict(int)
    for a in every:
        statuses[f"{a['method']} {a['status']}"] += 1
    during = [a for a in every if a["started"] > killed_at and a["ended"] < restarted_at]
    print(f"\napp log events: {dict(app_logs)}")
    print(f"statuses: {dict(statuses)}; requests sent and answered while down: {len(during)}, "
          f"slowest answer while down: {max((a['ended'] - a['started'] for a in during), default=0):.2f}s")
    assert {a["status"] for a in every} <= {200, 503}, dict(statuses)
    assert during and all(a["status"] == 503 for a in during)
    assert any(a["method"] == "POST" for a in during)
    for a in every:
        if a["status"] == 503:
            assert_clear_503(503, a["headers"], a["body"])
    assert any(a["status"] == 200 and a["started"] > restarted_at for a in every), "no recovery"

    # every chain verifies; each decision recorded once, by exactly one of its attempts
    audit_all()
    written_despite_503 = decided = 0
    for i, person in enumerate(people):
        events = decision_events(person.subject)
        by_agent = defaultdict(list)
        for event in events:
            by_agent[event["user_agent"]].append(event)
        posts = [a for a in attempts[i] if a["method"] == "POST"]
        numbers = sorted({a["decision"] for a in posts})  # each ended with a 200
        decided += len(numbers)
        written = 0
        for number in numbers:
            mine = [a for a in posts if a["decision"] == number]
            [answered] = [a for a in mine if a["status"] == 200]
            writers = [a for a in mine if by_agent.get(a["agent"])]
            assert len(writers) <= 1, [(a["agent"], a["status"]) for a in mine]
            assert writers, ("a decision answered 200 is not in the table",
                             [(a["agent"], a["status"], a["started"] - killed_at) for a in mine])
            written += 1
            [writer] = writers
            assert sorted(e["purpose"] for e in by_agent[writer["agent"]]) == ["events", "newsletter"]
            if writer["status"] == 503:  # written, but the answer was lost with the store
                written_despite_503 += 1
                assert "Nothing changed: these choices were already recorded." in answered["body"]
            else:
                assert writer is answered and "Your choices were recorded" in writer["body"]
        assert len(events) == 2 * written
        states = get_ledger().snapshot(person.subject).states
        for purpose in ("newsletter", "events"):
            mine_events = [e for e in events if e["purpose"] == purpose]
            if mine_events:
                assert (states[purpose]["state"], states[purpose]["event_id"]) == \
                    (mine_events[-1]["kind"], mine_events[-1]["event_id"])
    print(f"decisions {decided}; written by an attempt answered 503, whose retry then said "
          f"\"Nothing changed\": {written_despite_503}")


# -- 3. a mail relay that accepts the connection and never answers -----------------------

def test_a_hung_mail_relay_costs_bounded_time_and_the_sweep_sends_later(mail_env, client,
                                                                         mail_sink, monkeypatch):
    from chalicelib.mail import outbox
    from chalicelib.core.services import get_postman

    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nobody ever says "220"
    try:
        monkeypatch.setenv("MAIL_SMTP_PORT", str(silent.getsockname()[1]))
        monkeypatch.setenv("MAIL_TIMEOUT", "1")
        page = client.http.get("/signup/website")
        fields = {**form_fields(page.body.decode()), "email": "hung@example.eu",
                  "purpose.newsletter": "yes"}
        started = time.monotonic()
        answer = client.http.post("/signup/website", body=urlencode(fields),
                                  headers={"content-type": FORM})
        took = time.monotonic() - started
    finally:
        silent.close()
    assert answer.status_code == 200 and "Traceback" not in answer.body.decode()
    print(f"\nsignup answered in {took:.2f}s with a hung relay (MAIL_TIMEOUT=1, inline delivery)")
    # bounded: the outbox's two tries of MAIL_TIMEOUT each (+0.3 s between), not a hang
    # (so with the default MAIL_TIMEOUT=10, an inline signup waits about 20 s)
    assert took < 6, took
    subject = subject_key(PEPPER, "hung@example.eu")
    kinds = [e["kind"] for e in get_ledger().events(subject)]
    assert kinds.count("requested") == 1 and "mail_sent" not in kinds
    [failed] = [e for e in get_ledger().events(subject) if e["kind"] == "mail_failed"]
    assert failed["will_retry"] and not failed.get("permanent")
    assert not mail_sink.messages

    monkeypatch.setenv("MAIL_SMTP_PORT", str(mail_sink.smtp_port))  # the relay is back
    assert [d.status for d in outbox.sweep(get_postman(), include_later=True)] == ["sent"]
    assert mail_sink.wait_for("hung@example.eu")
    assert audit.verify_subject(get_ledger(), subject).ok


# -- a write whose answer is lost; a write refused: found by the fault runs -------------------

class _Proxy:
    """A loopback proxy in front of DynamoDB Local that misbehaves on TransactWriteItems:
    ``drop`` forwards it and drops the answer (written, answer lost); ``fail`` answers
    500 without forwarding (nothing written)."""

    def __init__(self, upstream: str, mode: str) -> None:
        import http.server

        pool, proxy = urllib3.PoolManager(), self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["content-length"]))
                transact = "TransactWriteItems" in self.headers.get("x-amz-target", "")
                if transact and proxy.mode == "fail":
                    data = b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError"}'
                    self.send_response(500)
                    self.send_header("content-type", "application/x-amz-json-1.0")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                answer = pool.request("POST", upstream + self.path, body=body,
                                      headers=dict(self.headers))
                if transact and proxy.mode == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("content-length", str(len(answer.data)))
                self.end_headers()
                self.wfile.write(answer.data)

            def log_message(self, *args: Any) -> None:
                """No access log on the test's output."""

        self.mode = mode
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_a_write_whose_answer_is_lost_never_claims_nothing_changed(env, client, mint,
                                                                   monkeypatch):
    issued = mint("lost@example.eu", "newsletter")
    page = client.http.get(f"/c/{issued.token}").body.decode()
    fields = {**form_fields(page), "decision.newsletter": "accept"}
    proxy = _Proxy(env["DYNAMODB_ENDPOINT"], "drop")
    try:
        monkeypatch.setenv("DYNAMODB_ENDPOINT", proxy.endpoint)
        monkeypatch.setenv("DYNAMODB_TIMEOUT", "1")
        answer = client.http.post(f"/c/{issued.token}", body=urlencode(fields),
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    finally:
        proxy.close()
        monkeypatch.setenv("DYNAMODB_ENDPOINT", env["DYNAMODB_ENDPOINT"])
    text = answer.body.decode()
    assert answer.status_code == 503
    assert "Nothing was changed" not in text and "could not confirm" in text
    kinds = [e["kind"] for e in get_ledger().events(issued.subject)]
    assert kinds.count("accepted") == 1  # it was written, once
    again = client.http.post(f"/c/{issued.token}", body=urlencode(fields),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert again.status_code == 200 and "already recorded" in again.body.decode()


def test_signups_that_record_nothing_give_their_throttle_back(mail_env, client, monkeypatch):
    def signup() -> Any:
        return client.http.post("/signup/website", body=json.dumps(
            {"email": "ann@example.eu", "purposes": ["newsletter"]}),
            headers={"Content-Type": "application/json", "Origin": SHOP})

    proxy = _Proxy(mail_env["DYNAMODB_ENDPOINT"], "fail")
    try:
        monkeypatch.setenv("DYNAMODB_ENDPOINT", proxy.endpoint)
        for _ in range(4):  # more than THROTTLE_MAILS_PER_ADDRESS (3/24h)
            failed = signup()
            assert failed.status_code == 503
            assert json.loads(failed.body)["error"] == "store_unavailable"
    finally:
        proxy.close()
        monkeypatch.setenv("DYNAMODB_ENDPOINT", mail_env["DYNAMODB_ENDPOINT"])
    assert signup().status_code == 200
    subject = subject_key(PEPPER, "ann@example.eu")
    assert [e["kind"] for e in get_ledger().events(subject)][0] == "requested"
