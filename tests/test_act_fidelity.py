"""Act! fidelity: links that follow the person, Act!'s clock, paging that ends.

Each test here failed before its fix: a campaign link left in the field of a contact
whose address changed (a later mail merge would have sent it to someone else), a link
kept by erasure, decisions written an hour early on a French Act!, a poll sending a
date without a zone, and a group audience looping on an Act! that ignores ``$skip``.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

import pytest

from chalicelib.act import reconcile
from chalicelib.act import dates
from chalicelib.campaigns import define
from chalicelib.campaigns import runner as campaign_runner
from chalicelib.campaigns import report as campaign_report
from chalicelib.consent import rules
from chalicelib.rights import erasure
from chalicelib.act import sync
from chalicelib.act.client import ActClient, ActError
from chalicelib.core.clock import iso
from chalicelib.core.errors import ConfigError, LinkWithdrawn
from chalicelib.core.services import get_catalogue, get_ledger, get_pusher, get_reconciler
from chalicelib.core.settings import get_settings, load_settings
from chalicelib.consent.subjects import subject_key
from tests.conftest import PEPPER
from tests.support.act import contact_by_email, field_key
from tests.support.campaigns import LINK_FIELD, add_contacts, link_of, make_runner
from tests.support.cli import run_cli
from tests.support.consent import decide

PARIS = dates.zone("Europe/Paris")


def _path(url: str) -> str:
    return url.removeprefix("http://testserver")


def _campaign_contact(act_sim: Any, prefix: str) -> tuple[str, str, campaign_runner.Runner]:
    [contact_id] = add_contacts(act_sim, 1, prefix=prefix)
    runner = make_runner(f"{prefix}-camp", purposes=("newsletter",))
    contact = next(c for c in define.audience(runner.client, runner.campaign)
                   if c.id == contact_id)
    assert runner.reach(contact) == (define.DONE, "")
    url = link_of(act_sim, contact_id)
    assert url
    return contact_id, url, runner


# -- 1. a campaign link never reaches the wrong person -----------------------------------

def test_an_address_change_withdraws_the_campaign_link(act_env, act_sim, client):
    contact_id, url, runner = _campaign_contact(act_sim, "moved")
    old = subject_key(PEPPER, "moved0@example.eu")
    assert client.http.get(_path(url)).status_code == 200
    act_sim.contacts[contact_id]["emailAddress"] = "new.owner@example.eu"  # edited in Act!

    outcome = get_reconciler().process(contact_id)

    assert {"address_changed", "link_withdrawn"} <= set(outcome.actions)
    assert not link_of(act_sim, contact_id), "the field no longer holds the old person's link"
    page = client.http.get(_path(url))
    assert page.status_code == 410 and "This link was withdrawn" in page.body.decode()
    kinds = [e["kind"] for e in get_ledger().events(old)]
    assert kinds[-2:] == ["act_address_changed", "link_withdrawn"]
    withdrawn = [e for e in get_ledger().events(old) if e["kind"] == "link_withdrawn"][0]
    assert withdrawn["act_contact_id"] == contact_id and withdrawn["field"] == LINK_FIELD
    report = campaign_report.report(get_ledger(), runner.campaign)
    assert report.skipped.get("address_changed") == 1 and report.purposes["newsletter"]["sent"] == 0
    # the new address was never asked: nothing of the old person, nothing of its own
    assert get_ledger().current(subject_key(PEPPER, "new.owner@example.eu")) == (None, {})
    # repeating the reconciliation changes nothing
    assert get_reconciler().process(contact_id).actions == ()


def test_with_ask_new_address_the_new_address_gets_its_own_link(act_env, act_sim, client,
                                                                  monkeypatch):
    monkeypatch.setenv("ACT_ASK_NEW_ADDRESS", "true")
    contact_id, url, runner = _campaign_contact(act_sim, "readdressed")
    act_sim.contacts[contact_id]["emailAddress"] = "Fresh.Owner@example.eu"

    outcome = get_reconciler().process(contact_id)

    assert "link_withdrawn" in outcome.actions and "link_rewritten" in outcome.actions
    fresh = link_of(act_sim, contact_id)
    assert fresh and fresh != url
    link = define.link_in(fresh, get_settings())
    assert link is not None and link.subject == subject_key(PEPPER, "fresh.owner@example.eu")
    assert client.http.get(_path(url)).status_code == 410
    assert client.http.get(_path(fresh)).status_code == 200
    item = get_ledger().get(f"CAMPAIGN#{runner.campaign.id}", campaign_runner.contact_sk(contact_id))
    assert item["subject"] == link.subject and item["status"] == define.DONE


def test_a_link_written_before_anything_was_remembered_is_still_caught(act_env, act_sim, client):
    """Links written by an older version left no SEEN item: the field's own link tells."""
    contact_id, url, _ = _campaign_contact(act_sim, "legacy")
    get_ledger().delete(f"ACTCONTACT#{contact_id}", "SEEN")
    act_sim.contacts[contact_id]["emailAddress"] = "someone@example.eu"
    outcome = get_reconciler().process(contact_id)
    assert "address_changed" in outcome.actions and "link_withdrawn" in outcome.actions
    assert not link_of(act_sim, contact_id)
    assert client.http.get(_path(url)).status_code == 410


