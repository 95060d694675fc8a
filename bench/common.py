"""What the benchmarks share: a fresh table in DynamoDB Local, the settings pointed at
it (and at the local mail sink), and a median of timed calls."""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from chalicelib.core.services import dynamodb_client
from chalicelib.core.settings import Settings, get_settings
from chalicelib.store import schema
from devstack.dynamodb_local import DynamoDBLocal, local_aws_environment


def local_table(dynamodb: DynamoDBLocal, prefix: str, **env: str) -> tuple[Settings, Any]:
    """Point the settings at a new table of ``dynamodb`` (``env``: more settings), create
    the table; the settings and a DynamoDB client."""
    os.environ.update({
        **local_aws_environment(), "DYNAMODB_ENDPOINT": dynamodb.endpoint,
        "CONSENT_TABLE": f"{prefix}-{uuid.uuid4().hex[:8]}",
        "LINK_SECRET_KEYS": "b" * 48, "SUBJECT_PEPPER": "p" * 48, **env})
    settings, client = get_settings(), dynamodb_client()
    schema.create_table(client, settings.consent_table)
    return settings, client


def smtp_env(port: int) -> dict[str, str]:
    """Settings that send mail to the local sink on ``port``."""
    return {"PUBLIC_BASE_URL": "http://127.0.0.1:8000", "MAIL_TRANSPORT": "smtp",
            "MAIL_FROM": "Bench <bench@example.eu>", "MAIL_SMTP_HOST": "127.0.0.1",
            "MAIL_SMTP_PORT": str(port), "MAIL_SMTP_SECURITY": "none"}


def median_ms(func: Callable[[], object], n: int) -> float:
    """The median of ``n`` calls of ``func``, in milliseconds."""
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        func()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)
