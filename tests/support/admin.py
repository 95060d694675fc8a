"""The admin API as an operator calls it: a bearer token, JSON, and the sweep's tools."""
from __future__ import annotations

import json
from typing import Any

from chalicelib.act.client import ActClient
from chalicelib.campaigns import jobs
from chalicelib.core.services import get_catalogue
from chalicelib.core.settings import get_settings
from chalicelib.web import admin_auth
from tests.conftest import new_secret

ADMIN_KEY = new_secret()


def auth(token: str | None = None) -> dict[str, str]:
    token = token or admin_auth.mint(get_settings(), "alice@example.eu", 600)
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def call(client: Any, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else b""
    return getattr(client.http, method)(path, body=data, headers=headers or auth())


def tools() -> jobs.Tools:
    settings = get_settings()
    return jobs.Tools(settings, get_catalogue(),
                               ActClient(settings.act, sleep=lambda s: None), None)


def session(client: Any, operator: str = "olga@example.eu", ttl: int = 600) -> str:
    """Sign in as a browser does (a link from `cli admin link`): the session cookie."""
    from urllib.parse import urlencode

    token = admin_auth.mint(get_settings(), operator, ttl, use="browser")
    answer = client.http.get(f"/admin/login?{urlencode({'token': token})}")
    assert answer.status_code == 303, answer.body
    return answer.headers["Set-Cookie"].split(";", 1)[0]
