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
    *(f"LINK_MAX_AGE_{kind.upper()}" for kind in LINK_KINDS),
)

_MIN_SECRET_LENGTH = 32


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
        dynamodb_timeout=float(env.get("DYNAMODB_TIMEOUT", "5")),
    )


@lru_cache(maxsize=8)
def _cached(items: tuple[tuple[str, str], ...]) -> Settings:
    return load_settings(dict(items))


def get_settings() -> Settings:
    """Settings for the current environment, validated once per distinct environment."""
    relevant = tuple((name, os.environ[name]) for name in _ENV_NAMES if name in os.environ)
    return _cached(relevant)
