"""A re-permission campaign driven from the dashboard in Chromium, to decisions in Act!.

Sign in with an admin link, open the campaigns page from the dashboard, count an Act!
group, start an act-field campaign for it, preview its mail in French, let the
campaign sweep run while the campaign page follows it by itself, open one contact's
link from its Act! field, decide, push the sync, and find the decision in the Act!
simulator's contact fields and in the campaign report. Every new page passes axe-core
(no serious or critical violation) in English and in French.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from chalicelib.act import sync
from chalicelib.campaigns import jobs
from chalicelib.core.services import get_ledger, get_pusher
from chalicelib.core.settings import get_settings
from chalicelib.web import admin_auth
from tests.support.admin import tools
from tests.support.browser import (
    MISSING_CHROMIUM,
    PHONE_WIDTH,
    SHOTS,
    axe_blocking,
    width_at_phone_size,
)
from tests.support.campaigns import LINK_FIELD, add_contacts, link_of


def _report(tab: Any) -> dict[str, dict[str, str]]:
    """The campaign page's "answers per purpose" table, purpose → column → cell."""
    return tab.evaluate("""() => {
        const table = document.querySelector('#live table.data');
        const heads = [...table.querySelectorAll('thead th')].map(th => th.textContent.trim());
        return Object.fromEntries([...table.querySelectorAll('tbody tr')].map(tr => [
            tr.children[0].textContent.trim(),
            Object.fromEntries([...tr.children].map((c, i) => [heads[i], c.textContent.trim()]))]));
    }""")


def _field_key(act_sim: Any, display_name: str) -> str:
    return next(f["columnName"].lower() for f in act_sim.fields
                if f.get("displayName") == display_name)


