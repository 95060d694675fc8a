"""End to end in real Chromium: the whole life of a consent, the keyboard alone, the
dashboard, and an accessibility audit (axe-core) with screenshots of every public page.

1. A person signs up through the form framed on another website, confirms through the
   mail (one purpose accepted, one refused), Act! gets the fields and history entries;
   they withdraw from the mail's withdraw link, ask for their data on /rights, open the
   report from the mail and download their data and their consent receipt.
2. The confirmation page completed with the keyboard alone (Tab, Space, arrow keys,
   Enter): every focus stop shows a focus ring, the visually hidden radios included.
3. The consent dashboard: a sign-in link, the counts, a CSV export; no cookie, no data.
4. axe-core on every public page, in English and in French: no "serious" or "critical"
   violation. axe is evaluated through the DevTools protocol (``page.evaluate``): the
   pages' CSP (``default-src 'none'``) blocks ``add_script_tag`` by design, and
   evaluating keeps that CSP in force, so the audit and the screenshots see the page
   exactly as a visitor's browser shows it (no ``bypass_csp``).
   The same pages hold at a phone's width: at 390 px none is wider than the screen
   (``document.documentElement.scrollWidth <= 390``; wide tables scroll in their own
   box or become stacked cards), and no visible text has a doubled full stop.
5. Each audited page is saved as ``docs/screenshots/<page>-<lang>.png`` (viewport
   1000x800, full page); ``docs/screenshots/README.md`` lists them, and a test checks
   that list names exactly the files these tests write.

Fixtures come from tests/conftest.py (``browser``, ``page``: Debian's Chromium,
loopback only; ``site``: live app + mail sink + Act! simulator + a page of another
origin framing the form; ``tab``).
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlencode, urlsplit

import pytest
from jsonschema import Draft202012Validator

from chalicelib.core import tokens
from chalicelib.web import admin_auth
from chalicelib.consent import rules
from chalicelib.act import sync
from chalicelib.core.services import get_catalogue, get_ledger, get_pusher
from chalicelib.core.settings import get_settings
from chalicelib.consent.subjects import subject_key
from tests.conftest import PEPPER, ROOT, new_secret
from tests.support.act import contact_by_email, field_key
from tests.support.browser import (
    MISSING_CHROMIUM, TIMEOUT_MS, iframe_signup_mail_link_decision_and_act,
)

pytestmark = pytest.mark.browser

AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
#: Where screenshots go: a scratch folder by default (pages show the time, so every run
#: differs); `make screenshots` writes them to docs/screenshots/, which the README links.
SHOTS = Path(os.environ.get("OPTINPROOF_SCREENSHOTS", "/tmp/optinproof-screenshots"))
SHOTS_README = ROOT / "docs" / "screenshots" / "README.md"
VIEWPORT = {"width": 1000, "height": 800}
PHONE = {"width": 390, "height": 844}
PHONE_SHOTS = Path("/tmp/optinproof-screenshots-390")
#: Two full stops in a row, but not an ellipsis ("..." or "…").
DOUBLED_STOP = re.compile(r"(?<!\.)\.\.(?!\.)")
LOCALES = {"en": "en-GB", "fr": "fr-FR"}
BLOCKING = ("serious", "critical")
EXPORT_SCHEMA = json.loads((ROOT / "schemas" / "subject-export.v1.json").read_text("utf-8"))
RECEIPT_SCHEMA = json.loads((ROOT / "schemas" / "consent-receipt.v1.json").read_text("utf-8"))


@pytest.fixture(autouse=True)
def patient_expect() -> Iterator[None]:
    """Playwright's ``expect`` waits 5 s by default: a signup (DynamoDB + SMTP) on a busy
    machine can take longer. Give these tests the page timeout, then restore it."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    yield
    expect.set_options(timeout=None)


def _link(mail: Any, app: str, kind: str) -> str:
    """The absolute ``/c/``, ``/u/`` or ``/r/`` link of a mail's text part."""
    found = re.search(re.escape(app) + rf"/{kind}/[A-Za-z0-9_.\-]+", mail.text())
    assert found, f"no /{kind}/ link in: {mail.text()}"
    return found.group(0)


