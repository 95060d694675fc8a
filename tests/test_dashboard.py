"""The consent dashboard: access, counts kept by the commits, filters, CSV, retry, lookup."""
from __future__ import annotations

import csv
import io
import re
import time
from typing import Any
from urllib.parse import urlencode

import pytest

from chalicelib.web import admin_auth
from chalicelib.campaigns import jobs
from chalicelib.campaigns import define
from chalicelib.campaigns import runner as campaign_runner
from chalicelib.consent import rules
from chalicelib.consent import links
from chalicelib.consent import stats
from chalicelib.store.ledger import Ledger
from chalicelib.core.services import get_catalogue, get_ledger
from chalicelib.core.settings import get_settings
from tests.conftest import form_fields, new_secret
from tests.support.admin import tools
from tests.support.rights import ask_rights, confirmed, erase, key, rights_path
from tests.support.signup import decide, links_in, sign_up

ADMIN_KEY = new_secret()
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def dash_env(mail_env, act_env, monkeypatch) -> dict[str, str]:
    monkeypatch.setenv("ADMIN_SECRET_KEYS", ADMIN_KEY)
    return {**mail_env, **act_env}


def session(client: Any, operator: str = "olga@example.eu", ttl: int = 600) -> str:
    """Sign in like a browser: open the link, keep the cookie."""
    token = admin_auth.mint(get_settings(), operator, ttl)
    answer = client.http.get(f"/admin/login?{urlencode({'token': token})}")
    assert answer.status_code == 303 and answer.headers["Location"] == "/admin/dashboard"
    cookie = answer.headers["Set-Cookie"]
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/admin"):
        assert attribute in cookie, cookie
    return cookie.split(";", 1)[0]


def page(client: Any, cookie: str, query: str = "") -> Any:
    return client.http.get(f"/admin/dashboard{query}", headers={"Cookie": cookie})


def recount(ledger: Ledger) -> dict[str, dict[str, int]]:
    """The truth a scan would give (what the counters must agree with)."""
    counts: dict[str, dict[str, int]] = {}
    for subject in ledger.subjects():
        for purpose, state in ledger.current(subject)[1].items():
            row = counts.setdefault(purpose, dict.fromkeys(stats.STATES, 0))
            row[state["state"]] += 1
    return counts


def test_no_session_shows_nothing(dash_env, client, monkeypatch):
    for headers in ({}, {"Cookie": "optinproof_admin=forged"},
                    {"Cookie": f"optinproof_admin={admin_auth.mint(get_settings(), 'x', 1, now=1)}"}):
        answer = client.http.get("/admin/dashboard", headers=headers)
        assert answer.status_code == 401
        assert "Consent dashboard" not in answer.body.decode()
    bad_login = client.http.get("/admin/login?token=nope")
    assert bad_login.status_code == 401 and "Set-Cookie" not in bad_login.headers
    monkeypatch.delenv("ADMIN_SECRET_KEYS")
    assert client.http.get("/admin/dashboard").status_code == 403


def test_counts_follow_every_decision_and_match_a_recount(dash_env, client, mail_sink, act_sim):
    confirmed(client, mail_sink, "a1@example.eu")  # newsletter accepted, events refused
    confirmed(client, mail_sink, "a2@example.eu", newsletter="accept", events="accept")
    path = confirmed(client, mail_sink, "a3@example.eu", newsletter="refuse")
    withdraw = links_in(next(m for m in mail_sink.messages if "a3@" in str(m.rcpt_tos)))
    decide(client, path, newsletter="accept")  # changes their mind
    sign_up(client, "pending@example.eu", ("newsletter",))  # asked, never answers
    client.http.post(withdraw["withdraw"], body="List-Unsubscribe=One-Click",
                     headers={"Content-Type": FORM})  # a3 withdraws everything

    cookie = session(client)
    answer = page(client, cookie)
    assert answer.status_code == 200, answer.body
    rows = {r["purpose"]: r for r in csv.DictReader(io.StringIO(
        page(client, cookie, "?format=csv&table=purposes").body.decode()))}
    truth = recount(get_ledger())
    for purpose, row in rows.items():
        for state in stats.STATES:
            assert int(row[state]) == truth.get(purpose, {}).get(state, 0), (purpose, state)
    assert int(rows["newsletter"]["pending"]) == 1  # pending@ only
    assert int(rows["newsletter"]["withdrawn"]) == 1 and int(rows["newsletter"]["accepted"]) == 2
    forms = {r["form"]: r for r in csv.DictReader(io.StringIO(
        page(client, cookie, "?format=csv&table=forms").body.decode()))}
    assert int(forms["website"]["signups"]) == 4
    assert int(forms["website"]["confirmed"]) == 3  # a1, a2, and a3 who changed their mind
    assert int(forms["website"]["refused"]) == 0  # a3 answered no first, then yes
    timeline = list(csv.DictReader(io.StringIO(
        page(client, cookie, "?format=csv&table=timeline").body.decode())))
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert [int(r["accepted"]) for r in timeline if r["period"] == today] == [4]
    html = answer.body.decode()
    assert "<svg" in html and "<script" not in html and "The chart as a table" in html
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]


