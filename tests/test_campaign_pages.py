"""The dashboard's campaign pages: who may use them, the form read from Act!, starting
through the same service as the admin API, pause / resume / remind, the mail preview."""
from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from chalicelib.campaigns import define, filters, jobs, service
from chalicelib.core.services import get_catalogue, get_ledger
from chalicelib.core.settings import get_settings
from chalicelib.web import mail_preview
from tests.conftest import form_fields, scan_table
from tests.support.admin import call, session, tools
from tests.support.campaigns import (
    LANGUAGE_FIELD,
    LINK_FIELD,
    add_contacts,
    add_language_contacts,
    link_of,
)

FORM = "application/x-www-form-urlencoded"
NEW = "/admin/dashboard/new-campaign"


@pytest.fixture
def ui(admin_env, act_sim) -> dict[str, Any]:
    """The admin key, Act! with a link field and a group of three contacts."""
    act_sim.add_field(LINK_FIELD, "Memo")
    members = add_contacts(act_sim, 3, "grp")
    act_sim.add_group("Trade fair 2027", members)
    return {"members": members}


def get(client: Any, cookie: str, path: str) -> Any:
    return client.http.get(path, headers={"Cookie": cookie})


def post(client: Any, cookie: str | None, path: str, fields: dict[str, str],
         token: str | None = None, **headers: str) -> Any:
    sent = {**fields, **({"form_token": token} if token else {})}
    all_headers = {"Content-Type": FORM, **({"Cookie": cookie} if cookie else {}), **headers}
    return client.http.post(path, body=urlencode(sent), headers=all_headers)


def token_of(answer: Any) -> str:
    return form_fields(answer.body.decode())["form_token"]


def start_fields(**changes: str) -> dict[str, str]:
    fields = {"id": "fair-2027", "audience": "group", "group": "Trade fair 2027",
              "purpose-newsletter": "on", "purpose-events": "on", "locale": "fr",
              "delivery": "act-field", "link_field": LINK_FIELD, "action": "start"}
    return {k: v for k, v in {**fields, **changes}.items() if v is not None}


def test_every_page_needs_a_session_and_every_change_its_form_token(ui, client):
    for path in ("/admin/dashboard/campaigns", NEW, "/admin/dashboard/campaigns/x-2027",
                 "/admin/dashboard/campaign-preview?mail_locale=fr&purposes=newsletter"):
        answer = client.http.get(path)
        assert answer.status_code == 401, path
        assert "Trade fair" not in answer.body.decode()
    before = scan_table(get_ledger())
    assert post(client, None, NEW, start_fields()).status_code == 401  # no cookie
    cookie = session(client)
    token = token_of(get(client, cookie, NEW))
    assert post(client, cookie, NEW, start_fields()).status_code == 400  # no form token
    assert post(client, cookie, NEW, start_fields(), "forged").status_code == 400
    assert post(client, cookie, NEW, start_fields(), token,  # a page elsewhere posting here
                **{"Sec-Fetch-Site": "cross-site"}).status_code == 403
    other = session(client, "mallory@example.eu")  # another operator's token
    assert post(client, other, NEW, start_fields(), token).status_code == 400
    assert scan_table(get_ledger()) == before and jobs.listing(get_ledger()) == []
    service.start(get_ledger(), get_settings(), get_catalogue(), service.Spec(
        "fair-2027", ["newsletter"], "all", None, "csv"), "test")
    for action in ("pause", "resume", "remind"):
        path = f"/admin/dashboard/campaigns/fair-2027/{action}"
        assert post(client, None, path, {}, token).status_code == 401
        assert post(client, cookie, path, {}).status_code == 400
    assert jobs.public_entry(get_ledger(), "fair-2027")["state"] == "running"