def _mail_with(sink: Any, to: str, kind: str, app: str) -> str:
    """The newest ``kind`` link mailed to ``to`` (waits for it)."""
    deadline = time.monotonic() + 10
    while True:
        for mail in reversed(sink.messages):
            if to in [r.lower() for r in mail.rcpt_tos] and f"{app}/{kind}/" in mail.text():
                return _link(mail, app, kind)
        assert time.monotonic() < deadline, f"no mail to {to} with a /{kind}/ link"
        time.sleep(0.05)


# -- 1. the whole journey ---------------------------------------------------------------------

def test_signup_decide_withdraw_then_download_my_data(site, tab, act_sim):
    from playwright.sync_api import expect

    page_, problems = tab
    app, sink = site["app"], site["sink"]
    # The first half is test_browser_signup's journey, run as a step rather than copied:
    # the form in an iframe on another origin → mail → link → newsletter accepted and
    # events refused by clicking the visible labels → result page → drained to Act!.
    iframe_signup_mail_link_decision_and_act(site, tab, act_sim)
    status = page_.get_by_role("status")
    expect(status).to_contain_text("Monthly newsletter: Accepted")
    expect(status).to_contain_text("Invitations to events: Refused")

    contact = contact_by_email(act_sim, "demo@example.com")
    fields = contact["customFields"]
    assert fields[field_key(act_sim, "Consent Newsletter")] == "Accepted"
    assert fields[field_key(act_sim, "Consent Events")] == "Refused"
    subject = subject_key(PEPPER, "demo@example.com")
    _, states = get_ledger().current(subject)
    regarding = {h["regarding"]: h for h in act_sim.history_for(contact["id"])}
    assert {"Consent accepted: Monthly newsletter",
            "Consent refused: Invitations to events"} <= set(regarding), regarding
    assert states["newsletter"]["event_id"] in \
        regarding["Consent accepted: Monthly newsletter"]["details"]

    # Withdrawal from the mail's withdraw link: GET shows one button and changes nothing.
    [mail] = sink.wait_for("demo@example.com")
    page_.goto(_link(mail, app, "u"))
    expect(page_.get_by_role("button")).to_have_count(1)
    expect(page_.get_by_role("button")).to_have_text("Withdraw my consent")
    assert not [e for e in get_ledger().events(subject) if e["kind"] == "withdrawn"]
    page_.get_by_role("button", name="Withdraw my consent").click()
    expect(page_.get_by_role("status")).to_contain_text("Done: your consent was withdrawn on")
    _, states = get_ledger().current(subject)
    assert states["newsletter"]["state"] == "withdrawn"
    assert states["events"]["state"] == "refused"  # a refusal stays a refusal
    [withdrawn] = [e for e in get_ledger().events(subject) if e["kind"] == "withdrawn"]
    assert withdrawn["purpose"] == "newsletter" and withdrawn["method"] == "page"
    assert sync.drain(get_pusher(), sync.all_keys(get_ledger()), force=True).synced == 1
    contact = contact_by_email(act_sim, "demo@example.com")
    assert contact["customFields"][field_key(act_sim, "Consent Newsletter")] == "Withdrawn"
    assert any("withdrawn" in h["regarding"].lower() and "newsletter" in h["regarding"].lower()
               for h in act_sim.history_for(contact["id"]))

    # The rights page: type the address, take the link from the mail, open the report.
    page_.goto(f"{app}/rights")
    page_.get_by_label("Your e-mail address").fill("demo@example.com")
    page_.get_by_role("button", name="Send me the link").click()
    expect(page_.get_by_role("status")).to_contain_text("Check your inbox.")
    page_.goto(_mail_with(sink, "demo@example.com", "r", app))
    expect(page_.get_by_role("heading", level=1)).to_be_visible()
    expect(page_.get_by_role("row", name="E-mail address")).to_contain_text("demo@example.com")

    with page_.expect_download() as downloading:
        page_.get_by_role("link", name="Download my data (JSON)").click()
    download = downloading.value
    assert download.suggested_filename == "my-data.json"
    data = json.loads(Path(download.path()).read_text("utf-8"))
    Draft202012Validator(EXPORT_SCHEMA).validate(data)
    assert data["subject"]["email"] == "demo@example.com"
    assert data["subject"]["name"] == "Dana"
    assert data["subject"]["key"] == subject
    kinds = [(e["kind"], e.get("purpose")) for e in data["events"]]
    for expected in (("requested", "newsletter"), ("requested", "events"),
                     ("accepted", "newsletter"), ("refused", "events"),
                     ("withdrawn", "newsletter"), ("access_requested", None)):
        assert expected in kinds, kinds
    assert len(data["events"]) == len(list(get_ledger().events(subject)))
    assert data["chain"]["verified"] is True
    assert {p["id"]: p["state"] for p in data["purposes"]} == {
        "newsletter": "withdrawn", "events": "refused"}
    assert "Chrome/" in next(e for e in data["events"] if e["kind"] == "accepted")["user_agent"]

    with page_.expect_download() as downloading:
        page_.get_by_role("link", name="Download my consent receipt").click()
    download = downloading.value
    assert download.suggested_filename == "consent-receipt.json"
    receipt = json.loads(Path(download.path()).read_text("utf-8"))
    assert set(receipt) == {"receipt", "jws"} and receipt["jws"].count(".") == 2
    Draft202012Validator(RECEIPT_SCHEMA).validate(receipt["receipt"])
    extension = receipt["receipt"]["x-optinproof"]
    assert extension["subject"] == subject
    assert receipt["receipt"]["services"] == []  # nothing accepted any more
    assert {p["id"]: p["state"] for p in extension["purposes"]} == {
        "newsletter": "withdrawn", "events": "refused"}
    assert not problems, problems


