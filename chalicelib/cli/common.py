"""What every command group of the operator CLI shares.

The click classes that add a one-line example to each ``--help``, the argparse-style
"one of these options" check, JSON/plain printing, the progress display on stderr, and
the AWS client factory. Kept here so each group module holds only its commands.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol

import click

from chalicelib.consent.subjects import normalise_email, subject_key
from chalicelib.core.clock import iso, parse_instant
from chalicelib.core.errors import OptinProofError
from chalicelib.core.settings import get_settings

#: What ``--help`` and the examples call the program when run as a module.
PROG = "python -m chalicelib.cli"


def _write_example(ctx: click.Context, formatter: click.HelpFormatter, example: str) -> None:
    """One unwrapped line, so it can be copied into a shell as is."""
    if example:
        root = ctx.find_root().info_name or PROG
        formatter.write(f"\nExample: {root} {example}\n")


class ExampleCommand(click.Command):
    """A command whose ``--help`` ends with a one-line example: operators copy it."""

    def __init__(self, *args: Any, example: str = "", **kwargs: Any) -> None:
        self.example = example
        super().__init__(*args, **kwargs)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        _write_example(ctx, formatter, self.example)


class ExampleGroup(click.Group):
    """A group whose ``--help`` ends with an example, and whose commands are
    :class:`ExampleCommand` (and subgroups :class:`ExampleGroup`)."""

    command_class = ExampleCommand

    def __init__(self, *args: Any, example: str = "", **kwargs: Any) -> None:
        self.example = example
        super().__init__(*args, **kwargs)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        _write_example(ctx, formatter, self.example)


ExampleGroup.group_class = ExampleGroup


def group(name: str, short_help: str, example: str, help: str | None = None) -> ExampleGroup:
    """A command group as argparse had it: ``short_help`` in the listing, ``help`` on its page."""
    return ExampleGroup(
        name=name,
        short_help=short_help,
        help=help or short_help,
        example=example,
        no_args_is_help=False,
    )


def exactly_one(params: dict[str, Any], *names: str) -> None:
    """Argparse's required mutually exclusive group: exactly one of ``names`` is given.

    A usage error (exit 2) with argparse's wording otherwise, as before the port.
    """
    given = [n for n in names if params.get(n)]
    flags = ["--" + n.replace("_", "-") for n in names]
    if not given:
        raise click.UsageError(f"one of the arguments {' '.join(flags)} is required")
    if len(given) > 1:
        first, second = ("--" + g.replace("_", "-") for g in given[:2])
        raise click.UsageError(f"argument {second}: not allowed with argument {first}")


def print_data(data: Any, as_json: bool) -> None:
    """One JSON document (``--json``, for scripts) or ``key: value`` lines (for people)."""
    if as_json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    elif isinstance(data, dict):
        for key, value in data.items():
            print(f"{key}: {value}")
    else:
        print(data)


def operator() -> str:
    """Who ran the command, as the proof trail records it."""
    return f"cli:{os.environ.get('USER') or 'operator'}"


def instant(text: str, name: str) -> str:
    """An ISO 8601 date-time with its zone, as our UTC instant; the error says how to write it."""
    try:
        return iso(parse_instant(text))
    except ValueError:
        raise OptinProofError(
            f"{name} {text!r}: write a date-time with its zone, e.g. "
            "2026-11-01T00:00:00Z or 2026-11-01T01:00:00+01:00."
        ) from None


def subject_of(email: str | None, subject: str | None) -> str:
    """The subject key named by ``--subject``, or the keyed hash of ``--email``."""
    if subject:
        return subject
    return subject_key(get_settings().subject_pepper, normalise_email(email or ""))


def aws(service: str, region: str | None) -> Any:
    """A boto3 client for the operator's account (no app secrets needed yet)."""
    import boto3

    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise OptinProofError("Name the AWS region: --region eu-west-1 (or AWS_REGION).")
    endpoint = os.environ.get("DYNAMODB_ENDPOINT") if service == "dynamodb" else None
    return boto3.session.Session().client(service, region_name=region, endpoint_url=endpoint)


def stderr_is_tty() -> bool:
    """A bar only makes sense on a terminal; logs and pipes get plain lines or nothing."""
    return sys.stderr.isatty()


class Bar:
    """A ``click.progressbar`` on stderr, drawn only when stderr is a terminal.

    Never on stdout: scripts parse stdout. Safe to advance from worker threads (the
    campaign runner calls back from its pool). Off a terminal it does nothing, so
    callers need no ``if``.
    """

    def __init__(self, length: int | None, label: str, show: bool = True) -> None:
        self._lock = threading.Lock()
        self._bar: Any = None
        if show and stderr_is_tty():
            # A generator has no length hint: click then draws a bar without a total.
            unknown: Any = iter(()) if length is None else None
            self._bar = click.progressbar(
                unknown, length=length, label=label, file=sys.stderr, show_pos=True, width=30
            )

    def __enter__(self) -> Bar:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)

    @property
    def shown(self) -> bool:
        """Whether a bar is drawn (stderr is a terminal)."""
        return self._bar is not None

    def advance(self, steps: int = 1) -> None:
        """One more item done."""
        if self._bar is not None:
            with self._lock:
                self._bar.update(steps)

    def goto(self, done: int, total: int | None = None) -> None:
        """Jump to ``done`` of ``total`` (for callbacks that report counters, not steps)."""
        if self._bar is not None:
            with self._lock:
                if total is not None:
                    self._bar.length = total
                if done > self._bar.pos:
                    self._bar.update(done - self._bar.pos)


class Counted(Protocol):
    """What the campaign and breach runners report: counters and a summary line."""

    processed: int
    total: int

    def line(self, verb: str) -> str: ...


def progress_printer(verb: str, bar: Bar) -> Callable[[Any], None]:
    """Progress of a long run on stderr: the bar on a terminal, otherwise a summary
    line every 2 s (as before the bar existed: logs of cron jobs keep their lines)."""
    last = [0.0]

    def show(progress: Counted) -> None:
        if bar.shown:
            bar.goto(progress.processed, progress.total)
            return
        now = time.monotonic()
        final = progress.processed == progress.total
        if not final and now - last[0] < 2.0:
            return
        last[0] = now
        print(progress.line(verb), file=sys.stderr, flush=True)

    return show
