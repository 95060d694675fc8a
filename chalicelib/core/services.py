"""The expensive shared objects, built on first use and reused by a warm Lambda.

boto3 clients, the ledger and the catalogue are created lazily (never at import
time) and cached per configuration, so tests that switch tables get fresh ones and
production builds each once per container.

Cold start: this module is imported with the routes, so it imports nothing of ours
at module level; each accessor imports what it builds on first call (the settings,
the catalogue's reader, the ledger), and the routes reach them only through here.
boto3 is the exception: nearly every request and event reads the table, so it loads
with the app (in Lambda's init phase) rather than inside the first request.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from chalicelib.act.ask import Asker
    from chalicelib.act.client import ActClient
    from chalicelib.act.reconcile import Reconciler
    from chalicelib.act.sync import Pusher
    from chalicelib.consent.catalogue import Catalogue
    from chalicelib.consent.requests import Signups
    from chalicelib.core.settings import Settings
    from chalicelib.mail.outbox import Postman
    from chalicelib.store.ledger import Ledger


def get_settings() -> Settings:
    """The settings of the current environment (:func:`chalicelib.core.settings.get_settings`,
    validated once per environment), for modules that must not import them at import time."""
    from chalicelib.core.settings import get_settings as current

    return current()


def get_act_client(settings: Settings | None = None) -> ActClient:
    """The Act! client; ConfigError when ACT_API_URL is not set."""
    from chalicelib.act.client import ActClient
    from chalicelib.core.errors import ConfigError

    settings = settings or get_settings()
    if settings.act is None:
        raise ConfigError(
            "Act! is not configured: set ACT_API_URL, ACT_DATABASE, ACT_USERNAME and ACT_PASSWORD."
        )
    return ActClient(settings.act)


_PUSHERS: dict[tuple[Any, ...], Any] = {}


def get_pusher(settings: Settings | None = None) -> Pusher:
    """The sync pusher, reused (with its field map and history type) by a warm Lambda."""
    from chalicelib.act.sync import Pusher

    settings = settings or get_settings()
    catalogue = get_catalogue(settings)
    key = (id(settings), id(catalogue))
    if key not in _PUSHERS:
        _PUSHERS.clear()
        _PUSHERS[key] = Pusher(get_ledger(settings), get_act_client(settings), catalogue, settings)
    return _PUSHERS[key]


@lru_cache(maxsize=8)
def _dynamodb(endpoint: str | None, region: str, timeout: float) -> Any:
    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=32,
    )
    return boto3.session.Session().client(
        "dynamodb", endpoint_url=endpoint, region_name=region, config=config
    )


def dynamodb_client(settings: Settings | None = None) -> Any:
    """A low-level DynamoDB client for the configured endpoint and region."""
    settings = settings or get_settings()
    return _dynamodb(settings.dynamodb_endpoint, settings.aws_region, settings.dynamodb_timeout)


def get_ledger(settings: Settings | None = None) -> Ledger:
    """The ledger on the configured table."""
    from chalicelib.consent.stats import deltas
    from chalicelib.store.ledger import Ledger

    settings = settings or get_settings()
    return Ledger(dynamodb_client(settings), settings.consent_table, tally=deltas)


def get_catalogue(settings: Settings | None = None) -> Catalogue:
    """The purpose catalogue (parsed on first use, re-read when its file changes)."""
    from chalicelib.consent.catalogue import load_catalogue

    settings = settings or get_settings()
    return load_catalogue(settings.catalogue_path)


def get_postman(settings: Settings | None = None) -> Postman:
    """Who sends the mails, with the configured transport."""
    from chalicelib.mail.outbox import Postman
    from chalicelib.mail.transports import get_transport

    settings = settings or get_settings()
    return Postman(
        get_ledger(settings),
        settings,
        get_catalogue(settings),
        get_transport(settings.mail, settings.aws_region),
    )


def get_signups(settings: Settings | None = None) -> Signups:
    """The signup rules on the configured table."""
    from chalicelib.consent.requests import Signups

    settings = settings or get_settings()
    return Signups(get_ledger(settings), settings, get_catalogue(settings))


def get_reconciler(settings: Settings | None = None) -> Reconciler:
    """Reconciles contacts changed in Act! (webhook hints, polling)."""
    from chalicelib.act.reconcile import Reconciler
    from chalicelib.core.errors import ConfigError

    settings = settings or get_settings()
    catalogue = get_catalogue(settings)
    act = settings.act
    if act is None:
        raise ConfigError("Act! is not configured: set ACT_API_URL and friends.")
    unknown = [p for p in act.ask_purposes if p not in catalogue.purposes]
    if unknown:
        raise ConfigError(f"ACT_ASK_PURPOSES names unknown purpose(s): {', '.join(unknown)}.")
    reconciler = Reconciler(
        get_ledger(settings),
        settings,
        catalogue,
        get_act_client(settings),
        act.ask_purposes,
        act.drift,
        act.ask_new_address,
    )
    if act.ask_group or act.ask_field:  # a webhook hint also finds the triggers
        reconciler.asker = get_asker(settings)
    return reconciler


def get_asker(settings: Settings | None = None) -> Asker:
    """The "ask from inside Act!" triggers (``ACT_ASK_GROUP``, ``ACT_ASK_FIELD``)."""
    from chalicelib.act.ask import Asker

    settings = settings or get_settings()
    return Asker(get_ledger(settings), settings, get_catalogue(settings), get_act_client(settings))


#: How certificates and subscription URLs are fetched (HTTPS to sns.*.amazonaws.com).
#: Tests, which never leave loopback, put their own function here.
sns_fetch: Any = None
_SNS_VERIFIERS: dict[tuple[Any, ...], Any] = {}


def get_sns_verifier(settings: Settings | None = None) -> Any:
    """One SNS verifier per container and topic set: it caches the signing certificates."""
    from chalicelib.mail.sns import Verifier, fetch_https

    settings = settings or get_settings()
    fetch = sns_fetch or fetch_https
    key = (settings.ses_topics, fetch)
    if key not in _SNS_VERIFIERS:
        _SNS_VERIFIERS.clear()
        _SNS_VERIFIERS[key] = Verifier(settings.ses_topics, fetch)
    return _SNS_VERIFIERS[key]