# -- 2. the keyboard alone ---------------------------------------------------------------------

FOCUS_JS = """() => {
    const element = document.activeElement;
    if (!element || element === document.body) return null;
    const style = getComputedStyle(element);
    const hidden = style.opacity === '0' || element.getBoundingClientRect().width <= 1;
    // A visually hidden radio shows its focus on its label (input:focus-visible + label).
    const shown = hidden && element.labels && element.labels.length ? element.labels[0] : element;
    const ring = getComputedStyle(shown), box = shown.getBoundingClientRect();
    return {tag: element.tagName.toLowerCase(), type: element.type || '',
            name: element.name || '', value: element.value || '',
            text: (shown.textContent || '').trim(), hidden,
            focusVisible: element.matches(':focus-visible'),
            outlineStyle: ring.outlineStyle, outlineWidth: parseFloat(ring.outlineWidth),
            outlineColor: ring.outlineColor,
            inView: box.width > 0 && box.height > 0 && box.bottom > 0 && box.right > 0
                    && box.top < innerHeight && box.left < innerWidth};
}"""


def _press(tab_: Any, key: str) -> dict[str, Any]:
    """Press a key; where focus lands, with how its focus ring looks."""
    tab_.keyboard.press(key)
    focused = tab_.evaluate(FOCUS_JS)
    assert focused is not None, f"{key} sent the focus nowhere"
    return focused


def _assert_focus_ring(focused: dict[str, Any]) -> None:
    assert focused["focusVisible"], f"{focused} does not match :focus-visible"
    assert focused["outlineStyle"] != "none" and focused["outlineWidth"] >= 2, \
        f"no visible focus indicator on {focused}"
    assert focused["inView"], f"the focused element is not on screen: {focused}"


