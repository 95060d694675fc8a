"""Links that cannot be used: a clear page, a 4xx status, and nothing written.

Each case is tried with GET and with a well-formed POST (a valid form from another,
good link), and the whole table is compared before and after.
"""
from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest

from chalicelib.core import tokens
from chalicelib.consent import links
from chalicelib.core.settings import get_settings
from tests.conftest import KEY_NEW, KEY_OLD, form_fields

FORM = {"content-type": "application/x-www-form-urlencoded"}


def _post_with_good_fields(client, good_token: str, bad_token: str):
    fields = form_fields(client.http.get(f"/c/{good_token}").body.decode())
    fields["decision.newsletter"] = "accept"
    return client.http.post(f"/c/{bad_token}", headers=FORM, body=urlencode(fields))


def _assert_refused(client, table_items, good_token: str, bad_token: str, status: int,
                    phrase: str) -> None:
    before = table_items()
    page = client.http.get(f"/c/{bad_token}")
    html = page.body.decode()
    assert page.status_code == status
    assert phrase in html
    assert "Get a new link" in html and "privacy@example-outdoor.eu" in html
    assert 'type="radio"' not in html
    assert page.headers["Cache-Control"] == "no-store"
    posted = _post_with_good_fields(client, good_token, bad_token)
    assert posted.status_code == status
    assert phrase in posted.body.decode()
    assert table_items() == before


def test_tampered_link(client, mint, table_items):
    good = mint().token
    payload, timestamp, signature = good.split(".")[-3:]
    prefix = "." if good.startswith(".") else ""
    other = mint("mallory@example.eu").token
    forged = prefix + other.split(".")[-3] + "." + timestamp + "." + signature
    _assert_refused(client, table_items, good, forged, 400, "This link is not valid")


