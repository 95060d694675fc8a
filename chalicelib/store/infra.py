"""What ``chalice deploy`` does not create: the table, the SES identity, the secrets.

Two ways to the same infrastructure, both from this module so they cannot drift:
- ``cli infra create --stage prod``: idempotent boto3 calls (the table with its index,
  TTL, stream, encryption and point-in-time recovery; the SES sending identity; the
  generated secrets as SSM SecureString parameters);
- ``cli infra template --stage prod``: a CloudFormation fragment for ``chalice package
  --merge-template`` that declares the table and the SES identity and wires the stream
  handler to the table's stream ARN (SecureString parameters cannot be declared in
  CloudFormation: ``cli secrets init`` writes those).

The stage's least-privilege IAM policy (``.chalice/policy-<stage>.json``) is generated
here too, naming only the stage's table, index, stream, SES identity and parameters.
"""

from __future__ import annotations

import secrets as random_secrets
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.core import secrets
from chalicelib.core.errors import ConfigError
from chalicelib.store import schema
from chalicelib.store.ledger import PENDING_SYNC_INDEX

APP = "optinproof"
#: The Lambda functions Chalice creates, by the name of their handler in app.py.
STREAM_HANDLER = "on_table_change"


def table_name(stage: str) -> str:
    return f"{APP}-{stage}"


# -- least-privilege policy -------------------------------------------------------------


def policy(stage: str, sender_domain: str) -> dict[str, Any]:
    """The IAM policy of every function of the stage: the data it touches, nothing else."""
    table = f"arn:aws:dynamodb:*:*:table/{table_name(stage)}"
    path = secrets.parameter_path(stage, APP).rstrip("/")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Logs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": f"arn:aws:logs:*:*:log-group:/aws/lambda/{APP}-{stage}-*",
            },
            {
                "Sid": "ConsentTable",
                "Effect": "Allow",
                "Action": [
                    "dynamodb:GetItem",
                    "dynamodb:BatchGetItem",
                    "dynamodb:BatchWriteItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:ConditionCheckItem",
                    "dynamodb:Query",
                    "dynamodb:Scan",
                    "dynamodb:DescribeTable",
                ],
                "Resource": [table, f"{table}/index/{PENDING_SYNC_INDEX}"],
            },
            {
                "Sid": "ConsentStream",
                "Effect": "Allow",
                "Action": [
                    "dynamodb:DescribeStream",
                    "dynamodb:GetRecords",
                    "dynamodb:GetShardIterator",
                ],
                "Resource": f"{table}/stream/*",
            },
            {
                "Sid": "ListStreamsIsNotResourceScoped",
                "Effect": "Allow",
                "Action": ["dynamodb:ListStreams"],
                "Resource": "*",
            },
            {
                "Sid": "SendMail",
                "Effect": "Allow",
                "Action": ["ses:SendEmail", "ses:SendRawEmail"],
                "Resource": [
                    f"arn:aws:ses:*:*:identity/{sender_domain}",
                    f"arn:aws:ses:*:*:configuration-set/{APP}-{stage}",
                ],
            },
            {
                "Sid": "Secrets",
                "Effect": "Allow",
                "Action": ["ssm:GetParametersByPath"],
                "Resource": [
                    f"arn:aws:ssm:*:*:parameter{path}",
                    f"arn:aws:ssm:*:*:parameter{path}/*",
                ],
            },
            {
                "Sid": "DecryptSecrets",
                "Effect": "Allow",
                "Action": ["kms:Decrypt"],
                "Resource": "*",
                "Condition": {"StringLike": {"kms:ViaService": "ssm.*.amazonaws.com"}},
            },
            {
                # Only new objects: no delete, no retention change (Object Lock forbids
                # them anyway in compliance mode).
                "Sid": "AnchorCopies",
                "Effect": "Allow",
                "Action": ["s3:PutObject"],
                "Resource": f"arn:aws:s3:::{anchor_bucket_prefix(stage)}*/anchors/*",
            },
        ],
    }


