"""The whole loop in real Chromium: a signup form embedded on another website, the
mail in the SMTP sink, its link, the decision, and the Act! contact.

The "other website" is the mail sink's HTTP server (another loopback port, so
another origin); it serves the embed code `cli forms snippet` prints. Chromium must
accept our frame-ancestors / CORS answers and report no console error, and must
never reach anything but the two loopback origins.
"""
from __future__ import annotations

import pytest

from chalicelib.core.services import get_catalogue
from tests.support.browser import iframe_signup_mail_link_decision_and_act

pytestmark = pytest.mark.browser


def test_iframe_signup_mail_link_decision_and_act(site, tab, act_sim):
    # The journey is a step of tests/test_browser_e2e.py too: it lives in tests/support.
    iframe_signup_mail_link_decision_and_act(site, tab, act_sim)


def test_script_embed_posts_json_across_origins(site, tab):
    from playwright.sync_api import expect

    page, problems = tab
    page.goto(f"{site['site']}/embed-script")
    expect(page.get_by_label("Offers and promotions")).to_be_visible()
    page.get_by_label("Your e-mail address").fill("script@example.eu")
    page.get_by_label("Offers and promotions").check()
    page.wait_for_timeout(1100)
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Send me the confirmation e-mail").click()
    assert posted.value.status == 200
    expect(page.get_by_role("status")).to_contain_text("Check your inbox")
    [mail] = site["sink"].wait_for("script@example.eu")
    assert "Offers and promotions" in mail.text()
    assert not problems, problems


def test_plain_html_embed_posts_and_shows_the_answer(site, tab):
    from playwright.sync_api import expect

    page, problems = tab
    page.goto(f"{site['site']}/embed-html")
    page.get_by_label("Your e-mail address").fill("plain@example.eu")
    page.get_by_label("Invitations to events").check()
    page.get_by_role("button", name="Send me the confirmation e-mail").click()
    expect(page.get_by_role("status")).to_contain_text("Check your inbox.")
    [mail] = site["sink"].wait_for("plain@example.eu")
    assert "Invitations to events" in mail.text()
    assert get_catalogue().forms["website"].allow_plain_html
    assert not problems, problems