def test_the_form_offers_what_act_holds_and_counts_the_audience(ui, client, act_sim):
    act_sim.add_contact(firstName="N", lastName="P", emailAddress="n1@x.eu",
                        businessAddress={"country": "Nepal"})
    act_sim.add_contact(firstName="N", lastName="Q", emailAddress="n2@x.eu",
                        businessAddress={"country": "nepal"})
    cookie = session(client)
    page = get(client, cookie, NEW)
    html = page.body.decode()
    assert page.status_code == 200, html
    assert "<option selected>Trade fair 2027</option>" in html or ">Trade fair 2027<" in html
    assert 'value="customFields/user6">Industry<' in html  # a custom field, by display name
    assert 'value="businessAddress/country"' in html
    assert f">{LINK_FIELD}</option>" in html  # a Memo field can hold the link
    assert "Consent Newsletter" not in html.split('id="c-link-field"')[1].split("</select>")[0]
    token = token_of(page)

    counted = post(client, cookie, NEW, start_fields(
        audience="filter", filter_field="businessAddress/country", filter_op="eq",
        filter_value="Nepal", action="count"), token)
    body = counted.body.decode()
    assert counted.status_code == 200, body
    assert "2 contacts in Act! match this audience now." in body
    assert "businessAddress/country eq &#39;Nepal&#39;" in body
    assert 'value="Nepal"' in body  # the form comes back as it was filled
    grouped = post(client, cookie, NEW, start_fields(action="count"), token)
    assert "3 contacts in Act! match this audience now." in grouped.body.decode()
    assert jobs.listing(get_ledger()) == []  # counting starts nothing


def test_filters_are_odata_act_runs():
    fields = filters.fields([{"isCustom": True, "columnName": "USER6", "displayName": "Industry",
                              "type": "Character"},
                             {"isCustom": True, "columnName": "CUST_N", "displayName": "Size",
                              "type": "Number"},
                             {"isCustom": False, "columnName": "FIRSTNAME", "type": "Character"}])
    assert filters.build(fields, "customFields/user6", "startswith", "O'Brien") == \
        "startswith(customFields/user6,'O''Brien')"
    assert filters.build(fields, "customFields/cust_n", "gt", "12") == "customFields/cust_n gt 12"
    assert filters.build(fields, "edited", "gt", "2026-06-01") == \
        "edited gt 2026-06-01T00:00:00Z"
    for path, op, value in (("customFields/cust_n", "contains", "1"), ("nope", "eq", "x"),
                            ("customFields/cust_n", "eq", "twelve"), ("edited", "lt", "June"),
                            ("company", "eq", " "), ("company", "not", "x")):
        with pytest.raises(Exception) as refused:
            filters.build(fields, path, op, value)
        assert type(refused.value).__name__ == "BadInput", (path, op, value)


def test_starting_from_the_page_is_the_api_path_and_reaches_act(ui, client, act_sim):
    cookie = session(client)
    token = token_of(get(client, cookie, NEW))
    answer = post(client, cookie, NEW, start_fields(), token)
    assert answer.status_code == 303, answer.body
    location = answer.headers["Location"]
    assert urlsplit(location).path == "/admin/dashboard/campaigns/fair-2027"
    assert "notice=started" in location

    campaign = define.load(get_ledger(), "fair-2027")
    assert (campaign.audience, campaign.audience_value, campaign.delivery, campaign.locale,
            campaign.link_field, campaign.purposes) == (
        "group", "Trade fair 2027", "act-field", "fr", LINK_FIELD, ("newsletter", "events"))
    entry = jobs.public_entry(get_ledger(), "fair-2027")
    assert (entry["state"], entry["requested_by"]) == ("running", "admin:olga@example.eu")
    [action] = service.actions(get_ledger(), "fair-2027")
    assert (action["action"], action["by"]) == ("started", "admin:olga@example.eu")

    page = get(client, cookie, location)
    html = page.body.decode()
    assert page.status_code == 200, html
    assert "The campaign is started" in html and "<progress" in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]  # refreshes itself
    assert '<script src="/admin/dashboard/static/campaign-progress.js" defer>' in html
    script = client.http.get("/admin/dashboard/static/campaign-progress.js")
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("text/javascript")

    assert jobs.work(get_ledger(), tools(), 60)[0]["state"] == "finished"
    assert all(link_of(act_sim, c) for c in ui["members"])  # each link is in its Act! field
    done = get(client, cookie, location).body.decode()
    assert "3 of 3 contacts handled." in done and 'value="3"' in done
    assert "<script" not in done  # finished: nothing refreshes
    rows = re.findall(r'<tr><th scope="row">([^<]+)</th><td>(\d+)</td><td>(\d+)</td>', done)
    assert ("Monthly newsletter", "3", "0") in rows
    assert "Remind the 3 contacts who did not answer" in done

    listed = get(client, cookie, "/admin/dashboard/campaigns").body.decode()
    assert 'href="/admin/dashboard/campaigns/fair-2027?lang=en"' in listed and "3 of 3" in listed


