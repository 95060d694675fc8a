"""Unknown paths get our own 404 page (not API Gateway's "Missing Authentication
Token"), in the person's language, with the headers every page carries; a JSON client
gets JSON. The catch-all never shadows a real route."""
from __future__ import annotations

import html
import json

import pytest

from chalicelib.web.render import security_headers

PRIVACY_HEADERS = ("Content-Security-Policy", "Referrer-Policy", "X-Content-Type-Options",
                   "X-Frame-Options", "Cache-Control", "Cross-Origin-Opener-Policy",
                   "Permissions-Policy")


def _get(client, path: str, **headers: str):
    return client.http.get(path, headers=headers)


@pytest.mark.parametrize("path, headers, lang, title", [
    ("/no-such-page", {"Accept-Language": "en-GB,en;q=0.9"}, "en", "This page does not exist"),
    ("/no-such-page", {"Accept-Language": "fr-FR,fr;q=0.9"}, "fr", "Cette page n'existe pas"),
    ("/no-such-page?lang=fr", {"Accept-Language": "en"}, "fr", "Cette page n'existe pas"),
    ("/", {"Accept-Language": "fr"}, "fr", "Cette page n'existe pas"),
])
def test_unknown_path_is_the_branded_404(env, client, path, headers, lang, title):
    answer = _get(client, path, Accept="text/html,application/xhtml+xml,*/*;q=0.8", **headers)
    assert answer.status_code == 404
    body = html.unescape(answer.body.decode())
    assert f'<html lang="{lang}">' in body and f"<h1>{title}</h1>" in body
    assert "Missing Authentication Token" not in body
    expected = security_headers()
    for name in PRIVACY_HEADERS:
        assert answer.headers.get(name) == expected[name], name
    assert answer.headers["Referrer-Policy"] == "no-referrer"


def test_a_json_client_gets_a_json_404(env, client):
    answer = _get(client, "/no-such-page", Accept="application/json")
    assert answer.status_code == 404
    assert answer.headers["Content-Type"] == "application/json"
    assert json.loads(answer.body)["error"] == "not_found"


def test_head_and_post_on_an_unknown_path(env, client):
    head = client.http.request("HEAD", "/nothing-here")
    assert head.status_code == 404 and not head.body
    post = client.http.post("/nothing-here", body="a=b",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert post.status_code == 404 and b"<h1>" in post.body


def test_the_catch_all_shadows_no_real_route(env, client):
    assert _get(client, "/health").status_code == 200
    assert json.loads(_get(client, "/health").body)["status"] == "ok"
    assert _get(client, "/rights").status_code == 200
    assert b"form" in _get(client, "/signup/website").body
    assert _get(client, "/signup/website").status_code == 200
    link = _get(client, "/c/not-a-real-link")
    assert link.status_code == 400 and b"This page does not exist" not in link.body