def test_keyboard_alone_decides_with_a_visible_focus_everywhere(page, live_server, mint):
    from playwright.sync_api import expect

    if page is None:
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    tab_, watch = page
    tab_.set_viewport_size(VIEWPORT)  # a short window: focus must scroll into view
    issued = mint("kim@example.eu", "newsletter", "promotions", "events")
    tab_.goto(f"{live_server}/c/{issued.token}")

    # Walk the whole Tab order once: every stop has a visible focus ring, on screen.
    stops = []
    while True:
        focused = _press(tab_, "Tab")
        _assert_focus_ring(focused)
        stops.append(focused)
        if focused["tag"] == "button":
            break
        assert len(stops) < 12, stops
    assert stops[0]["tag"] == "a" and stops[0]["text"] == "Skip to content"
    radios = [s for s in stops if s["type"] == "radio"]
    # One stop per purpose (a radio group is one Tab stop), on the visually hidden radio,
    # whose label carries the ring.
    assert [(r["name"], r["value"], r["hidden"]) for r in radios] == [
        (f"decision.{p}", "accept", True) for p in ("newsletter", "promotions", "events")]
    assert [r["text"] for r in radios] == ["Accept"] * 3
    assert stops[-1]["text"] == "Save my choices"

    # Back to the newsletter's group with Shift+Tab, then decide with keys only.
    for _ in range(len(stops)):
        if _press(tab_, "Shift+Tab")["name"] == "decision.newsletter":
            break
    else:
        raise AssertionError("Shift+Tab never came back to the newsletter's choices")
    focused = _press(tab_, "Space")
    assert focused["value"] == "accept"
    _assert_focus_ring(focused)
    newsletter = tab_.get_by_role("group", name="Monthly newsletter")
    expect(newsletter.get_by_role("radio", name="Accept")).to_be_checked()
    focused = _press(tab_, "ArrowRight")  # changing one's mind: one key each way
    assert (focused["value"], focused["text"]) == ("refuse", "Refuse")
    _assert_focus_ring(focused)
    expect(newsletter.get_by_role("radio", name="Refuse")).to_be_checked()
    focused = _press(tab_, "ArrowLeft")
    assert focused["value"] == "accept"
    expect(newsletter.get_by_role("radio", name="Accept")).to_be_checked()

    assert _press(tab_, "Tab")["name"] == "decision.promotions"  # left undecided
    focused = _press(tab_, "Tab")
    assert (focused["name"], focused["value"]) == ("decision.events", "accept")
    focused = _press(tab_, "ArrowRight")
    assert (focused["name"], focused["value"]) == ("decision.events", "refuse")
    _assert_focus_ring(focused)
    events = tab_.get_by_role("group", name="Invitations to events")
    expect(events.get_by_role("radio", name="Refuse")).to_be_checked()
    expect(events.get_by_role("radio", name="Accept")).not_to_be_checked()
    for choice in ("Accept", "Refuse"):
        expect(tab_.get_by_role("group", name="Offers and promotions")
               .get_by_role("radio", name=choice)).not_to_be_checked()
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab_.screenshot(path=str(SHOTS / "confirm-keyboard-focus-en.png"), animations="disabled")

    button = _press(tab_, "Tab")
    assert (button["tag"], button["text"]) == ("button", "Save my choices")
    _assert_focus_ring(button)
    with tab_.expect_navigation():
        tab_.keyboard.press("Enter")
    status = tab_.get_by_role("status")
    expect(status).to_contain_text("Your choices were recorded on")
    expect(status).to_contain_text("Monthly newsletter: Accepted")
    expect(status).to_contain_text("Invitations to events: Refused")
    expect(status).not_to_contain_text("Offers and promotions")

    decided = [e for e in get_ledger().events(issued.subject) if e["kind"] != "link_issued"]
    assert sorted((e["kind"], e["purpose"]) for e in decided) == [
        ("accepted", "newsletter"), ("refused", "events")]
    assert all(e["link_id"] == issued.link_id and "Chrome/" in e["user_agent"] for e in decided)
    assert [m for m, _ in watch.requests if m == "POST"] == ["POST"]  # only Enter posted
    watch.assert_clean()


# -- 3. the consent dashboard --------------------------------------------------------------------

def _table(tab_: Any, section: str) -> list[dict[str, str]]:
    """The rows of the table under the heading with id ``section``, as header → cell."""
    return tab_.evaluate("""(id) => {
        let node = document.getElementById(id).nextElementSibling;  // a table, or its scroll box
        while (node && node.tagName !== 'TABLE' && !node.querySelector('table'))
            node = node.nextElementSibling;
        if (node.tagName !== 'TABLE') node = node.querySelector('table');
        const heads = [...node.querySelectorAll('thead th')].map(th => th.textContent.trim());
        return [...node.querySelectorAll('tbody tr')].map(tr => Object.fromEntries(
            [...tr.children].map((cell, i) => [heads[i], cell.textContent.trim()])));
    }""", section)


