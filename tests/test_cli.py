"""The operator CLI, run as an operator would: a subprocess with environment variables."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import click
import pytest

from chalicelib import cli
from chalicelib.proof import chain
from chalicelib.store.ledger import to_item
from chalicelib.store.keys import event_sk, subject_pk
from tests.support.campaigns import LANGUAGE_FIELD, add_language_contacts
from tests.support.cli import run_cli

ROOT = Path(__file__).resolve().parent.parent


def _subcommands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, sub in group.commands.items():
        yield prefix + (name,)
        if isinstance(sub, click.Group):
            yield from _subcommands(sub, prefix + (name,))


def test_every_command_has_help():
    commands = list(_subcommands(cli.cli))
    assert ("table", "create") in commands and ("link", "mint") in commands
    assert ("chain", "verify") in commands
    for command in [()] + commands:
        result = run_cli(*command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage:" in result.stdout and len(result.stdout) > 80
        assert "\nExample: python -m chalicelib.cli " in result.stdout, command


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


def test_chain_verify_finds_the_first_broken_event(env, cli_mint, ledger):
    issued = cli_mint("tamper@example.eu", "newsletter")
    cli_mint("tamper@example.eu", "events")
    cli_mint("tamper@example.eu", "promotions")
    cli_mint("fine@example.eu", "newsletter")
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


def test_chain_verify_detects_a_removed_last_event(env, cli_mint, ledger):
    issued = cli_mint("tail@example.eu", "newsletter")
    cli_mint("tail@example.eu", "events")
    ledger.client.delete_item(TableName=ledger.table,
                              Key=to_item({"pk": subject_pk(issued.subject), "sk": event_sk(2)}))
    result = run_cli("chain", "verify", "--subject", issued.subject)
    assert result.returncode == 1 and "chain head says 2 events, found 1" in result.stdout
    assert not chain.verify_chain(issued.subject, ledger.events(issued.subject),
                                  head_seq=2).ok


def test_purposes_check_needs_no_secrets(tmp_path):
    result = run_cli("purposes", "check", env={"LINK_SECRET_KEYS": "", "SUBJECT_PEPPER": ""})
    assert result.returncode == 0 and "newsletter" in result.stdout
    broken = tmp_path / "bad.toml"
    raw = (ROOT / "catalogue.toml").read_text()
    start = raw.index('text.fr = """\nUne fois')
    end = raw.index('"""', start + len('text.fr = """')) + 3
    broken.write_text(raw[:start] + raw[end:])  # the French newsletter text deleted
    result = run_cli("purposes", "check", env={"CONSENT_CATALOGUE": str(broken)})
    assert result.returncode == 2
    assert "bad.toml line" in result.stderr and "text.fr is missing" in result.stderr


def _decided(client, mint, email: str):
    from urllib.parse import urlencode

    from tests.conftest import form_fields

    issued = mint(email, "newsletter")
    fields = form_fields(client.http.get(f"/c/{issued.token}").body.decode())
    client.http.post(f"/c/{issued.token}", headers={"content-type": "application/x-www-form-urlencoded"},
                     body=urlencode({**fields, "decision.newsletter": "refuse"}))
    return issued


def test_chain_verify_catches_edits_outside_the_chain(env, client, mint, ledger):
    """A hand-edited state, an altered stored wording, a deleted head, a float: all reported."""
    from chalicelib.store.keys import purpose_sk

    state_edit = _decided(client, mint, "state@example.eu")
    ledger.client.update_item(
        TableName=ledger.table, Key=to_item({"pk": subject_pk(state_edit.subject), "sk": purpose_sk("newsletter")}),
        UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues=to_item({":s": "accepted"}))
    result = run_cli("chain", "verify", "--subject", state_edit.subject)
    assert result.returncode == 1 and "purpose state 'newsletter' says 'accepted'" in result.stdout

    head_gone = _decided(client, mint, "head@example.eu")
    ledger.client.delete_item(TableName=ledger.table,
                              Key=to_item({"pk": subject_pk(head_gone.subject), "sk": "CHAIN"}))
    ledger.client.delete_item(TableName=ledger.table,
                              Key=to_item({"pk": subject_pk(head_gone.subject), "sk": event_sk(2)}))
    everything = run_cli("chain", "verify", "--all", "--quiet")
    assert "chain head is missing" in everything.stdout

    text_item = next(e for e in ledger.events(state_edit.subject) if e.get("text_sha256"))
    ledger.client.update_item(
        TableName=ledger.table, Key=to_item({"pk": f"TEXT#{text_item['text_sha256']}", "sk": "TEXT"}),
        UpdateExpression="SET #t = :t", ExpressionAttributeNames={"#t": "text"},
        ExpressionAttributeValues=to_item({":t": "We may sell your address."}))
    fine = _decided(client, mint, "fine-text@example.eu")
    result = run_cli("chain", "verify", "--subject", fine.subject)
    assert result.returncode == 1 and "stored wording" in result.stdout and "altered" in result.stdout

    floaty = mint("float@example.eu", "events")
    ledger.client.update_item(
        TableName=ledger.table, Key=to_item({"pk": subject_pk(floaty.subject), "sk": event_sk(1)}),
        UpdateExpression="SET seq = :s", ExpressionAttributeValues={":s": {"N": "1.5"}})
    result = run_cli("chain", "verify", "--subject", floaty.subject)
    assert result.returncode == 1 and "BROKEN" in result.stdout and "Traceback" not in result.stderr