def test_campaign_funnel_opened_decided_synced(dash_env, client, mail_sink, act_sim, pusher):
    from chalicelib.act import sync

    for i in range(3):
        act_sim.add_contact(firstName=f"F{i}", lastName="Funnel", emailAddress=f"f{i}@x.eu",
                            businessAddress={"country": "Nepal"})
    campaign = define.define(get_ledger(), get_settings(), get_catalogue(), "funnel-2027",
                                ["newsletter"], "filter", "businessAddress/country eq 'Nepal'",
                                "csv")
    jobs.schedule(get_ledger(), campaign, "test")
    jobs.work(get_ledger(), tools(), 60)
    runner = campaign_runner.Runner(get_ledger(), get_settings(), get_catalogue(), None, campaign)
    out = io.StringIO()
    campaign_runner.export_csv(runner, out)
    urls = [row["link"].removeprefix("http://testserver") for row in
            csv.DictReader(io.StringIO(out.getvalue()))]
    client.http.get(urls[0])
    client.http.get(urls[0])  # a second open counts once
    client.http.get(urls[1])
    decide(client, urls[0], newsletter="accept")
    sync.drain(pusher, sync.due_keys(get_ledger()))
    cookie = session(client)
    rows = list(csv.DictReader(io.StringIO(
        page(client, cookie, "?format=csv&table=campaigns&campaign=funnel-2027").body.decode())))
    assert rows == [{"campaign": "funnel-2027", "state": "finished", "sent": "3", "opened": "2",
                     "decided": "1", "accepted": "1", "refused": "0", "synced": "1",
                     "answer_rate": "33.3 %"}]


