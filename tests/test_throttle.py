"""Throttles (chalicelib/throttle.py) and their settings (``parse_limit``, ``Limit``).

The throttles stop a form from being used to mail-bomb an address or to flood the
table from one IP. They must count exactly (also under concurrent Lambdas), slide
rather than reset, and never store the IP or the address they count.
Everything runs against DynamoDB Local through the ``ledger`` fixture.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest

from chalicelib.store import schema
from chalicelib.core.errors import ConfigError
from chalicelib.store.ledger import Ledger
from chalicelib.core.settings import Limit, load_settings, parse_limit
from chalicelib.consent.throttle import Throttle, rate_key
from tests.conftest import KEY_NEW, PEPPER

#: An explicit clock (2030-03-17), so window arithmetic never depends on the wall clock.
T = 1_900_000_000.0
IP = "203.0.113.7"
ADDRESS = "ann@example.eu"
PER_MINUTE = Limit(3, 60)


def ip_key(ip: str = IP) -> str:
    return rate_key(PEPPER, "ip", ip)


def rate_items(table_items: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [item for item in table_items() if item["pk"].startswith("RATE#")]


# --- parse_limit and Limit ------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("3/24h", Limit(3, 86400)),
    ("20 / 1h", Limit(20, 3600)),
    ("5/30m", Limit(5, 1800)),
    ("10/45s", Limit(10, 45)),
    ("2/7d", Limit(2, 7 * 86400)),
    ("  4/10m  ", Limit(4, 600)),
])
def test_parse_limit_accepts_count_slash_window(text: str, expected: Limit) -> None:
    """The documented forms of THROTTLE_* values all parse to the intended window."""
    assert parse_limit(text, "THROTTLE_MAILS_PER_ADDRESS") == expected


@pytest.mark.parametrize("text", ["0/1h", "3/0h", "3", "abc", "3/2w", "", "-1/1h", "3/1.5h",
                                  "3/h", "/1h", "3//1h"])
def test_parse_limit_refuses_nonsense_naming_the_variable(text: str) -> None:
    """A zero or garbled limit must stop the deploy with a message naming the setting."""
    with pytest.raises(ConfigError) as caught:
        parse_limit(text, "THROTTLE_SIGNUPS_PER_IP")
    message = str(caught.value)
    assert "THROTTLE_SIGNUPS_PER_IP" in message
    assert repr(text) in message
    assert "3/24h" in message  # says what to write instead


@pytest.mark.parametrize("name", ["THROTTLE_MAILS_PER_ADDRESS", "THROTTLE_SIGNUPS_PER_IP"])
def test_bad_throttle_variable_fails_load_settings(name: str) -> None:
    """The environment's throttles are checked when settings load, not at the first signup."""
    env = {"LINK_SECRET_KEYS": KEY_NEW, "SUBJECT_PEPPER": PEPPER, name: "lots"}
    with pytest.raises(ConfigError, match=name):
        load_settings(env)


def test_default_throttles() -> None:
    """Without configuration: 3 mails per address a day, 20 signups per IP an hour."""
    mail = load_settings({"LINK_SECRET_KEYS": KEY_NEW, "SUBJECT_PEPPER": PEPPER}).mail
    assert mail.per_address == Limit(3, 86400)
    assert mail.per_ip == Limit(20, 3600)


@pytest.mark.parametrize("limit, shown", [
    (Limit(3, 86400), "3 per 1d"),
    (Limit(20, 3600), "20 per 1h"),
    (Limit(5, 1800), "5 per 30m"),
    (Limit(10, 45), "10 per 45s"),
    (Limit(2, 90), "2 per 90s"),
    (Limit(1, 5400), "1 per 90m"),
    (Limit(4, 7200), "4 per 2h"),
])
def test_limit_str_uses_the_largest_whole_unit(limit: Limit, shown: str) -> None:
    """Status output shows a limit the way an operator would write it."""
    assert str(limit) == shown


def test_str_of_a_parsed_limit_parses_back() -> None:
    """What the status shows (minus ' per ') is a valid setting for the same limit."""
    for text in ("3/24h", "20/1h", "5/30m", "10/45s"):
        limit = parse_limit(text, "X")
        assert parse_limit(str(limit).replace(" per ", "/"), "X") == limit


