"""The Act! client against the simulator: sign-in, tokens, retries, quoting, shapes."""
from __future__ import annotations

import os
import time
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from chalicelib.act import client as act_client
from chalicelib.act.client import ActAuthError, ActClient, ActUnavailable, odata_string
from chalicelib.core.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def client(act_env):
    act_client._TOKENS.clear()
    waits: list[float] = []
    made = ActClient(get_settings().act, sleep=waits.append)
    made.waits = waits  # type: ignore[attr-defined]
    return made


def calls(sim, path_part: str) -> list[tuple[str, str, int]]:
    with sim.lock:
        return [r for r in sim.requests if path_part in r[1]]


def test_sign_in_and_token_reuse_across_clients(client, act_sim):
    before = len(calls(act_sim, "/authorize"))
    client.contact_fields()
    ActClient(client.config).contact_fields()  # a new client in the same container
    client.contacts_by_email("demo@example.com")
    assert len([c for c in calls(act_sim, "/authorize")[before:] if c[2] == 200]) == 1


@pytest.mark.parametrize("field, value", [("password", "wrong"), ("database", "NoSuchDb"),
                                          ("username", "nobody")])
def test_bad_credentials_say_what_to_check(client, field, value):
    bad = ActClient(replace(client.config, **{field: value}))
    with pytest.raises(ActAuthError, match="ACT_USERNAME.*ACT_PASSWORD.*ACT_DATABASE"):
        bad.contact_fields()


def test_expired_token_is_refreshed_once_transparently(client, act_sim):
    client.contact_fields()
    act_sim.set_faults(token_expiry_rate=1.0)
    with pytest.raises(ActAuthError):  # every token fails: refresh once, then give up
        client.contact_fields()
    act_sim.set_faults(token_expiry_rate=0.0)
    assert client.contact_fields()  # a fresh sign-in works again
    statuses = [c[2] for c in calls(act_sim, "/api/metadata")]
    assert statuses.count(401) == 2 and statuses[-1] == 200


def test_429_honours_retry_after(client, act_sim):
    act_sim.set_faults(error_rate=1.0, kinds=("429",), retry_after=True)
    with pytest.raises(ActUnavailable, match="429"):
        client.contacts_by_email("demo@example.com")
    assert len(client.waits) >= client.config.max_retries
    assert all(wait >= 1 for wait in client.waits)  # the simulator's Retry-After
    act_sim.set_faults(error_rate=0.0)
    assert client.contacts_by_email("demo@example.com")


def test_503_without_retry_after_backs_off_with_jitter(client, act_sim):
    act_sim.set_faults(error_rate=1.0, kinds=("503",), retry_after=False)
    with pytest.raises(ActUnavailable):
        client.contact_fields()
    assert len(client.waits) == client.config.max_retries and len(set(client.waits)) > 1


def test_a_post_is_not_repeated_after_a_timeout(client, act_sim):
    contact_id = next(iter(act_sim.contacts))
    history_type = client.history_types()[0]["id"]
    act_sim.set_faults(error_rate=1.0, kinds=("timeout",), timeout_seconds=1.5)
    with pytest.raises(ActUnavailable) as caught:
        client.post_history({"contacts": [{"id": contact_id}], "regarding": "x", "details": "y",
                             "historyTypeID": history_type})
    assert caught.value.ambiguous
    act_sim.set_faults(error_rate=0.0)
    time.sleep(2)  # the simulator finishes the request after its delay: the write landed once
    assert len([c for c in calls(act_sim, "/api/History") if c[0] == "POST"]) == 1


def test_odata_quoting_and_case_insensitive_match(client, act_sim):
    assert odata_string("o'brien@example.ie") == "'o''brien@example.ie'"
    act_sim.add_contact(emailAddress="Zoë.O'Neil@Example.FR", firstName="Zoë")
    found = client.contacts_by_email("zoë.o'neil@example.fr")
    assert [c["firstName"] for c in found] == ["Zoë"]
    assert client.contacts_by_email("nobody'; drop@example.fr") == []


def test_both_collection_shapes(client, act_sim):
    bare = client.contacts_by_email("demo@example.com")
    act_sim.envelope = True
    try:
        wrapped = client.contacts_by_email("demo@example.com")
    finally:
        act_sim.envelope = False
    assert bare and [c["id"] for c in bare] == [c["id"] for c in wrapped]


def test_rate_limit_headers_slow_the_client_down(client, act_sim):
    act_sim.set_faults(rate_limit=6)
    for _ in range(5):
        client.contact_fields()
    assert client.waits, "expected a pause when X-RateLimit-Remaining ran low"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chalicelib.cli", *args], cwd=ROOT,
                          env=dict(os.environ), capture_output=True, text=True, timeout=120)


def test_cli_act_check_and_setup(env, act_sim, monkeypatch):
    from tests.conftest import ACT_DATABASE, ACT_PASSWORD, ACT_USER

    for name, value in {"ACT_API_URL": act_sim.base_url, "ACT_DATABASE": ACT_DATABASE,
                        "ACT_USERNAME": ACT_USER, "ACT_PASSWORD": ACT_PASSWORD}.items():
        monkeypatch.setenv(name, value)
    before = run_cli("act", "check")
    assert before.returncode == 1 and "missing (run `act setup`)" in before.stdout
    setup = run_cli("act", "setup")
    assert setup.returncode == 0 and "created  Consent Newsletter (Character)" in setup.stdout
    after = run_cli("act", "check")
    assert after.returncode == 0 and "0 problem(s)" in after.stdout
    monkeypatch.setenv("ACT_PASSWORD", "wrong")
    wrong = run_cli("act", "check")
    assert wrong.returncode == 2 and "Act! refused the sign-in" in wrong.stderr


def test_cli_act_check_reports_a_field_of_the_wrong_type(env, act_sim, monkeypatch, tmp_path):
    from tests.conftest import ACT_DATABASE, ACT_PASSWORD, ACT_USER

    for name, value in {"ACT_API_URL": act_sim.base_url, "ACT_DATABASE": ACT_DATABASE,
                        "ACT_USERNAME": ACT_USER, "ACT_PASSWORD": ACT_PASSWORD}.items():
        monkeypatch.setenv(name, value)
    act_sim.add_field("Consent Newsletter", "YesNo")
    result = run_cli("act", "check")
    assert result.returncode == 1
    assert "type YesNo cannot hold the status" in result.stdout
