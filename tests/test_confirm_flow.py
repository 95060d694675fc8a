"""The confirmation story: a person opens their link, decides per purpose, comes back.

Against DynamoDB Local through Chalice's test client, with the real templates.
"""
from __future__ import annotations

import re
from urllib.parse import urlencode

from chalicelib.proof import chain
from chalicelib.core.clock import parse_iso
from tests.conftest import form_fields

FORM = {"content-type": "application/x-www-form-urlencoded"}
BROWSER = {"user-agent": "Mozilla/5.0 (X11; Linux) TestBrowser/1.0", "accept-language": "en-GB,en;q=0.8"}


def submit(client, token: str, page_html: str, **choices: str):
    fields = form_fields(page_html)
    fields.update({f"decision.{purpose}": value for purpose, value in choices.items()})
    return client.http.post(f"/c/{token}", headers={**FORM, **BROWSER}, body=urlencode(fields))


def test_page_names_controller_and_every_purpose_with_nothing_preselected(client, mint, catalogue):
    issued = mint("ann@example.eu", "newsletter", "events")
    response = client.http.get(f"/c/{issued.token}", headers=BROWSER)
    html = response.body.decode()
    assert response.status_code == 200
    assert catalogue.controller.name in html and catalogue.controller.address in html
    assert catalogue.controller.privacy_policy_url in html
    for purpose in ("newsletter", "events"):
        text = catalogue.get(purpose).text("en")
        assert text.title in html
        assert text.text.split("\n\n")[0] in html
        assert f'name="decision.{purpose}" value="accept"' in html
        assert f'name="decision.{purpose}" value="refuse"' in html
    assert catalogue.get("promotions").text("en").title not in html
    assert "checked" not in re.sub(r"<style>.*?</style>", "", html, flags=re.S)
    assert "<script" not in html
    assert html.count('type="radio"') == 4


def test_security_headers_on_personal_pages(client, mint):
    response = client.http.get(f"/c/{mint().token}")
    headers = response.headers
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "script-src" not in csp
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Frame-Options"] == "DENY"


def test_language_from_accept_language_and_lang_override(client, mint):
    token = mint().token
    french = client.http.get(f"/c/{token}", headers={"accept-language": "fr-CA,fr;q=0.9,en;q=0.5"})
    assert '<html lang="fr">' in french.body.decode()
    assert "Accepter" in french.body.decode() and "Lettre d&#39;information mensuelle" in french.body.decode()
    english = client.http.get(f"/c/{token}?lang=en", headers={"accept-language": "fr"})
    assert '<html lang="en">' in english.body.decode() and "Refuse" in english.body.decode()
    default = client.http.get(f"/c/{token}", headers={"accept-language": "de-DE"})
    assert '<html lang="en">' in default.body.decode()


def test_submitting_records_one_complete_event_per_purpose(client, cli_mint, ledger, catalogue):
    issued = cli_mint("ann@example.eu", "newsletter", "events")
    page = client.http.get(f"/c/{issued.token}", headers=BROWSER).body.decode()
    response = submit(client, issued.token, page, newsletter="accept", events="refuse")
    html = response.body.decode()
    assert response.status_code == 200
    assert "Your choices were recorded on" in html
    assert "Monthly newsletter: Accepted" in html and "Invitations to events: Refused" in html

    events = list(ledger.events(issued.subject))
    assert [event["kind"] for event in events] == ["link_issued", "accepted", "refused"]
    for event, purpose in zip(events[1:], ("newsletter", "events")):
        text = catalogue.get(purpose).text("en")
        assert event["purpose"] == purpose
        assert event["text_sha256"] == text.sha256
        assert event["purpose_version"] == catalogue.get(purpose).version
        assert event["link_id"] == issued.link_id and event["channel"] == "test"
        assert event["ip"] == "127.0.0.1"
        assert event["user_agent"] == BROWSER["user-agent"]
        assert event["accept_language"] == BROWSER["accept-language"]
        assert event["locale"] == "en"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["at"])
        parse_iso(event["at"])
        erased = {k: v for k, v in event.items()
                  if k not in ("ip", "user_agent", "accept_language", "personal_salt")}
        assert chain.event_hash(erased) == event["hash"]  # erasable without breaking the chain
    assert chain.verify_chain(issued.subject, events).ok

    snap = ledger.snapshot(issued.subject)
    assert snap.states["newsletter"]["state"] == "accepted"
    assert snap.states["events"]["state"] == "refused"
    assert snap.states["newsletter"]["sync_status"] == "pending"
    assert snap.states["newsletter"]["event_id"] == events[1]["event_id"]
    text_item = ledger.get(f"TEXT#{events[1]['text_sha256']}", "TEXT")
    assert text_item["text"] == catalogue.get("newsletter").text("en").text