def anchor_bucket_prefix(stage: str) -> str:
    """Anchor buckets are named ``optinproof-<stage>-anchors…`` so the policy can name
    them before they exist (bucket names are global: add a suffix of your own)."""
    return f"{table_name(stage)}-anchors"


# -- CloudFormation fragment ---------------------------------------------------------------


def _cfn_table(stage: str) -> dict[str, Any]:
    spec = schema.table_definition(table_name(stage))
    return {
        "Type": "AWS::DynamoDB::Table",
        # The proof lives here: never replaced or deleted by a stack update.
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "TableName": spec["TableName"],
            "BillingMode": spec["BillingMode"],
            "AttributeDefinitions": spec["AttributeDefinitions"],
            "KeySchema": spec["KeySchema"],
            "GlobalSecondaryIndexes": spec["GlobalSecondaryIndexes"],
            "StreamSpecification": {
                "StreamViewType": spec["StreamSpecification"]["StreamViewType"]
            },
            "SSESpecification": {"SSEEnabled": True},
            "TimeToLiveSpecification": {"AttributeName": schema.TTL_ATTRIBUTE, "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        },
    }


def template(stage: str, sender_domain: str) -> dict[str, Any]:
    """Merged into Chalice's SAM template: infrastructure plus the stream wiring."""
    handler = "".join(part.title() for part in STREAM_HANDLER.split("_"))
    return {
        "Resources": {
            "ConsentTable": _cfn_table(stage),
            "SenderIdentity": {
                "Type": "AWS::SES::EmailIdentity",
                "Properties": {"EmailIdentity": sender_domain},
            },
            handler: {
                "Properties": {
                    "Events": {
                        f"{handler}DynamodbEventSource": {
                            "Properties": {"Stream": {"Fn::GetAtt": ["ConsentTable", "StreamArn"]}}
                        }
                    }
                }
            },
        },
        "Outputs": {
            "ConsentTableStreamArn": {"Value": {"Fn::GetAtt": ["ConsentTable", "StreamArn"]}},
            "ConsentTableName": {"Value": {"Ref": "ConsentTable"}},
        },
    }


# -- boto3, idempotent ---------------------------------------------------------------------


def create(
    stage: str, sender_domain: str | None, dynamodb: Any, ssm: Any | None, sesv2: Any | None
) -> tuple[list[str], dict[str, str]]:
    """Create what is missing; returns what was done and the outputs (stream ARN...)."""
    done = schema.create_table(dynamodb, table_name(stage))
    done.append(_point_in_time_recovery(dynamodb, table_name(stage)))
    described = schema.describe(dynamodb, table_name(stage))
    if ssm is not None:
        done.extend(init_secrets(ssm, stage))
    if sesv2 is not None and sender_domain:
        done.append(_ses_identity(sesv2, sender_domain))
    return done, {"table": table_name(stage), "stream_arn": described["stream_arn"]}


#: Default COMPLIANCE retention of anchor copies: the French limitation period for
#: civil claims (5 years, art. 2224 Code civil) plus one year of margin.
ANCHOR_RETENTION_YEARS = 6


def create_anchor_bucket(
    s3: Any, stage: str, name: str, region: str, years: int = ANCHOR_RETENTION_YEARS
) -> list[str]:
    """The S3 bucket that keeps a write-once copy of each anchor: Object Lock on, a
    COMPLIANCE default retention of ``years`` (nobody, root included, can delete or
    shorten it), versioning (Object Lock needs it) and no public access. Idempotent."""
    if not name.startswith(anchor_bucket_prefix(stage)):
        raise ConfigError(
            f"--anchor-bucket {name!r}: name it {anchor_bucket_prefix(stage)}-<suffix> "
            "(the stage's policy allows PutObject on those names only)."
        )
    if not 1 <= years <= 100:
        raise ConfigError("--retention-years must be between 1 and 100.")
    done = []
    request: dict[str, Any] = {"Bucket": name, "ObjectLockEnabledForBucket": True}
    if region != "us-east-1":
        request["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**request)
        done.append(f"created bucket {name} with Object Lock")
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise _config(exc, f"S3 bucket {name}") from exc
        done.append(f"bucket {name} already exists")
    s3.put_object_lock_configuration(
        Bucket=name,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": years}},
        },
    )
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    done.append(f"Object Lock COMPLIANCE, {years} years by default; public access blocked")
    return done


def _point_in_time_recovery(dynamodb: Any, name: str) -> str:
    try:
        dynamodb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code in ("UnknownOperationException", "UnrecognizedClientException"):
            return "point-in-time recovery: not supported by this endpoint (DynamoDB Local)"
        raise
    return "point-in-time recovery on"


def init_secrets(ssm: Any, stage: str) -> list[str]:
    """Generate the secrets we can generate, as SecureStrings; never overwrite one."""
    done = []
    for name in secrets.GENERATED:
        parameter = secrets.parameter_path(stage, APP) + name
        try:
            ssm.put_parameter(
                Name=parameter,
                Type="SecureString",
                Overwrite=False,
                Value=random_secrets.token_urlsafe(48),
                Description=f"OptinProof {stage}: {name} (generated)",
            )
            done.append(f"secret {parameter} generated")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ParameterAlreadyExists":
                raise _config(exc, f"writing {parameter}") from exc
            done.append(f"secret {parameter} kept")
    return done


def set_secret(ssm: Any, stage: str, name: str, value: str) -> str:
    """Store (or replace) one secret, e.g. ACT_PASSWORD, or a rotated key list."""
    if name not in secrets.SECRET_NAMES:
        raise ConfigError(
            f"{name} is not a secret setting; secrets are: {', '.join(secrets.SECRET_NAMES)}."
        )
    if not value:
        raise ConfigError(f"Give {name} a value (read from standard input).")
    parameter = secrets.parameter_path(stage, APP) + name
    try:
        ssm.put_parameter(Name=parameter, Type="SecureString", Overwrite=True, Value=value)
    except (ClientError, BotoCoreError) as exc:
        raise _config(exc, f"writing {parameter}") from exc
    return parameter


def list_secrets(ssm: Any, stage: str) -> list[dict[str, Any]]:
    """Names and dates of the stage's secrets (never their values)."""
    path = secrets.parameter_path(stage, APP)
    rows: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"Path": path, "Recursive": False, "WithDecryption": False}
    try:
        while True:
            page = ssm.get_parameters_by_path(**kwargs)
            rows.extend(
                {
                    "name": p["Name"],
                    "type": p.get("Type"),
                    "version": p.get("Version"),
                    "modified": str(p.get("LastModifiedDate", "")),
                }
                for p in page.get("Parameters", [])
            )
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
    except (ClientError, BotoCoreError) as exc:
        raise _config(exc, f"reading {path}") from exc
    present = {row["name"].rsplit("/", 1)[-1] for row in rows}
    rows.extend(
        {"name": path + name, "type": "missing", "version": None, "modified": ""}
        for name in ("LINK_SECRET_KEYS", "SUBJECT_PEPPER")
        if name not in present
    )
    return rows


def _ses_identity(sesv2: Any, domain: str) -> str:
    try:
        answer = sesv2.create_email_identity(EmailIdentity=domain)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "AlreadyExistsException":
            return f"SES identity {domain} already exists"
        raise _config(exc, f"creating the SES identity {domain}") from exc
    tokens = (answer.get("DkimAttributes") or {}).get("Tokens") or []
    records = ", ".join(f"{t}._domainkey.{domain} CNAME {t}.dkim.amazonses.com" for t in tokens)
    return f"SES identity {domain} created; add these DNS records: {records or 'see the console'}"


def _config(exc: Exception, what: str) -> ConfigError:
    return ConfigError(f"AWS refused {what}: {exc}. Check the operator's credentials and region.")
