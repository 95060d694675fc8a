"""The operator CLI: ``python -m chalicelib.cli --help`` (or ``optinproof --help``).

Every command reads the same environment variables as the app (see docs/reference.md), so
what the CLI writes is exactly what the app reads. Errors print one line saying what
to fix and exit non-zero. Each command group lives in its own module; this one is the
root group and the exit-code mapping scripts rely on.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.cli.act import act
from chalicelib.cli.admin import admin
from chalicelib.cli.anchor import anchor
from chalicelib.cli.breach import breach
from chalicelib.cli.campaign import campaign
from chalicelib.cli.chain import chain, report_line
from chalicelib.cli.common import PROG, ExampleGroup
from chalicelib.cli.consent import consent
from chalicelib.cli.erase import erase
from chalicelib.cli.evidence import evidence
from chalicelib.cli.evidence_verify import evidence_verify
from chalicelib.cli.forms import forms
from chalicelib.cli.imports import import_
from chalicelib.cli.infra import infra
from chalicelib.cli.link import LINK_ROUTES, link, link_url
from chalicelib.cli.mail import mail
from chalicelib.cli.purposes import purposes
from chalicelib.cli.records import records
from chalicelib.cli.secrets import secrets
from chalicelib.cli.sync import sync
from chalicelib.cli.table import table
from chalicelib.cli.webhooks import webhooks
from chalicelib.core.errors import OptinProofError
from chalicelib.core.logs import logs_to

__all__ = ["LINK_ROUTES", "cli", "evidence_verify", "link_url", "main", "main_entry", "report_line"]

cli = ExampleGroup(
    name="optinproof",
    help="OptinProof operator commands. Configuration comes from environment "
    "variables (CONSENT_TABLE, DYNAMODB_ENDPOINT, LINK_SECRET_KEYS, "
    "SUBJECT_PEPPER, PUBLIC_BASE_URL, ...); see docs/reference.md.",
    example="sync status --json",
)

for command in (
    table,
    link,
    chain,
    purposes,
    act,
    sync,
    mail,
    forms,
    webhooks,
    campaign,
    erase,
    evidence,
    records,
    breach,
    infra,
    secrets,
    admin,
    consent,
    import_,
    anchor,
):
    cli.add_command(command)


def main(argv: Sequence[str] | None = None, prog_name: str = PROG) -> int:
    """Run one command and return its exit code (tests call this in-process).

    0 done, 1 the command found a problem (broken chain, failed sync ...), 2 a usage
    error, a domain error (``error: ...``: what to fix) or a failed AWS call, 130
    interrupted. Logs go to stderr meanwhile: stdout is for what scripts read.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    with logs_to(sys.stderr):
        try:
            result = cli.main(args=args, prog_name=prog_name, standalone_mode=False)
        except click.exceptions.Exit as exc:
            return exc.exit_code
        except click.ClickException as exc:  # usage errors exit 2, as argparse's did
            exc.show()
            return exc.exit_code
        except click.Abort:  # click's form of KeyboardInterrupt
            return 130
        except OptinProofError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 130
        except (BotoCoreError, ClientError) as exc:
            print(
                f"error: DynamoDB call failed: {exc}. Check DYNAMODB_ENDPOINT / AWS "
                "credentials and region, and that the table exists (table create).",
                file=sys.stderr,
            )
            return 2
    return result if isinstance(result, int) else 0


def main_entry() -> None:
    """The ``optinproof`` console script (pyproject.toml)."""
    sys.exit(main(prog_name="optinproof"))


if __name__ == "__main__":
    main_entry()
