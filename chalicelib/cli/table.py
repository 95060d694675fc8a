"""``table``: create or inspect the consent table the app and the CLI share."""

from __future__ import annotations

import click

from chalicelib.cli.common import group, print_data
from chalicelib.core.services import dynamodb_client
from chalicelib.core.settings import get_settings
from chalicelib.store import schema

table = group("table", "create or inspect the consent table", "table describe --json")


@table.command(
    "create",
    short_help="create the table (keys, pending-sync index, TTL, stream); idempotent",
    example="table create",
    help="Create the consent table if it does not exist, wait until it is "
    "active, and enable TTL. Safe to run again.",
)
@click.option("--table", "table_name", help="table name (default: $CONSENT_TABLE)")
def table_create(table_name: str | None) -> int:
    """Creating is idempotent so deploy scripts can run it every time."""
    settings = get_settings()
    for line in schema.create_table(
        dynamodb_client(settings), table_name or settings.consent_table
    ):
        print(line)
    return 0


@table.command(
    "describe",
    short_help="show status, index, stream and TTL",
    help="show status, index, stream and TTL",
    example="table describe --json",
)
@click.option("--table", "table_name", help="table name (default: $CONSENT_TABLE)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def table_describe(table_name: str | None, as_json: bool) -> int:
    """What the table looks like, to check a deploy created what the app expects."""
    settings = get_settings()
    print_data(
        schema.describe(dynamodb_client(settings), table_name or settings.consent_table), as_json
    )
    return 0
