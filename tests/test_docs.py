"""The documentation stays true: a short README, links that resolve, and every command
in the docs still runs as written.

What "runs as written" means here, command by command (fenced ``sh``/``console``
blocks and inline code spans of README.md and docs/*.md):

- every operator CLI line (``optinproof …``, ``python -m chalicelib.cli …``, with or
  without ``.venv/bin/``) names a command that exists, and every ``--option`` it uses
  is one that command's ``--help`` lists;
- the *safe* ones are executed, in-process through ``chalicelib.cli.main`` with an
  environment that reaches nothing (no AWS credentials worth anything, DynamoDB on a
  closed loopback port, no Act!, no mail): ``--help`` of anything, and the offline
  commands in ``SAFE_OFFLINE`` (they read only the catalogue and the templates). Where
  a ``console`` block shows the output, the output shown must be what the command
  prints. Commands that need AWS, DynamoDB or Act! are only checked, never run;
- ``python -m devstack.act_simulator …`` lines use only options its ``--help`` lists
  (and its ``--help`` is run); ``make <target>`` names a target of the Makefile
  (``make help`` is run).

The CLI reference table (docs/reference.md) lists every command with every option it
accepts, and the configuration table every setting the app reads; the embed snippets
in the marketing guides are exactly what ``forms snippet`` prints.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import click
import pytest

from chalicelib.cli import cli, main
from chalicelib.core import secrets as core_secrets
from chalicelib.core import settings as core_settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GUIDES = sorted((ROOT / "docs").rglob("*.md"))
DOC_FILES = [README, *GUIDES]
#: every markdown file whose links are checked (the screenshots index included)
LINKED_FILES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
REFERENCE = ROOT / "docs" / "reference.md"

#: Commands that read only the catalogue and the templates: safe to run as written.
SAFE_OFFLINE = {
    ("purposes", "check"),
    ("forms", "list"),
    ("forms", "snippet"),
    ("mail", "preview"),
}
#: Separators that end one command of a shell line.
SHELL_OPERATORS = {"|", "||", "&&", ";", "(", ")", ">", ">>", "<", "&"}
SNIPPET_BASE = "https://consent.example-outdoor.eu"
#: the worktree's own interpreter (the one `make deps` set up), for subprocesses
PYTHON = (
    str(ROOT / ".venv" / "bin" / "python")
    if (ROOT / ".venv" / "bin" / "python").exists()
    else sys.executable
)


# --- reading the markdown -------------------------------------------------------------


@dataclass
class Block:
    path: Path
    line: int
    lang: str
    text: str


def fenced_blocks(path: Path) -> list[Block]:
    blocks, current, lines = [], None, path.read_text("utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            if current is None:
                current = Block(path, number, line[3:].strip(), "")
            else:
                blocks.append(current)
                current = None
        elif current is not None:
            current.text += line + "\n"
    assert current is None, f"{path.name}: unclosed code fence at line {current.line}"
    return blocks


def prose(path: Path) -> str:
    """The file without its fenced blocks (fences replaced by blank lines)."""
    out, fence = [], False
    for line in path.read_text("utf-8").splitlines():
        if line.startswith("```"):
            fence = not fence
            out.append("")
        else:
            out.append("" if fence else line)
    return "\n".join(out)


def code_spans(text: str) -> list[str]:
    """Inline code spans (they may wrap over a line end), whitespace normalised."""
    return [" ".join(span.split()) for span in re.findall(r"`([^`\n]+(?:\n[^`\n]+)*)`", text)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces → '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in prose(path).splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base, n = slug(match.group(1)), 0
            name = base
            while name in found:
                n += 1
                name = f"{base}-{n}"
            found.add(name)
    return found


def links(path: Path) -> Iterator[str]:
    text = re.sub(r"`[^`\n]*`", "", prose(path))
    yield from re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text)
    yield from re.findall(r"(?m)^\[[^\]]+\]:\s+(\S+)", text)


# --- finding the commands ---------------------------------------------------------------


@dataclass
class Invocation:
    """One documented command: which program, its arguments, where it is written."""

    program: str  # "cli", "simulator" or "make"
    args: list[str]
    where: str
    env: dict[str, str] = field(default_factory=dict)
    output: list[str] | None = None  # the output a console block shows for it
    inline: bool = False


def shell_commands(block: Block) -> Iterator[tuple[int, str, list[str] | None]]:
    """(line, command, output shown) for each command of a shell or console block."""
    console = block.lang == "console"
    pending, start = "", 0
    lines = block.text.splitlines()
    commands: list[list] = []
    for offset, raw in enumerate(lines):
        line = raw.rstrip()
        if console and not pending:
            if not line.startswith("$ "):
                if commands:
                    commands[-1][2].append(line)
                continue
            line = line[2:]
        if not pending:
            start = block.line + 1 + offset
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        try:  # a quoted argument may span lines (a JSON body, say)
            tokens(pending + line)
        except ValueError:
            pending += line + "\n"
            continue
        commands.append([start, pending + line, []])
        pending = ""
    for start, command, output in commands:
        yield start, command, (output if console else None)


def tokens(command: str) -> list[str]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def invocations_in(
    words: list[str], where: str, output: list[str] | None = None, inline: bool = False
) -> Iterator[Invocation]:
    env: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if word in SHELL_OPERATORS:
            env = {}
            i += 1
            continue
        if re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", word) and not word.endswith("=$"):
            name, _, value = word.partition("=")
            env[name] = value
            i += 1
            continue
        program, skip = None, 0
        if Path(word).name == "optinproof":
            program, skip = "cli", 1
        elif Path(word).name.startswith("python") and words[i + 1 : i + 3] == [
            "-m",
            "chalicelib.cli",
        ]:
            program, skip = "cli", 3
        elif Path(word).name.startswith("python") and words[i + 1 : i + 3] == [
            "-m",
            "devstack.act_simulator",
        ]:
            program, skip = "simulator", 3
        elif word == "make":
            program, skip = "make", 1
        if program is None:
            i += 1
            continue
        j = i + skip
        while j < len(words) and words[j] not in SHELL_OPERATORS:
            j += 1
        yield Invocation(program, words[i + skip : j], where, dict(env), output, inline)
        env, i = {}, j


def documented_invocations() -> list[Invocation]:
    found: list[Invocation] = []
    for path in DOC_FILES:
        name = path.relative_to(ROOT)
        for block in fenced_blocks(path):
            if block.lang not in ("sh", "bash", "shell", "console"):
                continue
            for line, command, output in shell_commands(block):
                found += invocations_in(tokens(command), f"{name}:{line}", output)
        for span in code_spans(prose(path)):
            words = span.split()
            starts = [
                i
                for i, w in enumerate(words)
                if Path(w).name == "optinproof" or w == "make" or w == "-m"
            ]
            if starts:
                found += invocations_in(words, f"{name}: `{span}`", inline=True)
    return found


INVOCATIONS = documented_invocations()
CLI_LINES = [inv for inv in INVOCATIONS if inv.program == "cli"]


# --- what the CLI accepts ---------------------------------------------------------------


def resolve(args: list[str]) -> tuple[tuple[str, ...], click.Command, list[str]]:
    """The command path the arguments name, the command, and the arguments left."""
    command: click.Command = cli
    path: list[str] = []
    rest = list(args)
    while isinstance(command, click.Group) and rest and rest[0] in command.commands:
        command = command.commands[rest[0]]
        path.append(rest.pop(0))
    return tuple(path), command, rest


@cache
def cli_help(path: tuple[str, ...]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main([*path, "--help"])
    assert code == 0, f"{' '.join(path)} --help exited {code}"
    return out.getvalue()


def options_in_help(text: str) -> set[str]:
    """The long options a --help lists (click's and argparse's layouts)."""
    found = set(re.findall(r"(?m)^\s+(?:-\w(?: \w+)?, )?(--[a-z0-9][\w-]*)", text))
    found |= set(re.findall(r"(?m)^\s+--[\w-]+\s*/\s*(--[\w-]+)", text))
    found |= set(re.findall(r"\[(--[a-z0-9][\w-]*)", text))  # argparse's usage line
    return found


def options_used(args: list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in args if re.fullmatch(r"--[a-z][\w-]*(=.*)?", a)]


def leaf_commands(
    group: click.Group = cli, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    for name, sub in group.commands.items():
        if isinstance(sub, click.Group):
            yield from leaf_commands(sub, prefix + (name,))
        else:
            yield prefix + (name,)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An environment in which a command cannot reach AWS, DynamoDB, Act! or a mailer."""
    for name in (
        *core_settings._ENV_NAMES,
        "SECRETS_SSM_PATH",
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "CONSENT_TABLE_STREAM_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LINK_SECRET_KEYS", "doc-test-link-key-" + "k" * 32)
    monkeypatch.setenv("SUBJECT_PEPPER", "doc-test-pepper-" + "p" * 32)
    monkeypatch.setenv("DYNAMODB_ENDPOINT", "http://127.0.0.1:9")  # discard port: refused at once
    monkeypatch.setenv("PUBLIC_BASE_URL", SNIPPET_BASE)  # only printed, never called
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.chdir(ROOT)