def test_a_refused_form_comes_back_with_the_reason_and_changes_nothing(ui, client, act_sim,
                                                                      monkeypatch):
    cookie = session(client)
    token = token_of(get(client, cookie, NEW))
    before = scan_table(get_ledger())
    for changes, reason in (
        ({"id": "No Spaces"}, "Name the campaign with 3-48 lower-case letters"),
        ({"purpose-newsletter": None, "purpose-events": None}, "Tick at least one purpose"),
        ({"group": "No such group"}, "Choose an Act! group from the list."),
        ({"link_field": "Consent Newsletter"}, "Choose the Act! field that will hold"),
        ({"audience": "filter", "filter_field": "created", "filter_op": "contains",
          "filter_value": "x"}, "This comparison does not apply to this field."),
    ):
        answer = post(client, cookie, NEW, start_fields(**changes), token)
        html = answer.body.decode()
        assert answer.status_code == 400, changes
        assert "Nothing was started:" in html and reason in html, (changes, html[:3000])
        assert 'name="id"' in html  # the form again
    french = post(client, cookie, NEW + "?lang=fr", start_fields(id="X"), token).body.decode()
    assert "Rien n'a été lancé :" in french and "3 à 48 minuscules" in french
    # Act! down: the form says so, and starting is refused
    act_sim.set_faults(error_rate=1.0, kinds=("503",))
    down = post(client, cookie, NEW, start_fields(audience="all", delivery="csv"), token)
    assert down.status_code == 400 and "Act! could not be read" in down.body.decode()
    assert scan_table(get_ledger()) == before


def test_pause_resume_and_remind_from_the_page(ui, client, act_sim):
    cookie = session(client)
    token = token_of(get(client, cookie, NEW))
    post(client, cookie, NEW, start_fields(), token)
    base = "/admin/dashboard/campaigns/fair-2027"

    paused = post(client, cookie, f"{base}/pause", {}, token)
    assert paused.status_code == 303 and "notice=paused" in paused.headers["Location"]
    assert jobs.public_entry(get_ledger(), "fair-2027")["paused_by"] == "admin:olga@example.eu"
    assert jobs.work(get_ledger(), tools(), 60) == []  # the sweep leaves it alone
    html = get(client, cookie, base).body.decode()
    assert ">Resume</button>" in html and "paused" in html

    assert post(client, cookie, f"{base}/resume", {}, token).status_code == 303
    assert jobs.work(get_ledger(), tools(), 60)[0]["state"] == "finished"
    reminded = post(client, cookie, f"{base}/remind", {}, token)
    assert reminded.status_code == 303
    entry = jobs.public_entry(get_ledger(), "fair-2027")
    assert (entry["state"], entry["round"]) == ("running", 2)
    assert jobs.work(get_ledger(), tools(), 60)[0]["state"] == "finished"
    done = [a["action"] for a in service.actions(get_ledger(), "fair-2027")]
    assert done == ["reminded", "resumed", "paused", "started"]
    html = get(client, cookie, base).body.decode()
    assert html.count("admin:olga@example.eu") == 4

    unknown = post(client, cookie, f"{base}/explode", {}, token)
    assert unknown.status_code == 400
    # A second reminder round has nobody new... except those still silent: all three.
    # After everyone answered, reminding says so and changes nothing.
    for contact_id in ui["members"]:
        for item in define.contact_items(get_ledger(), "fair-2027"):
            if item["contact_id"] == contact_id:
                get_ledger().put({**item, "bounced_at": "2027-01-01T00:00:00.000Z"})
    before = scan_table(get_ledger())
    nobody = post(client, cookie, f"{base}/remind", {}, token)
    assert nobody.status_code == 400
    assert "Nobody is left to remind" in nobody.body.decode()
    assert scan_table(get_ledger()) == before


def test_the_api_goes_through_the_same_service(ui, client):
    body = {"id": "api-2027", "purposes": ["newsletter"], "delivery": "csv",
            "audience": {"group": "Trade fair 2027"}}
    assert call(client, "post", "/admin/campaigns", body).status_code == 202
    assert call(client, "post", "/admin/campaigns/api-2027/pause", {}).status_code == 200
    assert call(client, "post", "/admin/campaigns/api-2027/run", {}).status_code == 202
    assert [(a["action"], a["by"]) for a in service.actions(get_ledger(), "api-2027")] == [
        ("resumed", "admin:alice@example.eu"), ("paused", "admin:alice@example.eu"),
        ("started", "admin:alice@example.eu")]