def test_a_campaign_from_the_dashboard_to_decisions_in_act(page, live_server, admin_env,
                                                            act_sim, monkeypatch):
    from playwright.sync_api import expect

    if page is None:
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    tab, watch = page
    monkeypatch.setenv("PUBLIC_BASE_URL", live_server)  # links open on this server
    act_sim.add_field(LINK_FIELD, "Memo")
    members = add_contacts(act_sim, 3, "fair")
    act_sim.add_group("Trade fair 2027", members)
    audited: dict[str, list[dict[str, Any]]] = {}
    widths: dict[str, int] = {}

    def audit(name: str) -> None:
        tab.screenshot(path=str(SHOTS / f"optinproof-{name}.png"), full_page=True)
        audited[name] = axe_blocking(tab)
        widths[name] = width_at_phone_size(tab)

    # Sign in with a link from `optinproof admin link`, then the dashboard's nav.
    token = admin_auth.mint(get_settings(), "olga@example.eu", 600, use="browser")
    tab.goto(f"{live_server}/admin/login?{urlencode({'token': token})}")
    assert urlsplit(tab.url).path == "/admin/dashboard"
    tab.get_by_role("navigation", name="Dashboard sections").get_by_role(
        "link", name="Campaigns").click()
    expect(tab.get_by_role("heading", level=1)).to_have_text("Campaigns")
    expect(tab.get_by_text("No campaign yet.")).to_be_visible()
    audit("campaigns-empty")
    tab.get_by_role("link", name="Start a new campaign").click()
    expect(tab.get_by_role("heading", level=1)).to_have_text("New campaign")
    audit("new-campaign")

    # The audience: an Act! group from the list Act! gave, counted before starting.
    tab.get_by_label("Campaign name").fill("fair-2027")
    tab.get_by_label("The contacts of an Act! group").check()
    tab.get_by_label("Act! group", exact=True).select_option("Trade fair 2027")
    tab.get_by_role("button", name="Count the contacts in Act!").click()
    expect(tab.get_by_role("status")).to_contain_text(
        "3 contacts in Act! match this audience now.")
    expect(tab.get_by_label("Campaign name")).to_have_value("fair-2027")  # kept as filled
    expect(tab.get_by_label("The contacts of an Act! group")).to_be_checked()
    audit("new-campaign-counted")
    tab.get_by_label("Offers and promotions").uncheck()
    expect(tab.get_by_label("Monthly newsletter")).to_be_checked()
    expect(tab.get_by_label("Invitations to events")).to_be_checked()
    tab.get_by_label("English", exact=True).check()
    tab.get_by_label("A link written into an Act! field").check()
    tab.get_by_label("Act! field for the link").select_option(LINK_FIELD)

    # The mail as the recipient will see it, in French (a new tab).
    with tab.context.expect_page() as opening:
        tab.get_by_role("link", name="Preview the mail in Français").click()
    preview = opening.value
    preview.wait_for_load_state()
    expect(preview.locator("pre.mail-text")).to_contain_text("Bonjour Camille")
    expect(preview.locator("pre.mail-text")).to_contain_text("Lettre d'information mensuelle")
    audited["mail-preview"] = axe_blocking(preview)
    widths["mail-preview"] = width_at_phone_size(preview)
    preview.close()

    tab.get_by_role("button", name="Start the campaign").click()
    expect(tab.get_by_role("heading", level=1)).to_have_text("Campaign fair-2027")
    expect(tab.get_by_role("status").first).to_contain_text("The campaign is started")
    expect(tab.locator("#state")).to_have_text("running")
    expect(tab.locator("#progress-text")).to_contain_text("Waiting for the background run")
    audit("campaign-running")

    # The scheduled sweep works through it; the page follows by itself (no click).
    assert jobs.work(get_ledger(), tools(), 60)[0]["state"] == "finished"
    expect(tab.locator("#state")).to_have_text("finished", timeout=30_000)
    expect(tab.locator("#progress-text")).to_have_text("3 of 3 contacts handled.")
    assert tab.locator("progress#progress-bar").get_attribute("value") == "3"
    assert _report(tab)["Monthly newsletter"]["No answer"] == "3"
    expect(tab.get_by_role("button", name="Remind the 3 contacts who did not answer")) \
        .to_be_visible()
    audit("campaign-finished")

    # One contact opens the link Act! e-marketing merged from its field, and decides.
    link = link_of(act_sim, members[0])
    assert link and link.startswith(f"{live_server}/c/"), link
    tab.goto(link)
    tab.get_by_role("group", name="Monthly newsletter").get_by_text("Accept", exact=True).click()
    tab.get_by_role("group", name="Invitations to events").get_by_text(
        "Refuse", exact=True).click()
    tab.get_by_role("button", name="Save my choices").click()
    expect(tab.get_by_role("status")).to_contain_text("Your choices were recorded on")

    report = sync.drain(get_pusher(), sync.all_keys(get_ledger()), force=True)
    assert report.synced == 2, report
    fields = act_sim.contacts[members[0]]["customFields"]
    assert fields[_field_key(act_sim, "Consent Newsletter")] == "Accepted"
    assert fields[_field_key(act_sim, "Consent Events")] == "Refused"
    untouched = act_sim.contacts[members[1]]["customFields"]
    assert not untouched.get(_field_key(act_sim, "Consent Newsletter"))

    tab.goto(f"{live_server}/admin/dashboard/campaigns/fair-2027")
    rows = _report(tab)
    assert (rows["Monthly newsletter"]["Accepted"], rows["Monthly newsletter"]["No answer"]) \
        == ("1", "2")
    assert (rows["Invitations to events"]["Refused"], rows["Invitations to events"]["Sent"]) \
        == ("1", "3")
    expect(tab.locator("#live")).to_contain_text("opened the page: 1; answered: 1.")
    expect(tab.get_by_role("button", name="Remind the 2 contacts who did not answer")) \
        .to_be_visible()
    expect(tab.get_by_role("row", name="started admin:olga@example.eu")).to_have_count(1)

    # French pages, same audit.
    tab.goto(f"{live_server}/admin/dashboard/campaigns/fair-2027?lang=fr")
    expect(tab.get_by_role("heading", level=1)).to_have_text("Campagne fair-2027")
    audit("campaign-fr")
    tab.goto(f"{live_server}/admin/dashboard/new-campaign?lang=fr")
    expect(tab.get_by_role("heading", level=1)).to_have_text("Nouvelle campagne")
    audit("new-campaign-fr")
    tab.goto(f"{live_server}/admin/dashboard/campaigns?lang=fr")
    expect(tab.get_by_role("cell", name="terminée")).to_be_visible()
    audit("campaigns-fr")

    blocking = {name: found for name, found in audited.items() if found}
    assert not blocking, f"axe: serious or critical violations: {blocking}"
    too_wide = {name: width for name, width in widths.items() if width > PHONE_WIDTH}
    assert not too_wide, f"wider than a {PHONE_WIDTH} px screen (document width): {too_wide}"
    watch.assert_clean()