def test_truncated_link(client, mint, table_items):
    good = mint().token
    _assert_refused(client, table_items, good, good[:-12], 400, "This link is incomplete")
    _assert_refused(client, table_items, good, good[: len(good) // 2], 400,
                    "This link is incomplete")


def test_expired_link(client, mint, table_items, monkeypatch):
    good = mint().token
    with monkeypatch.context() as aged:
        aged.setattr(tokens, "signing_time", lambda: int(time.time()) - 31 * 86400)
        old = mint("old@example.eu").token
    _assert_refused(client, table_items, good, old, 410, "This link has expired")


def test_configured_lifetime_is_honoured(client, mint, table_items, monkeypatch):
    monkeypatch.setenv("LINK_MAX_AGE_CONFIRM", "1h")
    with monkeypatch.context() as aged:
        aged.setattr(tokens, "signing_time", lambda: int(time.time()) - 7200)
        old = mint("two-hours@example.eu").token
    _assert_refused(client, table_items, mint().token, old, 410, "This link has expired")


def test_wrong_kind_link(client, mint, table_items):
    issued = mint()
    withdraw_token, _ = links.mint(get_settings(), "withdraw", issued.subject, ["newsletter"],
                                   link_id=issued.link_id)
    _assert_refused(client, table_items, issued.token, withdraw_token, 400,
                    "This link is meant for another page")


def test_link_signed_with_a_retired_key(client, mint, table_items, monkeypatch):
    monkeypatch.setenv("LINK_SECRET_KEYS", f"{KEY_OLD},{KEY_NEW}")
    monkeypatch.setenv("LINK_SECRET_KEYS", KEY_OLD)
    old = mint("rotated@example.eu").token
    monkeypatch.setenv("LINK_SECRET_KEYS", f"{KEY_OLD},{KEY_NEW}")
    assert client.http.get(f"/c/{old}").status_code == 200  # older key still listed: valid
    monkeypatch.setenv("LINK_SECRET_KEYS", KEY_NEW)
    _assert_refused(client, table_items, mint().token, old, 400, "This link is not valid")


def test_signed_link_without_issuance_record(client, mint, table_items):
    """A token we signed but never recorded (or whose record was revoked) is refused."""
    issued = mint()
    unrecorded, _ = links.mint(get_settings(), "confirm", issued.subject, ["newsletter"])
    _assert_refused(client, table_items, issued.token, unrecorded, 410,
                    "This link is no longer valid")


@pytest.mark.parametrize("garbage", ["x", "....", "%00", "a" * 3000, "é.é.é",
                                     ".eJwAAAA.AAAA.AAAA"])
def test_garbage_tokens(client, mint, table_items, garbage):
    before = table_items()
    response = client.http.get(f"/c/{garbage}")
    assert 400 <= response.status_code < 500
    assert "Get a new link" in response.body.decode()
    assert table_items() == before


def test_link_error_page_in_french(client, mint):
    good = mint().token
    page = client.http.get(f"/c/{good[:-10]}?lang=fr").body.decode()
    assert "Ce lien est incomplet" in page and "Obtenir un nouveau lien" in page


def test_link_for_a_purpose_removed_from_the_catalogue(client, mint, table_items, monkeypatch, tmp_path):
    from tests.conftest import ROOT

    issued = mint("retired@example.eu", "newsletter", "events")
    text = (ROOT / "catalogue.toml").read_text()
    trimmed = text[: text.index('[[purposes]]\nid = "events"')]
    (tmp_path / "catalogue.toml").write_text(trimmed)
    monkeypatch.setenv("CONSENT_CATALOGUE", str(tmp_path / "catalogue.toml"))
    before = table_items()
    page = client.http.get(f"/c/{issued.token}")
    assert page.status_code == 410 and "This question is no longer asked" in page.body.decode()
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert table_items() == before


def test_link_revoked_between_opening_and_submitting(client, mint, ledger, table_items):
    issued = mint("revoked@example.eu", "newsletter")
    fields = form_fields(client.http.get(f"/c/{issued.token}").body.decode())
    ledger.client.delete_item(TableName=ledger.table,
                              Key={"pk": {"S": f"LINK#{issued.link_id}"}, "sk": {"S": "LINK"}})
    before = table_items()
    response = client.http.post(f"/c/{issued.token}", headers=FORM,
                                body=urlencode({**fields, "decision.newsletter": "accept"}))
    assert response.status_code == 410
    assert table_items() == before


def test_unexpected_failure_is_a_page_not_a_stack_trace(client, mint, monkeypatch):
    from chalicelib.consent import rules

    issued = mint()
    monkeypatch.setattr(rules, "read_page", lambda *args: 1 / 0)
    page = client.http.get(f"/c/{issued.token}")
    assert page.status_code == 500
    assert "Nothing was changed" in page.body.decode() and "Traceback" not in page.body.decode()
    assert page.headers["Referrer-Policy"] == "no-referrer"


def test_revocation_racing_a_decision_wins(env, cli_mint, ledger, table_items, monkeypatch):
    """The link record is checked inside the decision's transaction, not only before it."""
    from chalicelib.consent import rules
    from chalicelib.core.errors import LinkRevoked
    from chalicelib.store.ledger import Ledger
    from chalicelib.core.services import get_catalogue

    issued = cli_mint("race-revoke@example.eu", "newsletter")
    settings, catalogue = get_settings(), get_catalogue()
    link, record = rules.open_link(ledger, settings, "confirm", issued.token, catalogue)
    real_read = Ledger._read  # the commit's one read (link record included)

    def read_then_revoke(self, subject, reads):
        snap = real_read(self, subject, reads)
        self.client.delete_item(TableName=self.table,
                                Key={"pk": {"S": f"LINK#{issued.link_id}"}, "sk": {"S": "LINK"}})
        return snap

    monkeypatch.setattr(Ledger, "_read", read_then_revoke)
    shown = {"newsletter": catalogue.get("newsletter").text("en").sha256}
    with pytest.raises(LinkRevoked):
        rules.decide(ledger, catalogue, link, record, {"newsletter": "accept"}, "en", shown,
                       rules.RequestContext())
    monkeypatch.setattr(Ledger, "_read", real_read)
    assert [e["kind"] for e in ledger.events(issued.subject)] == ["link_issued"]
    assert ledger.snapshot(issued.subject).states == {}
