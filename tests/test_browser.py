"""The confirmation page in a real browser: Debian's Chromium driven by Playwright.

A person opens their link, decides per purpose by clicking the visible labels (the
radios themselves are visually hidden), saves, and sees what was recorded; the
ledger holds the decisions with the browser's user agent. Along the way the browser
must report no console error (Chromium logs every Content-Security-Policy violation
there) and must never request anything outside the app on the loopback address.

Chromium is the Debian package at /usr/bin/chromium (``make test`` installs it via
scripts/ensure-chromium); a missing browser fails these tests, it does not skip them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import MISSING_CHROMIUM, Watch

pytestmark = pytest.mark.browser

SCREENSHOT = Path("/tmp/optinproof-confirm.png")
SCREENSHOT_FORM = Path("/tmp/optinproof-confirm-form.png")
INK = "rgb(27, 27, 31)"  # --ink in templates/static/page.css: a checked choice's label


def _opened(page: tuple[Any, Watch] | None) -> tuple[Any, Watch]:
    """The page and its watch; a missing Chromium fails the test (it is not skipped)."""
    if page is None:
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    return page


def _purpose(tab: Any, catalogue: Any, purpose: str, locale: str) -> Any:
    """The fieldset of a purpose, found by its accessible name (the legend, i.e. the title)."""
    return tab.get_by_role("group", name=catalogue.get(purpose).text(locale).title)


def _label_background(label: Any) -> str:
    return label.evaluate("element => getComputedStyle(element).backgroundColor")


def test_person_accepts_one_purpose_and_refuses_another(page, live_server, cli_mint, ledger,
                                                        catalogue):
    from playwright.sync_api import expect

    tab, watch = _opened(page)
    issued = cli_mint("ann@example.eu", "newsletter", "events")
    response = tab.goto(f"{live_server}/c/{issued.token}")
    assert response is not None and response.status == 200
    assert tab.locator("html").get_attribute("lang") == "en"
    expect(tab.get_by_role("heading", level=1)).to_have_text("Your consent choices")

    radios = tab.get_by_role("radio")
    expect(radios).to_have_count(4)
    for index in range(4):
        expect(radios.nth(index)).not_to_be_checked()

    newsletter = _purpose(tab, catalogue, "newsletter", "en")
    events = _purpose(tab, catalogue, "events", "en")
    expect(newsletter).to_contain_text("You have not decided yet.")
    # Click the visible labels, as a person does: the radios are visually hidden.
    newsletter.get_by_text("Accept", exact=True).click()
    events.get_by_text("Refuse", exact=True).click()
    expect(newsletter.get_by_label("Accept")).to_be_checked()
    expect(newsletter.get_by_role("radio", name="Refuse")).not_to_be_checked()
    expect(events.get_by_label("Refuse")).to_be_checked()
    expect(events.get_by_role("radio", name="Accept")).not_to_be_checked()
    # The inline stylesheet applied (CSP allows it by hash): a checked choice is inked.
    assert _label_background(newsletter.get_by_text("Accept", exact=True)) == INK
    assert _label_background(newsletter.get_by_text("Refuse", exact=True)) != INK
    tab.screenshot(path=str(SCREENSHOT_FORM), full_page=True)

    user_agent = tab.evaluate("navigator.userAgent")
    with tab.expect_response(lambda r: r.request.method == "POST") as posted:
        tab.get_by_role("button", name="Save my choices").click()
    assert posted.value.status == 200
    notice = tab.get_by_role("status")
    expect(notice).to_contain_text("Your choices were recorded on")
    expect(notice).to_contain_text(f"{catalogue.get('newsletter').text('en').title}: Accepted")
    expect(notice).to_contain_text(f"{catalogue.get('events').text('en').title}: Refused")
    expect(newsletter).to_contain_text("Your current choice: Accepted")
    expect(events).to_contain_text("Your current choice: Refused")
    tab.screenshot(path=str(SCREENSHOT), full_page=True)

    recorded = list(ledger.events(issued.subject))
    assert [(e["kind"], e.get("purpose")) for e in recorded] == [
        ("link_issued", None), ("accepted", "newsletter"), ("refused", "events")]
    for event in recorded[1:]:
        assert event["user_agent"] == user_agent
        assert "Chrome/" in event["user_agent"]
        assert event["ip"] == "127.0.0.1"
        assert event["locale"] == "en" and event["link_id"] == issued.link_id
        assert event["text_sha256"] == catalogue.get(event["purpose"]).text("en").sha256

    assert [m for m, _ in watch.requests if m == "POST"] == ["POST"]
    watch.assert_clean()


def test_french_page_and_a_decision_in_french(page, live_server, mint, ledger, catalogue):
    from playwright.sync_api import expect

    tab, watch = _opened(page)
    issued = mint("bea@example.eu", "newsletter", "events")
    response = tab.goto(f"{live_server}/c/{issued.token}?lang=fr")
    assert response is not None and response.status == 200
    assert tab.locator("html").get_attribute("lang") == "fr"
    expect(tab.get_by_role("heading", level=1)).to_have_text("Vos choix de consentement")
    expect(tab.get_by_role("radio", name="Accepter", exact=True)).to_have_count(2)
    expect(tab.get_by_role("radio", name="Refuser", exact=True)).to_have_count(2)
    expect(tab.get_by_role("radio", name="Accept", exact=True)).to_have_count(0)
    newsletter = _purpose(tab, catalogue, "newsletter", "fr")
    expect(newsletter).to_be_visible()
    expect(_purpose(tab, catalogue, "events", "fr")).to_be_visible()

    newsletter.get_by_text("Refuser", exact=True).click()
    expect(newsletter.get_by_label("Refuser")).to_be_checked()
    tab.get_by_role("button", name="Enregistrer mes choix").click()
    expect(tab.get_by_role("status")).to_contain_text("Vos choix ont été enregistrés le")
    expect(tab.get_by_role("status")).to_contain_text(
        f"{catalogue.get('newsletter').text('fr').title}: Refusé")
    assert tab.locator("html").get_attribute("lang") == "fr"

    decided = [e for e in ledger.events(issued.subject) if e["kind"] != "link_issued"]
    assert [(e["kind"], e["purpose"], e["locale"]) for e in decided] == \
        [("refused", "newsletter", "fr")]
    assert decided[0]["text_sha256"] == catalogue.get("newsletter").text("fr").sha256
    watch.assert_clean()


def _focused(tab: Any) -> dict[str, str]:
    return tab.evaluate("""() => {
        const e = document.activeElement;
        return {tag: e.tagName.toLowerCase(), type: e.type || '', name: e.name || '',
                value: e.value || '', text: (e.textContent || '').trim()};
    }""")


def _tab_until(tab: Any, wanted: dict[str, str], limit: int = 15) -> list[dict[str, str]]:
    """Press Tab until the focused element matches ``wanted``; the focus path so far."""
    path = []
    for _ in range(limit):
        tab.keyboard.press("Tab")
        path.append(_focused(tab))
        if all(path[-1].get(key) == value for key, value in wanted.items()):
            return path
    raise AssertionError(f"Tab never reached {wanted}; focus went through {path}")


def test_keyboard_alone_reaches_every_choice_and_saves(page, live_server, mint, ledger):
    from playwright.sync_api import expect

    tab, watch = _opened(page)
    issued = mint("cy@example.eu", "newsletter", "events")
    tab.goto(f"{live_server}/c/{issued.token}")

    path = _tab_until(tab, {"type": "radio", "name": "decision.newsletter"})
    assert path[0]["tag"] == "a" and path[0]["text"] == "Skip to content"
    newsletter = tab.get_by_role("group", name="Monthly newsletter")
    # The radio is visually hidden: its label must show the keyboard focus instead.
    outline = newsletter.get_by_text("Accept", exact=True).evaluate(
        "element => getComputedStyle(element).outlineStyle")
    assert outline == "solid", "the focused choice has no visible focus outline"
    tab.keyboard.press("Space")  # first radio of the group: Accept
    expect(newsletter.get_by_label("Accept")).to_be_checked()

    _tab_until(tab, {"type": "radio", "name": "decision.events"}, limit=2)
    tab.keyboard.press("Space")
    tab.keyboard.press("ArrowRight")  # refusing is one key away
    expect(tab.get_by_role("group", name="Invitations to events").get_by_label("Refuse")).to_be_checked()

    button = _tab_until(tab, {"tag": "button"}, limit=2)[-1]
    assert button["type"] == "submit" and button["text"] == "Save my choices"
    tab.keyboard.press("Enter")
    expect(tab.get_by_role("status")).to_contain_text("Your choices were recorded on")
    kinds = sorted((e["kind"], e["purpose"]) for e in ledger.events(issued.subject)
                   if e["kind"] != "link_issued")
    assert kinds == [("accepted", "newsletter"), ("refused", "events")]
    watch.assert_clean()