# --- counting -------------------------------------------------------------------------


def test_n_hits_allowed_then_refused(ledger: Ledger) -> None:
    """Exactly ``count`` hits pass in one window; the next ones are refused."""
    throttle = Throttle(ledger)
    results = [throttle.hit("ip", ip_key(), PER_MINUTE, now=T + i) for i in range(5)]
    assert results == [True, True, True, False, False]


def test_refused_hits_are_not_counted(ledger: Ledger,
                                      table_items: Callable[[], list[dict[str, Any]]]) -> None:
    """A flood of refused tries must not extend the block: only accepted hits are stored."""
    throttle = Throttle(ledger)
    for offset in (0, 1, 2):
        assert throttle.hit("ip", ip_key(), PER_MINUTE, now=T + offset)
    for offset in (30, 40, 50, 55):
        assert not throttle.hit("ip", ip_key(), PER_MINUTE, now=T + offset)
    (item,) = rate_items(table_items)
    assert item["hits"] == [int(T * 1000), int(T * 1000) + 1000, int(T * 1000) + 2000]
    # the first hit leaves the window; had the refusals counted, this would still be refused
    assert throttle.hit("ip", ip_key(), PER_MINUTE, now=T + 60.5)


def test_window_slides(ledger: Ledger) -> None:
    """A window slides with time: no burst of 2 x count across a fixed window's edge."""
    throttle = Throttle(ledger)
    key = ip_key()
    for offset in (0, 10, 20):
        assert throttle.hit("ip", key, PER_MINUTE, now=T + offset)
    assert not throttle.hit("ip", key, PER_MINUTE, now=T + 30)
    assert not throttle.hit("ip", key, PER_MINUTE, now=T + 59.999)
    assert throttle.hit("ip", key, PER_MINUTE, now=T + 61)       # t left the window
    assert not throttle.hit("ip", key, PER_MINUTE, now=T + 65)   # t+10, t+20, t+61 are in it
    assert throttle.hit("ip", key, PER_MINUTE, now=T + 71)       # t+10 left
    assert not throttle.hit("ip", key, PER_MINUTE, now=T + 72)


def test_a_hit_leaves_the_window_exactly_after_its_length(ledger: Ledger) -> None:
    """A hit counts for exactly ``seconds``: 60 s after it, it no longer does."""
    throttle = Throttle(ledger)
    one = Limit(1, 60)
    assert throttle.hit("ip", ip_key(), one, now=T)
    assert not throttle.hit("ip", ip_key(), one, now=T + 59.999)
    assert throttle.hit("ip", ip_key(), one, now=T + 60)


def test_keys_and_scopes_are_independent(ledger: Ledger) -> None:
    """One busy IP must not block another IP, nor an address throttle with the same hash."""
    throttle = Throttle(ledger)
    one = Limit(1, 3600)
    assert throttle.hit("ip", ip_key(IP), one, now=T)
    assert not throttle.hit("ip", ip_key(IP), one, now=T + 1)
    assert throttle.hit("ip", ip_key("198.51.100.9"), one, now=T + 1)
    # the very same key string under another scope is another counter
    assert throttle.hit("address", ip_key(IP), one, now=T + 1)
    assert throttle.hit("address", rate_key(PEPPER, "address", ADDRESS), one, now=T + 1)
    assert not throttle.hit("address", rate_key(PEPPER, "address", ADDRESS), one, now=T + 2)


def test_remaining(ledger: Ledger) -> None:
    """``remaining`` counts down with hits, never below zero, and recovers as hits age out."""
    throttle = Throttle(ledger)
    key = ip_key()
    assert throttle.remaining("ip", key, PER_MINUTE, now=T) == 3
    throttle.hit("ip", key, PER_MINUTE, now=T)
    throttle.hit("ip", key, PER_MINUTE, now=T + 10)
    assert throttle.remaining("ip", key, PER_MINUTE, now=T + 10) == 1
    throttle.hit("ip", key, PER_MINUTE, now=T + 20)
    throttle.hit("ip", key, PER_MINUTE, now=T + 21)  # refused
    assert throttle.remaining("ip", key, PER_MINUTE, now=T + 21) == 0
    assert throttle.remaining("ip", key, PER_MINUTE, now=T + 61) == 1
    assert throttle.remaining("ip", key, PER_MINUTE, now=T + 200) == 3
    assert throttle.remaining("ip", ip_key("198.51.100.9"), PER_MINUTE, now=T) == 3
    # asking does not count
    assert throttle.remaining("ip", key, PER_MINUTE, now=T + 21) == 0
    assert throttle.hit("ip", key, PER_MINUTE, now=T + 61)


