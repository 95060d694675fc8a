"""Signup forms end to end: form page, post, mail in a real SMTP sink, link, decision.

Everything runs against DynamoDB Local, the real templates and a real SMTP server;
each mail is parsed as a mail client would and its links are followed.
"""
from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

import pytest

from chalicelib.core.services import get_ledger, get_postman
from chalicelib.core.settings import get_settings
from chalicelib.consent.subjects import subject_key
from tests.conftest import PEPPER, SHOP, form_fields
from tests.support.signup import decide, links_in, post_form, sign_up, signup_fields
from tests.support.stream import stream_records

FORM = "application/x-www-form-urlencoded"


def post_json(client: Any, form_id: str, data: Any, **headers: str) -> Any:
    body = data if isinstance(data, (str, bytes)) else json.dumps(data)
    return client.http.post(f"/signup/{form_id}", body=body,
                            headers={"Content-Type": "application/json", **headers})


def events(email: str, kind: str | None = None) -> list[dict[str, Any]]:
    subject = subject_key(PEPPER, email)
    found = list(get_ledger().events(subject))
    return [e for e in found if kind is None or e["kind"] == kind]


def verified(email: str) -> bool:
    """The whole-subject audit (`chain verify`) passes."""
    from chalicelib.proof import audit

    report = audit.verify_subject(get_ledger(), subject_key(PEPPER, email))
    assert report.ok, report
    return True


# -- the form page --------------------------------------------------------------------

def test_form_page_is_framable_only_by_its_origins(mail_env, client):
    response = client.http.get("/signup/website")
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert f"frame-ancestors {SHOP}" in csp
    assert "X-Frame-Options" not in response.headers
    body = response.body.decode()
    assert body.count('type="checkbox"') == 3 and " checked" not in body
    assert 'name="fax_number"' in body and 'tabindex="-1"' in body
    # every other page still refuses to be framed
    other = client.http.get("/c/whatever")
    assert "frame-ancestors 'none'" in other.headers["Content-Security-Policy"]
    assert other.headers["X-Frame-Options"] == "DENY"


def test_form_page_in_french_and_unknown_form(mail_env, client):
    french = client.http.get("/signup/website?lang=fr")
    assert 'lang="fr"' in french.body.decode()
    assert "Lettre d&#39;information mensuelle" in french.body.decode()
    missing = client.http.get("/signup/nope")
    assert missing.status_code == 404
    assert "This form does not exist" in missing.body.decode()


# -- the whole loop -------------------------------------------------------------------

def test_signup_mail_link_decision(mail_env, client, mail_sink, table_items):
    response = sign_up(client, "Ann@Example.EU", name="Ann")
    assert "Check your inbox" in response.body.decode()
    [mail] = mail_sink.wait_for("ann@example.eu")
    message = mail.message
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"].startswith("<http://testserver/u/")
    assert "Example Outdoor SAS" in message["Subject"]
    assert "Hello Ann," in mail.text() and "Monthly newsletter" in mail.text()
    assert "Offers and promotions" not in mail.text()
    assert "privacy@example-outdoor.eu" in mail.text() and mail.html()
    paths = links_in(mail)
    assert message["List-Unsubscribe"] == f"<http://testserver{paths['withdraw']}>"

    requested = events("ann@example.eu", "requested")
    assert [e["purpose"] for e in requested] == ["newsletter", "events"]
    assert all(e["form_id"] == "website" and e["text_shown"] == "verified" for e in requested)
    assert all(e["personal_hash"] for e in requested)
    [sent] = events("ann@example.eu", "mail_sent")
    assert sent["message_id"] == message["Message-ID"]
    template = [i for i in table_items() if i["pk"] == f"MAILTPL#{sent['template_version']}"]
    assert template and "\u27e6confirm_url\u27e7" in template[0]["text"]
    assert not [i for i in table_items() if i["pk"].startswith("MAIL#")], "outbox emptied"

    result = decide(client, paths["confirm"], newsletter="accept", events="refuse")
    assert result.status_code == 200
    states = {e["purpose"]: e["kind"] for e in events("ann@example.eu")
              if e["kind"] in ("accepted", "refused")}
    assert states == {"newsletter": "accepted", "events": "refused"}
    assert verified("ann@example.eu")