def test_reopening_shows_decisions_and_every_change_is_a_new_event(client, cli_mint, ledger):
    issued = cli_mint("bob@example.eu", "newsletter", "events")
    page = client.http.get(f"/c/{issued.token}").body.decode()
    submit(client, issued.token, page, newsletter="accept")

    again = client.http.get(f"/c/{issued.token}").body.decode()
    assert re.search(r"Your current choice:\s*<strong class=\"accepted\">Accepted</strong>", again)
    assert "You have not decided yet." in again  # events still undecided

    changed = submit(client, issued.token, again, newsletter="refuse").body.decode()
    assert "Monthly newsletter: Withdrawn" in changed
    kinds = [event["kind"] for event in ledger.events(issued.subject)]
    assert kinds == ["link_issued", "accepted", "withdrawn"]

    back = submit(client, issued.token, changed, newsletter="accept").body.decode()
    assert "Monthly newsletter: Accepted" in back
    events = list(ledger.events(issued.subject))
    assert [event["kind"] for event in events] == ["link_issued", "accepted", "withdrawn", "accepted"]
    assert events[2]["previous_state"] == "accepted" and events[3]["previous_state"] == "withdrawn"
    assert chain.verify_chain(issued.subject, events).ok


def test_double_submit_of_the_same_choice_records_nothing_new(client, cli_mint, ledger):
    issued = cli_mint("cat@example.eu", "newsletter")
    page = client.http.get(f"/c/{issued.token}").body.decode()
    submit(client, issued.token, page, newsletter="accept")
    second = submit(client, issued.token, page, newsletter="accept")
    assert second.status_code == 200
    assert "Nothing changed" in second.body.decode()
    assert [e["kind"] for e in ledger.events(issued.subject)] == ["link_issued", "accepted"]


def test_a_new_link_for_the_same_person_renews_the_proof(client, cli_mint, ledger):
    first = cli_mint("dan@example.eu", "newsletter")
    page = client.http.get(f"/c/{first.token}").body.decode()
    submit(client, first.token, page, newsletter="accept")
    second = cli_mint("DAN@example.eu", "newsletter")
    assert second.subject == first.subject
    page = client.http.get(f"/c/{second.token}").body.decode()
    assert "Accepted" in page  # the state is per person, not per link
    submit(client, second.token, page, newsletter="accept")
    events = list(ledger.events(first.subject))
    assert [e["kind"] for e in events] == ["link_issued", "accepted", "link_issued", "accepted"]
    assert events[3]["link_id"] == second.link_id


def test_french_decision_records_the_french_text_version(client, mint, ledger, catalogue):
    issued = mint("eve@example.eu", "newsletter")
    page = client.http.get(f"/c/{issued.token}?lang=fr").body.decode()
    response = submit(client, issued.token, page, newsletter="accept")
    assert "Vos choix ont été enregistrés le" in response.body.decode()
    event = list(ledger.events(issued.subject))[-1]
    assert event["locale"] == "fr"
    assert event["text_sha256"] == catalogue.get("newsletter").text("fr").sha256


def test_profile_holds_the_normalised_address_but_keys_and_events_do_not(client, mint, table_items):
    issued = mint("Zoë.Martin@EXAMPLE.eu", "newsletter")
    items = table_items()
    profile = [item for item in items if item["sk"] == "PROFILE"]
    # the mailbox name as typed (mail goes there), the domain normalised; the key folds case
    assert profile[0]["email"] == "Zoë.Martin@example.eu"
    assert issued.subject == mint("zoë.martin@example.eu", "newsletter").subject
    for item in items:
        if item["sk"] != "PROFILE":
            assert "example.eu" not in repr(item).lower()
    assert "example.eu" not in issued.token
