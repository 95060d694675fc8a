"""The operator CLI, run as an operator would: a subprocess with environment variables."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib import cli, proof
from chalicelib.ledger import event_sk, subject_pk, to_item

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chalicelib.cli", *args], cwd=ROOT,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=120)


def _subcommands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,)
                yield from _subcommands(sub, prefix + (name,))


def test_every_command_has_help():
    commands = list(_subcommands(cli.build_parser()))
    assert ("table", "create") in commands and ("link", "mint") in commands
    assert ("chain", "verify") in commands
    for command in [()] + commands:
        result = run_cli(*command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert "usage:" in result.stdout and len(result.stdout) > 80


def test_table_create_is_idempotent_and_complete(env):
    name = env["CONSENT_TABLE"] + "-cli"
    first = run_cli("table", "create", "--table", name)
    assert first.returncode == 0, first.stderr
    assert f"created table {name}" in first.stdout
    second = run_cli("table", "create", "--table", name)
    assert second.returncode == 0 and "already exists" in second.stdout
    described = json.loads(run_cli("table", "describe", "--table", name, "--json").stdout)
    assert described["status"] == "ACTIVE"
    assert described["indexes"] == ["pending-sync"]
    assert described["stream"] == "NEW_AND_OLD_IMAGES"
    assert described["ttl"].startswith("ENABLED") and "expires_at" in described["ttl"]


def test_link_mint_prints_a_working_url(env, client, ledger):
    result = run_cli("link", "mint", "--email", "a@b.eu", "--purpose", "newsletter",
                     "--purpose", "events")
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert url.startswith("http://testserver/c/")
    page = client.http.get(url.removeprefix("http://testserver"))
    assert page.status_code == 200 and "Invitations to events" in page.body.decode()
    as_json = json.loads(run_cli("link", "mint", "--email", "a@b.eu", "--purpose",
                                 "newsletter", "--json", "--locale", "fr").stdout)
    assert as_json["url"].endswith("?lang=fr") and as_json["link_id"]
    assert [e["kind"] for e in ledger.events(as_json["subject"])] == ["link_issued"] * 2


@pytest.mark.parametrize("args, message", [
    (["--email", "not-an-address", "--purpose", "newsletter"], "not valid"),
    (["--email", "a@b.eu", "--purpose", "astrology"], "Unknown purpose(s): astrology"),
])
def test_link_mint_refuses_bad_input(env, table_items, args, message):
    before = table_items()
    result = run_cli("link", "mint", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert table_items() == before


def test_missing_secret_is_explained(env):
    result = run_cli("link", "mint", "--email", "a@b.eu", "--purpose", "newsletter",
                     env={"SUBJECT_PEPPER": ""})
    assert result.returncode == 2
    assert "SUBJECT_PEPPER is not set" in result.stderr and "secrets.token_urlsafe" in result.stderr


def test_chain_verify_finds_the_first_broken_event(env, mint, ledger):
    issued = mint("tamper@example.eu", "newsletter")
    mint("tamper@example.eu", "events")
    mint("tamper@example.eu", "promotions")
    mint("fine@example.eu", "newsletter")
    ok = run_cli("chain", "verify", "--email", "tamper@example.eu")
    assert ok.returncode == 0 and "ok" in ok.stdout and "3 events" in ok.stdout

    # Someone edits event 2 in the table directly.
    ledger.client.update_item(
        TableName=ledger.table, Key=to_item({"pk": subject_pk(issued.subject), "sk": event_sk(2)}),
        UpdateExpression="SET channel = :c", ExpressionAttributeValues=to_item({":c": "forged"}))
    broken = run_cli("chain", "verify", "--email", "tamper@example.eu")
    assert broken.returncode == 1
    assert "BROKEN" in broken.stdout and "at event 2" in broken.stdout and "altered" in broken.stdout

    everything = run_cli("chain", "verify", "--all")
    assert everything.returncode == 1
    assert "2 subject(s) checked, 1 broken" in everything.stdout
    quiet = run_cli("chain", "verify", "--all", "--quiet")
    assert quiet.stdout.count("\n") == 2  # the broken line and the summary


def test_chain_verify_detects_a_removed_last_event(env, mint, ledger):
    issued = mint("tail@example.eu", "newsletter")
    mint("tail@example.eu", "events")
    ledger.client.delete_item(TableName=ledger.table,
                              Key=to_item({"pk": subject_pk(issued.subject), "sk": event_sk(2)}))
    result = run_cli("chain", "verify", "--subject", issued.subject)
    assert result.returncode == 1 and "chain head says 2 events, found 1" in result.stdout
    assert not proof.verify_chain(issued.subject, ledger.events(issued.subject),
                                  head_seq=2).ok


def test_purposes_check_needs_no_secrets(tmp_path):
    result = run_cli("purposes", "check", env={"LINK_SECRET_KEYS": "", "SUBJECT_PEPPER": ""})
    assert result.returncode == 0 and "newsletter" in result.stdout
    broken = tmp_path / "bad.toml"
    broken.write_text((ROOT / "catalogue.toml").read_text().replace('text.fr = """\nUne fois', 'textfr = """\nUne fois'))
    result = run_cli("purposes", "check", env={"CONSENT_CATALOGUE": str(broken)})
    assert result.returncode == 2
    assert "bad.toml line" in result.stderr and "text.fr is missing" in result.stderr