def test_json_signup_from_an_allowed_origin(mail_env, client, mail_sink):
    meta = client.http.get("/signup/website/form.json?lang=fr", headers={"Origin": SHOP})
    assert meta.status_code == 200
    assert meta.headers["Access-Control-Allow-Origin"] == SHOP
    data = json.loads(meta.body)
    assert [p["id"] for p in data["purposes"]] == ["newsletter", "promotions", "events"]
    response = post_json(client, "website", {
        "email": "bob@example.eu", "purposes": ["promotions"], "started": data["started"],
        "texts": {p["id"]: p["sha256"] for p in data["purposes"]}, "locale": "fr",
        "page_url": f"{SHOP}/news?utm=secret#x"}, Origin=SHOP)
    assert response.status_code == 200, response.body
    assert response.headers["Access-Control-Allow-Origin"] == SHOP
    assert json.loads(response.body)["status"] == "ok"
    [mail] = mail_sink.wait_for("bob@example.eu")
    assert "Offres et promotions" in mail.text()
    [requested] = events("bob@example.eu", "requested")
    assert requested["page_url"] == f"{SHOP}/news" and requested["locale"] == "fr"


def test_preflight_only_for_allowed_origins(mail_env, client):
    good = client.http.request("OPTIONS", "/signup/website", headers={
        "Origin": SHOP, "Access-Control-Request-Method": "POST"})
    assert good.status_code == 204
    assert good.headers["Access-Control-Allow-Origin"] == SHOP
    bad = client.http.request("OPTIONS", "/signup/website", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert bad.status_code == 403 and "Access-Control-Allow-Origin" not in bad.headers


def test_post_from_another_website_is_refused(mail_env, client, table_items):
    before = table_items()
    fields = signup_fields(client)
    response = post_form(client, "website", fields, Origin="https://evil.example")
    assert response.status_code == 403
    as_json = post_json(client, "website", {"email": "a@b.eu", "purposes": ["newsletter"]},
                        Origin="https://evil.example")
    assert as_json.status_code == 403 and json.loads(as_json.body)["error"] == "cross_site"
    assert table_items() == before


# -- the same answer for everyone ------------------------------------------------------

def _answer(response: Any) -> str:
    return response.body.decode()


def test_same_answer_whether_new_pending_confirmed_or_bot(mail_env, client, mail_sink):
    new = _answer(sign_up(client, "new@example.eu"))
    pending = _answer(sign_up(client, "new@example.eu"))
    # the first link was superseded by the second: use the newest mail
    latest = mail_sink.wait_for("new@example.eu", count=2)[-1]
    decide(client, links_in(latest)["confirm"], newsletter="accept", events="accept")
    confirmed = _answer(sign_up(client, "new@example.eu", purposes=("newsletter",)))
    bot = _answer(sign_up(client, "bot@example.eu", fax_number="http://spam"))
    assert new == pending == confirmed == bot


def test_honeypot_and_forged_token_record_nothing(mail_env, client, mail_sink, table_items):
    before = table_items()
    sign_up(client, "bot@example.eu", fax_number="buy now")
    sign_up(client, "bot2@example.eu", started="forged.token.value")
    assert table_items() == before
    assert not mail_sink.messages


def test_too_fast_and_tokenless_posts_to_a_strict_form_are_dropped(mail_env, client,
                                                                   mail_sink, table_items):
    before = table_items()
    fields = signup_fields(client, "strict", "fast@example.eu", ("newsletter",))
    assert post_form(client, "strict", fields).status_code == 200  # 30 s minimum: too fast
    tokenless = {"email": "plain@example.eu", "purpose.newsletter": "yes"}
    assert post_form(client, "strict", tokenless).status_code == 200
    assert table_items() == before and not mail_sink.messages


def test_plain_html_post_without_token_is_accepted_and_redirects(mail_env, client, mail_sink):
    response = post_form(client, "redirecting", {"email": "plain@example.eu",
                                                 "purpose.newsletter": "yes"},
                         Origin=SHOP, Referer=f"{SHOP}/signup?email=x")
    assert response.status_code == 303
    assert response.headers["Location"] == f"{SHOP}/thanks"
    mail_sink.wait_for("plain@example.eu")
    [requested] = events("plain@example.eu", "requested")
    assert requested["page_url"] == f"{SHOP}/signup"
    assert requested["text_shown"] == "unverified"


# -- never downgrade --------------------------------------------------------------------

def test_resubmitting_never_downgrades_or_unrefuses(mail_env, client, mail_sink):
    sign_up(client, "kim@example.eu", purposes=("newsletter", "events"), name="Kim")
    [mail] = mail_sink.wait_for("kim@example.eu")
    decide(client, links_in(mail)["confirm"], newsletter="accept", events="refuse")
    mail_sink.clear()
    sign_up(client, "kim@example.eu", purposes=("newsletter", "events"), name="Mallory")
    [again] = mail_sink.wait_for("kim@example.eu")
    assert "Hello Kim," in again.text(), "a re-submission cannot rename the person"
    assert "Monthly newsletter" not in again.text(), "only what is not accepted is asked"
    _, states = get_ledger().current(subject_key(PEPPER, "kim@example.eu"))
    assert states["newsletter"]["state"] == "accepted"
    assert states["events"]["state"] == "refused"
    assert verified("kim@example.eu"), "requests after decisions keep the audit green"


def test_confirmed_address_gets_no_mail_unless_configured(mail_env, client, mail_sink,
                                                          monkeypatch):
    sign_up(client, "joy@example.eu", purposes=("newsletter",))
    [mail] = mail_sink.wait_for("joy@example.eu")
    decide(client, links_in(mail)["confirm"], newsletter="accept")
    mail_sink.clear()
    sign_up(client, "joy@example.eu", purposes=("newsletter",))
    assert not mail_sink.messages
    assert [e["purpose"] for e in events("joy@example.eu", "requested")] == ["newsletter"] * 2
    monkeypatch.setenv("MAIL_ALREADY_SUBSCRIBED", "true")
    sign_up(client, "joy@example.eu", purposes=("newsletter",))
    [already] = mail_sink.wait_for("joy@example.eu")
    assert "already" in already.message["Subject"]


# -- throttles ---------------------------------------------------------------------------

def test_address_throttle_stops_mail_bombing(mail_env, client, mail_sink):
    for _ in range(5):
        sign_up(client, "victim@example.eu")
    assert len(mail_sink.messages) == 3
    assert len(events("victim@example.eu", "mail_sent")) == 3


def test_ip_throttle(mail_env, client, mail_sink, monkeypatch):
    monkeypatch.setenv("THROTTLE_SIGNUPS_PER_IP", "2/1h")
    for index in range(4):
        sign_up(client, f"p{index}@example.eu")
    assert len(mail_sink.messages) == 2


# -- bad bodies --------------------------------------------------------------------------

@pytest.mark.parametrize("fields, status, reason", [
    ({"purpose.newsletter": "yes"}, 400, "valid e-mail address"),
    ({"email": "not-an-address", "purpose.newsletter": "yes"}, 400, "valid e-mail address"),
    ({"email": "a@example.eu"}, 400, "Tick at least one"),
    ({"email": "a@example.eu", "purpose.lottery": "yes"}, 400, "does not offer"),
])
def test_bad_form_posts_show_the_form_again(mail_env, client, table_items, fields, status,
                                            reason):
    before = table_items()
    response = post_form(client, "website", fields)
    assert response.status_code == status
    body = response.body.decode()
    assert reason in body and 'type="checkbox"' in body
    assert table_items() == before


@pytest.mark.parametrize("body, status, error", [
    ({"purposes": ["newsletter"]}, 400, "invalid_email"),
    ({"email": "x@example.eu", "purposes": []}, 400, "no_purpose"),
    ({"email": "x@example.eu", "purposes": ["lottery"]}, 400, "bad_input"),
    ({"email": "x@example.eu", "purposes": "newsletter"}, 400, "bad_input"),
    ("{not json", 400, "bad_input"),
    ("[1, 2]", 400, "bad_input"),
    ({"email": "x@example.eu", "purposes": ["newsletter"], "name": "n" * 5000}, 400, "bad_input"),
])
def test_bad_json_posts_get_a_json_reason(mail_env, client, table_items, body, status, error):
    before = table_items()
    response = post_json(client, "website", body)
    assert response.status_code == status
    answer = json.loads(response.body)
    assert answer["error"] == error and answer["message"]
    assert table_items() == before


def test_unknown_form_wrong_type_and_oversize(mail_env, client, table_items):
    before = table_items()
    unknown = post_json(client, "nope", {"email": "x@example.eu", "purposes": ["newsletter"]})
    assert unknown.status_code == 400 and json.loads(unknown.body)["error"] == "unknown_form"
    unknown_html = post_form(client, "nope", {"email": "x@example.eu"})
    assert unknown_html.status_code == 400 and "does not exist" in unknown_html.body.decode()
    wrong = client.http.post("/signup/website", body="email=x", headers={"Content-Type": "text/plain"})
    assert wrong.status_code == 415
    huge = post_form(client, "website", {"email": "x@example.eu", "pad": "x" * 20000})
    assert huge.status_code == 413
    huge_json = post_json(client, "website", {"email": "x@example.eu", "pad": "x" * 20000})
    assert huge_json.status_code == 413 and json.loads(huge_json.body)["error"] == "payload_too_large"
    assert table_items() == before


# -- mail failures are recorded and retried ---------------------------------------------

def test_mail_failure_keeps_the_request_and_the_sweep_retries(mail_env, client, mail_sink,
                                                              table_items):
    from chalicelib.mail import outbox

    mail_sink.set_failure("tempfail")
    sign_up(client, "late@example.eu")
    assert not mail_sink.messages
    assert len(events("late@example.eu", "requested")) == 2
    [failed] = events("late@example.eu", "mail_failed")
    assert failed["will_retry"] and "451" in failed["error"]
    [queued] = [i for i in table_items() if i["pk"].startswith("MAIL#")]
    assert queued["status"] == "queued" and queued["attempts"] == 1
    assert not list(outbox.due_mail_ids(get_ledger())), "not due before its backoff"
    mail_sink.set_failure(None)
    results = outbox.sweep(get_postman(), include_later=True)
    assert [r.status for r in results] == ["sent"]
    [mail] = mail_sink.wait_for("late@example.eu")
    assert links_in(mail)["confirm"]
    assert not [i for i in table_items() if i["pk"].startswith("MAIL#")]
    assert len(events("late@example.eu", "mail_sent")) == 1


def test_permanent_failure_is_recorded_and_not_retried(mail_env, client, mail_sink, table_items):
    from chalicelib.mail import outbox

    mail_sink.set_failure("permfail")
    sign_up(client, "gone@example.eu")
    [failed] = events("gone@example.eu", "mail_failed")
    assert failed["permanent"] and not failed["will_retry"]
    [item] = [i for i in table_items() if i["pk"].startswith("MAIL#")]
    assert item["status"] == "failed" and "sync_due" not in item
    assert outbox.sweep(get_postman(), include_later=True) == []


def test_transport_none_records_the_request_without_mail(mail_env, client, mail_sink,
                                                         monkeypatch, table_items):
    monkeypatch.setenv("MAIL_TRANSPORT", "none")
    sign_up(client, "quiet@example.eu")
    assert len(events("quiet@example.eu", "requested")) == 2
    assert not mail_sink.messages
    assert not [i for i in table_items() if i["pk"].startswith("MAIL#")]


# -- newer links, expired links, "send me a new link" ------------------------------------

def test_a_new_request_supersedes_the_older_link(mail_env, client, mail_sink):
    sign_up(client, "sam@example.eu")
    sign_up(client, "sam@example.eu")
    first, second = mail_sink.wait_for("sam@example.eu", count=2)
    old = client.http.get(links_in(first)["confirm"])
    assert old.status_code == 410
    assert "A newer link was sent to you" in old.body.decode()
    assert "Send me a new link" in old.body.decode()
    assert client.http.get(links_in(second)["confirm"]).status_code == 200
    [issued] = [e for e in events("sam@example.eu", "link_issued")
                if e["link_kind"] == "confirm" and e.get("supersedes")]
    assert len(issued["supersedes"]) == 1


def test_expired_link_offers_a_new_one(mail_env, client, mail_sink, monkeypatch):
    sign_up(client, "old@example.eu")
    [mail] = mail_sink.wait_for("old@example.eu")
    path = links_in(mail)["confirm"]
    monkeypatch.setenv("LINK_MAX_AGE_CONFIRM", "1s")
    import time
    time.sleep(2.1)
    expired = client.http.get(path)
    assert expired.status_code == 410
    fields = form_fields(expired.body.decode())
    action = re.search(r'<form method="post" action="([^"]+)"', expired.body.decode()).group(1)
    assert action.endswith("/renew")
    monkeypatch.setenv("LINK_MAX_AGE_CONFIRM", "30d")
    mail_sink.clear()
    renewed = client.http.post(f"/c/{action}", body=urlencode(fields),
                               headers={"Content-Type": FORM})
    assert renewed.status_code == 200, renewed.body
    assert "A new link is on its way" in renewed.body.decode()
    [fresh] = mail_sink.wait_for("old@example.eu")
    assert client.http.get(links_in(fresh)["confirm"]).status_code == 200
    assert client.http.get(path).status_code == 410  # now superseded
    forged = client.http.post(f"/c/{action}", body=urlencode({**fields, "form_token": "x"}),
                              headers={"Content-Type": FORM})
    assert forged.status_code == 400


# -- one-click withdrawal from the mail ---------------------------------------------------

def test_withdraw_link_get_shows_a_button_post_withdraws(mail_env, client, mail_sink):
    sign_up(client, "wd@example.eu", purposes=("newsletter",))
    [mail] = mail_sink.wait_for("wd@example.eu")
    paths = links_in(mail)
    decide(client, paths["confirm"], newsletter="accept")
    page = client.http.get(paths["withdraw"])
    assert page.status_code == 200 and "Withdraw my consent" in page.body.decode()
    assert not events("wd@example.eu", "withdrawn"), "GET never withdraws"
    one_click = client.http.post(paths["withdraw"], body="List-Unsubscribe=One-Click",
                                 headers={"Content-Type": FORM})
    assert one_click.status_code == 200
    [withdrawn] = events("wd@example.eu", "withdrawn")
    assert withdrawn["method"] == "one_click"
    _, states = get_ledger().current(subject_key(PEPPER, "wd@example.eu"))
    assert states["newsletter"]["state"] == "withdrawn"
    assert states["newsletter"]["sync_status"] == "pending"
    again = client.http.post(paths["withdraw"], body="List-Unsubscribe=One-Click",
                             headers={"Content-Type": FORM})
    assert again.status_code == 200 and len(events("wd@example.eu", "withdrawn")) == 1


def test_pending_request_expires_decided_person_stays(mail_env, client, mail_sink):
    sign_up(client, "ttl@example.eu", purposes=("newsletter",))
    subject = subject_key(PEPPER, "ttl@example.eu")
    profile, _ = get_ledger().current(subject)
    assert profile["expires_at"] > 0, "a never-confirmed address disappears by itself"
    [mail] = mail_sink.wait_for("ttl@example.eu")
    decide(client, links_in(mail)["confirm"], newsletter="refuse")
    profile, _ = get_ledger().current(subject)
    assert "expires_at" not in profile
    assert get_settings().mail.transport == "smtp"


def test_confirmation_page_offers_the_forms_continue_link(mail_env, client, mail_sink):
    path = __import__("pathlib").Path(mail_env["CONSENT_CATALOGUE"])
    path.write_text(path.read_text().replace(
        'redirect_after_submit = "https://shop.example/thanks"',
        'redirect_after_submit = "https://shop.example/thanks"\n'
        'redirect_after_confirm = "https://shop.example/welcome"'))
    post_form(client, "redirecting", {"email": "cont@example.eu", "purpose.newsletter": "yes"})
    [mail] = mail_sink.wait_for("cont@example.eu")
    result = decide(client, links_in(mail)["confirm"], newsletter="accept")
    assert 'href="https://shop.example/welcome"' in result.body.decode()
    assert "Continue to the website" in result.body.decode()


def test_audit_catches_an_altered_mail_template(mail_env, client, mail_sink, ledger):
    from chalicelib.proof import audit
    from chalicelib.store.ledger import to_item

    sign_up(client, "tpl@example.eu", purposes=("newsletter",))
    [sent] = events("tpl@example.eu", "mail_sent")
    key = to_item({"pk": f"MAILTPL#{sent['template_version']}", "sk": "MAILTPL"})
    ledger.client.update_item(TableName=ledger.table, Key=key,
                              UpdateExpression="SET #t = :t", ExpressionAttributeNames={"#t": "text"},
                              ExpressionAttributeValues={":t": {"S": "We never asked."}})
    report = audit.verify_subject(ledger, subject_key(PEPPER, "tpl@example.eu"))
    assert not report.ok and "mail template" in report.reason


def test_every_signup_answer_takes_the_same_minimum_time(mail_env, client, mail_sink,
                                                         monkeypatch):
    """Timing must not tell a new address (a mail is sent) from a dropped bot (nothing)."""
    import time

    monkeypatch.setenv("SIGNUP_MIN_RESPONSE", "0.5")
    monkeypatch.setenv("MAIL_DELIVERY", "queued")  # the default: no mail inside the request
    fields = signup_fields(client, email="timed@example.eu")
    bot = {**signup_fields(client, email="bot@example.eu"), "fax_number": "x"}
    durations = []
    for body in (fields, bot):
        start = time.monotonic()
        assert post_form(client, "website", body).status_code == 200
        durations.append(time.monotonic() - start)
    # Both answers are held to the floor (what they cost beyond it is measured in
    # bench/, not asserted here).
    assert all(d >= 0.5 for d in durations), durations


@pytest.mark.stream
def test_queued_delivery_sends_from_the_stream_not_the_request(mail_env, client, mail_sink,
                                                               monkeypatch):
    """The default: the answer never waits for the mail; the table's stream sends it."""
    monkeypatch.setenv("MAIL_DELIVERY", "queued")
    sign_up(client, "queued@example.eu")
    assert not mail_sink.messages, "nothing is sent inside the request"
    result = client.lambda_.invoke("on_table_change", {"Records": stream_records(mail_env)})
    assert result.payload["mailed"] == 1
    [mail] = mail_sink.wait_for("queued@example.eu")
    assert links_in(mail)["confirm"]
    again = client.lambda_.invoke("on_table_change", {"Records": stream_records(mail_env)})
    assert again.payload["mailed"] == 0 and len(mail_sink.messages) == 1


def test_a_mail_whose_link_was_replaced_is_not_sent_late(mail_env, client, mail_sink):
    from chalicelib.mail import outbox

    mail_sink.set_failure("tempfail")
    sign_up(client, "stale@example.eu")  # queued for a retry
    mail_sink.set_failure(None)
    sign_up(client, "stale@example.eu")  # a newer link, mailed at once
    [fresh] = mail_sink.wait_for("stale@example.eu")
    results = outbox.sweep(get_postman(), include_later=True)
    assert [r.status for r in results] == ["skipped"]
    assert len(mail_sink.messages) == 1 and client.http.get(links_in(fresh)["confirm"]).status_code == 200


def test_a_null_origin_from_another_site_is_refused(mail_env, client, table_items):
    before = table_items()
    fields = signup_fields(client, email="null@example.eu")
    refused = post_form(client, "website", fields, Origin="null", **{"Sec-Fetch-Site": "cross-site"})
    assert refused.status_code == 403
    assert table_items() == before
    ours = post_form(client, "website", fields, Origin="null", **{"Sec-Fetch-Site": "same-origin"})
    assert ours.status_code == 200


@pytest.mark.parametrize("typed, delivered", [
    ("ann@faß.de", "ann@xn--fa-hia.de"),       # not fass.de: another domain
    ("Ann@Example.EU", "Ann@example.eu"),       # the mailbox name as typed
    ("ann@ς.gr", "ann@xn--3xa.gr"),             # not σ.gr
])
def test_the_mail_goes_to_the_address_typed_not_a_folded_one(mail_env, client, mail_sink,
                                                              typed, delivered):
    sign_up(client, typed, purposes=("newsletter",))
    [mail] = mail_sink.wait_for()
    assert mail.rcpt_tos == (delivered,)
    from chalicelib.consent.subjects import normalise_email

    assert normalise_email("ann@faß.de") != normalise_email("ann@fass.de")


def test_one_click_withdrawal_as_multipart_form_data(mail_env, client, mail_sink):
    """RFC 8058 prefers multipart/form-data for the one-click POST."""
    sign_up(client, "multi@example.eu", purposes=("newsletter",))
    [mail] = mail_sink.wait_for("multi@example.eu")
    body = ("--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
            "One-Click\r\n--XyZ--\r\n")
    response = client.http.post(links_in(mail)["withdraw"], body=body,
                                headers={"Content-Type": "multipart/form-data; boundary=XyZ"})
    assert response.status_code == 200
    [refused] = events("multi@example.eu", "refused")
    assert refused["method"] == "one_click"


@pytest.mark.parametrize("name", ["Zoë", "Jean-Luc", "O'Brien", "Ana María", "Nguyễn", "李",
                                  "J. R."])
def test_real_first_names_are_accepted(mail_env, client, mail_sink, name):
    sign_up(client, "named@example.eu", purposes=("newsletter",), name=name)
    [mail] = mail_sink.wait_for("named@example.eu")
    assert f"Hello {name}," in mail.text()


@pytest.mark.parametrize("name", [
    "Ann.\n\nYour parcel is held. Pay at https://evil.example/pay",
    "Visit evil.example now", "R2D2", "a" * 61, "<b>Bob</b>"])
def test_a_name_field_cannot_carry_a_message(mail_env, client, mail_sink, table_items, name):
    before = table_items()
    response = post_form(client, "website", signup_fields(client, email="n@example.eu",
                                                          name=name))
    assert response.status_code == 400
    assert "just your first name" in response.body.decode()
    assert table_items() == before and not mail_sink.messages


def test_a_stranger_cannot_name_a_confirmed_person(mail_env, client, mail_sink):
    sign_up(client, "anon@example.eu", purposes=("newsletter",))
    [mail] = mail_sink.wait_for("anon@example.eu")
    decide(client, links_in(mail)["confirm"], newsletter="accept")
    sign_up(client, "anon@example.eu", purposes=("events",), name="Mallory")
    profile, _ = get_ledger().current(subject_key(PEPPER, "anon@example.eu"))
    assert "name" not in profile


def test_no_new_link_is_offered_once_the_record_is_gone(mail_env, client, mail_sink, ledger,
                                                        monkeypatch):
    import time

    from chalicelib.store.ledger import to_item

    sign_up(client, "gone@example.eu", purposes=("newsletter",))
    [mail] = mail_sink.wait_for("gone@example.eu")
    path = links_in(mail)["confirm"]
    link_id = events("gone@example.eu", "requested")[0]["link_id"]
    ledger.client.delete_item(TableName=ledger.table,
                              Key=to_item({"pk": f"LINK#{link_id}", "sk": "LINK"}))
    monkeypatch.setenv("LINK_MAX_AGE_CONFIRM", "1s")
    time.sleep(1.2)
    page = client.http.get(path)
    assert page.status_code == 410 and "Send me a new link" not in page.body.decode()
    assert "privacy@example-outdoor.eu" in page.body.decode()
