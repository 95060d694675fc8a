"""Debian's Chromium for the browser tests: how it is launched, what a page did, and the
signup journey through a form framed on another website (a step of several tests).

The fixtures (``browser``, ``page``, ``site``, ``tab``) are in tests/conftest.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chalicelib.act import sync
from chalicelib.consent.subjects import subject_key
from chalicelib.core.services import get_ledger, get_pusher
from tests.conftest import PEPPER

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # Belt and braces for "loopback only": no host name resolves inside this browser.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
TIMEOUT_MS = 10_000
SHOTS = Path("/tmp")

MISSING_CHROMIUM = (f"{CHROMIUM} is missing: the browser tests need Debian's Chromium. Run "
                    "`apt-get install chromium` (or `make test`, which installs it).")


@dataclass
class Watch:
    """What the browser did behind the page: console output, requests, blocked requests."""

    base: str
    console: list[tuple[str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        errors = [text for kind, text in self.console if kind == "error"]
        assert not errors, f"console errors (a CSP violation shows here): {errors}"
        assert not self.page_errors, f"uncaught page errors: {self.page_errors}"
        assert not self.blocked, f"the page tried to reach another host: {self.blocked}"
        foreign = [url for _, url in self.requests if not is_app(url, self.base)]
        assert not foreign, f"requests left {self.base}: {foreign}"
        assert self.requests, "no request was recorded at all"


def is_app(url: str, base: str) -> bool:
    parts, app = urlsplit(url), urlsplit(base)
    return (parts.scheme, parts.hostname, parts.port) == (app.scheme, "127.0.0.1", app.port)


def _confirm_path(mail: Any, app: str) -> str:
    match = re.search(re.escape(app) + r"/c/[A-Za-z0-9_.\-]+", mail.text())
    assert match, mail.text()
    return match.group(0)


def iframe_signup_mail_link_decision_and_act(site: dict[str, Any],
                                              tab: tuple[Any, list[str]], act_sim: Any) -> None:
    """The form in an iframe on another origin → mail → link → newsletter accepted and
    events refused by clicking the visible labels → result page → drained to Act!.

    The test of that name in tests/test_browser_signup.py, and the first step of the
    whole journey in tests/test_browser_e2e.py.
    """
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


AXE_JS = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING_IMPACTS = ("serious", "critical")


def axe_blocking(tab: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page open in ``tab`` (axe is
    evaluated in the page, as tests/test_browser_e2e.py does for the public pages)."""
    assert AXE_JS.exists(), f"{AXE_JS} is missing: run `npm ci` (package.json pins axe-core)."
    tab.evaluate(AXE_JS.read_text("utf-8") + "\n;0")
    result = tab.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ['violations']});
        return {passed: result.passes.length, violations: result.violations.map(v => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => n.target.join(' '))}))};
    }""")
    assert result["passed"] > 10, f"axe checked almost nothing on {tab.url}: {result}"
    return [v for v in result["violations"] if v["impact"] in BLOCKING_IMPACTS]


PHONE_WIDTH = 390


def width_at_phone_size(tab: Any) -> int:
    """The page's document width at a 390 px wide screen (then the viewport back): a page
    that holds on a phone is no wider than the screen."""
    before = tab.viewport_size
    tab.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
    try:
        return int(tab.evaluate("() => document.documentElement.scrollWidth"))
    finally:
        if before:
            tab.set_viewport_size(before)
