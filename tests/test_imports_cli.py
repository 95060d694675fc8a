"""`optinproof import` as an operator runs it: files of each source, and Act! directly."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from chalicelib.act.client import ActClient
from chalicelib.cli.main import main
from chalicelib.consent import stats
from chalicelib.consent.subjects import subject_of_address
from chalicelib.core.services import get_ledger
from chalicelib.core.settings import get_settings
from chalicelib.proof import audit
from chalicelib.store import keys
from tests.support import imports as samples
from tests.support.cli import run_cli


def _write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_cli_imports_a_mailchimp_export_with_rejects_and_reruns(env, tmp_path) -> None:
    path = _write(tmp_path, "subscribed_members_export.csv", samples.mailchimp_subscribed())
    wording = _write(tmp_path, "wording.txt", samples.WORDING)
    rejects = tmp_path / "rejects.csv"
    args = ("import", str(path), "--source", "mailchimp", "--purpose", "newsletter",
            "--wording-file", str(wording), "--rejects", str(rejects), "--json")
    first = run_cli(*args, env=env)
    assert first.returncode == 1, first.stderr  # two rows rejected
    summary = json.loads(first.stdout)
    assert summary["imported"] == 3 and summary["grades"] == {"A": 1, "B": 1, "C": 1}
    with rejects.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["line"], r["reason"].split(" (")[0]) for r in rows] == [
        ("5", "invalid e-mail address"), ("6", "unreadable date 'yesterday-ish'")]
    assert "OPTIN_TIME=yesterday-ish" in rows[1]["columns"]
    again = run_cli(*args, env=env)
    assert json.loads(again.stdout)["imported"] == 0
    assert json.loads(again.stdout)["already_imported"] == 3
    assert '"event": "import_done"' in again.stderr  # logs on stderr, never stdout


def test_cli_dry_run_and_usage_errors(env, tmp_path, capsys) -> None:
    path = _write(tmp_path, "brevo.csv", samples.brevo(), encoding="cp1252")
    assert main(["import", str(path), "--source", "brevo", "--purpose", "newsletter",
                 "--dry-run"]) == 1
    out = capsys.readouterr().out
    assert "dry_run: True" in out and "imported: 3" in out
    assert not list(get_ledger().query(keys.STATS_GRADES, "S"))
    assert main(["import", str(path), "--purpose", "newsletter"]) == 2
    assert "--source" in capsys.readouterr().err
    assert main(["import", "--source", "generic"]) == 2
    assert main(["import", str(path), "--source", "brevo", "--purpose", "nope"]) == 2
    assert "Unknown purpose" in capsys.readouterr().err
    empty = _write(tmp_path, "empty.csv", "")
    assert main(["import", str(empty), "--source", "generic"]) == 2
    assert "cannot be read as CSV" in capsys.readouterr().err


def test_cli_imports_every_sample_format(env, tmp_path, capsys) -> None:
    for name, text, extra in (
        ("act.csv", samples.act_export(), ["--source", "act", "--purpose", "newsletter",
                                           "--act-flag", "Newsletter opt-in",
                                           "--act-date", "Opt-in date"]),
        ("generic.csv", samples.generic(), ["--source", "generic"]),
        ("mc.csv", samples.mailchimp_unsubscribed(), ["--source", "mailchimp",
                                                      "--purpose", "promotions"]),
    ):
        path = _write(tmp_path, name, text)
        assert main(["import", str(path), *extra, "--json"]) in (0, 1)
        assert json.loads(capsys.readouterr().out)["imported"] > 0, name
    grades = stats.grades(get_ledger())
    assert grades["newsletter"] == {"A": 1, "B": 1, "C": 1}  # generic A, Act! B and C
    assert grades["promotions"] == {"B": 1} and grades["events"] == {"C": 1}


def _opt_in_fields(act_sim: Any) -> tuple[str, str]:
    act_sim.add_field("Newsletter opt-in", "Character", 10)
    act_sim.add_field("Opt-in date", "DateTime")
    by_name = {f["displayName"]: f["columnName"].lower() for f in act_sim.fields}
    return by_name["Newsletter opt-in"], by_name["Opt-in date"]


def test_import_from_the_act_web_api_fields_and_histories(act_env, act_sim, capsys) -> None:
    flag, date = _opt_in_fields(act_sim)
    dated = act_sim.add_contact(firstName="Rosa", lastName="Vidal", emailAddress="rosa@example.eu",
                                customFields={flag: "Yes", date: "2024-02-01T09:00:00"})
    told = act_sim.add_contact(firstName="Sam", lastName="Noel", emailAddress="sam@example.eu",
                               customFields={flag: "Yes"})
    act_sim.add_contact(firstName="Tom", lastName="Lenoir", emailAddress="tom@example.eu",
                        customFields={flag: "No"})
    client = ActClient(get_settings().act)
    kind = client.history_types()[0]["id"]
    client.post_history({"contacts": [{"id": told["id"]}], "regarding": "Newsletter",
                         "details": "Opted in to the newsletter at the trade fair",
                         "startTime": "2023-09-14T15:00:00", "endTime": "2023-09-14T15:00:00",
                         "historyTypeID": kind})
    code = main(["import", "--from-act", "--purpose", "newsletter", "--act-flag",
                 "Newsletter opt-in", "--act-date", "Opt-in date", "--act-history",
                 "Opted in", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 1  # Tom says no, and the simulator's demo contacts have no flag
    assert summary["source"] == "act" and summary["imported"] == 2
    assert summary["grades"] == {"A": 0, "B": 2, "C": 0}
    ledger, settings = get_ledger(), get_settings()
    rosa = subject_of_address(settings, "rosa@example.eu")
    state = ledger.get(*keys.purpose(rosa, "newsletter"))
    # Act!'s wall time (Europe/Paris in the tests) as the UTC instant
    assert state["source_at"] == "2024-02-01T08:00:00.000Z" and state["grade"] == "B"
    sam = subject_of_address(settings, "sam@example.eu")
    (event,) = ledger.events(sam)
    assert event["opted_in_at"] == "2023-09-14T13:00:00.000Z"
    record = next(ledger.query(keys.subject_pk(sam), keys.IMPORTED_PREFIX))
    assert record["columns"]["History details"].startswith("Opted in to the newsletter")
    assert record["columns"]["Contact ID"] == told["id"]
    assert audit.verify_subject(ledger, sam).ok
    assert main(["import", "--from-act", "--purpose", "newsletter", "--act-flag",
                 "No such field"]) == 2
    assert "no contact field named" in capsys.readouterr().err
    assert dated["id"]