# --- what is stored -------------------------------------------------------------------


def test_rate_key_is_a_keyed_hash() -> None:
    """Without the pepper a key cannot be linked to an IP or address by hashing guesses."""
    import hashlib

    key = rate_key(PEPPER, "ip", IP)
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == rate_key(PEPPER, "ip", IP)
    assert key != rate_key("other-" + PEPPER, "ip", IP)
    assert key != rate_key(PEPPER, "address", IP)
    assert key not in {hashlib.sha256(v.encode()).hexdigest() for v in (IP, f"ip:{IP}")}


def test_stored_item_holds_no_ip_or_address(ledger: Ledger,
                                            table_items: Callable[[], list[dict[str, Any]]]) -> None:
    """The table must never hold a raw IP or e-mail address in a throttle item."""
    throttle = Throttle(ledger)
    assert throttle.hit("ip", rate_key(PEPPER, "ip", IP), PER_MINUTE, now=T)
    assert throttle.hit("address", rate_key(PEPPER, "address", ADDRESS), PER_MINUTE, now=T)
    items = rate_items(table_items)
    assert {item["pk"] for item in items} == {
        f"RATE#ip#{rate_key(PEPPER, 'ip', IP)}",
        f"RATE#address#{rate_key(PEPPER, 'address', ADDRESS)}"}
    dumped = repr(table_items())
    for raw in (IP, ADDRESS, "ann", "example.eu", "203.0.113"):
        assert raw not in dumped


def test_stored_item_expires_after_the_window(ledger: Ledger,
                                              table_items: Callable[[], list[dict[str, Any]]]) -> None:
    """The table's TTL attribute is set past the window, so counters clean themselves up."""
    throttle = Throttle(ledger)
    throttle.hit("ip", ip_key(), PER_MINUTE, now=T)
    throttle.hit("ip", ip_key(), PER_MINUTE, now=T + 30)
    (item,) = rate_items(table_items)
    assert schema.TTL_ATTRIBUTE == "expires_at"
    ttl = ledger.client.describe_time_to_live(TableName=ledger.table)["TimeToLiveDescription"]
    assert ttl.get("AttributeName") == "expires_at"
    assert isinstance(item["expires_at"], int)
    # after the newest hit's window ends, but not absurdly long after
    assert T + 30 + 60 <= item["expires_at"] <= T + 30 + 60 + 3600
    assert item["sk"] == "RATE" and item["scope"] == "ip"


# --- concurrency ----------------------------------------------------------------------


def test_concurrent_hits_on_one_key_count_exactly(ledger: Ledger,
                                                  table_items: Callable[[], list[dict[str, Any]]]) -> None:
    """20 simultaneous requests (separate Lambdas) against a limit of 5: exactly 5 pass."""
    throttle = Throttle(ledger)
    limit = Limit(5, 3600)
    key = ip_key()

    def one(_: int) -> bool:
        return throttle.hit("ip", key, limit, now=T)

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, range(20)))
    assert results.count(True) == 5
    assert results.count(False) == 15
    (item,) = rate_items(table_items)
    assert len(item["hits"]) == 5
    assert item["version"] == 5
    assert throttle.remaining("ip", key, limit, now=T) == 0


def test_concurrent_hits_on_different_keys_do_not_interfere(ledger: Ledger) -> None:
    """Parallel hits on distinct keys are all allowed: no cross-key contention."""
    throttle = Throttle(ledger)
    limit = Limit(1, 3600)
    keys = [ip_key(f"192.0.2.{n}") for n in range(12)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda k: throttle.hit("ip", k, limit, now=T), keys))
    assert results == [True] * 12
