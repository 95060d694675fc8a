"""DynamoDB round trips per hot path, counted (a botocore hook on the app's client).

Counts are deterministic, so they are asserted: a change that adds a read or a write
to a confirmation fails here. Speed is measured in bench/, never asserted.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from chalicelib.core.services import get_ledger
from chalicelib.store import keys
from tests.conftest import form_fields

FORM = {"content-type": "application/x-www-form-urlencoded"}


class Calls:
    """The DynamoDB operations the app's client sends, in order."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, model, **_: object) -> None:
        self.seen.append(model.name)

    def take(self) -> list[str]:
        taken, self.seen = self.seen, []
        return taken


@pytest.fixture
def calls(env) -> Iterator[Calls]:
    counter = Calls()
    events = get_ledger().client.meta.events
    events.register("before-call.dynamodb", counter)
    yield counter
    events.unregister("before-call.dynamodb", counter)


def _opened(ledger, scope: str) -> int:
    """The funnel's "opened" counter, summed over its shards."""
    from chalicelib.consent import stats

    shards = ledger.query_between(keys.stats(scope), "!", "~")
    return stats.total(shards, ["opened"])["opened"]


def _post(client, token: str, html: str, **choices: str):
    fields = form_fields(html)
    fields.update({f"decision.{purpose}": value for purpose, value in choices.items()})
    return client.http.post(f"/c/{token}", headers=FORM, body=urlencode(fields))


def _warm(client, mint) -> None:
    """A first decision in this container keeps the wordings it cites (once per
    container and text): the counts below are those of a warm container."""
    issued = mint("warm@example.eu", "newsletter", "events")
    html = client.http.get(f"/c/{issued.token}").body.decode()
    assert _post(client, issued.token, html, newsletter="accept", events="refuse").status_code == 200


def test_a_confirmation_post_is_one_read_and_one_transaction(client, mint, calls):
    _warm(client, mint)
    issued = mint("ann@example.eu", "newsletter", "events")
    html = client.http.get(f"/c/{issued.token}").body.decode()
    calls.take()
    answer = _post(client, issued.token, html, newsletter="accept", events="refuse")
    assert answer.status_code == 200
    assert calls.take() == ["TransactGetItems", "TransactWriteItems"]


def test_a_double_click_reads_once_and_writes_nothing(client, mint, calls):
    _warm(client, mint)
    issued = mint("bob@example.eu", "newsletter")
    html = client.http.get(f"/c/{issued.token}").body.decode()
    assert _post(client, issued.token, html, newsletter="accept").status_code == 200
    calls.take()
    again = _post(client, issued.token, html, newsletter="accept")
    assert again.status_code == 200 and "already recorded" in again.body.decode().lower()
    assert calls.take() == ["TransactGetItems"]


def test_a_withdrawal_post_is_one_read_and_one_transaction(client, mint, calls, ledger):
    from chalicelib.consent import rules
    from chalicelib.core.services import get_catalogue
    from chalicelib.core.settings import get_settings

    issued = rules.issue_link(
        ledger, get_settings(), get_catalogue(), "cy@example.eu", ["newsletter"], kind="withdraw"
    )
    calls.take()
    answer = client.http.post(f"/u/{issued.token}", headers=FORM, body="")
    assert answer.status_code == 200
    assert calls.take() == ["TransactGetItems", "TransactWriteItems"]


def test_a_revoked_link_costs_one_read_and_writes_nothing(client, mint, calls, ledger):
    _warm(client, mint)
    issued = mint("dee@example.eu", "newsletter")
    html = client.http.get(f"/c/{issued.token}").body.decode()
    ledger.delete(*keys.link(issued.link_id))
    calls.take()
    assert _post(client, issued.token, html, newsletter="accept").status_code == 410
    assert calls.take() == ["TransactGetItems"]


def test_the_first_opening_of_a_form_link_is_one_read_and_one_write(client, mint, calls, ledger):
    issued = mint("eve@example.eu", "newsletter", channel="form:website")
    calls.take()
    assert client.http.get(f"/c/{issued.token}").status_code == 200
    assert calls.take() == ["BatchGetItem", "TransactWriteItems"]
    assert ledger.link(issued.link_id)["opened_at"]
    calls.take()
    assert client.http.get(f"/c/{issued.token}").status_code == 200
    assert calls.take() == ["BatchGetItem"], "a repeat GET only reads"


def test_a_link_outside_any_funnel_is_opened_with_one_read(client, mint, calls):
    issued = mint("fay@example.eu", "newsletter", channel="cli")
    calls.take()
    assert client.http.get(f"/c/{issued.token}").status_code == 200
    assert calls.take() == ["BatchGetItem"]


def test_head_never_writes(client, mint, calls):
    issued = mint("gus@example.eu", "newsletter", channel="campaign:spring")
    calls.take()
    assert client.http.head(f"/c/{issued.token}").status_code == 200
    assert calls.take() == ["BatchGetItem"]


def test_a_scanner_storm_of_1000_gets_costs_at_most_1001_requests(client, mint, calls, ledger):
    issued = mint("hal@example.eu", "newsletter", channel="campaign:spring")
    calls.take()
    for _ in range(1000):
        assert client.http.get(f"/c/{issued.token}").status_code == 200
    seen = calls.take()
    assert len(seen) <= 1001, f"{len(seen)} requests"
    assert seen.count("TransactWriteItems") == 1
    assert _opened(ledger, "CAMPAIGN#spring") == 1


def test_the_first_opening_is_counted_once_even_from_two_containers(client, mint, ledger):
    """The condition is DynamoDB's: a second container that has not seen the opening
    tries the write, and the counter still moves once."""
    from chalicelib.consent import rules

    issued = mint("ida@example.eu", "newsletter", channel="campaign:autumn")
    record = ledger.link(issued.link_id)
    rules.note_opened(ledger, record)
    rules._OPENED.clear()  # another container: it never saw this link
    rules.note_opened(ledger, record)
    assert _opened(ledger, "CAMPAIGN#autumn") == 1
