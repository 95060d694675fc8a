"""GET and HEAD never decide; a POST needs our form, a valid body, and changes nothing else.

Mail security scanners (Safe Links, Mimecast, Proofpoint) and browser prefetchers open
every link in a mail. Whatever they send with GET or HEAD, the table stays as it was.
"""
from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.conftest import form_fields

FORM = {"content-type": "application/x-www-form-urlencoded"}

SCANNERS = [
    {"user-agent": "Mozilla/5.0 (compatible; Microsoft Safe Links)"},
    {"user-agent": "Mimecast URL Protect"},
    {"user-agent": "Proofpoint URL Defense"},
    {"sec-purpose": "prefetch", "purpose": "prefetch"},
    {"sec-purpose": "prefetch;prerender", "sec-fetch-mode": "navigate"},
    {"user-agent": "curl/8.0", "accept": "*/*"},
]


@pytest.mark.parametrize("headers", SCANNERS)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_scanners_and_prefetch_change_nothing(client, mint, table_items, method, headers):
    issued = mint("scanned@example.eu", "newsletter", "events")
    before = table_items()
    for query in ("", "?lang=fr", "?decision.newsletter=accept", "?accept=all"):
        response = client.http.request(method, f"/c/{issued.token}{query}", headers=headers)
        assert response.status_code == 200
        if method == "HEAD":
            assert response.body in (b"", None)
        else:
            assert 'type="radio"' in response.body.decode()
    assert table_items() == before


def _page(client, token: str) -> dict[str, str]:
    return form_fields(client.http.get(f"/c/{token}").body.decode())


def _post(client, token: str, fields: dict[str, str], headers: dict[str, str] | None = None):
    return client.http.post(f"/c/{token}", headers={**FORM, **(headers or {})},
                            body=urlencode(fields))


def test_post_without_antiforgery_field_is_refused(client, mint, table_items):
    token = mint().token
    fields = _page(client, token)
    fields.pop("form_token")
    before = table_items()
    response = _post(client, token, {**fields, "decision.newsletter": "accept"})
    assert response.status_code == 400
    assert "This form was not sent from our page" in response.body.decode()
    assert table_items() == before


def test_antiforgery_field_of_another_link_is_refused(client, mint, table_items):
    first, second = mint("one@example.eu").token, mint("two@example.eu").token
    fields = _page(client, first)
    before = table_items()
    response = _post(client, second, {**fields, "decision.newsletter": "accept"})
    assert response.status_code == 400
    assert table_items() == before


def test_expired_form_shows_the_page_again(client, mint, table_items, monkeypatch):
    token = mint().token
    fields = _page(client, token)
    monkeypatch.setenv("FORM_TOKEN_MAX_AGE", "1")
    import time
    time.sleep(2.1)
    before = table_items()
    response = _post(client, token, {**fields, "decision.newsletter": "accept"})
    assert response.status_code == 400
    html = response.body.decode()
    assert "please make your choices again" in html and 'type="radio"' in html
    assert table_items() == before


@pytest.mark.parametrize("headers", [
    {"origin": "https://evil.example", "host": "localhost"},
    {"sec-fetch-site": "cross-site"},
])
def test_cross_site_post_is_refused(client, mint, table_items, headers):
    token = mint().token
    fields = _page(client, token)
    before = table_items()
    response = _post(client, token, {**fields, "decision.newsletter": "accept"}, headers)
    assert response.status_code == 403
    assert table_items() == before


@pytest.mark.parametrize("extra, status, phrase", [
    ({}, 400, "Choose Accept or Refuse for at least one purpose"),
    ({"decision.newsletter": "maybe"}, 400, "must be accept or refuse"),
    ({"decision.promotions": "accept"}, 400, "does not ask about the purpose"),
    ({"decision.nonexistent": "accept"}, 400, "does not ask about the purpose"),
    ({"decision.newsletter": "accept", "text.newsletter": "0" * 64}, 409, "wording"),
])
def test_bad_decisions_change_nothing(client, mint, table_items, extra, status, phrase):
    token = mint().token
    fields = {**_page(client, token), **extra}
    before = table_items()
    response = _post(client, token, fields)
    assert response.status_code == status
    assert phrase in response.body.decode()
    assert table_items() == before


def test_wrong_content_type_and_oversize_body(client, mint, table_items):
    token = mint().token
    before = table_items()
    as_json = client.http.post(f"/c/{token}", headers={"content-type": "application/json"},
                               body='{"decision.newsletter": "accept"}')
    assert as_json.status_code == 415
    assert "not sent the way our page sends it" in as_json.body.decode()
    fields = {**_page(client, token), "decision.newsletter": "accept", "pad": "x" * 20000}
    huge = _post(client, token, fields)
    assert huge.status_code == 413
    duplicated = client.http.post(f"/c/{token}", headers=FORM,
                                  body="decision.newsletter=accept&decision.newsletter=refuse")
    assert duplicated.status_code == 400
    assert table_items() == before