def test_cli_reports_an_unreachable_store_in_one_line(env):
    from devstack.dynamodb_local import free_port

    result = run_cli("table", "describe", env={"DYNAMODB_ENDPOINT": f"http://127.0.0.1:{free_port()}",
                                                "DYNAMODB_TIMEOUT": "0.5"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "DYNAMODB_ENDPOINT" in result.stderr


# -- mail and forms ------------------------------------------------------------------------

def test_forms_list_and_snippets(mail_env):
    listed = run_cli("forms", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {row["id"] for row in json.loads(listed.stdout)} == {"website", "strict", "redirecting"}
    for kind, marker in (("iframe", 'src="https://c.example/signup/website?lang=fr"'),
                         ("iframe", 'origin = "https://c.example"'),  # the resize listener
                         ("html", 'action="https://c.example/signup/website"'),
                         ("script", 'fetch(base + "/signup/" + formId + "/form.json?lang="')):
        result = run_cli("forms", "snippet", "--form", "website", "--kind", kind, "--lang", "fr",
                         "--base-url", "https://c.example")
        assert result.returncode == 0, result.stderr
        assert marker in result.stdout
    french = run_cli("forms", "snippet", "--form", "website", "--kind", "html", "--lang", "fr",
                     "--base-url", "https://c.example").stdout
    assert "Lettre d&#x27;information mensuelle" in french or "Lettre d&#39;information" in french
    unknown = run_cli("forms", "snippet", "--form", "nope", "--base-url", "https://c.example")
    assert unknown.returncode == 2 and "no form 'nope'" in unknown.stderr


def test_mail_preview_prints_the_template_version(mail_env):
    result = run_cli("mail", "preview", "--kind", "confirm", "--locale", "fr", "--purpose",
                     "newsletter", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["template_version"]) == 64 and "\u27e6confirm_url\u27e7" in data["text"]
    assert data["locale"] == "fr"


def test_mail_status_and_sweep_after_a_failure(mail_env, client, mail_sink):
    from urllib.parse import urlencode

    mail_sink.set_failure("tempfail")
    response = client.http.post("/signup/website", body=urlencode(
        {"email": "cli@example.eu", "purpose.newsletter": "yes"}),
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    status = run_cli("mail", "status")
    assert status.returncode == 0 and "queued" in status.stdout and "451" in status.stdout
    due = run_cli("mail", "sweep")
    assert due.returncode == 0 and "0 sent" in due.stdout  # still in its backoff
    mail_sink.set_failure(None)
    swept = run_cli("mail", "sweep", "--all")
    assert swept.returncode == 0 and "1 sent" in swept.stdout, swept.stdout + swept.stderr
    mail_sink.wait_for("cli@example.eu")
    assert "outbox is empty" in run_cli("mail", "status").stdout


def test_campaign_start_report_and_csv_from_the_cli(act_env, act_sim, tmp_path):
    for i in range(3):
        act_sim.add_contact(firstName=f"Cli{i}", emailAddress=f"cli{i}@example.eu")
    act_sim.add_group("CLI people", [c["id"] for c in act_sim.contacts.values()
                                     if (c.get("emailAddress") or "").startswith("cli")])
    out = tmp_path / "links.csv"
    started = run_cli("campaign", "start", "--id", "cli-camp", "--purpose", "newsletter",
                      "--group", "CLI people", "--delivery", "csv", "--csv", str(out))
    assert started.returncode == 0, started.stderr
    assert "3 contacts: 3 exported now" in started.stdout
    assert "3/3 contacts" in started.stderr
    assert len(out.read_text().splitlines()) == 4
    again = run_cli("campaign", "run", "--id", "cli-camp")
    assert again.returncode == 0 and "0 exported now, 3 done before" in again.stdout
    report = run_cli("campaign", "report", "--id", "cli-camp", "--json")
    assert json.loads(report.stdout)["purposes"]["newsletter"]["no_answer"] == 3
    field = run_cli("campaign", "start", "--id", "field-camp", "--purpose", "newsletter",
                    "--all", "--delivery", "act-field", "--link-field", "Nope Field")
    assert field.returncode == 2 and "no contact field 'Nope Field'" in field.stderr


def test_campaign_start_with_each_contacts_language_from_an_act_field(act_env, act_sim,
                                                                      tmp_path):
    ids = add_language_contacts(act_sim, "clilang")
    act_sim.add_group("CLI languages", ids)
    refused = run_cli("campaign", "start", "--id", "cli-lang", "--purpose", "newsletter",
                      "--group", "CLI languages", "--delivery", "csv", "--locale-field", "Langue")
    assert refused.returncode != 0 and "language field 'Langue'" in refused.stderr
    out = tmp_path / "links.csv"
    started = run_cli("campaign", "start", "--id", "cli-lang", "--purpose", "newsletter",
                      "--group", "CLI languages", "--delivery", "csv", "--csv", str(out),
                      "--locale", "en", "--locale-field", LANGUAGE_FIELD)
    assert started.returncode == 0, started.stderr
    links = {row["act_contact_id"]: row["link"] for row in csv.DictReader(out.open())}
    assert [links[i].rsplit("?lang=", 1)[1] for i in ids] == ["fr", "en", "en"]
    helped = run_cli("campaign", "start", "--help")
    assert "--locale-field NAME" in helped.stdout and "--locale-field Language" in helped.stdout


def test_sync_status_tells_asked_people_from_stuck_syncs(env, mint):
    """A link sent and not answered leaves nothing to push: `sync status` says so, and
    counts those people per purpose instead of reading as if Act! were up to date."""
    done = run_cli("sync", "status")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "nothing to push: every decision made is in Act!"
    mint("asked@example.eu", "newsletter", "events")
    mint("other@example.eu", "newsletter")
    done = run_cli("sync", "status")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "nothing to push: every decision made is in Act!",
        "asked, no answer yet (nothing to push until they decide): events 1, newsletter 2",
    ]
    assert "{" not in done.stdout  # log lines go to stderr, never into the CLI's output