def _assert_dashboard_layout(tab_: Any) -> None:
    """At 1280 px the dashboard uses the screen's width, its filters sit in one row, the
    chart has axes, a legend and a text alternative, and signing out is secondary."""
    tab_.set_viewport_size({"width": 1280, "height": 900})
    try:
        layout = tab_.evaluate("""() => {
            const bottoms = [...document.querySelectorAll('form.filters .filter')]
                .map(f => Math.round(f.getBoundingClientRect().bottom));
            const svg = document.querySelector('figure.chart svg[role=img]');
            const style = (el) => getComputedStyle(el);
            const out = document.querySelector('form[action="/admin/logout"] button');
            const show = document.querySelector('form.filters button');
            return {main: document.querySelector('main').getBoundingClientRect().width,
                    rows: new Set(bottoms).size, filters: bottoms.length,
                    labelledby: svg.getAttribute('aria-labelledby'),
                    desc: (svg.querySelector('desc') || {}).textContent || '',
                    ticks: svg.querySelectorAll('text').length,
                    axes: svg.querySelectorAll(':scope > line').length,
                    legend: [...document.querySelectorAll('.legend li')].map(li => li.textContent),
                    signOut: [style(out).backgroundColor, style(out).color],
                    primary: style(show).backgroundColor};
        }""")
    finally:
        tab_.set_viewport_size(VIEWPORT)
    assert layout["main"] >= 1200, layout  # not a 42rem column in the middle of the screen
    assert (layout["filters"], layout["rows"]) == (7, 1), layout
    assert layout["labelledby"] == "chart-title chart-desc" and "In total:" in layout["desc"]
    assert layout["ticks"] >= 4 and layout["axes"] >= 2, layout
    assert layout["legend"] == ["Accepted", "Refused", "Withdrawn"], layout
    assert layout["signOut"][0] == "rgb(255, 255, 255)" != layout["primary"], layout


def test_dashboard_signs_in_shows_counts_exports_csv_and_refuses_strangers(
        browser, page, live_server, mint, monkeypatch):
    from playwright.sync_api import expect

    if page is None:
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    tab_, watch = page
    monkeypatch.setenv("ADMIN_SECRET_KEYS", new_secret())
    for email, choice in (("a@example.eu", "Accept"), ("b@example.eu", "Refuse")):
        issued = mint(email, "newsletter")
        tab_.goto(f"{live_server}/c/{issued.token}")
        tab_.get_by_role("group", name="Monthly newsletter").get_by_text(
            choice, exact=True).click()
        tab_.get_by_role("button", name="Save my choices").click()
        expect(tab_.get_by_role("status")).to_be_visible()

    token = admin_auth.mint(get_settings(), "olga@example.eu", 600)
    answer = tab_.goto(f"{live_server}/admin/login?{urlencode({'token': token})}")
    assert answer is not None and answer.status == 200
    assert urlsplit(tab_.url).path == "/admin/dashboard"  # the 303 set the cookie
    [cookie] = tab_.context.cookies()
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"], cookie["path"]) == \
        (True, True, "Strict", "/admin")
    expect(tab_.get_by_role("heading", level=1)).to_have_text("Consent dashboard")
    expect(tab_.get_by_text("Signed in as olga@example.eu.")).to_be_visible()
    rows = {row["Purpose"]: row for row in _table(tab_, "purposes")}
    assert (rows["Monthly newsletter"]["Accepted"], rows["Monthly newsletter"]["Refused"],
            rows["Monthly newsletter"]["Withdrawn"]) == ("1", "1", "0")
    assert tab_.locator("svg[role=img] rect").count() >= 1  # the chart drew bars
    _assert_dashboard_layout(tab_)

    with tab_.expect_download() as downloading:
        tab_.get_by_role("link", name="Export as CSV").first.click()
    download = downloading.value
    assert download.suggested_filename == "purposes.csv"
    exported = {r["purpose"]: r for r in csv.DictReader(io.StringIO(
        Path(download.path()).read_text("utf-8")))}
    assert (exported["newsletter"]["accepted"], exported["newsletter"]["refused"]) == ("1", "1")
    watch.assert_clean()

    stranger = browser.new_context(locale="en-GB")  # no cookie
    try:
        other = stranger.new_page()
        other.set_default_timeout(TIMEOUT_MS)
        answer = other.goto(f"{live_server}/admin/dashboard")
        assert answer is not None and answer.status == 401
        expect(other.get_by_role("heading", level=1)).not_to_have_text("Consent dashboard")
        expect(other.locator("body")).to_contain_text("python -m chalicelib.cli admin link")
        assert other.locator("table").count() == 0 and "Monthly newsletter" not in other.content()
        assert other.goto(f"{live_server}/admin/dashboard?format=csv&table=purposes").status == 401
    finally:
        stranger.close()