def test_retry_now_pushes_a_failed_sync(dash_env, client, mail_sink, act_sim):
    act_sim.set_faults(error_rate=1.0, kinds=("503",))
    confirmed(client, mail_sink, "r1@example.eu")
    act_sim.set_faults()
    act_sim.add_contact(firstName="R", lastName="One", emailAddress="r1@example.eu")
    cookie = session(client)
    html = page(client, cookie).body.decode()
    assert "Retry now" in html and "r1@example.eu" not in html  # no personal data listed
    fields = form_fields(html.split('action="/admin/syncs/retry"', 1)[1].split("</form>")[0])
    missing_token = client.http.post("/admin/syncs/retry", body=urlencode(
        {"key": fields["key"]}), headers={"Content-Type": FORM, "Cookie": cookie})
    assert missing_token.status_code == 400
    cross = client.http.post("/admin/syncs/retry", body=urlencode(fields), headers={
        "Content-Type": FORM, "Cookie": cookie, "Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    no_session = client.http.post("/admin/syncs/retry", body=urlencode(fields),
                                  headers={"Content-Type": FORM})
    assert no_session.status_code == 401
    done = client.http.post("/admin/syncs/retry", body=urlencode(fields),
                            headers={"Content-Type": FORM, "Cookie": cookie})
    assert done.status_code == 303 and "synced" in done.headers["Location"]
    _, states = get_ledger().current(key("r1@example.eu"))
    assert states["newsletter"]["sync_status"] == "synced"


def test_filters_are_checked_and_french_works(dash_env, client):
    cookie = session(client)
    for query in ("?since=yesterday", "?since=2026-02-30", "?since=2026-12-01&until=2026-11-01",
                  "?purpose=nope", "?form=nope", "?campaign=nope", "?by=month",
                  "?format=csv&table=secrets"):
        assert page(client, cookie, query).status_code == 400, query
    french = page(client, cookie, "?lang=fr")
    assert french.status_code == 200 and "Tableau de bord du consentement" in french.body.decode()
    week = page(client, cookie, "?by=week&since=2026-01-01&until=2026-03-31")
    assert week.status_code == 200 and "2026-W05" in week.body.decode()


def test_erasures_listed_without_personal_data_and_lookup(dash_env, client, mail_sink):
    confirmed(client, mail_sink, "gone@example.eu", name="Gone")
    confirmed(client, mail_sink, "kept@example.eu", name="Kept")
    mail_sink.clear()
    ask_rights(client, "gone@example.eu")
    assert erase(client, rights_path(mail_sink)).status_code == 200
    cookie = session(client)
    html = page(client, cookie).body.decode()
    erased = html.split('id="erasures"', 1)[1].split("<h2", 1)[0]
    assert "rights_page" in erased and "gone@" not in html and "Gone" not in erased
    found = client.http.get("/admin/lookup?email=kept@example.eu", headers={"Cookie": cookie})
    assert found.status_code == 200 and "Evidence of consent" in found.body.decode()
    erased_pack = client.http.get("/admin/lookup?email=gone@example.eu",
                                  headers={"Cookie": cookie})  # the proof outlives erasure
    assert erased_pack.status_code == 200 and "erased" in erased_pack.body.decode()
    # the same lookup offers the PDF dossier; the session cookie reads it (GET)
    dossier_form = html.split('action="/admin/evidence"', 1)[1].split("</form>", 1)[0]
    assert 'name="format" value="pdf"' in dossier_form and 'name="email"' in dossier_form
    pdf = client.http.get("/admin/evidence?format=pdf&lang=en&email=kept@example.eu",
                          headers={"Cookie": cookie})
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.body.startswith(b"%PDF-")
    assert "Gone" not in erased_pack.body.decode()
    assert client.http.get("/admin/lookup?email=never@example.eu",
                           headers={"Cookie": cookie}).status_code == 400
    assert client.http.get("/admin/lookup?email=kept@example.eu").status_code == 401


def test_sign_out_clears_the_cookie(dash_env, client):
    cookie = session(client)
    html = page(client, cookie).body.decode()
    token = re.search(r'name="form_token" value="([^"]+)"', html).group(1)
    out = client.http.post("/admin/logout", body=urlencode({"form_token": token}),
                           headers={"Content-Type": FORM, "Cookie": cookie})
    assert out.status_code == 200 and "Max-Age=0" in out.headers["Set-Cookie"]


def _decision(purpose: str, kind: str, channel: str, before: str | None = None) -> dict[str, Any]:
    return {"kind": kind, "purpose": purpose, "channel": channel, "previous_state": before,
            "at": "2026-11-29T10:00:00.000Z"}


def test_a_commit_adds_a_handful_of_counter_items_whatever_the_purposes():
    """A decision on 20 purposes must stay far below DynamoDB's 100 items per transaction."""
    events = [_decision(f"p{i}", "accepted", "form:main") for i in range(20)]
    counters, remember = stats.deltas({}, {"asked": [f"p{i}" for i in range(20)]}, events)
    assert len(counters) <= 3, sorted(counters)
    assert remember == {"answered_in": ["FORM#main"], "accepted_in": ["FORM#main"]}


def test_funnels_count_people_per_campaign_not_per_life():
    states = {"newsletter": {"state": "refused"}}  # refused through campaign c1 already
    profile = {"answered_in": ["CAMPAIGN#c1"]}
    counters, remember = stats.deltas(states, profile, [
        _decision("newsletter", "accepted", "campaign:c2", before="refused")])
    c2 = next(fields for (pk, _), fields in counters.items() if pk == "STATS#CAMPAIGN#c2")
    assert c2["answered"] == 1 and c2["confirmed"] == 1
    again, _ = stats.deltas({"newsletter": {"state": "accepted"}},
                            {"answered_in": ["CAMPAIGN#c1", "CAMPAIGN#c2"],
                             "accepted_in": ["CAMPAIGN#c2"]},
                            [_decision("newsletter", "refused", "campaign:c2", "accepted")])
    c2 = next(fields for (pk, _), fields in again.items() if pk == "STATS#CAMPAIGN#c2")
    assert "answered" not in c2 and "confirmed" not in c2  # the same person, counted once


def test_a_sign_in_link_session_reads_but_never_changes_through_the_api(dash_env, client,
                                                                        mail_sink):
    from chalicelib.cli import main

    confirmed(client, mail_sink, "safe@example.eu")
    token = admin_auth.mint(get_settings(), "olga", 600, use="browser")
    bearer = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    assert client.http.get("/admin/campaigns", headers=bearer).status_code == 200
    erase = client.http.post("/admin/erasures", body='{"email": "safe@example.eu"}',
                             headers=bearer)
    assert erase.status_code == 403 and get_ledger().current(key("safe@example.eu"))[0]
    login = client.http.get(f"/admin/login?{urlencode({'token': token})}")
    assert login.status_code == 303  # the dashboard itself is what the link is for