def test_the_sync_spotting_a_changed_address_queues_its_reconciliation(act_env, act_sim):
    contact = add_contacts(act_sim, 1, prefix="spotted")[0]
    decide("spotted0@example.eu", newsletter="accept")
    pusher = get_pusher()
    sync.drain(pusher, sync.all_keys(pusher.ledger), force=True)
    act_sim.contacts[contact]["emailAddress"] = "other@example.eu"
    decide("spotted0@example.eu", newsletter="refuse")
    sync.drain(pusher, sync.all_keys(pusher.ledger), force=True)
    assert contact in get_reconciler().pending()


@pytest.mark.parametrize("mode", ["clear", "keep"])
def test_erasure_clears_the_link_field_in_every_mode(act_env, act_sim, mode):
    contact_id, _, _ = _campaign_contact(act_sim, f"erased-{mode}")
    subject = subject_key(PEPPER, f"erased-{mode}0@example.eu")
    done = erasure.erase(get_ledger(), get_catalogue(), subject, "cli", mode,
                         ActClient(get_settings().act))
    assert done.act[contact_id] in ("cleared", "opted out")
    assert not link_of(act_sim, contact_id), "no link embedding the erased person's key stays"


def test_erasure_by_deletion_leaves_no_contact(act_env, act_sim):
    contact_id, _, _ = _campaign_contact(act_sim, "deleted")
    subject = subject_key(PEPPER, "deleted0@example.eu")
    erasure.erase(get_ledger(), get_catalogue(), subject, "cli", "delete",
                  ActClient(get_settings().act))
    assert contact_id not in act_sim.contacts


# -- 2. dates Act! reads as meant ----------------------------------------------------------

@pytest.mark.parametrize("change", ["2026-03-29T01:00:00+00:00", "2026-10-25T01:00:00+00:00"])
def test_both_2026_changes_of_french_time_round_trip(change):
    """Every quarter hour from 3 h before to 3 h after each change of 2026."""
    middle = datetime.fromisoformat(change)
    for step in range(-12, 13):
        instant = middle + timedelta(minutes=15 * step)
        wall = dates.to_act(instant, PARIS)
        back = dates.from_act(wall, PARIS)
        assert dates.to_act(back, PARIS) == wall  # what Act! holds reads back the same
        repeated = wall[11:13] == "02" and change.startswith("2026-10")
        if repeated:  # 02:xx happens twice that night: read as the earlier one, never later
            assert back in (instant, instant - timedelta(hours=1)) and back <= instant
        else:
            assert back == instant
        literal = dates.literal(instant, PARIS)
        assert re.fullmatch(r".*[+-]\d{2}:\d{2}", literal)
        assert datetime.fromisoformat(literal) == instant  # the literal names the instant
    spring = dates.to_act(datetime(2026, 3, 29, 0, 59, 59, tzinfo=timezone.utc), PARIS)
    assert spring == "2026-03-29T01:59:59"
    assert dates.to_act(datetime(2026, 3, 29, 1, 0, tzinfo=timezone.utc), PARIS) == \
        "2026-03-29T03:00:00"
    # an Act! that answers with an offset is read exactly
    assert dates.from_act("2026-10-25T02:30:00+01:00", PARIS) == \
        datetime(2026, 10, 25, 1, 30, tzinfo=timezone.utc)


