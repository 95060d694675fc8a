"""Pages that hold everywhere, in real Chromium: a re-opened confirmation page shows the
recorded choice as the selected button, and the signup form names every mistake at once,
each next to its field.

(The 390 px width and doubled full stops are measured on every page by the axe audit in
tests/test_browser_e2e.py; the dashboard's layout by its dashboard test.)
"""
from __future__ import annotations

import pytest

from chalicelib.core.services import get_ledger
from tests.conftest import ROOT
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


SIGNUP_MESSAGES = {
    "en": ("Please enter a valid e-mail address", "Please enter just your first name",
           "Tick at least one of the choices"),
    "fr": ("Veuillez saisir une adresse e-mail valide", "Veuillez indiquer seulement votre prénom",
           "Cochez au moins un des choix"),
}


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_the_signup_form_shows_every_mistake_next_to_its_field(site, tab, lang):
    from playwright.sync_api import expect

    tab_, problems = tab
    tab_.goto(f"{site['app']}/signup/website?lang={lang}")
    # Both pass the browser's own checks; the server refuses both, and the missing choice.
    tab_.locator("input[name=email]").fill("ana@example")
    tab_.locator("input[name=name]").fill("R2D2")
    tab_.wait_for_timeout(1100)  # the form's minimum fill time
    with tab_.expect_navigation():
        tab_.locator("form.signup button[type=submit]").click()
    assert tab_.locator("html").get_attribute("lang") == lang
    email_message, name_message, purposes_message = SIGNUP_MESSAGES[lang]
    for field, message in (("email", email_message), ("name", name_message)):
        box = tab_.locator(f"input#{field}")
        expect(box).to_have_attribute("aria-invalid", "true")
        expect(box).to_have_attribute("aria-describedby", f"{field}-error")
        expect(tab_.locator(f"#{field}-error")).to_contain_text(message)
    expect(tab_.locator("input#email")).to_have_value("ana@example")  # kept to correct
    group = tab_.get_by_role("group", name={"en": "What would you like to receive?",
                                            "fr": "Que souhaitez-vous recevoir"}[lang])
    expect(group).to_have_attribute("aria-describedby", "purposes-error")
    expect(tab_.locator("#purposes-error")).to_contain_text(purposes_message)
    for box in tab_.locator("input[type=checkbox]").all():
        assert box.get_attribute("aria-invalid") == "true"
        assert (box.get_attribute("aria-describedby") or "").startswith("purposes-error ")
    # The summary at the top lists all three, each a link to its field.
    summary = tab_.get_by_role("alert")
    expect(summary.get_by_role("link")).to_have_count(3)
    assert summary.get_by_role("link").evaluate_all("links => links.map(a => a.hash)") == [
        "#email", "#name", "#purpose-newsletter"]
    _assert_axe_clean(tab_)
    # Chromium logs the page's own 400 as "Failed to load resource"; nothing else may show.
    assert not [p for p in problems if "status of 400" not in p], problems


def _assert_axe_clean(tab_) -> None:
    """axe-core on the page as shown (evaluated, so the page's CSP stays in force)."""
    axe = (ROOT / "node_modules" / "axe-core" / "axe.min.js").read_text("utf-8")
    tab_.evaluate(axe + "\n;0")
    violations = tab_.evaluate("""async () => (await axe.run(document, {
        resultTypes: ['violations']})).violations.filter(v => ['serious', 'critical']
        .includes(v.impact)).map(v => v.id + ' on ' + v.nodes.map(n => n.target).join(' '))""")
    assert not violations, violations


FRAME_JS = """(frame) => ({outer: frame.getBoundingClientRect().height,
                         style: frame.style.height})"""
INNER_JS = "() => Math.ceil(document.documentElement.getBoundingClientRect().height)"


def test_the_embedded_form_sizes_its_iframe(site, tab):
    """The framed page posts its height; the snippet sets the frame to it (our origin
    only); without that, the snippet's own height already fits the catalogue's form."""
    import re

    from playwright.sync_api import expect

    from chalicelib.core.services import get_catalogue
    from chalicelib.web import embed

    tab_, problems = tab
    tab_.goto(f"{site['site']}/embed-iframe")
    frame_element = tab_.locator("iframe#optinproof-website")
    expect(frame_element).to_have_attribute("style", re.compile(r"height: ?\d+px"))
    inner = tab_.frame_locator("iframe#optinproof-website").locator("html")
    expect(inner.get_by_role("heading", level=1)).to_be_visible()

    def sizes() -> tuple[float, int]:
        outer = frame_element.evaluate(FRAME_JS)["outer"]
        return outer, inner.evaluate(INNER_JS)

    outer, content = sizes()
    assert abs(outer - content) <= 2, (outer, content)  # no inner scrollbar, no gap

    # The snippet's default (no script on the website, or before the page loads) holds
    # the whole form at the frame's full width, and is not absurdly taller.
    catalogue = get_catalogue()
    form = catalogue.forms["website"]
    default_px = float(embed.default_height(form, catalogue, "en").removesuffix("rem")) * 16
    assert content <= default_px <= content * 1.4, (content, default_px)

    # A message from any other origin (here: the website itself) is ignored.
    tab_.evaluate("() => window.postMessage({type: 'optinproof:height', height: 60}, '*')")
    tab_.wait_for_timeout(200)
    assert abs(sizes()[0] - outer) <= 1

    # On a phone the form wraps taller: the frame follows.
    tab_.set_viewport_size({"width": 390, "height": 844})
    tab_.wait_for_function("""() => {
        const frame = document.querySelector('iframe#optinproof-website');
        return frame.getBoundingClientRect().height > %d; }""" % (outer + 50))
    outer, content = sizes()
    assert abs(outer - content) <= 2, (outer, content)
    assert not problems, problems
