"""Secrets: from SSM Parameter Store in AWS, from the environment locally.

In AWS a stage sets ``SECRETS_SSM_PATH`` (e.g. ``/optinproof/prod/``) and no secret
at all in ``.chalice/config.json``: each secret is a SecureString parameter under that
path, named like its environment variable (``/optinproof/prod/LINK_SECRET_KEYS``).
They are read with one paged ``GetParametersByPath`` call per container and kept for
``SECRETS_CACHE_SECONDS`` (300 by default), so a rotated key reaches every container
within minutes without a redeploy. A variable set in the environment wins over SSM,
so local runs and tests need no AWS at all.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.core.errors import ConfigError
from chalicelib.core.logs import log

#: The settings that are secrets: never in config.json or the repository.
SECRET_NAMES = (
    "LINK_SECRET_KEYS",
    "SUBJECT_PEPPER",
    "ADMIN_SECRET_KEYS",
    "ACT_PASSWORD",
    "ACT_WEBHOOK_TOKEN",
    "ACT_WEBHOOK_PATH_SECRET",
    "WEBHOOK_SECRET",
    "SES_SNS_PATH_SECRET",
    "MAIL_SMTP_PASSWORD",
    # A commercial TSA's URLs may carry its credentials (https://user:password@host/...).
    "TSA_URLS",
)
#: Secrets ``cli secrets init`` generates (the others come from elsewhere, e.g. Act!).
GENERATED = (
    "LINK_SECRET_KEYS",
    "SUBJECT_PEPPER",
    "ADMIN_SECRET_KEYS",
    "ACT_WEBHOOK_TOKEN",
    "ACT_WEBHOOK_PATH_SECRET",
    "WEBHOOK_SECRET",
    "SES_SNS_PATH_SECRET",
)

_LOCK = threading.Lock()
_RETRY_SECONDS = 30
_CACHE: dict[str, tuple[float, dict[str, str]]] = {}


def parameter_path(stage: str, app: str = "optinproof") -> str:
    return f"/{app}/{stage}/"


def _ssm_client(region: str | None) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "ssm",
        region_name=region,
        config=Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 3}),
    )


def read_path(client: Any, path: str) -> dict[str, str]:
    """Every secret under ``path``, decrypted: ``{NAME: value}`` (unknown names ignored)."""
    from botocore.exceptions import BotoCoreError, ClientError

    found: dict[str, str] = {}
    kwargs: dict[str, Any] = {"Path": path, "WithDecryption": True, "Recursive": False}
    try:
        while True:
            page = client.get_parameters_by_path(**kwargs)
            for parameter in page.get("Parameters", []):
                name = parameter["Name"].rsplit("/", 1)[-1]
                if name in SECRET_NAMES:
                    found[name] = parameter["Value"]
            if not page.get("NextToken"):
                return found
            kwargs["NextToken"] = page["NextToken"]
    except (BotoCoreError, ClientError) as exc:
        raise ConfigError(
            f"Cannot read the secrets under SSM path {path} ({exc}). Check the "
            "function's IAM policy (ssm:GetParametersByPath on that path, "
            "kms:Decrypt) and that `cli secrets init` was run."
        ) from exc


def environment(
    env: Mapping[str, str] | None = None,
    client_factory: Callable[[str | None], Any] = _ssm_client,
    now: Callable[[], float] = time.monotonic,
) -> dict[str, str]:
    """The environment with the stage's SSM secrets filled in (environment wins)."""
    values = dict(os.environ if env is None else env)
    path = values.get("SECRETS_SSM_PATH", "").strip()
    if not path:
        return values
    if not path.startswith("/") or not path.endswith("/"):
        raise ConfigError(
            f"SECRETS_SSM_PATH={path!r} must start and end with '/', e.g. /optinproof/prod/"
        )
    ttl = float(values.get("SECRETS_CACHE_SECONDS", "300") or 300)
    with _LOCK:
        cached = _CACHE.get(path)
        if cached is None or now() - cached[0] > ttl:
            region = values.get("AWS_REGION") or values.get("AWS_DEFAULT_REGION")
            try:
                cached = (now(), read_path(client_factory(region), path))
            except ConfigError as exc:
                if cached is None:
                    raise  # a cold start without secrets must fail loudly
                # SSM down after a cold start: keep serving with the secrets we hold,
                # and look again in 30 s rather than on every request.
                log("secrets_refresh_failed", level="warning", detail=str(exc)[:300])
                cached = (now() - ttl + _RETRY_SECONDS, cached[1])
            _CACHE[path] = cached
    for name, value in cached[1].items():
        values.setdefault(name, value)
    return values


def forget() -> None:
    """Drop cached secrets (tests, and ``cli secrets`` after writing)."""
    with _LOCK:
        _CACHE.clear()
