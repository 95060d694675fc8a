"""``webhooks``: outbound webhooks, the deliveries of decisions to subscribers."""

from __future__ import annotations

import click

from chalicelib.cli.common import group, print_data
from chalicelib.core.services import get_ledger
from chalicelib.core.settings import get_settings
from chalicelib.store import keys
from chalicelib.web import webhooks_out

webhooks = group(
    "webhooks", "outbound webhooks: deliveries to subscribers", "webhooks status --json"
)


@webhooks.command(
    "status",
    short_help="deliveries not delivered yet (pending or failed) with their last answer",
    help="Each decision is POSTed to every WEBHOOK_SUBSCRIBERS URL; failures are "
    "retried with backoff (1 min … 6 h), 8 attempts at most.",
    example="webhooks status --json",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON (with the log)")
def webhooks_status(as_json: bool) -> int:
    """What a subscriber has not received, with the answer its server gave."""
    rows = webhooks_out.status_rows(get_ledger())
    if as_json:
        print_data(rows, True)
        return 0
    for row in rows:
        last = (row.get("log") or [{}])[-1]
        print(
            f"{row['status']:<8} {keys.hookout_of(row['pk'])} -> {row['url']}  "
            f"attempts {row.get('attempts', 0)}  next {row.get('sync_due') or '-'}  "
            f"last {last.get('status') or last.get('error') or '-'}"
        )
    print(f"{len(rows)} delivery(ies) not delivered" if rows else "every delivery was delivered")
    return 0


@webhooks.command(
    "retry",
    short_help="try every pending delivery now, ignoring its backoff",
    help="Send the pending deliveries now. Exit 1 if any is still not delivered.",
    example="webhooks retry --failed",
)
@click.option("--failed", is_flag=True, help="also those that gave up after 8 attempts")
def webhooks_retry(failed: bool) -> int:
    """After a subscriber fixed its server, send now rather than wait for the backoff."""
    ledger = get_ledger()
    if failed:
        print(f"{webhooks_out.requeue_failed(ledger)} failed delivery(ies) queued again")
    dispatcher = webhooks_out.Dispatcher(ledger, get_settings())
    statuses = [
        dispatcher.deliver(*key) for key in webhooks_out.due_keys(ledger, include_later=True)
    ]
    print(", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses))) or "nothing to send")
    return 1 if "pending" in statuses or "failed" in statuses else 0
