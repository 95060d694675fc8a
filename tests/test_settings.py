"""Settings (chalicelib/settings.py): durations, required secrets, key order, env re-reads.

Operators configure the app through environment variables only; each mistake must be
refused at startup with a message saying how to fix it.
"""
from __future__ import annotations

import pytest

from chalicelib.core.errors import ConfigError
from chalicelib.core.settings import (
    _ENV_NAMES, LINK_KINDS, get_settings, load_settings, parse_duration,
)

KEY_A = "a" * 32
KEY_B = "b" * 40
KEY_C = "c" * 50
PEPPER = "p" * 32


def base_env(**extra: str) -> dict[str, str]:
    return {"LINK_SECRET_KEYS": KEY_A, "SUBJECT_PEPPER": PEPPER, **extra}


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No variable the settings read leaks in from the developer's shell or other tests."""
    for name in _ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# --- durations ----------------------------------------------------------------------


@pytest.mark.parametrize("text, seconds", [
    ("30d", 30 * 86400), ("24h", 86400), ("15m", 900), ("90s", 90), ("90", 90),
    (" 7d ", 7 * 86400), ("1", 1),
])
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text, "X") == seconds


@pytest.mark.parametrize("text", ["0", "0d", "-1", "abc", "1w", "", "1.5h", "h", "10 days", "30D"])
def test_parse_duration_rejects(text: str) -> None:
    """A lifetime of zero or an unknown unit would silently break every link."""
    with pytest.raises(ConfigError) as caught:
        parse_duration(text, "LINK_MAX_AGE_CONFIRM")
    message = str(caught.value)
    assert "LINK_MAX_AGE_CONFIRM" in message
    assert "30d" in message  # an example of what to write


def test_link_lifetimes_defaults_and_overrides() -> None:
    defaults = load_settings(base_env()).link_max_age
    assert set(defaults) == set(LINK_KINDS)
    assert defaults == {"confirm": 30 * 86400, "withdraw": 730 * 86400,
                        "preferences": 90 * 86400, "rights": 86400}
    custom = load_settings(base_env(LINK_MAX_AGE_RIGHTS="1h")).link_max_age
    assert custom["rights"] == 3600 and custom["confirm"] == 30 * 86400


def test_bad_lifetime_names_its_variable() -> None:
    with pytest.raises(ConfigError, match="LINK_MAX_AGE_WITHDRAW"):
        load_settings(base_env(LINK_MAX_AGE_WITHDRAW="2 years"))


# --- secrets ------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["LINK_SECRET_KEYS", "SUBJECT_PEPPER"])
@pytest.mark.parametrize("value", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_missing_secret_says_how_to_generate_one(missing: str, value: str | None) -> None:
    env = base_env()
    if value is None:
        del env[missing]
    else:
        env[missing] = value
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert f"{missing} is not set" in message
    assert "secrets.token_urlsafe" in message


def test_short_key_names_its_position() -> None:
    """With several keys, say which one is too short."""
    with pytest.raises(ConfigError) as caught:
        load_settings(base_env(LINK_SECRET_KEYS=f"{KEY_A},short-key,{KEY_C}"))
    message = str(caught.value)
    assert "key #2" in message
    assert "9 characters" in message
    assert "at least 32" in message
    assert "short-key" not in message  # never echo a secret


def test_short_pepper_is_refused() -> None:
    with pytest.raises(ConfigError, match="SUBJECT_PEPPER needs at least 32"):
        load_settings(base_env(SUBJECT_PEPPER="p" * 31))


def test_key_list_order_is_kept_newest_last() -> None:
    """Order matters: the last key signs, the others only verify."""
    settings = load_settings(base_env(LINK_SECRET_KEYS=f" {KEY_C} , {KEY_A},{KEY_B}, "))
    assert settings.link_secret_keys == (KEY_C, KEY_A, KEY_B)


def test_secrets_are_not_in_the_repr() -> None:
    """Settings may be logged; the secrets must not be."""
    text = repr(load_settings(base_env(
        ACT_API_URL="https://act.example/act.web.api", ACT_DATABASE="db",
        ACT_USERNAME="user", ACT_PASSWORD="hunter2-password")))
    assert KEY_A not in text and PEPPER not in text and "hunter2-password" not in text


# --- other knobs --------------------------------------------------------------------


def test_defaults() -> None:
    settings = load_settings(base_env())
    assert settings.consent_table == "optinproof"
    assert settings.dynamodb_endpoint is None
    assert settings.aws_region == "eu-west-1"
    assert settings.act is None
    assert settings.form_token_max_age == 86400
    assert settings.catalogue_path.name == "catalogue.toml"


def test_public_base_url_loses_its_trailing_slash() -> None:
    assert load_settings(base_env(PUBLIC_BASE_URL="https://x.eu/ ")).public_base_url == "https://x.eu"


def test_act_settings_require_credentials() -> None:
    with pytest.raises(ConfigError, match="ACT_PASSWORD"):
        load_settings(base_env(ACT_API_URL="https://act.example", ACT_DATABASE="db",
                               ACT_USERNAME="u"))


@pytest.mark.parametrize("name, value", [("ACT_CREATE_CONTACTS", "maybe"),
                                         ("ACT_TIMEOUT", "soon"), ("ACT_TIMEOUT", "-3")])
def test_act_bad_values_are_named(name: str, value: str) -> None:
    env = base_env(ACT_API_URL="https://act.example", ACT_DATABASE="db", ACT_USERNAME="u",
                   ACT_PASSWORD="pw")
    env[name] = value
    with pytest.raises(ConfigError, match=name):
        load_settings(env)


# --- get_settings and the environment -----------------------------------------------


def test_get_settings_reads_the_environment(clean_environ: pytest.MonkeyPatch) -> None:
    clean_environ.setenv("LINK_SECRET_KEYS", KEY_A)
    clean_environ.setenv("SUBJECT_PEPPER", PEPPER)
    assert get_settings().link_secret_keys == (KEY_A,)


def test_get_settings_rereads_when_environ_changes(clean_environ: pytest.MonkeyPatch) -> None:
    """Chalice applies stage variables late and tests swap them: no stale settings."""
    clean_environ.setenv("LINK_SECRET_KEYS", KEY_A)
    clean_environ.setenv("SUBJECT_PEPPER", PEPPER)
    first = get_settings()
    assert get_settings() is first  # cached while nothing changes

    clean_environ.setenv("LINK_SECRET_KEYS", f"{KEY_A},{KEY_B}")
    clean_environ.setenv("CONSENT_TABLE", "other-table")
    second = get_settings()
    assert second.link_secret_keys == (KEY_A, KEY_B)
    assert second.consent_table == "other-table"

    clean_environ.setenv("LINK_MAX_AGE_CONFIRM", "2h")
    assert get_settings().link_max_age["confirm"] == 7200


def test_get_settings_reports_a_missing_secret(clean_environ: pytest.MonkeyPatch) -> None:
    clean_environ.setenv("SUBJECT_PEPPER", PEPPER)
    with pytest.raises(ConfigError, match="LINK_SECRET_KEYS is not set"):
        get_settings()


@pytest.mark.parametrize("value", [",", " , ,", ",,,"])
def test_key_list_of_only_commas_is_refused(value: str) -> None:
    """A list with no key at all is as unset as an empty variable."""
    with pytest.raises(ConfigError, match="LINK_SECRET_KEYS"):
        load_settings(base_env(LINK_SECRET_KEYS=value))