def test_a_decision_is_written_in_the_act_servers_wall_time(act_env, act_sim):
    decide("demo@example.com", newsletter="accept")
    pusher = get_pusher()
    sync.drain(pusher, sync.all_keys(pusher.ledger), force=True)
    state = pusher.ledger.get(f"SUBJ#{subject_key(PEPPER, 'demo@example.com')}",
                              "PURPOSE#newsletter")
    contact = contact_by_email(act_sim, "demo@example.com")
    fields = contact["customFields"]
    local = dates.to_act(state["decided_at"], PARIS)
    assert local != state["decided_at"][:19], "French time is not UTC"
    assert fields[field_key(act_sim, "Consent Newsletter At")] == local
    assert fields[field_key(act_sim, "Consent Newsletter UTC")] == state["decided_at"]
    [history] = act_sim.history_for(contact["id"])
    assert history["startTime"] == local and history["endTime"] == local


def test_an_act_that_answers_dates_with_offsets_is_read_back_right(act_env, act_sim):
    act_sim.offsets = True  # e.g. "2026-11-29T15:03:12.345+01:00"
    decide("demo@example.com", newsletter="accept")
    pusher = get_pusher()
    report = sync.drain(pusher, sync.all_keys(pusher.ledger), force=True)
    assert report.synced == 1 and report.failed == 0, report.errors
    decide("demo@example.com", newsletter="refuse")  # the stored date compares as an instant
    report = sync.drain(pusher, sync.all_keys(pusher.ledger), force=True)
    assert report.synced == 1 and report.failed == 0, report.errors


def test_the_time_zone_setting_is_checked_and_shown(act_env):
    with pytest.raises(ConfigError, match="ACT_TIMEZONE='Paris' is not an IANA"):
        load_settings({**act_env, "ACT_TIMEZONE": "Paris"})
    assert load_settings({k: v for k, v in act_env.items() if k != "ACT_TIMEZONE"}).act.timezone \
        == "UTC"
    checked = run_cli("act", "check")
    assert "local time in Europe/Paris (UTC+0" in checked.stdout, checked.stdout + checked.stderr


# -- the poll: zoned literals, a UTC watermark, no edit lost, repeated or ours -------------

def _poll_filters(act_sim: Any) -> list[str]:
    return [unquote(path) for method, path, _ in act_sim.requests
            if method == "GET" and path.startswith("/api/contacts?") and "edited" in path]


def test_poll_sends_zoned_literals_and_keeps_a_utc_watermark(act_env, act_sim):
    act_sim.add_contact(firstName="Polled", emailAddress="polled@example.eu")
    ledger, reconciler = get_ledger(), get_reconciler()
    first = reconcile.poll(ledger, reconciler)
    assert first.read >= 1 and len(first.reconciled) == first.read
    literals = [re.search(r"edited (?:gt|ge) ([^&]+)", f).group(1) for f in _poll_filters(act_sim)]
    assert literals and all(re.search(r"[+-]\d{2}:\d{2}$", lit) for lit in literals), literals
    mark = ledger.get("ACTPOLL", "ACTPOLL")
    assert mark["watermark"].endswith("Z") and len(mark["watermark"]) == 24
    newest = max(dates.from_act_iso(c["edited"], PARIS) for c in act_sim.contacts.values())
    assert mark["watermark"] == newest

    again = reconcile.poll(ledger, reconciler)  # the overlap reads the newest again ...
    assert again.reconciled == [] and again.already_seen >= 1  # ... and drops it


def test_poll_skips_our_own_writes_but_not_a_later_human_edit(act_env, act_sim):
    ledger, reconciler = get_ledger(), get_reconciler()
    reconcile.poll(ledger, reconciler)
    decide("demo@example.com", newsletter="accept")  # the sync edits the contact in Act!
    pusher = get_pusher()
    sync.drain(pusher, sync.all_keys(pusher.ledger), force=True)
    ours = reconcile.poll(ledger, reconciler)
    assert ours.own_writes == 1 and ours.reconciled == []
    contact = contact_by_email(act_sim, "demo@example.com")
    with act_sim.lock:  # a person now edits the same contact in Act!
        act_sim.contacts[contact["id"]]["jobTitle"] = "edited by hand"
        act_sim.contacts[contact["id"]]["edited"] = act_sim._stamp()
    human = reconcile.poll(ledger, reconciler)
    assert [o.contact_id for o in human.reconciled] == [contact["id"]]


