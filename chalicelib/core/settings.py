"""Typed settings, read from environment variables in one place, on first use.

Nothing reads ``os.environ`` at import time: Chalice applies a stage's variables
only while it handles a request (test client) or at process start (Lambda), and tests
swap them between cases. ``get_settings()`` caches one instance per distinct
environment, so a warm Lambda reads and validates them once.

Size: every setting with its validation and its error message, in one place, is
the point of this module.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chalicelib.act.dates import DEFAULT_ZONE, zone
from chalicelib.core.errors import ConfigError

#: Where app.py, templates/, locales/ and catalogue.toml live, locally and in the
#: Lambda package (vendor/ contents land beside app.py there).
PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent

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
    "CONSENT_TABLE",
    "DYNAMODB_ENDPOINT",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "LINK_SECRET_KEYS",
    "SUBJECT_PEPPER",
    "PUBLIC_BASE_URL",
    "CONSENT_CATALOGUE",
    "FORM_TOKEN_MAX_AGE",
    "DYNAMODB_TIMEOUT",
    "ACT_API_URL",
    "ACT_DATABASE",
    "ACT_USERNAME",
    "ACT_PASSWORD",
    "ACT_TIMEOUT",
    "ACT_CREATE_CONTACTS",
    "ACT_HISTORY_TYPE",
    "ACT_STATUS_VALUES",
    "ACT_AEM_OPT_OUT",
    "ACT_AEM_CLEAR_ON_ACCEPT",
    "ACT_MAX_RETRIES",
    "SYNC_MAX_ATTEMPTS",
    "ACT_WEBHOOK_TOKEN",
    "ACT_WEBHOOK_PATH_SECRET",
    "ACT_ASK_PURPOSES",
    "ACT_ASK_NEW_ADDRESS",
    "ACT_ASK_GROUP",
    "ACT_ASK_FIELD",
    "ACT_ASK_VALUE",
    "ACT_ASK_LOCALE",
    "ACT_ASK_LOCALE_FIELD",
    "ACT_ASK_STATUS",
    "ACT_POLL",
    "ACT_DRIFT",
    "ACT_TIMEZONE",
    "MAIL_TRANSPORT",
    "MAIL_FROM",
    "MAIL_REPLY_TO",
    "MAIL_SMTP_HOST",
    "MAIL_SMTP_PORT",
    "MAIL_SMTP_SECURITY",
    "MAIL_SMTP_USERNAME",
    "MAIL_SMTP_PASSWORD",
    "MAIL_TIMEOUT",
    "MAIL_SES_REGION",
    "MAIL_SES_ENDPOINT",
    "MAIL_SES_CONFIGURATION_SET",
    "MAIL_MAX_ATTEMPTS",
    "MAIL_ALREADY_SUBSCRIBED",
    "THROTTLE_MAILS_PER_ADDRESS",
    "THROTTLE_SIGNUPS_PER_IP",
    "SIGNUP_MIN_RESPONSE",
    "MAIL_DELIVERY",
    "WEBHOOK_SUBSCRIBERS",
    "WEBHOOK_SECRET",
    "ADMIN_SECRET_KEYS",
    "SES_SNS_TOPIC_ARNS",
    "SES_SNS_PATH_SECRET",
    "ERASURE_ACT",
    "RECEIPT_MAIL",
    "RENEWAL_MAILS_PER_RUN",
    "TSA_URLS",
    "TSA_TIMEOUT",
    "ANCHOR_BUCKET",
    "ANCHOR_SCHEDULE_MINUTES",
    *(f"LINK_MAX_AGE_{kind.upper()}" for kind in LINK_KINDS),
)

_MIN_SECRET_LENGTH = 32


@dataclass(frozen=True)
class ActSettings:
    """How to reach Act! and what to write there. See docs/operators.md, Act!."""

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
    webhook_token: str | None = field(default=None, repr=False)
    webhook_path_secret: str | None = field(default=None, repr=False)
    ask_purposes: tuple[str, ...] = ()
    ask_new_address: bool = False
    #: "Ask from inside Act!": contacts added to this group (a name or an id) ...
    ask_group: str | None = None
    #: ... or whose field (display name) is set to ``ask_value`` get a confirmation request.
    ask_field: str | None = None
    ask_value: str = "Ask"
    #: The language of that request: the contact's ``ask_locale_field`` when it names a
    #: catalogue locale, else ``ask_locale`` (empty: the catalogue's default).
    ask_locale: str | None = None
    ask_locale_field: str | None = None
    #: What the consent status fields of the purposes asked (and not yet decided) show.
    ask_status: str = "Requested"
    #: The scheduled ``act_poll``: on (edits and triggers), triggers (only the triggers:
    #: self-hosted Act! with webhooks), off.
    poll: str = "on"
    drift: str = "restore"
    #: The Act! server's time zone (IANA name): Act! keeps date-times as its local wall time.
    timezone: str = "UTC"


_STATUS_DEFAULTS: dict[str, str] = {
    "accepted": "Accepted",
    "refused": "Refused",
    "withdrawn": "Withdrawn",
    #: A consent whose validity ran out (``consent/validity.py``).
    "expired": "Expired",
}

MAIL_TRANSPORTS = ("none", "smtp", "ses")
MAIL_DELIVERIES = ("queued", "inline")
SMTP_SECURITY = ("starttls", "ssl", "none")


@dataclass(frozen=True)
class Limit:
    """At most ``count`` hits in any ``seconds``-long window (a throttle)."""

    count: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.count} per {_human_seconds(self.seconds)}"


def _human_seconds(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class MailSettings:
    """How OptinProof sends its own mails. See docs/operators.md, mail."""

    transport: str = "none"
    #: queued: sent by the table's stream (and the sweep), never inside a signup request,
    #: so neither its time nor its failure shows in the answer; inline: sent in the request.
    delivery: str = "queued"
    sender: str = ""
    reply_to: str | None = None
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_security: str = "starttls"
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    ses_region: str | None = None
    ses_endpoint: str | None = None
    ses_configuration_set: str | None = None
    max_attempts: int = 6
    already_subscribed: bool = False
    per_address: Limit = Limit(3, 86400)
    per_ip: Limit = Limit(20, 3600)


@dataclass(frozen=True)
class AnchorSettings:
    """Where the hourly anchor asks for a timestamp, and where it keeps a locked copy."""

    #: RFC 3161 time-stamping authorities, tried in order; empty: anchoring is off.
    tsa_urls: tuple[str, ...] = ()
    tsa_timeout: float = 10.0
    #: An S3 bucket with Object Lock (compliance mode) that also receives each anchor.
    bucket: str | None = None


@dataclass(frozen=True)
class Settings:
    """Every knob of the app. See docs/reference.md, Configuration."""

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
    mail: MailSettings = field(default_factory=MailSettings)
    #: Every signup answer takes at least this long (seconds), so timing does not tell
    #: a new address (a mail is sent) from a known one or a dropped bot (nothing is).
    signup_min_response: float = 0.4
    #: Where a signed POST goes for every decision (outbound webhooks).
    webhook_subscribers: tuple[str, ...] = ()
    webhook_secret: str | None = field(default=None, repr=False)
    #: Keys that sign operators' admin tokens (oldest first); empty: admin API disabled.
    admin_secret_keys: tuple[str, ...] = field(default=(), repr=False)
    #: SNS topics whose SES notifications we accept, and the endpoint's path secret.
    ses_topics: frozenset[str] = frozenset()
    ses_path_secret: str | None = field(default=None, repr=False)
    #: What erasure does to the person's Act! contacts: clear the consent fields,
    #: delete the contact, or keep it.
    erasure_act: str = "clear"
    #: Mail the person a signed consent receipt after each change of their choices.
    receipt_mail: bool = False
    #: At most this many renewal mails per run of the validity sweep (a throttle: the
    #: rest wait for the next run, in order).
    renewal_mails_per_run: int = 200
    #: Anchoring chain heads in trusted time (RFC 3161 TSAs, optional S3 Object Lock copy).
    anchor: AnchorSettings = field(default_factory=lambda: AnchorSettings())


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


def _secret_keys(
    env: dict[str, str], name: str = "LINK_SECRET_KEYS", required: bool = True
) -> tuple[str, ...]:
    raw = _required_secret(env, name) if required else env.get(name, "").strip()
    keys = tuple(part.strip() for part in raw.split(",") if part.strip())
    if required and not keys:
        raise ConfigError(
            f"{name} holds no key. Generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    for position, key in enumerate(keys, start=1):
        if not key.isprintable() or not key.isascii():
            raise ConfigError(
                f"{name}: key #{position} holds characters other than printable "
                "ASCII; generate keys with secrets.token_urlsafe(48)."
            )
        if len(key) < _MIN_SECRET_LENGTH:
            raise ConfigError(
                f"{name}: key #{position} has {len(key)} characters; each key "
                f"needs at least {_MIN_SECRET_LENGTH} (newest key last, comma-separated)."
            )
    return keys


def _ses_topics(env: dict[str, str]) -> dict[str, Any]:
    topics = frozenset(t.strip() for t in env.get("SES_SNS_TOPIC_ARNS", "").split(",") if t.strip())
    for topic in topics:
        if not re.fullmatch(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}", topic):
            raise ConfigError(
                f"SES_SNS_TOPIC_ARNS: {topic!r} is not an SNS topic ARN "
                "(arn:aws:sns:REGION:ACCOUNT:NAME)."
            )
    secret = _optional_secret(env, "SES_SNS_PATH_SECRET")
    if topics and not secret:
        raise ConfigError(
            "SES_SNS_TOPIC_ARNS is set but SES_SNS_PATH_SECRET is not: the SNS "
            "subscription URL needs it (/hooks/ses/<secret>)."
        )
    return {"ses_topics": topics, "ses_path_secret": secret}


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


def _seconds(env: dict[str, str], name: str, default: float) -> float:
    """A duration in seconds that may be zero (e.g. to switch a delay off in tests)."""
    value = env.get(name, "").strip()
    try:
        number = float(value) if value else default
    except ValueError as exc:
        raise ConfigError(f"{name}={value!r} is not a number of seconds.") from exc
    if not 0 <= number <= 10:
        raise ConfigError(f"{name} must be between 0 and 10 seconds.")
    return number


def _webhooks(env: dict[str, str]) -> dict[str, Any]:
    urls = tuple(u.strip() for u in env.get("WEBHOOK_SUBSCRIBERS", "").split(",") if u.strip())
    for url in urls:
        parts = urlsplit(url)
        loopback = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "::1", "localhost")
        if (
            parts.username
            or parts.password
            or not parts.hostname
            or not (parts.scheme == "https" or loopback)
        ):
            raise ConfigError(
                f"WEBHOOK_SUBSCRIBERS: {url!r} must be an https:// URL (plain http "
                "only for 127.0.0.1/localhost)."
            )
    secret = _optional_secret(env, "WEBHOOK_SECRET")
    if urls and not secret:
        raise ConfigError(
            "WEBHOOK_SUBSCRIBERS is set but WEBHOOK_SECRET is not: subscribers "
            "need it to check the signature."
        )
    return {"webhook_subscribers": urls, "webhook_secret": secret}


def _status_values(env: dict[str, str]) -> dict[str, str]:
    raw = env.get("ACT_STATUS_VALUES", "").strip()
    if not raw:
        return dict(_STATUS_DEFAULTS)
    parts = [part.strip() for part in raw.split(",")]
    if len(parts) not in (3, 4) or not all(parts):
        raise ConfigError(
            "ACT_STATUS_VALUES needs three or four comma-separated words, for accepted, "
            "refused, withdrawn and (optionally) expired (e.g. "
            "Accepted,Refused,Withdrawn,Expired)."
        )
    # Three words (before consent expired) keep the default fourth.
    return {**_STATUS_DEFAULTS, **dict(zip(_STATUS_DEFAULTS, parts, strict=False))}


def _optional_secret(env: dict[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    if value and len(value) < _MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{name} needs at least {_MIN_SECRET_LENGTH} characters. Generate "
            "one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return value or None


def act_settings(env: dict[str, str]) -> ActSettings | None:
    """The Act! connection, or None when ``ACT_API_URL`` is unset (sync stays pending)."""
    url = env.get("ACT_API_URL", "").strip().rstrip("/")
    if not url:
        return None
    if not url.startswith(("https://", "http://")):
        raise ConfigError(
            f"ACT_API_URL={url!r} must start with https:// (e.g. https://server/act.web.api)"
        )
    missing = [
        name
        for name in ("ACT_DATABASE", "ACT_USERNAME", "ACT_PASSWORD")
        if not env.get(name, "").strip()
    ]
    if missing:
        raise ConfigError(f"ACT_API_URL is set but {', '.join(missing)} is not.")
    return ActSettings(
        api_url=url,
        database=env["ACT_DATABASE"].strip(),
        username=env["ACT_USERNAME"].strip(),
        password=env["ACT_PASSWORD"],
        timeout=_number(env, "ACT_TIMEOUT", 10.0),
        max_retries=int(_number(env, "ACT_MAX_RETRIES", 4, int)),
        create_contacts=_flag(env, "ACT_CREATE_CONTACTS", False),
        history_type=env.get("ACT_HISTORY_TYPE", "").strip() or "General",
        status_values=_status_values(env),
        aem_opt_out=_flag(env, "ACT_AEM_OPT_OUT", True),
        aem_clear_on_accept=_flag(env, "ACT_AEM_CLEAR_ON_ACCEPT", False),
        webhook_token=_optional_secret(env, "ACT_WEBHOOK_TOKEN"),
        webhook_path_secret=_optional_secret(env, "ACT_WEBHOOK_PATH_SECRET"),
        ask_purposes=tuple(
            p.strip() for p in env.get("ACT_ASK_PURPOSES", "").split(",") if p.strip()
        ),
        ask_new_address=_flag(env, "ACT_ASK_NEW_ADDRESS", False),
        **_ask_triggers(env),
        poll=_poll(env),
        drift=_choice(env, "ACT_DRIFT", ("restore", "flag"), "restore"),
        timezone=_timezone(env),
    )


def _ask_triggers(env: dict[str, str]) -> dict[str, Any]:
    """``ACT_ASK_GROUP`` / ``ACT_ASK_FIELD`` + ``ACT_ASK_VALUE`` and the request's language.

    The purposes (``ACT_ASK_PURPOSES``) are checked against the catalogue when the
    trigger service is built (``services.get_asker``): the catalogue is not read here.
    """
    group = env.get("ACT_ASK_GROUP", "").strip() or None
    name = env.get("ACT_ASK_FIELD", "").strip() or None
    value = env.get("ACT_ASK_VALUE", "").strip()
    if value and not name:
        raise ConfigError(
            f"ACT_ASK_VALUE={value!r} is set but ACT_ASK_FIELD is not: name the Act! "
            "contact field (its display name) whose value asks, e.g. ACT_ASK_FIELD="
            "'OptinProof Ask'."
        )
    if value and len(value) > 20:
        raise ConfigError(f"ACT_ASK_VALUE={value!r}: at most 20 characters (the field's length).")
    locale = env.get("ACT_ASK_LOCALE", "").strip().lower() or None
    if locale and not re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]{2,8})?", locale):
        raise ConfigError(f"ACT_ASK_LOCALE={locale!r} is not a language code (e.g. fr, en).")
    status = env.get("ACT_ASK_STATUS", "").strip() or "Requested"
    if len(status) > 20:
        raise ConfigError(f"ACT_ASK_STATUS={status!r}: at most 20 characters (status fields).")
    return {
        "ask_group": group,
        "ask_field": name,
        "ask_value": value or "Ask",
        "ask_locale": locale,
        "ask_locale_field": env.get("ACT_ASK_LOCALE_FIELD", "").strip() or None,
        "ask_status": status,
    }


def _poll(env: dict[str, str]) -> str:
    """``ACT_POLL``: true/on, triggers, false/off (the scheduled ``act_poll``)."""
    value = env.get("ACT_POLL", "").strip().lower()
    words = {"": "on", "true": "on", "on": "on", "1": "on", "yes": "on", "triggers": "triggers"}
    words.update({"false": "off", "off": "off", "0": "off", "no": "off"})
    if value not in words:
        raise ConfigError(f"ACT_POLL={value!r}: choose true, triggers or false.")
    return words[value]


def _timezone(env: dict[str, str]) -> str:
    """``ACT_TIMEZONE``, checked against the tz database now rather than on first push."""
    name = env.get("ACT_TIMEZONE", "").strip() or DEFAULT_ZONE
    return zone(name).key


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_limit(text: str, name: str) -> Limit:
    """``3/24h`` → 3 hits in any 24 hours.

    A zero count is refused: a throttle of 0 would silently stop every signup, which
    nobody means.
    """
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*([smhd])\s*", text or "")
    if not match or int(match.group(1)) <= 0 or int(match.group(2)) <= 0:
        raise ConfigError(
            f"{name}={text!r} is not a limit: write a count, a slash and a "
            "window, e.g. 3/24h or 20/1h (units s, m, h, d)."
        )
    return Limit(int(match.group(1)), int(match.group(2)) * _UNITS[match.group(3)])


def _choice(env: dict[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in choices:
        raise ConfigError(f"{name}={value!r}: choose one of {', '.join(choices)}.")
    return value


def mail_settings(env: dict[str, str], public_base_url: str) -> MailSettings:
    """The mail transport and its throttles; checks what the chosen transport needs."""
    transport = _choice(env, "MAIL_TRANSPORT", MAIL_TRANSPORTS, "none")
    sender = env.get("MAIL_FROM", "").strip()
    if transport != "none":
        if not sender or "@" not in sender:
            raise ConfigError(
                f"MAIL_TRANSPORT={transport} needs MAIL_FROM, the sender address "
                "(e.g. 'Example Outdoor <consent@example-outdoor.eu>')."
            )
        if not public_base_url:
            raise ConfigError(
                f"MAIL_TRANSPORT={transport} needs PUBLIC_BASE_URL: mails carry "
                "absolute links (e.g. https://consent.example-outdoor.eu)."
            )
    if transport == "smtp" and not env.get("MAIL_SMTP_HOST", "").strip():
        raise ConfigError("MAIL_TRANSPORT=smtp needs MAIL_SMTP_HOST (and usually MAIL_SMTP_PORT).")
    return MailSettings(
        transport=transport,
        sender=sender,
        delivery=_choice(env, "MAIL_DELIVERY", MAIL_DELIVERIES, "queued"),
        reply_to=env.get("MAIL_REPLY_TO", "").strip() or None,
        smtp_host=env.get("MAIL_SMTP_HOST", "").strip() or "127.0.0.1",
        smtp_port=int(_number(env, "MAIL_SMTP_PORT", 25, int)),
        smtp_security=_choice(env, "MAIL_SMTP_SECURITY", SMTP_SECURITY, "starttls"),
        smtp_username=env.get("MAIL_SMTP_USERNAME", "").strip() or None,
        smtp_password=env.get("MAIL_SMTP_PASSWORD") or None,
        timeout=_number(env, "MAIL_TIMEOUT", 10.0),
        ses_region=env.get("MAIL_SES_REGION", "").strip() or None,
        ses_endpoint=env.get("MAIL_SES_ENDPOINT", "").strip() or None,
        ses_configuration_set=env.get("MAIL_SES_CONFIGURATION_SET", "").strip() or None,
        max_attempts=int(_number(env, "MAIL_MAX_ATTEMPTS", 6, int)),
        already_subscribed=_flag(env, "MAIL_ALREADY_SUBSCRIBED", False),
        per_address=parse_limit(
            env.get("THROTTLE_MAILS_PER_ADDRESS", "3/24h"), "THROTTLE_MAILS_PER_ADDRESS"
        ),
        per_ip=parse_limit(env.get("THROTTLE_SIGNUPS_PER_IP", "20/1h"), "THROTTLE_SIGNUPS_PER_IP"),
    )


def anchor_settings(env: dict[str, str]) -> AnchorSettings:
    """``TSA_URLS`` (comma-separated, https in production), ``TSA_TIMEOUT``, ``ANCHOR_BUCKET``."""
    urls = tuple(u.strip() for u in env.get("TSA_URLS", "").split(",") if u.strip())
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"TSA_URLS: {url!r} is not an http(s) URL of a time-stamping authority "
                "(e.g. https://timestamp.example-qtsp.eu/tsa)."
            )
    bucket = env.get("ANCHOR_BUCKET", "").strip() or None
    return AnchorSettings(urls, _seconds(env, "TSA_TIMEOUT", 10.0), bucket)


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
    base_url = env.get("PUBLIC_BASE_URL", "").strip().rstrip("/")
    return Settings(
        consent_table=env.get("CONSENT_TABLE", "optinproof").strip() or "optinproof",
        dynamodb_endpoint=env.get("DYNAMODB_ENDPOINT", "").strip() or None,
        aws_region=(env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "eu-west-1"),
        link_secret_keys=_secret_keys(env),
        subject_pepper=pepper,
        public_base_url=base_url,
        catalogue_path=catalogue_path(env),
        link_max_age=max_age,
        form_token_max_age=parse_duration(
            env.get("FORM_TOKEN_MAX_AGE", "24h"), "FORM_TOKEN_MAX_AGE"
        ),
        dynamodb_timeout=_number(env, "DYNAMODB_TIMEOUT", 5.0),
        act=act_settings(env),
        sync_max_attempts=int(_number(env, "SYNC_MAX_ATTEMPTS", 8, int)),
        mail=mail_settings(env, base_url),
        signup_min_response=_seconds(env, "SIGNUP_MIN_RESPONSE", 0.4),
        **_webhooks(env),
        admin_secret_keys=_secret_keys(env, "ADMIN_SECRET_KEYS", required=False),
        erasure_act=_choice(env, "ERASURE_ACT", ("clear", "delete", "keep"), "clear"),
        receipt_mail=_flag(env, "RECEIPT_MAIL", False),
        renewal_mails_per_run=_renewal_mails(env),
        anchor=anchor_settings(env),
        **_ses_topics(env),
    )


def _renewal_mails(env: dict[str, str]) -> int:
    """``RENEWAL_MAILS_PER_RUN``: 1 to 10,000 renewal mails per sweep run."""
    value = int(_number(env, "RENEWAL_MAILS_PER_RUN", 200, int))
    if not 1 <= value <= 10_000:
        raise ConfigError(f"RENEWAL_MAILS_PER_RUN={value}: choose a number from 1 to 10000.")
    return value


@lru_cache(maxsize=8)
def _cached(items: tuple[tuple[str, str], ...]) -> Settings:
    return load_settings(dict(items))


def get_settings() -> Settings:
    """Settings for the current environment (with the stage's SSM secrets in AWS),
    validated once per distinct environment."""
    env: Any = os.environ
    if "SECRETS_SSM_PATH" in env:  # in AWS; locally the environment is read as it is
        from chalicelib.core.secrets import environment

        env = environment()
    relevant = tuple((name, env[name]) for name in _ENV_NAMES if name in env)
    return _cached(relevant)
