"""Pages that hold everywhere, in real Chromium: a re-opened confirmation page shows the
recorded choice as the selected button, and the signup form names every mistake at once,
each next to its field.

(The 390 px width and doubled full stops are measured on every page by the axe audit in
tests/test_browser_e2e.py; the dashboard's layout by its dashboard test.)
"""
from __future__ import annotations

import pytest

from chalicelib.core.services import get_ledger
from tests.support.browser import MISSING_CHROMIUM

pytestmark = pytest.mark.browser


def _decisions(subject: str) -> list[tuple[str, str]]:
    return [(e["kind"], e["purpose"]) for e in get_ledger().events(subject)
            if e["kind"] in ("accepted", "refused", "withdrawn")]


def test_a_reopened_confirmation_page_shows_the_recorded_choice_selected(page, live_server,
                                                                        mint):
    from playwright.sync_api import expect

    if page is None:
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    tab_, watch = page
    issued = mint("rio@example.eu", "newsletter", "promotions", "events")
    link = f"{live_server}/c/{issued.token}"
    tab_.goto(link)
    newsletter = tab_.get_by_role("group", name="Monthly newsletter")
    promotions = tab_.get_by_role("group", name="Offers and promotions")
    events = tab_.get_by_role("group", name="Invitations to events")
    for group in (newsletter, promotions, events):  # nothing chosen in advance
        for choice in ("Accept", "Refuse"):
            expect(group.get_by_role("radio", name=choice)).not_to_be_checked()
    newsletter.get_by_text("Accept", exact=True).click()
    events.get_by_text("Refuse", exact=True).click()
    tab_.get_by_role("button", name="Save my choices").click()
    expect(tab_.get_by_role("status")).to_contain_text("Monthly newsletter: Accepted")

    # Opened again from the mail: the recorded choices are the selected buttons.
    tab_.goto(link)
    expect(newsletter.get_by_role("radio", name="Accept")).to_be_checked()
    expect(newsletter.get_by_role("radio", name="Refuse")).not_to_be_checked()
    expect(events.get_by_role("radio", name="Refuse")).to_be_checked()
    expect(events.get_by_role("radio", name="Accept")).not_to_be_checked()
    for choice in ("Accept", "Refuse"):  # never decided: still nothing chosen
        expect(promotions.get_by_role("radio", name=choice)).not_to_be_checked()
    assert _decisions(issued.subject) == [("accepted", "newsletter"), ("refused", "events")]

    # Saved as shown: nothing new is recorded (a selection we made is no decision).
    tab_.get_by_role("button", name="Save my choices").click()
    expect(tab_.get_by_role("status")).to_contain_text("Nothing changed")
    assert len(_decisions(issued.subject)) == 2

    # Changing one: only that one is recorded, and it shows selected afterwards.
    events.get_by_text("Accept", exact=True).click()
    tab_.get_by_role("button", name="Save my choices").click()
    expect(tab_.get_by_role("status")).to_contain_text("Invitations to events: Accepted")
    expect(tab_.get_by_role("status")).not_to_contain_text("Monthly newsletter")
    assert _decisions(issued.subject)[2:] == [("accepted", "events")]
    expect(events.get_by_role("radio", name="Accept")).to_be_checked()
    expect(newsletter.get_by_role("radio", name="Accept")).to_be_checked()

    # A new link (a re-permission campaign) asks afresh: the recorded choice is told, not
    # chosen for the person.
    again = mint("rio@example.eu", "newsletter")
    tab_.goto(f"{live_server}/c/{again.token}")
    expect(newsletter).to_contain_text("Your current choice: Accepted")
    for choice in ("Accept", "Refuse"):
        expect(newsletter.get_by_role("radio", name=choice)).not_to_be_checked()
    watch.assert_clean()