# -- 4 and 5. axe-core on every public page, both languages, with screenshots -------------------

#: page name → what it is (docs/screenshots/README.md lists the same, one line each).
PAGES = {
    "signup-form": "the signup form, /signup/website (what the iframe embed shows)",
    "signup-done": "\"Check your inbox\" after sending the signup form",
    "confirm": "the confirmation page /c/{token}: Accept / Refuse per purpose, nothing chosen",
    "confirm-recorded": "the confirmation page after saving: what was recorded",
    "link-expired": "an expired confirmation link, with \"Send me a new link\"",
    "link-invalid": "a tampered (altered) link",
    "withdraw": "the withdraw page /u/{token}: one button",
    "withdraw-done": "after withdrawing",
    "rights": "/rights: ask for a link to one's data",
    "rights-sent": "/rights after sending: \"Check your inbox\"",
    "rights-report": "the rights report /r/{token}: everything held, downloads, links",
    "preferences": "the preferences page /p/{token}: change each choice",
    "erase": "the erasure page /r/{token}/erase: explanation, a box to tick, a button",
    "erase-done": "after erasure",
    "dashboard": "the consent dashboard /admin/dashboard (signed in)",
    "dashboard-denied": "/admin/dashboard without a session: 401",
    "not-found": "a path that does not exist: the branded 404",
}
EXTRA_SHOTS = {"confirm-keyboard-focus-en": "the confirmation page during keyboard use: "
                                            "the focus ring on a choice"}


EXPECTED_4XX = re.compile(r"Failed to load resource: the server responded with a status of "
                          r"(400|401|404|410) ")


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE_JS.exists():
        pytest.fail(f"{AXE_JS} is missing: run `npm ci` (package.json pins axe-core).",
                    pytrace=False)
    return AXE_JS.read_text("utf-8") + "\n;0"  # evaluate the file, return nothing big


class Audit:
    """Open pages in one context, check each is in the right language, run axe on it,
    and save its screenshot."""

    def __init__(self, site: dict[str, Any], lang: str, axe: str) -> None:
        self.lang, self.axe, self.app = lang, axe, site["app"]
        self.results: dict[str, Counter[str]] = {}
        self.blocking: dict[str, list[dict[str, Any]]] = {}
        self.problems: list[str] = []
        self.too_wide: dict[str, int] = {}
        self.doubled: dict[str, list[str]] = {}
        self.contexts: list[Any] = []
        self.allowed = {urlsplit(site["app"]).port}

    def context(self, browser: Any) -> Any:
        context = browser.new_context(locale=LOCALES[self.lang], viewport=VIEWPORT,
                                      reduced_motion="reduce")
        self.contexts.append(context)

        def guard(route: Any) -> None:
            parts = urlsplit(route.request.url)
            if parts.hostname == "127.0.0.1" and parts.port in self.allowed:
                route.continue_()
            else:
                self.problems.append(f"blocked {route.request.url}")
                route.abort("blockedbyclient")

        context.route("**/*", guard)
        tab_ = context.new_page()
        tab_.set_default_timeout(TIMEOUT_MS)
        tab_.on("console", self._console)
        tab_.on("pageerror", lambda error: self.problems.append(f"page error {error}"))
        return tab_

    def _console(self, message: Any) -> None:
        # Chromium logs every 4xx document as "Failed to load resource"; the test asserts
        # those statuses itself. Anything else (a CSP violation, a script) is a problem.
        if message.type == "error" and not EXPECTED_4XX.match(message.text):
            self.problems.append(f"console {message.text}")

    def check(self, tab_: Any, name: str) -> None:
        assert name in PAGES, name
        assert tab_.locator("html").get_attribute("lang") == self.lang, (name, tab_.url)
        SHOTS.mkdir(parents=True, exist_ok=True)
        tab_.screenshot(path=str(SHOTS / f"{name}-{self.lang}.png"), full_page=True,
                        animations="disabled", caret="hide")
        tab_.evaluate(self.axe)
        result = tab_.evaluate("""async () => {
            const result = await axe.run(document, {resultTypes: ['violations']});
            return {passed: result.passes.length, version: result.testEngine.version,
                    review: result.incomplete.map(v => v.id + ' on ' + v.nodes.map(n =>
                        n.target.join(' ') + ' (' + (n.any[0] || {}).message + ')').join('; ')),
                    violations: result.violations.map(v => ({id: v.id, impact: v.impact,
                        help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))};
        }""")
        assert result["passed"] > 10, f"axe checked almost nothing on {name}: {result}"
        violations = result["violations"]
        key = f"{name}-{self.lang}"
        self.results[key] = Counter(v["impact"] or "none" for v in violations)
        for violation in violations:
            print(f"axe {key}: {violation['impact']} {violation['id']} ({violation['help']}) "
                  f"on {violation['nodes'][:5]}")
        if result["review"]:  # what axe could not decide alone (e.g. contrast over an image)
            print(f"axe {key}: to review by hand: {result['review']}")
        blocking = [v for v in violations if v["impact"] in BLOCKING]
        if blocking:
            self.blocking[key] = blocking
        self._phone(tab_, key)

    def _phone(self, tab_: Any, key: str) -> None:
        """The page at 390 px: no wider than the screen; no doubled full stop in its text."""
        tab_.set_viewport_size(PHONE)
        try:
            width = tab_.evaluate("() => document.documentElement.scrollWidth")
            if width > PHONE["width"]:
                self.too_wide[key] = width
            PHONE_SHOTS.mkdir(parents=True, exist_ok=True)  # to look at, not to publish
            tab_.screenshot(path=str(PHONE_SHOTS / f"{key}.png"), full_page=True,
                            animations="disabled", caret="hide")
            text = tab_.evaluate("() => document.body.innerText")
            doubled = [text[max(0, m.start() - 40):m.end() + 10]
                       for m in DOUBLED_STOP.finditer(text)]
            if doubled:
                self.doubled[key] = doubled
        finally:
            tab_.set_viewport_size(VIEWPORT)

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def audit(request: pytest.FixtureRequest, browser: Any, site: dict[str, Any],
          axe_source: str) -> Iterator[Audit]:
    if browser is None:
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    made = Audit(site, request.param, axe_source)
    try:
        yield made
    finally:
        made.close()