def test_poll_finds_an_edit_act_stamped_before_the_watermark(act_env, act_sim):
    """Act!'s clock (or a slow transaction) may stamp an edit a little before the last
    edit we saw: the overlap still finds it."""
    ledger, reconciler = get_ledger(), get_reconciler()
    reconcile.poll(ledger, reconciler)
    watermark = ledger.get("ACTPOLL", "ACTPOLL")["watermark"]
    late = datetime.fromisoformat(watermark.replace("Z", "+00:00")) - timedelta(seconds=30)
    made = act_sim.add_contact(firstName="Late", emailAddress="late@example.eu",
                               edited=act_sim.served(late), created=act_sim.served(late))
    found = reconcile.poll(ledger, reconciler)
    assert made["id"] in [o.contact_id for o in found.reconciled]


def test_a_watermark_kept_by_the_old_poll_is_converted(act_env, act_sim):
    ledger = get_ledger()
    old_style = act_sim.served(datetime.now(timezone.utc) - timedelta(hours=1))
    ledger.put({"pk": "ACTPOLL", "sk": "ACTPOLL", "edited": old_style})  # Act!'s, no zone
    report = reconcile.poll(ledger, get_reconciler())
    expected = iso(dates.from_act(old_style, PARIS) - reconcile.POLL_OVERLAP)
    assert report.since == expected


def test_poll_cli_refuses_a_since_without_zone(act_env):
    result = run_cli("act", "poll", "--since", "2026-11-01T00:00:00")
    assert result.returncode != 0 and "with its zone" in result.stderr


# -- 3. paging that always ends -----------------------------------------------------------

GROUP_ROUTE = "/api/groups/{groupId}/associated-contacts"


def _group(act_sim: Any, count: int) -> tuple[str, list[str]]:
    ids = add_contacts(act_sim, count, prefix="member")
    return act_sim.add_group("Paged", ids)["id"], ids


def test_group_members_are_read_in_pages_once_each(act_env, act_sim):
    group_id, ids = _group(act_sim, 7)
    client = ActClient(get_settings().act)
    assert sorted(c["id"] for c in client.iter_contacts(group_id=group_id, page_size=3)) == \
        sorted(ids)
    asked = [p for m, p, _ in act_sim.requests if "associated-contacts" in p]
    assert len(asked) == 3 and all("$top=3" in p and "$orderby=id" in p for p in asked)


def test_a_route_that_ignores_skip_ends_with_an_error_naming_it(act_env, act_sim):
    group_id, _ = _group(act_sim, 7)
    act_sim.ignored_options[GROUP_ROUTE] = {"$skip"}
    client = ActClient(get_settings().act)
    with pytest.raises(ActError, match=r"associated-contacts .*ignores \$skip"):
        list(client.iter_contacts(group_id=group_id, page_size=3))


def test_a_route_that_ignores_top_and_skip_gives_everything_once(act_env, act_sim):
    group_id, ids = _group(act_sim, 7)
    act_sim.ignored_options[GROUP_ROUTE] = {"$skip", "$top"}
    client = ActClient(get_settings().act)
    assert sorted(c["id"] for c in client.iter_contacts(group_id=group_id, page_size=3)) == \
        sorted(ids)
    assert len([p for m, p, _ in act_sim.requests if "associated-contacts" in p]) == 2


def test_paging_stops_at_the_total_an_envelope_reports(act_env, act_sim):
    act_sim.envelope = True
    client = ActClient(get_settings().act)
    everyone = list(client.iter_contacts(page_size=5))
    assert len(everyone) == len(act_sim.contacts)
    assert len({c["id"] for c in everyone}) == len(everyone)


def test_a_poll_on_an_act_that_ignores_skip_stops_with_an_error(act_env, act_sim):
    stamp = act_sim._stamp()
    for i in range(5):  # five contacts edited at the very same instant
        act_sim.add_contact(firstName=f"Same{i}", emailAddress=f"same{i}@example.eu",
                            edited=stamp, created=stamp)
    act_sim.ignored_options["/api/contacts"] = {"$skip"}
    client = ActClient(get_settings().act)
    since = iso(dates.from_act(stamp, PARIS) - timedelta(seconds=1))
    with pytest.raises(ActError, match=r"ignores \$skip"):
        list(client.edited_since(since, page_size=2))


def test_withdrawn_links_cannot_decide(act_env, act_sim, client):
    contact_id, url, _ = _campaign_contact(act_sim, "nodecide")
    act_sim.contacts[contact_id]["emailAddress"] = "taker@example.eu"
    get_reconciler().process(contact_id)
    token = _path(url).removeprefix("/c/").split("?", 1)[0]  # the link opens ?lang=…
    with pytest.raises(LinkWithdrawn):
        rules.open_link(get_ledger(), get_settings(), "confirm", token)
