"""The Act! Web API simulator answers like Act!: NOTES.md §8, point by point, over real HTTP.

Each test starts its own simulator on a free loopback port and talks to it with
urllib3, the way ``chalicelib.act.client`` does; nothing is mocked. Webhook deliveries go to
a real HTTP receiver started by the test.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, urlencode

import pytest
import urllib3

from devstack.act_simulator import ActSimulator, Faults, swagger
from devstack.act_simulator.odata import ODataError, apply, parse_query

ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD, DB = "OptinProof Sync", "sim-password", "OptinProofDemo"
HTTP = urllib3.PoolManager(maxsize=8, retries=False)
SHARED_SWAGGER = ROOT.parent / "shared" / "act-web-api" / "act-web-api-swagger.json"


def basic(user: str = USER, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode("utf-8")).decode("ascii")


def authorize(sim: ActSimulator, authorization: str | None = None,
              database: str | None = DB) -> urllib3.BaseHTTPResponse:
    headers = {"Authorization": authorization or basic()}
    if database is not None:
        headers["Act-Database-Name"] = database
    return HTTP.request("GET", sim.base_url + "/authorize", headers=headers)


class Api:
    """A thin client: Bearer + database on every call, OData quoted like chalicelib.act.client."""

    def __init__(self, sim: ActSimulator) -> None:
        self.sim = sim
        self.token = self.authorize().data.decode()

    def authorize(self, authorization: str | None = None,
                  database: str | None = DB) -> urllib3.BaseHTTPResponse:
        return authorize(self.sim, authorization, database)

    def call(self, method: str, path: str, params: Any = None, body: Any = None, *,
             raw: bytes | None = None, token: str | None = None, database: str | None = DB,
             headers: dict[str, str] | None = None, timeout: float = 10) -> urllib3.BaseHTTPResponse:
        query = ("?" + urlencode(params, doseq=True, quote_via=quote)) if params else ""
        sent = {"Authorization": f"Bearer {token or self.token}", "Accept": "application/json"}
        if database is not None:
            sent["Act-Database-Name"] = database
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        return HTTP.request(method, self.sim.base_url + path + query, body=data, headers=sent,
                            timeout=urllib3.Timeout(total=timeout))

    def json(self, method: str, path: str, params: Any = None, body: Any = None,
             expect: int = 200) -> Any:
        response = self.call(method, path, params, body)
        assert response.status == expect, (response.status, response.data[:500])
        return response.json() if response.data else None

    def contacts(self, **params: str) -> list[dict[str, Any]]:
        return self.json("GET", "/api/contacts", params)


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def part(text: str) -> dict[str, Any]:
        return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    header, payload, signature = token.split(".")
    assert signature and re.fullmatch(r"[A-Za-z0-9_-]+", signature)
    return part(header), part(payload)


@pytest.fixture
def sim() -> Iterator[ActSimulator]:
    with ActSimulator(port=0, database=DB, users={USER: PASSWORD}, seed="demo") as running:
        yield running


@pytest.fixture
def api(sim: ActSimulator) -> Api:
    return Api(sim)


def demo_id(sim: ActSimulator, email: str = "demo@example.com") -> str:
    with sim.lock:
        return next(c["id"] for c in sim.contacts.values()
                    if (c.get("emailAddress") or "").lower() == email.lower())


class Receiver:
    """A webhook callback endpoint: records what Act! POSTs, answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.calls: list[tuple[dict[str, str], Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.calls.append((dict(self.headers), json.loads(body)))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                """Keep the test output free of the default access log."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/act"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


# -- §8.1 /authorize ----------------------------------------------------------------------

def test_authorize_with_basic_returns_a_bare_jwt_as_text_html(sim: ActSimulator) -> None:
    answer = authorize(sim)
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    token = answer.data.decode()
    assert token.count(".") == 2 and not token.startswith('"')
    header, payload = jwt_parts(token)
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert payload["unique_name"] == USER and payload["database"] == DB
    assert payload["exp"] - payload["iat"] == pytest.approx(3900, abs=1.5)  # 65 minutes by default
    assert ("GET", "/authorize", 200) in sim.requests


def test_authorize_signature_is_checked(sim: ActSimulator, api: Api) -> None:
    header, payload, signature = api.token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({**jwt_parts(api.token)[1], "exp": 9e9}).encode()
                                      ).rstrip(b"=").decode()
    for bad in (f"{header}.{forged}.{signature}", f"{header}.{payload}.{signature[:-2]}AA", "abc"):
        assert api.call("GET", "/api/contacts", token=bad).status == 401


def test_bearer_refresh_gives_a_fresh_working_token(api: Api) -> None:
    answer = api.authorize(f"Bearer {api.token}")
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/html")
    fresh = answer.data.decode()
    assert fresh != api.token
    assert jwt_parts(fresh)[1]["jti"] != jwt_parts(api.token)[1]["jti"]
    assert api.call("GET", "/api/contacts", token=fresh).status == 200


@pytest.mark.parametrize("authorization, database", [
    (basic("Nobody"), DB), (basic(USER, "wrong"), DB), (basic(), "OtherDb"), (basic(), None),
    ("Bearer not.a.token", DB), ("Digest abc", DB), ("Basic %%%", DB),
], ids=["user", "password", "database", "no-database", "bad-bearer", "other-scheme", "bad-base64"])
def test_authorize_refusals_are_bare_401_with_empty_body(api: Api, authorization: str,
                                                          database: str | None) -> None:
    answer = api.authorize(authorization, database)
    assert answer.status == 401 and answer.data == b""


def test_token_ttl_is_configurable_and_expired_tokens_get_401() -> None:
    with ActSimulator(token_ttl=1.0) as short:
        client = Api(short)
        assert client.call("GET", "/api/contacts").status == 200
        header, payload = jwt_parts(client.token)
        assert payload["exp"] - payload["iat"] == pytest.approx(1.0, abs=1.0)
        refreshed = client.authorize(f"Bearer {client.token}").data.decode()  # near expiry: still fine
        time.sleep(1.2)
        expired = client.call("GET", "/api/contacts")
        assert expired.status == 401 and expired.headers["WWW-Authenticate"] == "Bearer"
        assert client.call("GET", "/api/contacts", token=refreshed).status == 401
        assert client.authorize(f"Bearer {client.token}").status == 401  # expired: no refresh
        client.token = client.authorize().data.decode()  # Basic again
        assert client.call("GET", "/api/contacts").status == 200


# -- §8.2 every /api call needs Bearer + database -----------------------------------------

def test_api_calls_need_bearer_and_matching_database(sim: ActSimulator, api: Api) -> None:
    anonymous = HTTP.request("GET", sim.base_url + "/api/contacts")
    assert anonymous.status == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert api.call("GET", "/api/contacts", database=None).status == 401
    assert api.call("GET", "/api/contacts", database="OtherDb").status == 401
    assert api.call("GET", "/api/contacts", headers={"Authorization": basic()}).status == 401
    assert api.call("GET", "/api/contacts", database=DB.lower()).status == 200
    system = HTTP.request("GET", sim.base_url + "/api/system")
    assert system.status == 200
    info = system.json()
    assert set(info) == {"apiVersion", "sdkVersion", "update", "culture"}
    assert info["culture"]["dateTimeFormat"]["shortDatePattern"]


def test_expired_as_500_switch_answers_the_aspnet_error_object(sim: ActSimulator, api: Api) -> None:
    sim.set_faults(expired_as_500=True)
    answer = HTTP.request("GET", sim.base_url + "/api/contacts")
    assert answer.status == 500
    body = answer.json()
    assert set(body) == {"message", "exceptionMessage", "exceptionType", "stackTrace"}
    assert body["exceptionType"] == "System.NullReferenceException"
    assert api.call("GET", "/api/contacts").status == 200  # a good token still works


# -- §8.3 contacts ----------------------------------------------------------------------------

def test_filter_by_email_is_case_insensitive_and_quotes_apostrophes(api: Api) -> None:
    found = api.contacts(**{"$filter": "emailAddress eq 'DEMO@Example.COM'", "$top": "2"})
    assert [c["emailAddress"] for c in found] == ["demo@example.com"]
    assert ("GET", "/api/contacts?$filter=emailAddress eq 'DEMO@Example.COM'&$top=2", 200) \
        in api.sim.requests  # the request log is percent-decoded
    found = api.contacts(**{"$filter": "emailAddress eq 'o''brien@example.ie'"})
    assert [c["lastName"] for c in found] == ["O'Brien"]
    mixed_case = api.contacts(**{"$filter": "emailAddress eq 'bjorn.astrom@example.se'"})
    assert [c["emailAddress"] for c in mixed_case] == ["Bjorn.Astrom@Example.SE"]
    bad = api.call("GET", "/api/contacts", {"$filter": "emailAddress eq 'o'brien@example.ie'"})
    assert bad.status == 400 and "message" in bad.json()


def test_filter_operators_functions_paths_and_literals(api: Api) -> None:
    def names(expression: str) -> set[str]:
        return {c["lastName"] for c in api.contacts(**{"$filter": expression})}

    assert names("emailAddress eq null") == {"Walk-in"}
    assert "Walk-in" not in names("emailAddress ne null") and len(names("emailAddress ne null")) == 11
    assert names("contains(emailAddress,'EXAMPLE.DE')") == {"Müller"}
    assert names("startswith(company,'société')") == {"Lefèvre"}
    assert names("endswith(emailAddress,'.ie')") == {"O'Brien"}
    assert names("businessAddress/country eq 'DEUTSCHLAND'") == {"Müller"}
    assert names("customFields/USER6 eq 'maschinenbau'") == {"Müller"}
    assert names("aemOptOut eq true") == {"Dupont"}
    assert names("aemOptOut") == {"Dupont"}
    assert names("aemOptOut eq false and (businessAddress/city eq 'Köln' or businessAddress/city eq 'Milano')") \
        == {"Müller", "Rossi"}
    everyone = api.contacts()
    middle = sorted(c["edited"] for c in everyone)[6] + "Z"  # served without zone; a UTC server
    after = names(f"edited gt {middle}")
    assert len(after) == 5 and names(f"edited ge {middle}") > after
    assert len(names(f"edited lt {middle}")) == 6 and len(names(f"edited le {middle}")) == 7
    assert names(f"created lt {middle[:10]}") <= names(f"created le {middle}")  # a date-only literal
    paris = (datetime.fromisoformat(middle[:-1]) + timedelta(hours=1)).isoformat() + "+01:00"
    assert names(f"edited gt {paris}") == after  # the same instant, written with another offset
    one = everyone[0]["id"]
    assert names(f"id eq {one}") == {everyone[0]["lastName"]}  # an unquoted GUID literal


@pytest.mark.parametrize("params", [
    {"$filter": "substringof('a',emailAddress)"},
    {"$filter": "businessEmail eq 'a@b.c'"},
    {"$filter": "customFields/cust_nope eq 'x'"},
    {"$filter": "edited gt '2026-06-01T00:00:00Z'"},
    {"$filter": "emailAddress eq 5"},
    {"$filter": "emailAddress eq"},
    {"$filter": "(emailAddress eq 'a'"},
    {"$filter": "emailAddress like 'a'"},
    {"$filter": "aemOptOut gt false"},
    {"$filter": "businessAddress eq null"},
    {"$filter": ""},
    {"$filter": "not aemOptOut"},  # not in Act!'s list of operators
    {"$filter": "edited gt 2026-06-01T00:00:00"},  # a date-time without its zone
    {"$expand": "firstName"},  # a plain property, nothing to expand
    {"$expand": "homeAddress($orderby=city)"},
    {"$count": "true"},
    {"$top": "-1"},
    {"$skip": "x"},
    {"$orderby": "edited sideways"},
    {"$orderby": "nope"},
    {"$select": "nope"},
    {"$select": "businessAddress/city"},
    {"$foo": "1"},
], ids=lambda p: " ".join(f"{k}={v}" for k, v in p.items()))
def test_unsupported_or_invalid_odata_is_a_400_with_a_message(api: Api, params: dict[str, str]) -> None:
    answer = api.call("GET", "/api/contacts", params)
    assert answer.status == 400, answer.data
    assert answer.json()["message"]


def test_orderby_top_skip_pages_through_everything_once(api: Api) -> None:
    ordered = api.contacts(**{"$orderby": "lastName desc,firstName"})
    last_names = [c["lastName"] for c in ordered]
    assert last_names[0] == "山田" and last_names[-1] in ("Álvarez Núñez", "Åström")
    assert last_names.index("Dupont") > last_names.index("Lefèvre")
    seen: list[str] = []
    for skip in range(0, 20, 5):
        page = api.contacts(**{"$orderby": "edited,id", "$top": "5", "$skip": str(skip)})
        seen += [c["id"] for c in page]
        if len(page) < 5:
            break
    assert len(seen) == len(set(seen)) == 12
    by_edited = [c["id"] for c in api.contacts(**{"$orderby": "edited,id"})]
    assert seen == by_edited
    assert api.contacts(**{"$orderby": "emailAddress"})[0]["emailAddress"] is None  # nulls first


def test_select_projects_the_named_properties(api: Api) -> None:
    rows = api.contacts(**{"$select": "id,emailAddress,customFields", "$top": "3"})
    assert len(rows) == 3 and all(set(r) == {"id", "emailAddress", "customFields"} for r in rows)


def test_envelope_switch_wraps_contacts_with_page_size_count() -> None:
    with ActSimulator(envelope=True) as wrapped:
        client = Api(wrapped)
        body = client.json("GET", "/api/contacts", {"$top": "4"})
        assert set(body) == {"value", "Count"} and body["Count"] == 4 == len(body["value"])
        assert isinstance(client.json("GET", "/api/history-types"), list)


def test_get_one_contact_404_and_400(sim: ActSimulator, api: Api) -> None:
    contact = api.json("GET", f"/api/contacts/{demo_id(sim)}")
    assert contact["emailAddress"] == "demo@example.com"
    assert set(swagger.properties(swagger.CONTACT)) <= set(contact)
    assert api.call("GET", "/api/contacts/00000000-0000-0000-0000-000000000000").status == 404
    assert api.call("GET", "/api/contacts/not-a-guid").status == 400


def test_post_creates_with_id_timestamps_and_editor(sim: ActSimulator, api: Api) -> None:
    created = api.json("POST", "/api/contacts", body={
        "firstName": "Ōsaka", "lastName": "Ünal", "emailAddress": "new@example.com",
        "customFields": {"user6": "Retail"}, "favouriteColour": "ignored"}, expect=201)
    assert re.fullmatch(r"[0-9a-f-]{36}", created["id"])
    assert created["created"] == created["edited"] and created["editedBy"] == USER
    assert created["fullName"] == "Ōsaka Ünal" and "favouriteColour" not in created
    assert created["customFields"]["user6"] == "Retail" and created["customFields"]["territory"] is None
    assert sim.contacts[created["id"]]["lastName"] == "Ünal"
    again = api.json("GET", f"/api/contacts/{created['id']}")
    assert again == created


def test_put_replaces_the_whole_contact(sim: ActSimulator, api: Api) -> None:
    cid = demo_id(sim)
    before = api.json("GET", f"/api/contacts/{cid}")
    after = api.json("PUT", f"/api/contacts/{cid}", body={
        "firstName": "Dana", "lastName": "Demo", "emailAddress": "demo@example.com",
        "customFields": {"priority": "Low"}})
    assert after["id"] == cid and after["created"] == before["created"]
    assert after["edited"] > before["edited"] and after["editedBy"] == USER
    assert after["company"] is None and after["jobTitle"] is None  # omitted: blanked
    assert after["businessAddress"]["city"] is None
    assert after["customFields"] == {**{k: None for k in before["customFields"]}, "priority": "Low"}


def test_patch_merges_custom_fields_key_by_key_and_bumps_edited(sim: ActSimulator, api: Api) -> None:
    cid = demo_id(sim)
    before = api.json("GET", f"/api/contacts/{cid}")
    after = api.json("PATCH", f"/api/contacts/{cid}", body={
        "customFields": {"territory": "North"}, "businessAddress": {"city": "Leeds"}, "aemOptOut": True})
    assert after["customFields"] == {**before["customFields"], "territory": "North"}
    assert after["businessAddress"] == {**before["businessAddress"], "city": "Leeds"}
    assert after["company"] == before["company"] and after["aemOptOut"] is True
    assert after["edited"] > before["edited"] and after["editedBy"] == USER
    assert api.json("GET", f"/api/contacts/{cid}") == after
    edited = [api.json("PATCH", f"/api/contacts/{cid}", body={"jobTitle": str(i)})["edited"]
              for i in range(3)]
    assert edited == sorted(set(edited))  # every write moves edited forward
    assert api.json("GET", "/api/contacts",
                    {"$filter": f"edited gt {after['edited']}Z"})[0]["id"] == cid  # a UTC server


def test_delete_answers_204_then_404(sim: ActSimulator, api: Api) -> None:
    cid = demo_id(sim)
    answer = api.call("DELETE", f"/api/contacts/{cid}")
    assert answer.status == 204 and answer.data == b""
    assert api.call("GET", f"/api/contacts/{cid}").status == 404
    assert cid not in sim.contacts and all(cid not in g["memberIds"] for g in sim.groups.values())
    assert sim.history_for(cid) == []


def test_by_ids_and_search_by_business_email(sim: ActSimulator, api: Api) -> None:
    first, second = demo_id(sim), demo_id(sim, "o'brien@example.ie")
    found = api.json("GET", "/api/contacts/by-ids", [("ids", second), ("ids", first),
                                                     ("ids", "00000000-0000-0000-0000-000000000000")])
    assert [c["id"] for c in found] == [second, first]
    assert api.call("GET", "/api/contacts/by-ids").status == 400
    result = api.json("POST", "/api/sync-data/search-contacts-by-business-email",
                      body=["DEMO@example.com", "O'Brien@Example.ie", "nobody@example.com"])
    assert result == {"DEMO@example.com": first, "O'Brien@Example.ie": second}
    assert api.call("POST", "/api/sync-data/search-contacts-by-business-email",
                    body={"email": "x"}).status == 400


@pytest.mark.parametrize("body, where", [
    ({"aemOptOut": "yes"}, "aemOptOut"),
    ({"emailAddress": 5}, "emailAddress"),
    ({"businessCountryCode": "44"}, "businessCountryCode"),
    ({"birthday": "next tuesday"}, "birthday"),
    ({"businessAddress": "Main Street"}, "businessAddress"),
    ({"customFields": ["user6"]}, "customFields"),
    ({"customFields": {"industry": "Retail"}}, "industry"),
    ({"customFields": {"user6": 12}}, "user6"),
    ({"customFields": {"priority": "x" * 17}}, "priority"),
    ([{"firstName": "A"}], "object"),
], ids=["bool", "string", "integer", "date-time", "address", "map", "display-name-key",
        "custom-type", "custom-length", "array-body"])
def test_invalid_contact_bodies_are_400_and_change_nothing(sim: ActSimulator, api: Api, body: Any,
                                                           where: str) -> None:
    cid = demo_id(sim)
    before = json.dumps(sim.contacts, sort_keys=True)
    for method, path in (("POST", "/api/contacts"), ("PATCH", f"/api/contacts/{cid}"),
                         ("PUT", f"/api/contacts/{cid}")):
        answer = api.call(method, path, body=body)
        assert answer.status == 400, (method, answer.data)
        assert where in answer.json()["message"]
    assert json.dumps(sim.contacts, sort_keys=True) == before


def test_malformed_json_and_other_media_types(sim: ActSimulator, api: Api) -> None:
    assert api.call("POST", "/api/contacts", raw=b'{"firstName": ').status == 400
    assert api.call("POST", "/api/contacts", raw=b"").status == 400
    xml = api.call("POST", "/api/contacts", raw=b"<Contact><firstName>A</firstName></Contact>",
                   headers={"Content-Type": "text/plain"})
    assert xml.status == 415 and xml.json()["message"]
    assert len(sim.contacts) == 12


def test_custom_field_values_are_checked_against_the_field_type(sim: ActSimulator, api: Api) -> None:
    keys = {}
    for name, kind in (("Opted In", "YesNo"), ("Score", "Number"), ("Budget", "Currency"),
                       ("Consent At", "DateTime"), ("Renewal", "Date"), ("Status Text", "Character")):
        column = api.json("POST", "/api/metadata/contact/fields",
                          body={"name": name, "type": kind, "length": 10}, expect=201)
        keys[kind] = column["columnName"].lower()
    cid = demo_id(sim)
    good = {keys["YesNo"]: True, keys["Number"]: 3, keys["Currency"]: 12.5,
            keys["DateTime"]: "2026-03-01T10:15:00Z", keys["Date"]: "2026-03-01",
            keys["Character"]: "Accepted"}
    stored = api.json("PATCH", f"/api/contacts/{cid}", body={"customFields": good})["customFields"]
    assert stored[keys["DateTime"]] == "2026-03-01T10:15:00"  # server-local, no zone, like Act!
    assert stored[keys["Date"]] == "2026-03-01T00:00:00"
    assert stored[keys["YesNo"]] is True and stored[keys["Currency"]] == 12.5
    for kind, value in (("YesNo", "true"), ("Number", "3"), ("Number", True), ("Currency", "12"),
                        ("DateTime", "01/03/2026"), ("DateTime", 20260301), ("Date", "soon"),
                        ("Character", "Accepted!!!"), ("Character", 7)):
        answer = api.call("PATCH", f"/api/contacts/{cid}", body={"customFields": {keys[kind]: value}})
        assert answer.status == 400, (kind, value)
    cleared = api.json("PATCH", f"/api/contacts/{cid}", body={"customFields": {
        keys["DateTime"]: None, keys["Date"]: "", keys["Character"]: ""}})["customFields"]
    assert cleared[keys["DateTime"]] is None and cleared[keys["Date"]] is None
    assert cleared[keys["Character"]] == ""
    filtered = api.contacts(**{"$filter": f"customFields/{keys['YesNo']} eq true and "
                                          f"customFields/{keys['Number']} ge 3"})
    assert [c["id"] for c in filtered] == [cid]


def test_concurrent_writes_are_serialised(sim: ActSimulator, api: Api) -> None:
    cid = demo_id(sim)
    statuses: list[int] = []
    stamps: list[str] = []

    def worker(number: int) -> None:
        for step in range(8):
            answer = api.call("PATCH", f"/api/contacts/{cid}",
                              body={"customFields": {"user1": f"{number}-{step}"}})
            statuses.append(answer.status)
            stamps.append(answer.json()["edited"])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 48 and len(set(stamps)) == 48
    assert sim.contacts[cid]["edited"] == max(stamps)


# -- §8.4 metadata ---------------------------------------------------------------------------------

def test_contact_field_metadata_has_act_columns(api: Api) -> None:
    columns = api.json("GET", "/api/metadata/contact/fields")
    assert api.json("GET", "/api/metadata/Contact/fields") == columns
    wanted = {"id", "name", "columnName", "aliasName", "displayName", "tableName", "recordType", "type",
              "dataType", "columnType", "length", "isCustom", "isAllowBlank", "isNullable",
              "isReadOnly", "picklist"}
    assert all(wanted <= set(c) for c in columns)
    industry = next(c for c in columns if c["displayName"] == "Industry")
    assert industry["columnName"] == "USER6" and industry["type"] == "Character"
    assert industry["picklist"] is None and industry["isCustom"] is True
    email = next(c for c in columns if c["displayName"] == "E-mail")
    assert email["isCustom"] is False


def test_post_field_creates_a_cust_column_usable_in_custom_fields(sim: ActSimulator, api: Api) -> None:
    column = api.json("POST", "/api/metadata/contact/fields",
                      body={"name": "Consent Newsletter", "type": "character", "length": 20,
                            "isAllowBlank": True}, expect=201)
    assert re.fullmatch(r"CUST_ConsentNewsletter_\d{9}", column["columnName"])
    assert column["displayName"] == column["name"] == "Consent Newsletter"
    assert column["type"] == "Character" and column["length"] == 20 and column["isCustom"] is True
    assert column in api.json("GET", "/api/metadata/contact/fields")
    key = column["columnName"].lower()
    contact = api.json("PATCH", f"/api/contacts/{demo_id(sim)}", body={"customFields": {key: "Accepted"}})
    assert contact["customFields"][key] == "Accepted"
    assert all(key in c["customFields"] for c in sim.contacts.values())
    added = sim.add_field("Consent Events At", type="DateTime")
    assert added["columnName"].startswith("CUST_ConsentEventsAt_")
    with pytest.raises(ValueError):
        sim.add_field("consent newsletter")


@pytest.mark.parametrize("body", [
    {"name": "Consent Newsletter", "type": "Character"},  # duplicate (case-insensitive)
    {"name": "Industry", "type": "Character"},
    {"type": "Character"},
    {"name": "X"},
    {"name": "X", "type": "Colour"},
    {"name": "X", "type": "Character", "length": "long"},
    {"name": "X", "type": "Character", "length": 0},
])
def test_post_field_rejects_duplicates_and_bad_bodies(api: Api, body: dict[str, Any]) -> None:
    api.json("POST", "/api/metadata/contact/fields", body={"name": "Consent Newsletter",
                                                           "type": "Character"}, expect=201)
    count = len(api.json("GET", "/api/metadata/contact/fields"))
    answer = api.call("POST", "/api/metadata/contact/fields", body=body)
    assert answer.status == 400 and answer.json()["message"]
    assert len(api.json("GET", "/api/metadata/contact/fields")) == count


# -- §8.5 history ------------------------------------------------------------------------------------

def test_history_post_stamps_the_signed_in_user(sim: ActSimulator, api: Api) -> None:
    types = api.json("GET", "/api/history-types")
    general = next(t for t in types if t["name"] == "General")
    assert set(general) == set(swagger.properties(swagger.HISTORY_TYPE))
    assert {0, 1, 3, 13, 16} <= {t["id"] for t in types}
    cid = demo_id(sim)
    history = api.json("POST", "/api/History", body={
        "contacts": [{"id": cid}], "regarding": "Consent accepted: Newsletter",
        "details": "proof ev-1\nevent_id=ev-1 purpose=newsletter", "startTime": "2026-03-01T10:15:00",
        "historyTypeID": general["id"], "createUserName": "Someone Else", "recordManagerID": "x"},
        expect=201)
    assert history["createUserName"] == USER and history["recordManager"] == USER
    assert history["historyType"]["name"] == "General"
    assert history["contacts"][0]["id"] == cid and history["contacts"][0]["displayName"] == "Dana Demo"
    assert api.json("GET", f"/api/History/{history['id']}") == history
    assert sim.history_for(cid)[-1]["id"] == history["id"]
    mine = api.json("GET", f"/api/contacts/{cid}/history", {"$filter": "contains(details,'event_id=ev-1')"})
    assert [h["id"] for h in mine] == [history["id"]]
    assert api.json("GET", f"/api/contacts/{cid}/history", {"$filter": "contains(details,'ev-2')"}) == []
    assert api.call("GET", "/api/History/00000000-0000-0000-0000-000000000000").status == 404


@pytest.mark.parametrize("body", [
    {"contacts": [{"id": "00000000-0000-0000-0000-000000000000"}], "historyTypeID": 26},
    {"contacts": [], "historyTypeID": 26},
    {"historyTypeID": 26, "regarding": "orphan"},
    {"contacts": "CONTACT", "historyTypeID": 26},
    {"contacts": [{"id": "DEMO"}], "historyTypeID": 9999},
    {"contacts": [{"id": "DEMO"}]},
    {"contacts": [{"id": "DEMO"}], "historyTypeID": "General"},
], ids=["unknown-contact", "no-contacts", "missing-contacts", "contacts-type", "unknown-type",
        "no-type", "type-type"])
def test_history_post_rejects_bad_references(sim: ActSimulator, api: Api, body: dict[str, Any]) -> None:
    text = json.dumps(body).replace("DEMO", demo_id(sim))
    before = len(sim.histories)
    answer = api.call("POST", "/api/History", body=json.loads(text))
    assert answer.status == 400 and answer.json()["message"]
    assert len(sim.histories) == before


def test_history_patch_ignores_author_fields(sim: ActSimulator, api: Api) -> None:
    history = api.json("POST", "/api/History", body={"contacts": [{"id": demo_id(sim)}],
                                                     "historyTypeID": 26, "regarding": "a"}, expect=201)
    patched = api.json("PATCH", f"/api/History/{history['id']}",
                       body={"regarding": "b", "createUserName": "Mallory", "createUserID": "x"})
    assert patched["regarding"] == "b" and patched["createUserName"] == USER
    assert api.call("DELETE", f"/api/History/{history['id']}").status == 204


# -- groups -------------------------------------------------------------------------------------------

def test_groups_and_their_contacts(sim: ActSimulator, api: Api) -> None:
    groups = api.json("GET", "/api/groups")
    newsletter = next(g for g in groups if g["name"] == "Newsletter Subscribers")
    assert newsletter["contacts"] == 4 and "memberIds" not in newsletter
    members = api.json("GET", f"/api/groups/{newsletter['id']}/associated-contacts",
                       {"$orderby": "lastName"})
    assert [m["lastName"] for m in members] == ["Åström", "Demo", "Lefèvre", "Müller"]  # Å sorts as A
    cid = demo_id(sim, "maria.rossi@example.it")
    after = api.json("PUT", f"/api/groups/{newsletter['id']}/associated-contacts/{cid}")
    assert cid in [m["id"] for m in after]
    assert newsletter["id"] in [g["id"] for g in api.json("GET", f"/api/contacts/{cid}/associated-groups")]
    assert api.call("DELETE", f"/api/groups/{newsletter['id']}/associated-contacts/{cid}").status == 204
    assert api.json("GET", f"/api/groups/{newsletter['id']}")["contacts"] == 4
    unknown = "00000000-0000-0000-0000-000000000000"
    assert api.call("GET", f"/api/groups/{unknown}/associated-contacts").status == 404


def test_the_routes_asking_from_inside_act_uses(sim: ActSimulator, api: Api) -> None:
    """What OptinProof's "ask" triggers call, served as the Swagger declares each route."""
    for method, path in (("GET", "/api/groups/{groupId}/associated-contacts"),
                         ("GET", "/api/contacts/{contactId}/associated-groups"),
                         ("GET", "/api/contacts")):
        assert swagger.takes_odata(swagger.operation(method, path)), path
    for method, path in (("GET", "/api/groups/{groupId}"),
                         ("DELETE", "/api/groups/{groupId}/associated-contacts/{contactId}")):
        assert not swagger.takes_odata(swagger.operation(method, path)), path
    field = sim.add_field("OptinProof Ask", "Character", 20)
    key = field["columnName"].lower()
    members = [sim.add_contact(firstName=f"M{i}", emailAddress=f"m{i}@example.eu",
                               customFields={key: "Ask" if i % 2 else None})["id"]
               for i in range(5)]
    group = sim.add_group("Demande de consentement", members)
    # group members page by page ($orderby=id, $top, $skip, $select), like any collection
    read: list[str] = []
    for skip in (0, 2, 4):
        page = api.json("GET", f"/api/groups/{group['id']}/associated-contacts",
                        {"$orderby": "id", "$top": "2", "$skip": str(skip),
                         "$select": "id,emailAddress,firstName,lastName,edited"})
        assert all(set(row) <= {"id", "emailAddress", "firstName", "lastName", "edited"}
                   for row in page)
        read += [row["id"] for row in page]
    assert read == sorted(members)
    # a custom field compared in $filter by its key
    asked = api.json("GET", "/api/contacts", {"$filter": f"customFields/{key} eq 'Ask'"})
    assert sorted(c["id"] for c in asked) == sorted(members[1::2])
    assert api.json("GET", f"/api/groups/{group['id']}")["contacts"] == 5
    assert group["id"] in [g["id"] for g in
                           api.json("GET", f"/api/contacts/{members[0]}/associated-groups")]
    # leaving the group: 204 with no body, and again 204 (nothing left to dissociate)
    gone = api.call("DELETE", f"/api/groups/{group['id']}/associated-contacts/{members[0]}")
    assert gone.status == 204 and gone.data == b""
    again = api.call("DELETE", f"/api/groups/{group['id']}/associated-contacts/{members[0]}")
    assert again.status == 204
    assert api.json("GET", f"/api/contacts/{members[0]}/associated-groups") == []
    assert api.call("DELETE", f"/api/groups/{group['id']}/associated-contacts/not-a-guid").status \
        == 400
    # emptying the trigger field: PATCH customFields with null
    patched = api.json("PATCH", f"/api/contacts/{members[1]}", body={"customFields": {key: None}})
    assert not patched["customFields"].get(key)


# -- §8.6 webhooks ------------------------------------------------------------------------------------

def register(api: Api, receiver: Receiver, trigger: str = "Created", **extra: Any) -> dict[str, Any]:
    return api.json("POST", "/api/webhooks", body={
        "monitor": "Contacts", "triggerEvent": trigger, "callbackUrl": receiver.url,
        "callbackToken": "s3cret-token", "callbackId": "optinproof", **extra}, expect=201)


def test_webhook_crud_suspend_and_continue(sim: ActSimulator, api: Api, receiver: Receiver) -> None:
    hook = register(api, receiver, description="consent")
    assert set(swagger.properties(swagger.REGISTRATION)) <= set(hook)
    assert "callbackToken" not in hook and hook["username"] == USER and hook["database"] == DB
    assert hook["suspended"] is None and hook["failedAttempts"] == 0
    assert api.json("GET", "/api/webhooks") == [hook]
    assert api.json("GET", f"/api/webhooks/{hook['id']}") == hook
    patched = api.json("PATCH", f"/api/webhooks/{hook['id']}", body={"description": "changed"})
    assert patched["description"] == "changed" and patched["callbackUrl"] == receiver.url
    put = api.json("PUT", f"/api/webhooks/{hook['id']}", body={
        "monitor": "contacts", "triggerEvent": "updated", "callbackUrl": receiver.url})
    assert (put["monitor"], put["triggerEvent"], put["description"]) == ("Contacts", "Updated", None)
    assert api.call("PUT", f"/api/webhooks/{hook['id']}/suspend").status == 204
    assert api.json("GET", f"/api/webhooks/{hook['id']}")["suspended"]
    assert api.call("PUT", f"/api/webhooks/{hook['id']}/continue").status == 204
    assert api.json("GET", f"/api/webhooks/{hook['id']}")["suspended"] is None
    assert api.json("PUT", "/api/webhooks/reset-token")["id"] == hook["id"]
    assert api.call("DELETE", f"/api/webhooks/{hook['id']}").status == 204
    assert api.call("GET", f"/api/webhooks/{hook['id']}").status == 404


@pytest.mark.parametrize("body", [
    {"monitor": "Contacts", "triggerEvent": "Deleted", "callbackUrl": "http://127.0.0.1:9/x"},
    {"monitor": "People", "triggerEvent": "Created", "callbackUrl": "http://127.0.0.1:9/x"},
    {"monitor": "Contacts", "triggerEvent": "Created"},
    {"monitor": "Contacts", "triggerEvent": "Created", "callbackUrl": "not a url"},
    {"monitor": "Contacts", "triggerEvent": "Created", "callbackUrl": "http://127.0.0.1:9/x",
     "queryOption": "$select=id,emailAddress"},
    {"monitor": "Contacts", "triggerEvent": "Created", "callbackUrl": "http://127.0.0.1:9/x",
     "queryOption": "$filter=nope eq 1"},
], ids=["deleted-event", "monitor", "no-callback", "bad-url", "repeats-default", "bad-filter"])
def test_webhook_registration_rejects_bad_requests(api: Api, body: dict[str, Any]) -> None:
    answer = api.call("POST", "/api/webhooks", body=body)
    assert answer.status == 400 and answer.json()["message"]


def test_delivery_posts_created_and_updated_contacts(sim: ActSimulator, api: Api,
                                                     receiver: Receiver) -> None:
    created_hook = register(api, receiver, "Created", queryOption="$select=emailAddress,customFields")
    updated_hook = register(api, receiver, "Updated",
                            queryOption="$filter=emailAddress ne null&$select=emailAddress")
    assert sim.deliver_webhooks() == []  # nothing changed since registration
    new = api.json("POST", "/api/contacts", body={"emailAddress": "fresh@example.com"}, expect=201)
    server_side = sim.add_contact(firstName="Typed", lastName="In")
    api.json("PATCH", f"/api/contacts/{demo_id(sim)}", body={"jobTitle": "CMO"})
    results = sim.deliver_webhooks()
    assert [r["ok"] for r in results] == [True, True] and len(receiver.calls) == 2
    by_hook = {r["webhook"]: r for r in results}
    created = by_hook[created_hook["id"]]["records"]
    assert [r["id"] for r in created] == [new["id"], server_side["id"]]
    assert set(created[0]) == {"id", "created", "edited", "emailAddress", "customFields"}
    updated = by_hook[updated_hook["id"]]["records"]
    assert updated == [{"id": demo_id(sim), "created": sim.contacts[demo_id(sim)]["created"],
                        "edited": sim.contacts[demo_id(sim)]["edited"], "emailAddress": "demo@example.com"}]
    headers, payload = receiver.calls[0]
    assert headers["Authorization"] == "s3cret-token"
    assert headers["Content-Type"].startswith("application/json") and isinstance(payload, list)
    assert api.json("GET", f"/api/webhooks/{created_hook['id']}")["lastNotificationSent"]
    assert sim.deliver_webhooks() == []  # delivered once
    api.json("PATCH", f"/api/contacts/{new['id']}", body={"jobTitle": "x"})
    again = sim.deliver_webhooks()
    assert [r["webhook"] for r in again] == [updated_hook["id"]]


def test_failed_deliveries_suspend_after_three_and_continue_redelivers(sim: ActSimulator, api: Api,
                                                                       receiver: Receiver) -> None:
    hook = register(api, receiver)
    receiver.status = 500
    new = sim.add_contact(emailAddress="retry@example.com")
    for attempt in (1, 2, 3):
        result, = sim.deliver_webhooks()
        assert (result["ok"], result["status"], result["failedAttempts"]) == (False, 500, attempt)
        assert result["suspended"] is (attempt == 3)
    assert sim.deliver_webhooks() == []  # suspended: nothing sent
    view = api.json("GET", f"/api/webhooks/{hook['id']}")
    assert view["suspended"] and view["failedAttempts"] == 3
    receiver.status = 204
    assert api.call("PUT", f"/api/webhooks/{hook['id']}/continue").status == 204
    result, = sim.deliver_webhooks()
    assert result["ok"] and [r["id"] for r in result["records"]] == [new["id"]]
    assert api.json("GET", f"/api/webhooks/{hook['id']}")["failedAttempts"] == 0
    # an address nobody listens on fails the same way
    api.json("PATCH", f"/api/webhooks/{hook['id']}", body={"callbackUrl": "http://127.0.0.1:9/none"})
    sim.add_contact(emailAddress="another@example.com")
    result, = sim.deliver_webhooks()
    assert not result["ok"] and result["status"] is None and result["error"]


# -- §8.7 faults ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, retry_after", [("429", False), ("429", True), ("503", False), ("503", True)])
def test_throttling_faults_carry_rate_limit_headers(sim: ActSimulator, api: Api, kind: str,
                                                    retry_after: bool) -> None:
    sim.set_faults(error_rate=1.0, kinds=(kind,), retry_after=retry_after)
    before = json.dumps(sim.contacts, sort_keys=True)
    answer = api.call("POST", "/api/contacts", body={"emailAddress": "throttled@example.com"})
    assert answer.status == int(kind)
    # a 429 always names the budget; a 503 only when a budget is set (every answer has it then)
    assert ("X-RateLimit-Reset" in answer.headers) is (kind == "429")
    assert ("Retry-After" in answer.headers) is retry_after
    sim.set_faults(error_rate=1.0, kinds=(kind,), retry_after=retry_after, rate_limit=100)
    answer = api.call("POST", "/api/contacts", body={"emailAddress": "throttled@example.com"})
    assert answer.status == int(kind) and answer.headers["X-RateLimit-Limit"] == "100"
    for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert answer.headers[name].isdigit()
    assert int(answer.headers["X-RateLimit-Reset"]) >= time.time() - 1
    assert ("Retry-After" in answer.headers) is retry_after
    if kind == "429":
        assert answer.headers["X-RateLimit-Remaining"] == "0"
    assert json.dumps(sim.contacts, sort_keys=True) == before  # nothing written
    assert HTTP.request("GET", sim.base_url + "/api/system").status == 200  # exempt
    assert api.authorize().status == 200  # exempt


def test_500_fault_is_the_aspnet_error_object_and_writes_nothing(sim: ActSimulator, api: Api) -> None:
    sim.set_faults(error_rate=1.0, kinds=("500",))
    answer = api.call("POST", "/api/contacts", body={"emailAddress": "x@example.com"})
    assert answer.status == 500
    assert set(answer.json()) == {"message", "exceptionMessage", "exceptionType", "stackTrace"}
    assert len(sim.contacts) == 12


def test_bad_request_fault_is_a_message_400(sim: ActSimulator, api: Api) -> None:
    sim.set_faults(bad_request_rate=1.0)
    answer = api.call("GET", "/api/contacts")
    assert answer.status == 400 and set(answer.json()) == {"message"}


def test_latency_slows_every_call(sim: ActSimulator, api: Api) -> None:
    sim.set_faults(latency=0.25)
    for call in (lambda: api.call("GET", "/api/contacts", {"$top": "1"}), api.authorize,
                 lambda: HTTP.request("GET", sim.base_url + "/api/system")):
        started = time.monotonic()
        assert call().status == 200
        assert time.monotonic() - started >= 0.25


def test_timeout_fault_answers_late_but_the_write_lands(sim: ActSimulator, api: Api) -> None:
    sim.set_faults(error_rate=1.0, kinds=("timeout",), timeout_seconds=0.8)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        api.call("POST", "/api/contacts", body={"emailAddress": "late@example.com"}, timeout=0.3)
    deadline = time.monotonic() + 5
    def landed() -> bool:
        with sim.lock:
            return any(c["emailAddress"] == "late@example.com" for c in sim.contacts.values())
    while not landed():
        assert time.monotonic() < deadline, "the write never happened"
        time.sleep(0.05)
    sim.set_faults()
    assert len(api.contacts(**{"$filter": "emailAddress eq 'late@example.com'"})) == 1


def test_ignore_patch_answers_200_with_the_unchanged_contact(sim: ActSimulator, api: Api) -> None:
    cid = demo_id(sim)
    before = api.json("GET", f"/api/contacts/{cid}")
    sim.set_faults(ignore_patch=True)
    answer = api.json("PATCH", f"/api/contacts/{cid}", body={"customFields": {"territory": "Moon"}})
    assert answer == before == api.json("GET", f"/api/contacts/{cid}")


def test_token_expiry_fault_kills_the_token_for_good(sim: ActSimulator, api: Api) -> None:
    sim.set_faults(token_expiry_rate=1.0)
    answer = api.call("GET", "/api/contacts")
    assert answer.status == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
    sim.set_faults()
    assert api.call("GET", "/api/contacts").status == 401  # stays invalid
    assert api.authorize(f"Bearer {api.token}").status == 401
    api.token = api.authorize().data.decode()
    assert api.call("GET", "/api/contacts").status == 200
    sim.set_faults(token_expiry_rate=1.0, expired_as_500=True)
    assert api.call("GET", "/api/contacts").status == 500


def test_rate_limit_budget_counts_down_then_429(sim: ActSimulator, api: Api) -> None:
    sim.set_faults(rate_limit=3, retry_after=True)
    remaining = []
    for _ in range(3):
        answer = api.call("GET", "/api/contacts", {"$top": "1"})
        assert answer.status == 200 and answer.headers["X-RateLimit-Limit"] == "3"
        remaining.append(answer.headers["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    throttled = api.call("GET", "/api/contacts")
    assert throttled.status == 429 and throttled.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert int(throttled.headers["X-RateLimit-Reset"]) - time.time() <= 61
    sim.set_faults(rate_limit=2, rate_window=0.5)
    assert [api.call("GET", "/api/system").status for _ in range(3)] == [200, 200, 429]
    time.sleep(0.6)
    assert api.call("GET", "/api/system").status == 200  # a new window


def test_faults_are_deterministic_with_a_seed(sim: ActSimulator, api: Api) -> None:
    def run() -> list[int]:
        sim.set_faults(error_rate=0.5, kinds=("500", "503", "429"), rng_seed=7)
        return [api.call("GET", "/api/contacts", {"$top": "1"}).status for _ in range(12)]
    first = run()
    assert first == run()
    assert len(set(first)) > 1 and 200 in first


def test_faults_validate_their_settings(sim: ActSimulator) -> None:
    assert sim.faults == Faults()
    for bad in ({"kinds": ("418",)}, {"error_rate": 2}, {"latency": -1}):
        with pytest.raises(ValueError):
            sim.set_faults(**bad)
    assert sim.set_faults(kinds=["503"]).kinds == ("503",)


# -- HTML view, routes, Swagger copy, command line ----------------------------------------------------

def test_html_view_lists_contacts_histories_and_escapes(sim: ActSimulator, api: Api) -> None:
    evil = api.json("POST", "/api/contacts", body={"firstName": "<script>alert(1)</script>",
                                                   "emailAddress": "x@example.com",
                                                   "customFields": {"user6": "<b>bold</b>"}}, expect=201)
    api.json("POST", "/api/History", body={"contacts": [{"id": evil["id"]}], "historyTypeID": 26,
                                           "regarding": "Consent <accepted>", "details": "a & b"},
             expect=201)
    page = HTTP.request("GET", f"http://127.0.0.1:{sim.port}/")
    text = page.data.decode()
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert "<script>" not in text and "&lt;script&gt;" in text and "&lt;b&gt;bold&lt;/b&gt;" in text
    assert "Consent &lt;accepted&gt;" in text and "Industry" in text and "Siobhán O&#x27;Brien" in text
    assert text.index("&lt;script&gt;") < text.index("Dana Demo")  # newest first
    one = HTTP.request("GET", f"http://127.0.0.1:{sim.port}/contacts/{evil['id']}")
    assert one.status == 200 and "a &amp; b" in one.data.decode()
    assert HTTP.request("GET", f"http://127.0.0.1:{sim.port}/contacts/nope").status == 404
    assert not any(p.startswith("/contacts") or p == "/" for _, p, _ in sim.requests)


def test_every_routed_operation_is_in_acts_swagger(sim: ActSimulator, api: Api) -> None:
    declared = swagger.operations()
    routed = sim.routes()
    assert {(m, p) for m, p, _ in routed} == declared
    assert sum(1 for *_, implemented in routed if implemented) >= 36
    assert api.call("POST", "/api/groups", body={"name": "x"}).status == 501
    assert api.call("GET", "/api/nothing-here").status == 404
    assert api.call("POST", "/api/contacts/by-ids").status == 405
    assert api.call("GET", "/api/HISTORY-TYPES").status == 200  # ASP.NET routes ignore case


def test_committed_swagger_copy_matches_acts_document() -> None:
    copy_ = swagger.spec()
    assert copy_["x-source"]["sha256"].startswith("f0ee29ad")
    for name in ("act.web.api.models.Contacts.Contact", "act.web.api.models.Histories.History",
                 "act.web.api.models.Histories.HistoryType", "act.web.api.models.MetaData.Schema.Column",
                 "act.web.api.models.MetaData.Schema.NewColumn", "act.web.api.models.Groups.Group",
                 "act.web.api.models.MetaData.TypeCodes.HistoryType",
                 "act.web.api.models.WebHooks.WebhookRequest"):
        assert name in copy_["definitions"]
    if not SHARED_SWAGGER.is_file():
        pytest.skip("../shared/act-web-api is not here; the committed copy is used as it is")
    assert hashlib.sha256(SHARED_SWAGGER.read_bytes()).hexdigest() == copy_["x-source"]["sha256"]
    check = subprocess.run([sys.executable, "-m", "devstack.act_simulator.extract_swagger",
                            str(SHARED_SWAGGER), "--check"], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_odata_module_directly() -> None:
    resolve = swagger.resolver(swagger.CONTACT, {"customFields": {"user6": "string"}})
    rows = [{"id": "1", "lastName": "b", "customFields": {"user6": None}},
            {"id": "2", "lastName": "A", "customFields": {"user6": "x"}},
            {"id": "3", "lastName": None, "customFields": {"user6": "X"}}]
    query = parse_query([("$filter", "customFields/user6 eq 'x' or lastName eq 'B'"),
                         ("$orderby", "lastName desc"), ("$skip", "1"), ("$select", "id")], resolve)
    assert apply(query, rows) == [{"id": "2"}, {"id": "3"}]
    with pytest.raises(ODataError):
        parse_query([("$filter", "lastName eq 'x'"), ("$FILTER", "id eq '1'")], resolve)


def test_runs_standalone_and_prints_what_to_configure() -> None:
    helped = subprocess.run([sys.executable, "-m", "devstack.act_simulator", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert helped.returncode == 0 and "--port" in helped.stdout and "--seed" in helped.stdout
    process = subprocess.Popen([sys.executable, "-m", "devstack.act_simulator", "--port", "0",
                                "--seed", "empty"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        output = ""
        while "Ctrl-C" not in output:
            line = process.stdout.readline()
            assert line, process.stderr.read()
            output += line
        base = re.search(r"API base URL\s+(\S+)", output).group(1)
        assert re.search(r"User\s+OptinProof Sync", output) and "sim-password" in output
        assert re.search(r"Database\s+OptinProofDemo", output)
        token = HTTP.request("GET", base + "/authorize", headers={
            "Authorization": basic(), "Act-Database-Name": DB}).data.decode()
        contacts = HTTP.request("GET", base + "/api/contacts", headers={
            "Authorization": f"Bearer {token}", "Act-Database-Name": DB})
        assert contacts.status == 200 and contacts.json() == []
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0
    assert process.stderr.read() == ""


# -- as strict as Act! (and no stricter): Swagger and NOTES.md, one test each ----------

def test_authorize_takes_only_the_verb_act_documents(sim: ActSimulator) -> None:
    headers = {"Authorization": basic(), "Act-Database-Name": DB}
    assert HTTP.request("GET", sim.base_url + "/authorize", headers=headers).status == 200
    for verb in ("POST", "PUT", "DELETE"):
        refused = HTTP.request(verb, sim.base_url + "/authorize", headers=headers)
        assert refused.status == 405, verb


def test_odata_options_only_work_where_the_route_takes_them(sim: ActSimulator, api: Api) -> None:
    routes = {template: implemented for _, template, implemented in sim.routes()}
    assert swagger.takes_odata(swagger.operation("GET", "/api/groups/{groupId}/associated-contacts"))
    assert not swagger.takes_odata(swagger.operation("GET", "/api/history-types"))
    every_type = api.json("GET", "/api/history-types")
    assert len(every_type) > 1 and routes["/api/history-types"]
    assert api.json("GET", "/api/history-types", {"$top": "1"}) == every_type  # ignored
    assert api.json("GET", "/api/history-types", {"$filter": "not a filter"}) == every_type
    cid = demo_id(sim)
    full = api.json("GET", "/api/contacts/by-ids", {"ids": cid, "$select": "id"})
    assert full[0]["emailAddress"] == "demo@example.com"  # $select ignored: the whole contact
    assert list(api.json("GET", "/api/contacts", {"$select": "id", "$top": "1"})[0]) == ["id"]


def test_form_encoded_bodies_where_the_swagger_consumes_them(sim: ActSimulator, api: Api) -> None:
    opted = api.json("POST", "/api/metadata/contact/fields",
                     body={"name": "Opted In", "type": "YesNo"}, expect=201)["columnName"].lower()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    made = api.call("POST", "/api/contacts", headers=form,
                    raw=f"firstName=Formy&emailAddress=formy%40example.eu&aemOptOut=true"
                        f"&businessAddress.city=Lyon&customFields[{opted}]=true".encode())
    assert made.status == 201, made.data
    contact = made.json()
    assert contact["firstName"] == "Formy" and contact["aemOptOut"] is True
    assert contact["businessAddress"]["city"] == "Lyon" and contact["customFields"][opted] is True
    patched = api.call("PATCH", f"/api/contacts/{contact['id']}", headers=form,
                       raw=f"customFields%5B{opted}%5D=false&jobTitle=Buyer".encode())
    assert patched.status == 200 and patched.json()["customFields"][opted] is False
    history = api.call("POST", "/api/History", headers=form,
                       raw=f"contacts[0][id]={contact['id']}&historyTypeID=1&regarding=Hi".encode())
    assert history.status == 201, history.data
    assert history.json()["contacts"][0]["id"] == contact["id"]
    wrong = api.call("PATCH", f"/api/contacts/{contact['id']}", headers=form,
                     raw=f"customFields[{opted}]=maybe".encode())
    assert wrong.status == 400 and "true or false" in wrong.json()["message"]


def test_expand_works_where_act_documents_it(sim: ActSimulator, api: Api) -> None:
    rows = api.json("GET", "/api/contacts", {"$expand": "businessAddress($select=city)",
                                             "$filter": "emailAddress eq 'demo@example.com'"})
    assert list(rows[0]["businessAddress"]) == ["city"]
    cid = demo_id(sim)
    api.json("POST", "/api/History", body={"contacts": [{"id": cid}], "historyTypeID": 1,
                                           "regarding": "x"}, expect=201)
    histories = api.json("GET", f"/api/contacts/{cid}/history", {"$expand": "contacts($select=id)"})
    assert histories and all(list(c) == ["id"] for h in histories for c in h["contacts"])


def test_dates_are_the_servers_wall_time(api: Api) -> None:
    with ActSimulator(port=0, database=DB, users={USER: PASSWORD}, seed="demo",
                      timezone_name="Europe/Paris") as paris:
        client = Api(paris)
        key = client.json("POST", "/api/metadata/contact/fields",
                          body={"name": "Decided At", "type": "DateTime"},
                          expect=201)["columnName"].lower()
        cid = demo_id(paris)
        stored = client.json("PATCH", f"/api/contacts/{cid}",
                             body={"customFields": {key: "2026-07-01T10:00:00Z"}})
        assert stored["customFields"][key] == "2026-07-01T12:00:00"  # summer: UTC+2, no zone
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", stored["edited"])
        edited = datetime.fromisoformat(stored["edited"]).replace(tzinfo=paris.zone)
        assert abs(edited - datetime.now(edited.tzinfo)) < timedelta(minutes=1)
        # a filter names the instant with any offset; the same edit matches either way
        utc = edited.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        assert cid in {c["id"] for c in client.contacts(**{"$filter": f"edited ge {utc}"})}
        paris.offsets = True  # an install that answers with offsets (stamps made from now on)
        again = client.json("PATCH", f"/api/contacts/{cid}", body={"jobTitle": "x"})
        assert re.search(r"[+-]\d\d:\d\d$", again["edited"])
