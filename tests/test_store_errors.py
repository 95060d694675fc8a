"""When DynamoDB fails, people get a 503 page that says nothing was changed."""
from __future__ import annotations

from urllib.parse import urlencode

from chalicelib.store.ledger import to_item
from chalicelib.store.keys import event_sk, subject_pk
from devstack.dynamodb_local import free_port
from tests.conftest import form_fields


def test_unreachable_store_gives_a_503_page(client, mint, monkeypatch):
    issued = mint()
    fields = form_fields(client.http.get(f"/c/{issued.token}").body.decode())
    monkeypatch.setenv("DYNAMODB_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("DYNAMODB_TIMEOUT", "0.5")
    for response in (
        client.http.get(f"/c/{issued.token}"),
        client.http.post(f"/c/{issued.token}", headers={"content-type": "application/x-www-form-urlencoded"},
                         body=urlencode({**fields, "decision.newsletter": "accept"})),
    ):
        html = response.body.decode()
        assert response.status_code == 503
        assert "Please try again in a moment" in html and "Nothing was changed" in html


def test_missing_table_gives_a_503_and_writes_nothing(client, mint, ledger, monkeypatch, table_items):
    issued = mint()
    fields = form_fields(client.http.get(f"/c/{issued.token}").body.decode())
    before = table_items()
    monkeypatch.setenv("CONSENT_TABLE", "no-such-table")
    response = client.http.post(f"/c/{issued.token}",
                                headers={"content-type": "application/x-www-form-urlencoded"},
                                body=urlencode({**fields, "decision.newsletter": "accept"}))
    assert response.status_code == 503
    monkeypatch.setenv("CONSENT_TABLE", ledger.table)
    assert table_items() == before


def test_a_decision_is_all_or_nothing(client, mint, ledger, table_items):
    """If one write of a decision fails, none happens: no event, no state, no chain move.

    (The wording of each purpose is stored first, content-addressed as TEXT#<sha256>,
    so that no event can ever point at a text the table lacks; it is reference data,
    identical whoever writes it, and is ignored here.)
    """
    issued = mint("atomic@example.eu", "newsletter", "events")
    fields = form_fields(client.http.get(f"/c/{issued.token}").body.decode())
    # An item already sits where the second decision event would go (seq 3).
    ledger.client.put_item(TableName=ledger.table, Item=to_item(
        {"pk": subject_pk(issued.subject), "sk": event_sk(3), "kind": "squatter"}))
    before = table_items()
    response = client.http.post(
        f"/c/{issued.token}", headers={"content-type": "application/x-www-form-urlencoded"},
        body=urlencode({**fields, "decision.newsletter": "accept", "decision.events": "refuse"}))
    assert response.status_code == 503
    assert [i for i in table_items() if not i["pk"].startswith("TEXT#")] == before
    assert ledger.snapshot(issued.subject).states == {}
