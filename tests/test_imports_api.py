"""`POST /admin/imports`: the admin API's import, its bearer token, its limits."""
from __future__ import annotations

import csv
import io
import json

from chalicelib.consent import stats
from chalicelib.core.services import get_ledger
from tests.support import imports as samples
from tests.support.admin import auth


def _post(client, query: str, body: bytes, headers: dict[str, str] | None = None):
    headers = headers or {**auth(), "Content-Type": "text/csv"}
    return client.http.post(f"/admin/imports?{query}", body=body, headers=headers)


def test_admin_api_imports_a_csv_body(admin_env, client) -> None:
    answer = _post(client, "source=generic", samples.generic().encode())
    assert answer.status_code == 200, answer.body
    data = json.loads(answer.body)
    assert data["imported"] == 4 and data["grades"] == {"A": 1, "B": 2, "C": 1}
    assert [r["line"] for r in data["rejects"]] == [6, 7]
    assert "unknown purpose 'gardening'" in data["rejects"][0]["reason"]
    assert stats.grades(get_ledger())["newsletter"] == {"A": 1}
    again = json.loads(_post(client, "source=generic", samples.generic().encode()).body)
    assert (again["imported"], again["already_imported"]) == (0, 4)
    dry = _post(client, "source=brevo&purpose=promotions&dry_run=1",
                samples.brevo().encode("cp1252"))
    assert json.loads(dry.body)["imported"] == 3
    assert stats.grades(get_ledger())["promotions"] == {"B": 1}  # the dry run wrote nothing


def test_admin_api_import_refuses_bad_requests(admin_env, client) -> None:
    no_token = _post(client, "source=generic", b"email\n", {"Content-Type": "text/csv"})
    assert no_token.status_code == 401
    for query, body, words in (
        ("source=hubspot&purpose=newsletter", b"email\na@example.eu\n", "Source"),
        ("source=mailchimp", b"Email Address\na@example.eu\n", "purpose"),
        ("source=generic", b"", "empty"),
        ("source=generic", b",,\nx,y,z\n", "no header"),
    ):
        answer = _post(client, query, body)
        assert answer.status_code == 400, (query, answer.body)
        assert words in json.loads(answer.body)["message"]
    big = _post(client, "source=generic", b"email\n" + b"a@example.eu\n" * 90_000)
    assert big.status_code == 413 and "optinproof import" in json.loads(big.body)["message"]
    assert not list(get_ledger().query("STATS#GRADES", "S"))


def test_dashboard_shows_the_grades_per_purpose(admin_env, client) -> None:
    from tests.support.admin import session
    from tests.support.consent import decide

    decide("own@example.eu", newsletter="accept")
    assert _post(client, "source=generic", samples.generic().encode()).status_code == 200
    cookie = session(client)
    page = client.http.get("/admin/dashboard", headers={"Cookie": cookie})
    assert page.status_code == 200
    html = page.body.decode()
    assert "Proof of the acceptances, per purpose" in html and "Imported, grade B" in html
    answer = client.http.get("/admin/dashboard?format=csv&table=grades",
                             headers={"Cookie": cookie})
    rows = {r["purpose"]: r for r in csv.DictReader(io.StringIO(answer.body.decode()))}
    assert {k: rows["newsletter"][k] for k in ("double_opt_in", "grade_a", "grade_b",
                                               "grade_c")} == {
        "double_opt_in": "1", "grade_a": "1", "grade_b": "0", "grade_c": "0"}
    assert rows["promotions"]["grade_b"] == "1" and rows["events"]["grade_c"] == "1"