def run_cli(args: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(args)
    return code, out.getvalue()


def is_safe(inv: Invocation) -> bool:
    path, _, rest = resolve(inv.args)
    return not inv.env and ("--help" in rest or (path in SAFE_OFFLINE and not inv.inline))


# --- the tests --------------------------------------------------------------------------


def test_readme_is_at_most_15000_bytes() -> None:
    size = len(README.read_bytes())
    assert size <= 15_000, f"README.md is {size} bytes; move detail to docs/"


def test_every_relative_link_in_readme_and_docs_points_to_an_existing_file_and_heading() -> None:
    broken = []
    for path in LINKED_FILES:
        for target in links(path):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            if not dest.exists():
                broken.append(f"{path.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{path.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_docs_show_cli_commands_at_all() -> None:
    """Guards the extraction below: if it found nothing, the other tests would prove nothing."""
    assert len(CLI_LINES) >= 80
    assert sum(1 for inv in CLI_LINES if not inv.inline) >= 40
    assert sum(1 for inv in CLI_LINES if is_safe(inv)) >= 8
    assert len(cli_table_rows()) >= 40


@pytest.mark.parametrize("inv", CLI_LINES, ids=[inv.where for inv in CLI_LINES])
def test_documented_cli_line_names_a_real_command_and_only_options_it_accepts(
    inv: Invocation,
) -> None:
    path, command, rest = resolve(inv.args)
    # words that are not options; a placeholder (COMMAND, [options]) stands for any
    words = [a for a in rest if not a.startswith("-") and not a.isupper() and a[0] not in "[(<"]
    # A group that also runs on its own (``evidence --email …``; ``evidence verify``)
    # takes option values as words.
    if isinstance(command, click.Group) and not command.invoke_without_command:
        assert not words or "--help" in rest, (
            f"{inv.where}: no command {words[0]!r} in {' '.join(path) or 'the CLI'}"
        )
    accepted = options_in_help(cli_help(path))
    unknown = [o for o in options_used(rest) if o not in accepted and o != "--help"]
    assert not unknown, f"{inv.where}: {' '.join(path)} does not accept {unknown}"


SAFE_LINES = [inv for inv in CLI_LINES if is_safe(inv)]


@pytest.mark.parametrize("inv", SAFE_LINES, ids=[inv.where for inv in SAFE_LINES])
def test_safe_documented_cli_command_runs_as_written_and_prints_what_the_docs_show(
    inv: Invocation, offline: None
) -> None:
    code, out = run_cli(inv.args)
    assert code == 0, f"{inv.where}: exit {code}"
    for line in inv.output or []:
        if line.strip():
            assert line.strip() in out, (
                f"{inv.where}: the docs show {line.strip()!r}; it prints:\n{out}"
            )


SIM_LINES = [inv for inv in INVOCATIONS if inv.program == "simulator"]


def test_documented_act_simulator_lines_use_only_options_it_accepts() -> None:
    assert SIM_LINES
    run = subprocess.run(
        [PYTHON, "-m", "devstack.act_simulator", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 0, run.stderr
    accepted = options_in_help(run.stdout) | {"--help"}
    for inv in SIM_LINES:
        unknown = [o for o in options_used(inv.args) if o not in accepted]
        assert not unknown, f"{inv.where}: the simulator does not accept {unknown}"


def test_documented_make_targets_exist_and_make_help_runs() -> None:
    makefile = (ROOT / "Makefile").read_text("utf-8")
    targets = set(re.findall(r"(?m)^([a-z][\w-]*):", makefile))
    used = {
        (inv.args[0], inv.where)
        for inv in INVOCATIONS
        if inv.program == "make"
        and inv.args
        and not inv.args[0].startswith("-")
        and "=" not in inv.args[0]
    }
    assert {"run", "test"} <= {target for target, _ in used}
    missing = [f"{where}: make {target}" for target, where in used if target not in targets]
    assert not missing, "\n".join(missing)
    run = subprocess.run(
        ["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 0 and "make run" in run.stdout, run.stderr


# --- the reference tables ---------------------------------------------------------------


def section(path: Path, heading: str) -> str:
    text = prose(path)
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def cli_table_rows() -> list[tuple[tuple[str, ...], str]]:
    """(command path, code span) of each command in the reference's CLI table."""
    rows = []
    for line in section(REFERENCE, "Operator CLI").splitlines():
        if not line.startswith("| `"):
            continue
        first = re.split(r"(?<!\\)\|", line)[1]
        for span in re.findall(r"`([^`]+)`", first):
            path, _, _ = resolve(span.replace("\\|", "|").split())
            assert path, f"reference CLI table: {span!r} names no command"
            rows.append((path, span))
    return rows


def test_cli_reference_table_lists_every_command_with_exactly_the_options_it_accepts() -> None:
    rows = cli_table_rows()
    documented = {path for path, _ in rows}
    assert set(leaf_commands()) - documented == set(), "commands missing from the table"
    problems = []
    for path, span in rows:
        accepted = options_in_help(cli_help(path)) - {"--help"}
        shown = set(re.findall(r"--[a-z][\w-]*", span))
        if shown - accepted:
            problems.append(
                f"{' '.join(path)}: documents {sorted(shown - accepted)}, which it does not accept"
            )
        if accepted - shown:
            problems.append(
                f"{' '.join(path)}: accepts {sorted(accepted - shown)}, not in the table"
            )
    assert not problems, "\n".join(problems)


def test_configuration_table_names_every_setting_and_secret_the_app_reads() -> None:
    table = section(REFERENCE, "Configuration")
    named = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    wanted = (
        set(core_settings._ENV_NAMES)
        | set(core_secrets.SECRET_NAMES)
        | {"SECRETS_SSM_PATH", "SECRETS_CACHE_SECONDS", "CONSENT_TABLE_STREAM_ARN"}
    )
    assert wanted - named == set()


@pytest.mark.parametrize("guide, lang", [("marketing.en.md", "en"), ("marketing.fr.md", "fr")])
def test_marketing_guide_embed_snippets_are_what_forms_snippet_prints(
    guide: str, lang: str, offline: None
) -> None:
    printed = {}
    for kind in ("iframe", "html", "script"):
        code, out = run_cli(
            [
                "forms",
                "snippet",
                "--form",
                "website",
                "--kind",
                kind,
                "--lang",
                lang,
                "--base-url",
                SNIPPET_BASE,
            ]
        )
        assert code == 0
        printed[kind] = out.strip()
    shown = [b.text.strip() for b in fenced_blocks(ROOT / "docs" / guide) if b.lang == "html"]
    assert sorted(shown) == sorted(printed.values())


def test_the_openssl_recipe_of_docs_verify_checks_a_real_token_as_written(
    env: dict[str, str], tsa: object, ledger: object, tmp_path: Path
) -> None:
    """docs/verify.md's two commands, run as written (only the file names filled in):
    the CLI writes the token out of a real pack, then openssl alone verifies it."""
    import json as json_lib

    from chalicelib.core.services import get_catalogue
    from chalicelib.core.settings import get_settings
    from chalicelib.proof import anchor, evidence
    from tests.support.consent import decide

    issued = decide("doc@example.eu", newsletter="accept")
    assert anchor.run(ledger, get_settings().anchor, catch_up=True).anchor_id  # type: ignore[arg-type]
    data = evidence.pack(ledger, get_settings(), get_catalogue(), issued.subject)  # type: ignore[arg-type]
    (tmp_path / "evidence-3f1a2b4c5d6e.json").write_text(json_lib.dumps(data))
    (tmp_path / "tsa-root.pem").write_bytes(tsa.ca_pem.read_bytes())  # type: ignore[attr-defined]
    lines = [
        line.strip()
        for block in fenced_blocks(ROOT / "docs" / "verify.md")
        if block.lang == "sh"
        for line in block.text.splitlines()
    ]
    write = next(line for line in lines if "--write-token" in line)
    recipe = next(line for line in lines if line.startswith("openssl ts -verify"))
    args = shlex.split(write)
    assert args[0] == "optinproof"
    with contextlib.chdir(tmp_path), contextlib.redirect_stderr(io.StringIO()):
        assert main(args[1:]) == 0
    command = recipe.replace("<id>", data["anchors"][0]["anchor_id"])
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr
