"""Typed settings, read from environment variables in one place, on first use.

Nothing reads ``os.environ`` at import time: Chalice applies a stage's variables
only while it handles a request (test client) or at process start (Lambda), and tests
swap them between cases. ``get_settings()`` caches one instance per distinct
environment, so a warm Lambda reads and validates them once.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from chalicelib.errors import ConfigError

#: Where app.py, templates/, locales/ and catalogue.toml live, locally and in the
#: Lambda package (vendor/ contents land beside app.py there).
PACKAGE_ROOT = Path(__file__).resolve().parent.parent

#: The link kinds. Each has its own signing salt and lifetime, so a link of one kind
#: can never be used as another.
LINK_KINDS = ("confirm", "withdraw", "preferences", "rights")

_DEFAULT_MAX_AGE = {
    "confirm": "30d",
    "withdraw": "730d",
    "preferences": "90d",
    "rights": "24h",
}

_ENV_NAMES = (
    "CONSENT_TABLE", "DYNAMODB_ENDPOINT", "AWS_REGION", "AWS_DEFAULT_REGION",
    "LINK_SECRET_KEYS", "SUBJECT_PEPPER", "PUBLIC_BASE_URL", "CONSENT_CATALOGUE",
    "FORM_TOKEN_MAX_AGE", "DYNAMODB_TIMEOUT",
    "ACT_API_URL", "ACT_DATABASE", "ACT_USERNAME", "ACT_PASSWORD", "ACT_TIMEOUT",
    "ACT_CREATE_CONTACTS", "ACT_HISTORY_TYPE", "ACT_STATUS_VALUES", "ACT_AEM_OPT_OUT",
    "ACT_AEM_CLEAR_ON_ACCEPT", "ACT_MAX_RETRIES", "SYNC_MAX_ATTEMPTS",
    *(f"LINK_MAX_AGE_{kind.upper()}" for kind in LINK_KINDS),
)

_MIN_SECRET_LENGTH = 32


@dataclass(frozen=True)
class ActSettings:
    """How to reach Act! and what to write there. See the README's Act! section."""

    api_url: str
    database: str
    username: str
    password: str = field(repr=False)
    timeout: float = 10.0
    max_retries: int = 4
    create_contacts: bool = False
    history_type: str = "General"
    status_values: dict[str, str] = field(default_factory=lambda: dict(_STATUS_DEFAULTS))
    aem_opt_out: bool = True
    aem_clear_on_accept: bool = False


_STATUS_DEFAULTS = {"accepted": "Accepted", "refused": "Refused", "withdrawn": "Withdrawn"}


@dataclass(frozen=True)
class Settings:
    """Every knob of the app. See the README's configuration table."""

    consent_table: str
    dynamodb_endpoint: str | None
    aws_region: str
    link_secret_keys: tuple[str, ...] = field(repr=False)
    subject_pepper: str = field(repr=False)
    public_base_url: str = ""
    catalogue_path: Path = PACKAGE_ROOT / "catalogue.toml"
    link_max_age: dict[str, int] = field(default_factory=dict)
    form_token_max_age: int = 86400
    dynamodb_timeout: float = 5.0
    act: ActSettings | None = None
    sync_max_attempts: int = 8


