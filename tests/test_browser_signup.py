"""The whole loop in real Chromium: a signup form embedded on another website, the
mail in the SMTP sink, its link, the decision, and the Act! contact.

The "other website" is the mail sink's HTTP server (another loopback port, so
another origin); it serves the embed code `cli forms snippet` prints. Chromium must
accept our frame-ancestors / CORS answers and report no console error, and must
never reach anything but the two loopback origins.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest

from chalicelib.web import embed
from chalicelib.act import sync
from chalicelib.consent.catalogue import load_catalogue
from chalicelib.core.services import get_catalogue, get_ledger, get_pusher
from chalicelib.consent.subjects import subject_key
from tests.conftest import PEPPER
from tests.test_browser import MISSING_CHROMIUM, TIMEOUT_MS, browser  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp")


@pytest.fixture
def site(mail_env, mail_sink, act_env, live_server, tmp_path, monkeypatch) -> dict[str, Any]:
    """A catalogue whose form may be embedded on the sink's origin, and a page doing so."""
    shipped = Path(mail_env["CONSENT_CATALOGUE"]).read_text(encoding="utf-8")
    path = tmp_path / "site-catalogue.toml"
    path.write_text(shipped.split("[[forms]]")[0] + f"""
[[forms]]
id = "website"
purposes = ["newsletter", "promotions", "events"]
allowed_origins = ["{mail_sink.http_url}"]
ask_name = true
min_fill_seconds = 1
""", encoding="utf-8")
    monkeypatch.setenv("CONSENT_CATALOGUE", str(path))
    monkeypatch.setenv("PUBLIC_BASE_URL", live_server)
    catalogue = load_catalogue(path)
    form = catalogue.forms["website"]
    for kind in embed.KINDS:
        mail_sink.add_page(f"/embed-{kind}", (
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Shop</title>"
            f"</head><body><h1>Example shop</h1>{embed.snippet(kind, live_server, form, catalogue, 'en')}"
            "</body></html>"))
    return {"app": live_server, "site": mail_sink.http_url, "sink": mail_sink}


@pytest.fixture
def tab(browser: Any, site: dict[str, Any]) -> Iterator[tuple[Any, list[str]]]:
    if browser is None:
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    allowed = {urlsplit(site["app"]).port, urlsplit(site["site"]).port}
    problems: list[str] = []
    context = browser.new_context(locale="en-GB", viewport={"width": 1000, "height": 1200})

    def guard(route: Any) -> None:
        parts = urlsplit(route.request.url)
        if parts.hostname == "127.0.0.1" and parts.port in allowed:
            route.continue_()
        else:
            problems.append(f"blocked {route.request.url}")
            route.abort("blockedbyclient")

    context.route("**/*", guard)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    from playwright.sync_api import expect
    expect.set_options(timeout=TIMEOUT_MS)  # a loaded machine needs more than 5 s
    page.on("console", lambda m: problems.append(f"console {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"page error {error}"))
    try:
        yield page, problems
    finally:
        context.close()


def _confirm_path(mail: Any, app: str) -> str:
    match = re.search(re.escape(app) + r"/c/[A-Za-z0-9_.\-]+", mail.text())
    assert match, mail.text()
    return match.group(0)


def test_iframe_signup_mail_link_decision_and_act(site, tab, act_sim):
    from playwright.sync_api import expect

    page, problems = tab
    page.goto(f"{site['site']}/embed-iframe")
    frame = page.frame_locator("iframe")
    expect(frame.get_by_role("heading", level=1)).to_have_text("Stay in touch")
    frame.get_by_label("Your e-mail address").fill("demo@example.com")
    frame.get_by_label("Your first name (optional)").fill("Dana")
    frame.get_by_label("Monthly newsletter").check()
    frame.get_by_label("Invitations to events").check()
    expect(frame.get_by_label("Offers and promotions")).not_to_be_checked()
    page.wait_for_timeout(1100)  # the form's minimum fill time
    page.screenshot(path=str(SHOTS / "optinproof-signup-iframe.png"), full_page=True)
    frame.get_by_role("button", name="Send me the confirmation e-mail").click()
    expect(frame.get_by_role("status")).to_contain_text("Check your inbox.")

    [mail] = site["sink"].wait_for("demo@example.com")
    assert "Hello Dana," in mail.text()
    page.goto(_confirm_path(mail, site["app"]))
    newsletter = page.get_by_role("group", name="Monthly newsletter")
    events = page.get_by_role("group", name="Invitations to events")
    newsletter.get_by_text("Accept", exact=True).click()
    events.get_by_text("Refuse", exact=True).click()
    page.get_by_role("button", name="Save my choices").click()
    expect(page.get_by_role("status")).to_contain_text("Your choices were recorded on")

    subject = subject_key(PEPPER, "demo@example.com")
    kinds = [(e["kind"], e.get("purpose")) for e in get_ledger().events(subject)]
    assert ("requested", "newsletter") in kinds and ("mail_sent", None) in kinds
    requested = [e for e in get_ledger().events(subject) if e["kind"] == "requested"]
    # The embedding website is recorded, from the iframe request's Referer (browsers
    # send only the origin across sites by default).
    assert all(e["page_url"].startswith(site["site"]) for e in requested), requested
    report = sync.drain(get_pusher(), sync.all_keys(get_ledger()), force=True)
    assert report.synced == 2, report
    contact = next(c for c in act_sim.contacts.values()
                   if (c.get("emailAddress") or "").lower() == "demo@example.com")
    values = set(contact["customFields"].values())
    assert {"Accepted", "Refused"} <= values
    assert not problems, problems


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
