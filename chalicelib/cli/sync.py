"""``sync``: see and push the decisions waiting for Act!."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator

import click

from chalicelib.act import sync as act_sync
from chalicelib.cli.common import Bar, group, print_data
from chalicelib.consent import stats
from chalicelib.core.errors import OptinProofError
from chalicelib.core.services import get_ledger, get_pusher
from chalicelib.core.settings import get_settings

sync = group("sync", "see and push decisions waiting for Act!", "sync drain --all")


@sync.command(
    "status",
    short_help="list pending, failed and held syncs with their last error",
    help="List the decisions not yet in Act!: pending (will be retried), failed "
    "(retried slowly; look at the error), no_contact / contact_deleted / "
    "no_address (need a person).",
    example="sync status --json",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def sync_status(as_json: bool) -> int:
    """What is not in Act! yet, and why: the first place to look when Act! disagrees."""
    rows = act_sync.status_rows(get_ledger())
    if as_json:
        print_data(rows, True)
        return 0
    awaiting = stats.awaiting_answer(get_ledger())
    if not rows:
        print("nothing to push: every decision made is in Act!")
    for row in rows:
        print(
            f"{row['sync_status']:<15} {row['subject'][:12]}… {row['purpose']:<14} "
            f"{row['state']:<10} decided {row['decided_at']}  attempts {row['attempts']}  "
            f"next {row['due']}  {row['error'] if row['error'] != '-' else ''}"
        )
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["sync_status"]] = counts.get(row["sync_status"], 0) + 1
    if counts:
        print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    if awaiting:
        asked = ", ".join(f"{purpose} {n}" for purpose, n in awaiting.items())
        print(f"asked, no answer yet (nothing to push until they decide): {asked}")
    return 0


def _counted(keys: Iterable[tuple[str, str]], bar: Bar) -> Iterator[tuple[str, str]]:
    """The keys, advancing the bar as the drain takes each one."""
    for key in keys:
        yield key
        bar.advance()


@sync.command(
    "drain",
    short_help="push pending decisions to Act! now",
    help="Push the decisions whose sync is due (with --all: every pending or failed "
    "one, due or not). Exit 1 if any failed. With --interval, repeat forever "
    "(the local stand-in for the scheduled sweep).",
    example="sync drain --all",
)
@click.option("--all", "all_", is_flag=True, help="also those waiting for their backoff")
@click.option("--limit", type=int, help="at most this many per round")
@click.option("--interval", type=float, help="repeat every N seconds until stopped")
def sync_drain(all_: bool, limit: int | None, interval: float | None) -> int:
    """The scheduled sweep by hand; with --interval the local stand-in for it."""
    settings = get_settings()
    pusher = get_pusher(settings)
    while True:
        try:
            keys = list(
                act_sync.all_keys(pusher.ledger) if all_ else act_sync.due_keys(pusher.ledger)
            )
        except OptinProofError as exc:
            if not interval:
                raise
            print(f"error: {exc}; trying again in {interval:g}s", file=sys.stderr)
            time.sleep(interval)
            continue
        total = len(keys) if limit is None else min(limit, len(keys))
        with Bar(total, "pushing to Act!", show=all_ and not interval) as bar:
            report = act_sync.drain(pusher, _counted(keys, bar), limit=limit, force=all_)
        print(
            f"synced {report.synced}, failed {report.failed}, held {report.held}, "
            f"skipped {report.skipped}"
        )
        for error in report.errors[:10]:
            print(f"  {error}")
        if not interval:
            return 1 if report.failed else 0
        time.sleep(interval)


@sync.command(
    "retry",
    short_help="queue held syncs again (after creating or restoring the Act! contact)",
    help="Held syncs (no_contact, contact_deleted) are never retried on their own. "
    "After fixing the cause in Act!, queue them again: the next push searches "
    "Act! by address afresh.",
    example="sync retry --status no_contact",
)
@click.option(
    "--status",
    multiple=True,
    type=click.Choice(["no_contact", "contact_deleted"]),
    help="only these (repeatable; default: both)",
)
def sync_retry(status: tuple[str, ...]) -> int:
    """Held syncs wait for a person to fix Act!; this is how they say it is fixed."""
    statuses = tuple(status or ("no_contact", "contact_deleted"))
    count = act_sync.requeue_held(get_ledger(), statuses)
    print(
        f"{count} held sync(s) queued again; they are pushed by the next sweep (or now: sync drain)"
    )
    return 0
