"""``infra``: the AWS infrastructure ``chalice deploy`` does not create."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from chalicelib.cli.common import aws, group
from chalicelib.store import infra as stack

infra = group(
    "infra",
    "AWS infrastructure chalice deploy does not create",
    "infra policy --stage prod --sender-domain example.eu --write",
)

STAGE_HELP = "dev or prod (as in .chalice/config.json)"


@infra.command(
    "create",
    short_help="create the table, SES identity and secrets of a stage (idempotent)",
    help="Create what is missing, never change what exists: the consent table "
    "(optinproof-<stage>: pending-sync index, TTL, stream, encryption, "
    "point-in-time recovery), the SES identity of --sender-domain (prints the "
    "DKIM records to add), and the generated secrets as SSM SecureString "
    "parameters under /optinproof/<stage>/, and with --anchor-bucket an S3 bucket "
    "with Object Lock in compliance mode for anchor copies. Prints the stream ARN "
    "for chalice deploy.",
    example="infra create --stage prod --sender-domain example.eu",
)
@click.option("--stage", required=True, help=STAGE_HELP)
@click.option("--region", help="AWS region (default: AWS_REGION)")
@click.option("--sender-domain", help="the domain of MAIL_FROM, e.g. example.eu")
@click.option("--no-secrets", is_flag=True, help="skip SSM")
@click.option("--no-ses", is_flag=True, help="skip the SES identity")
@click.option(
    "--anchor-bucket",
    help="also an S3 bucket with Object Lock (compliance) for anchor copies, named "
    "optinproof-<stage>-anchors-<suffix>; then set ANCHOR_BUCKET",
)
@click.option(
    "--retention-years",
    type=int,
    default=stack.ANCHOR_RETENTION_YEARS,
    help=f"default COMPLIANCE retention of anchor copies (default {stack.ANCHOR_RETENTION_YEARS})",
)
def infra_create(
    stage: str,
    region: str | None,
    sender_domain: str | None,
    no_secrets: bool,
    no_ses: bool,
    anchor_bucket: str | None,
    retention_years: int,
) -> int:
    """Never changes what exists, so it is safe against a live stage."""
    if anchor_bucket:  # first: a refused name stops before anything is created
        s3 = aws("s3", region)
        for line in stack.create_anchor_bucket(
            s3, stage, anchor_bucket, s3.meta.region_name, retention_years
        ):
            print(line)
    done, outputs = stack.create(
        stage,
        sender_domain,
        aws("dynamodb", region),
        None if no_secrets else aws("ssm", region),
        None if no_ses or not sender_domain else aws("sesv2", region),
    )
    for line in done:
        print(line)
    print(f"table {outputs['table']}\nstream {outputs['stream_arn']}")
    print(
        f"next: export CONSENT_TABLE_STREAM_ARN={outputs['stream_arn']} && "
        f"chalice deploy --stage {stage}",
        file=sys.stderr,
    )
    return 0


@infra.command(
    "template",
    short_help="CloudFormation for chalice package --merge-template",
    help="The table and SES identity as CloudFormation, and the stream handler "
    "wired to the table's stream ARN (secrets: use `secrets init`).",
    example="infra template --stage prod --sender-domain example.eu --out infra.json",
)
@click.option("--stage", required=True, help="dev or prod")
@click.option("--sender-domain", required=True, help="the domain of MAIL_FROM")
@click.option("--out", help="file to write (default: standard output)")
def infra_template(stage: str, sender_domain: str, out: str | None) -> int:
    """For teams that deploy through CloudFormation rather than by hand."""
    text = json.dumps(stack.template(stage, sender_domain), indent=2) + "\n"
    if out:
        Path(out).write_text(text, encoding="utf-8")
        print(
            f"wrote {out}; use: chalice package --stage {stage} --merge-template {out} out/",
            file=sys.stderr,
        )
    else:
        print(text, end="")
    return 0


@infra.command(
    "policy",
    short_help="the stage's least-privilege IAM policy",
    help="Print (or --write to .chalice/policy-<stage>.json) the IAM policy of the "
    "stage's functions: only its table, index and stream, its SES identity, its "
    "SSM parameters, its logs.",
    example="infra policy --stage prod --sender-domain example.eu --write",
)
@click.option("--stage", required=True, help="dev or prod")
@click.option("--sender-domain", required=True, help="the domain of MAIL_FROM")
@click.option("--write", is_flag=True, help="write .chalice/policy-<stage>.json")
def infra_policy(stage: str, sender_domain: str, write: bool) -> int:
    """Chalice's generated policy is broader than the app needs."""
    text = json.dumps(stack.policy(stage, sender_domain), indent=2) + "\n"
    if write:
        target = Path(".chalice") / f"policy-{stage}.json"
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}", file=sys.stderr)
    else:
        print(text, end="")
    return 0
