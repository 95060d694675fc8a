"""A person's rights through the pages: confirmed through the mail, /rights, erasure."""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from chalicelib.consent.subjects import subject_key
from tests.conftest import PEPPER, form_fields
from tests.support.signup import decide, links_in, sign_up

FORM = "application/x-www-form-urlencoded"
UA = "RightsTest/1.0 (marker-ua-7731)"


def key(email: str) -> str:
    return subject_key(PEPPER, email.lower())


def confirmed(client: Any, mail_sink: Any, email: str, name: str = "Zoé",
              **choices: str) -> str:
    """Signed up through the form (with a name and our UA) and decided through the mail."""
    mail_sink.clear()
    sign_up(client, email, ("newsletter", "events"), name=name)
    path = links_in(mail_sink.messages[-1])["confirm"]
    answer = decide(client, path, **(choices or {"newsletter": "accept", "events": "refuse"}))
    assert answer.status_code == 200, answer.body
    return path


def ask_rights(client: Any, email: str, **headers: str) -> Any:
    return client.http.post("/rights", body=urlencode({"email": email, "lang": "en"}),
                            headers={"Content-Type": FORM, "User-Agent": UA, **headers})


def rights_path(mail_sink: Any) -> str:
    found = re.search(r"http://testserver(/r/[A-Za-z0-9_.\-]+)", mail_sink.messages[-1].text())
    assert found, mail_sink.messages[-1].text()
    return found.group(1)


def erase(client: Any, rights: str, confirm: bool = True) -> Any:
    """Erasure asked on the rights page's /erase form (``confirm``: the box ticked)."""
    page = client.http.get(rights + "/erase")
    assert page.status_code == 200
    fields = {k: v for k, v in form_fields(page.body.decode()).items() if k != "confirm"}
    if confirm:
        fields["confirm"] = "yes"  # the box ticked
    return client.http.post(rights + "/erase", body=urlencode(fields),
                            headers={"Content-Type": FORM})