def test_the_form_offers_the_language_rule_and_starting_with_it_records_it(ui, client,
                                                                           act_sim):
    ids = add_language_contacts(act_sim, "rule")
    act_sim.add_group("Rule people", ids)
    cookie = session(client)
    page = get(client, cookie, NEW)
    html = page.body.decode()
    assert 'name="language_rule" value="field"' in html
    field_select = html.split('id="c-locale-field"')[1].split("</select>")[0]
    assert f">{LANGUAGE_FIELD}</option>" in field_select
    assert "Consent Newsletter At" not in field_select  # a date holds no language
    french = get(client, cookie, NEW + "?lang=fr").body.decode()
    assert "La langue de chaque contact, lue dans un champ Act!" in french
    token = token_of(page)
    refused = post(client, cookie, NEW, start_fields(
        language_rule="field", locale_field="Nope"), token)
    assert refused.status_code == 400
    assert "Choose the Act! field that holds each contact&#39;s language." in \
        refused.body.decode()
    assert define.find(get_ledger(), "fair-2027") is None

    answer = post(client, cookie, NEW, start_fields(
        id="rule-2027", group="Rule people", locale="en", language_rule="field",
        locale_field=LANGUAGE_FIELD), token)
    assert answer.status_code == 303, answer.body
    campaign = define.load(get_ledger(), "rule-2027")
    assert (campaign.locale, campaign.locale_field) == ("en", LANGUAGE_FIELD)
    shown = get(client, cookie, answer.headers["Location"]).body.decode()
    assert f"Each contact&#39;s own, from the Act! field {LANGUAGE_FIELD}; else English" in shown
    assert jobs.work(get_ledger(), tools(), 60)[0]["state"] == "finished"
    assert [link_of(act_sim, i).rsplit("?lang=", 1)[1] for i in ids] == ["fr", "en", "en"]


def test_the_api_takes_the_language_rule_and_refuses_a_field_act_lacks(ui, client, act_sim):
    add_language_contacts(act_sim, "api")
    body = {"id": "api-lang", "purposes": ["newsletter"], "delivery": "csv", "locale": "fr",
            "audience": {"group": "Trade fair 2027"}, "locale_field": "Langue"}
    refused = call(client, "post", "/admin/campaigns", body)
    assert refused.status_code == 400
    assert "The language field 'Langue': this Act! contact field does not exist" in \
        refused.body.decode()
    assert define.find(get_ledger(), "api-lang") is None
    started = call(client, "post", "/admin/campaigns", {**body, "locale_field": LANGUAGE_FIELD})
    assert started.status_code == 202, started.body
    assert json.loads(started.body)["campaign"]["locale_field"] == LANGUAGE_FIELD


def test_the_mail_preview_is_the_mail_sent(mail_env, admin_env, client):
    cookie = session(client)
    french = get(client, cookie, "/admin/dashboard/campaign-preview?"
                 "mail_locale=fr&purposes=newsletter,events")
    html = french.body.decode()
    assert french.status_code == 200, html
    composed = mail_preview.preview_mail(get_settings(), get_catalogue(), "fr",
                                           ["newsletter", "events"])
    assert composed.template.sha256 in html
    assert "Bonjour Camille" in html and "Lettre d&#39;information mensuelle" in html
    assert f"http://testserver/c/{mail_preview.SAMPLE_TOKEN}" in html
    raw = get(client, cookie, "/admin/dashboard/campaign-preview?"
              "mail_locale=en&purposes=newsletter&part=html")
    assert raw.status_code == 200 and "Hello Camille," in raw.body.decode()
    assert "sandbox" in raw.headers["Content-Security-Policy"]
    assert "script" not in raw.headers["Content-Security-Policy"]
    bad = get(client, cookie, "/admin/dashboard/campaign-preview?mail_locale=de&purposes=x")
    assert bad.status_code == 400


def test_the_progress_script_route_is_where_the_page_says():
    """The blueprint spells the script's path itself (declaring routes imports no page
    code, for cold start); the page's CSP and <script> use campaign_pages' constant."""
    from chalicelib.web import campaign_pages
    from chalicelib.web.blueprints import campaigns

    assert campaigns.SCRIPT_PATH == campaign_pages.SCRIPT_PATH
