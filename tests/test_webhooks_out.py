"""Outbound webhooks: a real HTTP receiver on loopback gets a signed POST per decision;
failures are retried with backoff and logged."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import urlencode

import pytest

from chalicelib.web import webhooks_out
from chalicelib.core.services import get_ledger
from tests.conftest import form_fields
from tests.support.cli import run_cli
from tests.support.stream import stream_records

SECRET = "w" * 40


class Receiver:
    """A subscriber: records each POST; answers with ``status`` (changeable)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.calls.append({"body": body, "headers": dict(self.headers)})
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                """Quiet: the test reads the calls, not an access log."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/consent"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(env, monkeypatch) -> Iterator[Receiver]:
    made = Receiver()
    monkeypatch.setenv("WEBHOOK_SUBSCRIBERS", made.url)
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    yield made
    made.close()


def decide_via_page(client: Any, token: str, **choices: str) -> None:
    page = client.http.get(f"/c/{token}")
    fields = {**form_fields(page.body.decode()), **{f"decision.{p}": c for p, c in choices.items()}}
    response = client.http.post(f"/c/{token}", body=urlencode(fields),
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200


@pytest.mark.stream
def test_each_decision_is_posted_signed_from_the_stream(receiver, client, mint, env, ledger):
    issued = mint("hook@example.eu", "newsletter", "events")
    decide_via_page(client, issued.token, newsletter="accept", events="refuse")
    pending = [i for i in ledger.scan_items("HOOKOUT#")]
    assert len(pending) == 2, "written with the decisions, in their transaction"
    result = client.lambda_.invoke("on_table_change", {"Records": stream_records(env)})
    assert result.payload["webhooks"] == 2
    bodies = sorted((json.loads(c["body"]) for c in receiver.calls), key=lambda b: b["purpose"])
    assert [(b["purpose"], b["state"]) for b in bodies] == [("events", "refused"),
                                                            ("newsletter", "accepted")]
    for call in receiver.calls:
        assert webhooks_out.verify(SECRET, call["body"], call["headers"]["X-OptinProof-Signature"])
        assert not webhooks_out.verify("x" * 40, call["body"],
                                       call["headers"]["X-OptinProof-Signature"])
        body = json.loads(call["body"])
        assert "hook@example.eu" not in call["body"].decode() and body["proof_hash"]
    events = {e["event_id"]: e for e in ledger.events(issued.subject)}
    assert all(events[b["event_id"]]["hash"] == b["proof_hash"] for b in bodies)
    again = client.lambda_.invoke("on_table_change", {"Records": stream_records(env)})
    assert again.payload.get("webhooks", 0) == 0 and len(receiver.calls) == 2


@pytest.mark.stream
def test_a_failing_subscriber_is_retried_with_backoff_and_logged(receiver, client, mint, env):
    issued = mint("flaky@example.eu", "newsletter")
    receiver.status = 500
    decide_via_page(client, issued.token, newsletter="accept")
    client.lambda_.invoke("on_table_change", {"Records": stream_records(env)})
    [item] = list(get_ledger().scan_items("HOOKOUT#"))
    assert item["status"] == "pending" and item["attempts"] == 1
    assert item["log"][-1]["status"] == 500 and item["sync_due"] > item["created_at"]
    assert webhooks_out.due_keys(get_ledger()) == [], "waits for its backoff"
    status = run_cli("webhooks", "status")
    assert "pending" in status.stdout and "500" in status.stdout
    receiver.status = 204
    retried = run_cli("webhooks", "retry")
    assert retried.returncode == 0 and "1 delivered" in retried.stdout, retried.stderr
    [item] = list(get_ledger().scan_items("HOOKOUT#"))
    assert item["status"] == "delivered" and len(item["log"]) == 2
    assert len(receiver.calls) == 2


def test_signature_rules():
    body = b'{"a":1}'
    header = webhooks_out.sign(SECRET, body)
    assert webhooks_out.verify(SECRET, body, header)
    assert not webhooks_out.verify(SECRET, b'{"a":2}', header)
    old = webhooks_out.sign(SECRET, body, timestamp=1_000_000_000)
    assert not webhooks_out.verify(SECRET, body, old), "replayed old deliveries are refused"
    assert not webhooks_out.verify(SECRET, body, "garbage")


def test_subscribers_need_https_and_a_secret(env, monkeypatch):
    from chalicelib.core.errors import ConfigError
    from chalicelib.core.settings import load_settings
    import os

    base = dict(os.environ)
    with pytest.raises(ConfigError, match="https"):
        load_settings({**base, "WEBHOOK_SUBSCRIBERS": "http://example.eu/x", "WEBHOOK_SECRET": SECRET})
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET"):
        load_settings({**base, "WEBHOOK_SUBSCRIBERS": "https://example.eu/x"})


def test_failed_deliveries_can_be_queued_again(receiver, client, mint, env):
    issued = mint("gaveup@example.eu", "newsletter")
    receiver.status = 500
    decide_via_page(client, issued.token, newsletter="accept")
    [item] = list(get_ledger().scan_items("HOOKOUT#"))
    get_ledger().put({**item, "status": "failed", "attempts": webhooks_out.MAX_ATTEMPTS,
                      "sync_shard": None, "sync_due": None})
    receiver.status = 200
    plain = run_cli("webhooks", "retry")
    assert "nothing to send" in plain.stdout
    again = run_cli("webhooks", "retry", "--failed")
    assert again.returncode == 0 and "1 failed delivery(ies) queued again" in again.stdout
    assert "1 delivered" in again.stdout


@pytest.mark.parametrize("url", ["http://localhost@evil.example/x", "http://localhost.evil.example/",
                                 "http://127.0.0.1.nip.io/", "ftp://127.0.0.1/"])
def test_plain_http_only_to_this_machine(env, url):
    from chalicelib.core.errors import ConfigError
    from chalicelib.core.settings import load_settings
    import os

    with pytest.raises(ConfigError, match="https"):
        load_settings({**os.environ, "WEBHOOK_SUBSCRIBERS": url, "WEBHOOK_SECRET": SECRET})


def test_a_non_ascii_signature_is_refused_not_an_error():
    assert not webhooks_out.verify(SECRET, b"{}", "t=1700000000,v1=é")
