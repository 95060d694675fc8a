"""Signing up through the form and deciding through the page, as a browser would."""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from tests.conftest import form_fields

FORM = "application/x-www-form-urlencoded"


def post_form(client: Any, form_id: str, fields: dict[str, str], **headers: str) -> Any:
    return client.http.post(f"/signup/{form_id}", body=urlencode(fields),
                            headers={"Content-Type": FORM, **headers})


def signup_fields(client: Any, form_id: str = "website", email: str = "ann@example.eu",
                  purposes: tuple[str, ...] = ("newsletter", "events"), **extra: str) -> dict[str, str]:
    """The form as a browser would submit it, after loading the page."""
    page = client.http.get(f"/signup/{form_id}")
    assert page.status_code == 200, page.body
    fields = form_fields(page.body.decode())
    fields.update({"email": email, **{f"purpose.{p}": "yes" for p in purposes}, **extra})
    return fields


def sign_up(client: Any, email: str = "ann@example.eu",
            purposes: tuple[str, ...] = ("newsletter", "events"), form_id: str = "website",
            **extra: str) -> Any:
    response = post_form(client, form_id, signup_fields(client, form_id, email, purposes, **extra))
    assert response.status_code == 200, response.body
    return response


def links_in(mail: Any) -> dict[str, str]:
    """The confirm and withdraw paths of a mail's plain-text part."""
    text = mail.text()
    confirm = re.search(r"http://testserver(/c/[A-Za-z0-9_.\-]+)", text)
    withdraw = re.search(r"http://testserver(/u/[A-Za-z0-9_.\-]+)", text)
    return {"confirm": confirm.group(1) if confirm else "",
            "withdraw": withdraw.group(1) if withdraw else ""}


def decide(client: Any, path: str, **choices: str) -> Any:
    page = client.http.get(path)
    assert page.status_code == 200, page.body
    fields = form_fields(page.body.decode())
    fields.update({f"decision.{p}": c for p, c in choices.items()})
    return client.http.post(path, body=urlencode(fields), headers={"Content-Type": FORM})