def parse_duration(text: str, name: str) -> int:
    """``90`` / ``90s`` / ``15m`` / ``24h`` / ``30d`` → seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if not match or int(match.group(1)) <= 0:
        raise ConfigError(
            f"{name}={text!r} is not a duration: write a positive number of seconds, "
            "or a number followed by s, m, h or d (e.g. 30d)."
        )
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return int(match.group(1)) * unit


def _required_secret(env: dict[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(
            f"{name} is not set. Generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    return value


def _secret_keys(env: dict[str, str]) -> tuple[str, ...]:
    raw = _required_secret(env, "LINK_SECRET_KEYS")
    keys = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not keys:
        raise ConfigError("LINK_SECRET_KEYS holds no key. Generate one with: "
                          "python -c 'import secrets; print(secrets.token_urlsafe(48))'")
    for position, key in enumerate(keys, start=1):
        if len(key) < _MIN_SECRET_LENGTH:
            raise ConfigError(
                f"LINK_SECRET_KEYS: key #{position} has {len(key)} characters; each key "
                f"needs at least {_MIN_SECRET_LENGTH} (newest key last, comma-separated)."
            )
    return keys


def catalogue_path(env: dict[str, str] | None = None) -> Path:
    """The catalogue file, without needing the secrets (for ``cli purposes check``)."""
    value = (env if env is not None else os.environ).get("CONSENT_CATALOGUE", "").strip()
    return Path(value) if value else PACKAGE_ROOT / "catalogue.toml"


def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={value!r}: write true or false.")


def _number(env: dict[str, str], name: str, default: float, kind: type = float) -> float:
    value = env.get(name, "").strip()
    try:
        number = kind(value) if value else default
    except ValueError as exc:
        raise ConfigError(f"{name}={value!r} is not a number.") from exc
    if number <= 0:
        raise ConfigError(f"{name} must be positive.")
    return number


def _status_values(env: dict[str, str]) -> dict[str, str]:
    raw = env.get("ACT_STATUS_VALUES", "").strip()
    if not raw:
        return dict(_STATUS_DEFAULTS)
    parts = [part.strip() for part in raw.split(",")]
    if len(parts) != 3 or not all(parts):
        raise ConfigError("ACT_STATUS_VALUES needs three comma-separated words, for accepted, "
                          "refused and withdrawn (e.g. Accepted,Refused,Withdrawn).")
    return dict(zip(("accepted", "refused", "withdrawn"), parts))


def act_settings(env: dict[str, str]) -> ActSettings | None:
    """The Act! connection, or None when ``ACT_API_URL`` is unset (sync stays pending)."""
    url = env.get("ACT_API_URL", "").strip().rstrip("/")
    if not url:
        return None
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"ACT_API_URL={url!r} must start with https:// (e.g. "
                          "https://server/act.web.api)")
    missing = [name for name in ("ACT_DATABASE", "ACT_USERNAME", "ACT_PASSWORD")
               if not env.get(name, "").strip()]
    if missing:
        raise ConfigError(f"ACT_API_URL is set but {', '.join(missing)} is not.")
    return ActSettings(
        api_url=url, database=env["ACT_DATABASE"].strip(), username=env["ACT_USERNAME"].strip(),
        password=env["ACT_PASSWORD"], timeout=_number(env, "ACT_TIMEOUT", 10.0),
        max_retries=int(_number(env, "ACT_MAX_RETRIES", 4, int)),
        create_contacts=_flag(env, "ACT_CREATE_CONTACTS", False),
        history_type=env.get("ACT_HISTORY_TYPE", "").strip() or "General",
        status_values=_status_values(env),
        aem_opt_out=_flag(env, "ACT_AEM_OPT_OUT", True),
        aem_clear_on_accept=_flag(env, "ACT_AEM_CLEAR_ON_ACCEPT", False),
    )


def load_settings(env: dict[str, str]) -> Settings:
    """Build and validate settings from a mapping of environment variables."""
    pepper = _required_secret(env, "SUBJECT_PEPPER")
    if len(pepper) < _MIN_SECRET_LENGTH:
        raise ConfigError(f"SUBJECT_PEPPER needs at least {_MIN_SECRET_LENGTH} characters.")
    max_age = {
        kind: parse_duration(
            env.get(f"LINK_MAX_AGE_{kind.upper()}", _DEFAULT_MAX_AGE[kind]),
            f"LINK_MAX_AGE_{kind.upper()}",
        )
        for kind in LINK_KINDS
    }
    return Settings(
        consent_table=env.get("CONSENT_TABLE", "optinproof").strip() or "optinproof",
        dynamodb_endpoint=env.get("DYNAMODB_ENDPOINT", "").strip() or None,
        aws_region=(env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "eu-west-1"),
        link_secret_keys=_secret_keys(env),
        subject_pepper=pepper,
        public_base_url=env.get("PUBLIC_BASE_URL", "").strip().rstrip("/"),
        catalogue_path=catalogue_path(env),
        link_max_age=max_age,
        form_token_max_age=parse_duration(
            env.get("FORM_TOKEN_MAX_AGE", "24h"), "FORM_TOKEN_MAX_AGE"
        ),
        dynamodb_timeout=_number(env, "DYNAMODB_TIMEOUT", 5.0),
        act=act_settings(env),
        sync_max_attempts=int(_number(env, "SYNC_MAX_ATTEMPTS", 8, int)),
    )


@lru_cache(maxsize=8)
def _cached(items: tuple[tuple[str, str], ...]) -> Settings:
    return load_settings(dict(items))


def get_settings() -> Settings:
    """Settings for the current environment, validated once per distinct environment."""
    relevant = tuple((name, os.environ[name]) for name in _ENV_NAMES if name in os.environ)
    return _cached(relevant)