def _expired_confirm_link(email: str) -> str:
    """A confirm link signed 400 days ago (longer than any allowed lifetime)."""
    signed = int(time.time()) - 400 * 86400
    original = tokens.signing_time
    tokens.signing_time = lambda: signed  # type: ignore[assignment]
    try:
        issued = rules.issue_link(get_ledger(), get_settings(), get_catalogue(), email,
                                    ["newsletter"], channel="test")
    finally:
        tokens.signing_time = original  # type: ignore[assignment]
    return issued.token


def _submit(tab_: Any, selector: str = "main form button[type=submit]") -> None:
    """Click a form's button and wait for the page the POST answers with."""
    with tab_.expect_navigation():
        tab_.locator(selector).click()


def _tampered(url: str) -> str:
    """The same link with one character of its signature changed."""
    head, signature = url.rsplit(".", 1)
    middle = len(signature) // 2
    swapped = "B" if signature[middle] != "B" else "C"
    return f"{head}.{signature[:middle]}{swapped}{signature[middle + 1:]}"


@pytest.mark.parametrize("audit", list(LOCALES), indirect=True)
def test_every_public_page_passes_axe_in_both_languages(audit, browser, site, monkeypatch):
    app, sink, lang = site["app"], site["sink"], audit.lang
    email = "ana@example.eu"
    tab_ = audit.context(browser)

    # The signup form (the page the iframe shows), then its answer.
    opened = time.monotonic()
    assert tab_.goto(f"{app}/signup/website").status == 200
    audit.check(tab_, "signup-form")
    tab_.locator("input[name=email]").fill(email)
    tab_.locator("input[name=name]").fill("Ana")
    tab_.locator("#purpose-newsletter").check()
    tab_.locator("#purpose-events").check()
    time.sleep(max(0.0, 1.1 - (time.monotonic() - opened)))  # the form's minimum fill time
    _submit(tab_, "form.signup button[type=submit]")
    assert tab_.locator("[role=status]").count() == 1
    audit.check(tab_, "signup-done")

    # The confirmation page, fresh and after deciding (by clicking the visible labels).
    confirm = _mail_with(sink, email, "c", app)
    assert tab_.goto(confirm).status == 200
    audit.check(tab_, "confirm")
    tab_.locator("label[for=newsletter-accept]").click()
    tab_.locator("label[for=events-refuse]").click()
    _submit(tab_)
    assert tab_.locator("[role=status]").count() == 1
    audit.check(tab_, "confirm-recorded")
    # The time as its readers write it: "7 déc. 2026, 14:03 UTC", "Dec 7, 2026, 2:03 PM UTC".
    moment = {"fr": r"\d{1,2} [a-zéû]+\.? \d{4}, \d{2}:\d{2} UTC",
              "en": r"[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2}\s[AP]M UTC"}[lang]
    assert re.search(moment, tab_.locator("[role=status]").inner_text()), \
        tab_.locator("[role=status]").inner_text()

    # Broken links: expired (a new one can be asked for), tampered (write to us).
    assert tab_.goto(f"{app}/c/{_expired_confirm_link('old@example.eu')}").status == 410
    assert tab_.locator("form[action$='/renew']").count() == 1
    audit.check(tab_, "link-expired")
    assert tab_.goto(_tampered(confirm)).status == 400
    assert tab_.locator("form").count() == 0
    audit.check(tab_, "link-invalid")

    # Withdrawal: the page, then its one button.
    assert tab_.goto(_mail_with(sink, email, "u", app)).status == 200
    audit.check(tab_, "withdraw")
    _submit(tab_)
    assert tab_.locator("[role=status]").count() == 1
    audit.check(tab_, "withdraw-done")

    # Rights: the form, its answer, the report from the mail, preferences, erasure.
    assert tab_.goto(f"{app}/rights").status == 200
    audit.check(tab_, "rights")
    tab_.locator("input[name=email]").fill(email)
    _submit(tab_)
    assert tab_.locator("[role=status]").count() == 1
    audit.check(tab_, "rights-sent")
    report = _mail_with(sink, email, "r", app)
    assert tab_.goto(report).status == 200
    audit.check(tab_, "rights-report")
    tab_.locator(".actions a[href*='/p/']").click()
    tab_.wait_for_url("**/p/**")
    audit.check(tab_, "preferences")
    assert tab_.goto(report).status == 200
    tab_.locator(".actions a.danger").click()
    tab_.wait_for_url("**/erase")
    audit.check(tab_, "erase")
    tab_.locator("input#confirm").check()
    _submit(tab_)
    assert tab_.locator("[role=status]").count() == 1
    audit.check(tab_, "erase-done")
    assert tab_.goto(report).status == 410  # the rights link died with the data

    # The dashboard, signed in; and its refusal in a context without the cookie.
    monkeypatch.setenv("ADMIN_SECRET_KEYS", new_secret())
    token = admin_auth.mint(get_settings(), "olga@example.eu", 600)
    assert tab_.goto(f"{app}/admin/login?{urlencode({'token': token})}").status == 200
    assert tab_.locator("table.data").count() >= 4
    audit.check(tab_, "dashboard")
    stranger = audit.context(browser)
    assert stranger.goto(f"{app}/admin/dashboard").status == 401
    audit.check(stranger, "dashboard-denied")
    assert stranger.goto(f"{app}/no-such-page").status == 404
    audit.check(stranger, "not-found")

    summary = {key: dict(counts) or "none" for key, counts in audit.results.items()}
    print(f"axe violations by impact ({lang}): {json.dumps(summary, indent=1)}")
    assert sorted(audit.results) == sorted(f"{name}-{lang}" for name in PAGES)
    assert not audit.blocking, json.dumps(audit.blocking, indent=1)
    assert not audit.problems, audit.problems
    assert not audit.too_wide, f"wider than a 390 px screen (document width): {audit.too_wide}"
    assert not audit.doubled, f"doubled full stops in the visible text: {audit.doubled}"


def test_screenshot_readme_lists_every_screenshot():
    """docs/screenshots/README.md names exactly the files these tests write."""
    listed = set(re.findall(r"\(([a-z0-9-]+\.png)\)", SHOTS_README.read_text("utf-8")))
    expected = {f"{name}-{lang}.png" for name in PAGES for lang in LOCALES} | \
        {f"{name}.png" for name in EXTRA_SHOTS}
    assert listed == expected, (sorted(listed - expected), sorted(expected - listed))
