"""The click CLI's promises to scripts and operators: an example in every --help,
--json that parses, usage errors that exit 2, and progress bars kept off stdout."""
from __future__ import annotations

import io
import json
import sys
from typing import Any, Iterator

import click
import pytest

from chalicelib.cli import cli, main
from chalicelib.cli import common


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, sub in group.commands.items():
        yield prefix + (name,)
        if isinstance(sub, click.Group):
            yield from _commands(sub, prefix + (name,))


class FakeTTY(io.StringIO):
    """A stderr that says it is a terminal, so the bar is really drawn."""

    def isatty(self) -> bool:
        return True


def test_every_command_and_group_has_help_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    commands = [(), *_commands(cli)]
    assert len(commands) > 50
    for command in commands:
        assert main([*command, "--help"]) == 0, command
        out = capsys.readouterr().out
        assert out.startswith("Usage: python -m chalicelib.cli"), command
        example = [line for line in out.splitlines() if line.startswith("Example: ")]
        assert len(example) == 1, command
        # the example names a real command of the group it documents
        assert example[0].startswith(" ".join(("Example: python -m chalicelib.cli",
                                               *command[:1])).rstrip()), (command, example)


def test_entry_point_names_itself_optinproof(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sync", "drain", "--help"], prog_name="optinproof") == 0
    assert "Example: optinproof sync drain --all" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["chain", "verify"], "one of the arguments --email --subject --all is required"),
    (["chain", "verify", "--email", "a@b.eu", "--all"], "not allowed with argument --email"),
    (["sync", "drain", "--limit", "many"], "Invalid value for '--limit'"),
    (["link", "mint", "--email", "a@b.eu"], "Missing option '--purpose'"),
    (["mail", "preview", "--locale", "de"], "Invalid value for '--locale'"),
    (["no-such-group"], "No such command 'no-such-group'"),
    (["sync"], "Usage:"),
])
def test_usage_errors_exit_2_with_a_message(argv: list[str], message: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err or message in captured.out
    assert "Traceback" not in captured.err


def test_a_domain_error_is_one_line_and_exit_2(env: dict[str, str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["link", "mint", "--email", "a@b.eu", "--purpose", "astrology"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and "astrology" in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("argv", [
    ["sync", "status", "--json"], ["mail", "status", "--json"],
    ["webhooks", "status", "--json"], ["campaign", "list", "--json"],
    ["chain", "verify", "--all", "--json"], ["chain", "verify", "--email", "ann@example.eu", "--json"],
    ["act", "drift", "--json"], ["forms", "list", "--json"], ["purposes", "check", "--json"],
])
def test_json_output_is_one_document(argv: list[str], env: dict[str, str], mint: Any,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    mint("ann@example.eu", "newsletter")
    assert main(argv) == 0, capsys.readouterr().err
    json.loads(capsys.readouterr().out)


def test_chain_verify_json_counts(env: dict[str, str], mint: Any,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    mint("ann@example.eu", "newsletter")
    mint("bob@example.eu", "events")
    assert main(["chain", "verify", "--all", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["checked"] == 2 and data["broken"] == 0
    assert all(s["ok"] for s in data["subjects"]) and len(data["subjects"]) == 2
    assert main(["chain", "verify", "--all", "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["subjects"] == []


def test_act_check_json(act_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["act", "check", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["problems"] == 0 and data["mapped"] == len(data["fields"]) > 0
    assert all(f["ok"] and f["key"] for f in data["fields"])


def test_progress_bar_is_drawn_on_stderr_never_on_stdout(
        env: dict[str, str], mint: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(3):
        mint(f"p{i}@example.eu", "newsletter")
    terminal = FakeTTY()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert common.stderr_is_tty()
    assert main(["chain", "verify", "--all"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 4 and all(line.startswith("ok      ") for line in lines[:3])
    assert lines[3] == "3 subject(s) checked, 0 broken"
    assert "verifying chains" in terminal.getvalue() and "\r" in terminal.getvalue()
    assert "verifying chains" not in out and "\r" not in out

    assert main(["evidence", "--email", "p0@example.eu", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    files = out.splitlines()
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".html")
    assert "evidence pack" in terminal.getvalue() and "evidence pack" not in out


def test_logs_go_to_stderr(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    from chalicelib.core.logs import log

    with __import__("chalicelib.core.logs", fromlist=["logs_to"]).logs_to(sys.stderr):
        log("cli_test_event")
    captured = capsys.readouterr()
    assert captured.out == "" and json.loads(captured.err)["event"] == "cli_test_event"
    log("after")  # outside the CLI, logs stay on stdout (Lambda)
    assert json.loads(capsys.readouterr().out)["event"] == "after"
