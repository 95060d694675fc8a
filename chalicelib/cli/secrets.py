"""``secrets``: the stage's secrets in SSM Parameter Store, never printed."""

from __future__ import annotations

import getpass
import sys

import click

from chalicelib.cli.common import aws, group, print_data
from chalicelib.core import secrets as names
from chalicelib.store import infra as stack

secrets = group(
    "secrets", "the stage's secrets in SSM Parameter Store", "secrets list --stage prod"
)

STAGE_HELP = "dev or prod (as in .chalice/config.json)"
REGION_HELP = "AWS region (default: AWS_REGION)"


@secrets.command(
    "init",
    short_help="generate the missing generated secrets (never overwrites)",
    help="LINK_SECRET_KEYS, SUBJECT_PEPPER, ADMIN_SECRET_KEYS and the webhook "
    "secrets, as SecureString parameters under /optinproof/<stage>/.",
    example="secrets init --stage prod",
)
@click.option("--stage", required=True, help=STAGE_HELP)
@click.option("--region", help=REGION_HELP)
def secrets_init(stage: str, region: str | None) -> int:
    """Never overwrites: replacing a key would void every link already sent."""
    for line in stack.init_secrets(aws("ssm", region), stage):
        print(line)
    return 0


@secrets.command(
    "set",
    short_help="store one secret, read from standard input (e.g. ACT_PASSWORD)",
    help="Store or replace one secret (a SecureString). The value is read from "
    "standard input, or asked for without echo on a terminal. Rotating link "
    "keys: set LINK_SECRET_KEYS to 'old,new' (newest last).",
    example="secrets set --stage prod ACT_PASSWORD < password.txt",
)
@click.option("--stage", required=True, help=STAGE_HELP)
@click.option("--region", help=REGION_HELP)
@click.argument("name", type=click.Choice(list(names.SECRET_NAMES)))
def secrets_set(stage: str, region: str | None, name: str) -> int:
    """Read from stdin, not an argument, so the value stays out of shell history."""
    value = (
        sys.stdin.readline().rstrip("\n")
        if not sys.stdin.isatty()
        else getpass.getpass(f"{name}: ")
    )
    print(f"stored {stack.set_secret(aws('ssm', region), stage, name, value)}")
    return 0


@secrets.command(
    "list",
    short_help="names and dates of the stage's secrets",
    help="Never prints a value.",
    example="secrets list --stage prod --json",
)
@click.option("--stage", required=True, help=STAGE_HELP)
@click.option("--region", help=REGION_HELP)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def secrets_list(stage: str, region: str | None, as_json: bool) -> int:
    """What is set and when it changed, to check a rotation."""
    print_data(stack.list_secrets(aws("ssm", region), stage), as_json)
    return 0
