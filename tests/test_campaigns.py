"""Re-permission campaigns against the Act! simulator and DynamoDB Local.

A campaign of 1,000 contacts with injected Act! failures must end with exactly one
link per reachable contact, counts that add up, and a resumed run that finishes the
rest without delivering anything twice.
"""
from __future__ import annotations

import io
import re
from urllib.parse import urlencode

import pytest

from chalicelib.campaigns import define
from chalicelib.campaigns import runner as campaign_runner
from chalicelib.campaigns import report as campaign_report
from chalicelib.core.errors import BadInput
from chalicelib.core.services import get_catalogue, get_ledger
from chalicelib.core.settings import get_settings
from chalicelib.consent.subjects import subject_key
from tests.conftest import PEPPER, form_fields
from tests.support.campaigns import (
    LANGUAGE_FIELD,
    add_contacts,
    add_language_contacts,
    link_of,
    make_runner,
)
from tests.support.cli import run_cli
from tests.support.rights import key


def test_campaign_of_a_thousand_contacts_with_faults_then_resume(act_env, act_sim):
    ids = add_contacts(act_sim, 1000)
    act_sim.add_contact(firstName="No", lastName="Mail")  # no address: skipped
    act_sim.add_contact(firstName="Twin", lastName="A", emailAddress="C5@Example.eu")  # duplicate
    runner = make_runner("spring-2027")
    contacts = define.audience(runner.client, runner.campaign)
    assert len(contacts) >= 1002

    act_sim.set_faults(error_rate=0.3, kinds=("500", "429", "503"), rng_seed=7)
    first = runner.run(contacts, concurrency=8)
    act_sim.set_faults()
    assert first.processed == len(contacts)
    second = runner.run(contacts, concurrency=8)  # resume: only what failed or is left
    third = runner.run(contacts, concurrency=8)
    assert third.delivered == 0 and third.failed == 0, third.errors

    reachable = {c.email.casefold() for c in contacts if c.email}  # the c5 twin counts once
    assert first.delivered + second.delivered == len(reachable)
    items = {i["contact_id"]: i for i in define.contact_items(get_ledger(), "spring-2027")}
    done = [i for i in items.values() if i["status"] == define.DONE]
    skipped = {i["reason"] for i in items.values() if i["status"] == define.SKIPPED}
    assert "no_address" in skipped and "duplicate_address" in skipped
    for contact_id in ids:
        if items[contact_id]["status"] == define.DONE:
            assert link_of(act_sim, contact_id), contact_id
    # exactly one link per reachable contact: one confirm link_issued with this campaign each
    ledger = get_ledger()
    for item in done[:50]:
        issued = [e for e in ledger.events(item["subject"])
                  if e["kind"] == "link_issued" and e.get("campaign_id") == "spring-2027"]
        written = [e for e in ledger.events(item["subject"]) if e["kind"] == "link_written"]
        assert len(issued) == 1 and len(written) == 1
    print(f"\ncampaign: 1000 contacts, run 1 {first.line('written')}; "
          f"run 2 {second.line('written')}")


def test_the_written_link_opens_the_page_and_the_answer_is_reported(act_env, act_sim, client):
    [contact_id] = add_contacts(act_sim, 1, prefix="answer")
    runner = make_runner("report-me")
    runner.run(define.audience(runner.client, runner.campaign))
    url = link_of(act_sim, contact_id)
    assert url and url.startswith("http://testserver/c/")
    path = url.removeprefix("http://testserver")
    page = client.http.get(path)
    assert page.status_code == 200
    fields = form_fields(page.body.decode())
    fields.update({"decision.newsletter": "accept", "decision.events": "refuse"})
    client.http.post(path, body=urlencode(fields),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    result = campaign_report.report(get_ledger(), runner.campaign)
    assert result.purposes["newsletter"]["accepted"] == 1
    assert result.purposes["events"]["refused"] == 1
    others = result.purposes["newsletter"]["no_answer"]
    assert result.purposes["newsletter"]["sent"] == others + 1
    assert all(i["contact_id"] != contact_id for i in result.no_answer)


def test_group_and_filter_audiences(act_env, act_sim):
    ids = add_contacts(act_sim, 5, prefix="grp")
    act_sim.add_group("Winter fair", ids[:2])
    by_group = make_runner("group-camp", audience="group", value="Winter fair")
    assert {c.id for c in define.audience(by_group.client, by_group.campaign)} == set(ids[:2])
    by_filter = make_runner("filter-camp", audience="filter",
                            value="emailAddress eq 'grp3@example.eu'")
    assert [c.email for c in define.audience(by_filter.client, by_filter.campaign)] == \
        ["grp3@example.eu"]
    with pytest.raises(BadInput, match="0 group"):
        define.audience(by_group.client, define.Campaign(
            "x-camp", ("newsletter",), "group", "Nope", "csv", "en"))


def test_mail_delivery_sends_once_even_when_run_twice(act_env, mail_env, act_sim, mail_sink):
    add_contacts(act_sim, 3, prefix="mailed")
    runner = make_runner("by-mail", delivery="mail")
    contacts = [c for c in define.audience(runner.client, runner.campaign)
                if (c.email or "").startswith("mailed")]
    assert runner.run(contacts).delivered == 3
    assert runner.run(contacts).delivered == 0
    mails = mail_sink.wait_for(count=3)
    assert len([m for m in mails if m.rcpt_tos[0].startswith("mailed")]) == 3
    assert "Hello P0," in next(m for m in mails if "mailed0" in m.rcpt_tos[0]).text()


def test_csv_delivery_and_export(act_env, act_sim):
    add_contacts(act_sim, 3, prefix="csv")
    runner = make_runner("by-csv", delivery="csv")
    contacts = [c for c in define.audience(runner.client, runner.campaign)
                if (c.email or "").startswith("csv")]
    runner.run(contacts)
    out = io.StringIO()
    assert campaign_runner.export_csv(runner, out) == 3
    rows = out.getvalue().splitlines()
    assert rows[0] == "act_contact_id,email,first_name,link"
    assert all(re.search(r",http://testserver/c/\S+$", row) for row in rows[1:])


def test_reminder_reaches_only_who_did_not_answer(act_env, act_sim, client):
    ids = add_contacts(act_sim, 2, prefix="rem")
    runner = make_runner("remind-me")
    contacts = [c for c in define.audience(runner.client, runner.campaign) if c.id in ids]
    runner.run(contacts)
    first_link = link_of(act_sim, ids[0]).removeprefix("http://testserver")
    page = client.http.get(first_link)
    fields = {**form_fields(page.body.decode()), "decision.newsletter": "accept"}
    client.http.post(first_link, body=urlencode(fields),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    silent = {i["contact_id"] for i in campaign_report.report(get_ledger(), runner.campaign).no_answer}
    assert silent == {ids[1]}
    old_link = link_of(act_sim, ids[1])
    reminder = make_runner("remind-me", round_no=2)
    progress = reminder.run([c for c in contacts if c.id in silent])
    assert progress.delivered == 1
    assert link_of(act_sim, ids[1]) != old_link
    assert client.http.get(old_link.removeprefix("http://testserver")).status_code == 410
    subject = subject_key(PEPPER, "rem1@example.eu")
    rounds = [e.get("round") for e in get_ledger().events(subject) if e["kind"] == "link_written"]
    assert rounds == [1, 2]


def test_bad_campaign_definitions_are_refused(act_env):
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    for args, message in [
        (("Bad Id", ["newsletter"], "all", None, "csv"), "Campaign id"),
        (("ok-id", ["lottery"], "all", None, "csv"), "unknown: lottery"),
        (("ok-id", ["newsletter"], "group", None, "csv"), "audience"),
        (("ok-id", ["newsletter"], "all", None, "fax"), "Delivery"),
        (("ok-id", ["newsletter"], "all", None, "act-field"), "link-field"),
    ]:
        with pytest.raises(BadInput, match=message):
            define.define(ledger, settings, catalogue, *args)
    define.define(ledger, settings, catalogue, "same-id", ["newsletter"], "all", None, "csv")
    with pytest.raises(BadInput, match="already exists"):
        define.define(ledger, settings, catalogue, "same-id", ["events"], "all", None, "csv")


def test_a_contact_another_run_is_handling_is_left_alone(act_env, act_sim):
    [contact_id] = add_contacts(act_sim, 1, prefix="busy")
    runner = make_runner("busy-camp")
    [contact] = [c for c in define.audience(runner.client, runner.campaign) if c.id == contact_id]
    assert get_ledger().lease("CAMPAIGN#busy-camp", f"LOCK#{contact_id}", "another-run", 300)
    assert runner.reach(contact) == ("busy", "")
    assert get_ledger().get("CAMPAIGN#busy-camp", f"CONTACT#{contact_id}") is None
    get_ledger().release("CAMPAIGN#busy-camp", f"LOCK#{contact_id}", "another-run")
    assert runner.reach(contact) == (define.DONE, "")


def test_a_minted_link_is_not_written_once_the_contact_changed_hands(act_env, act_sim, client):
    [contact_id] = add_contacts(act_sim, 1, prefix="moved")
    runner = make_runner("moved-camp")
    contacts = [c for c in define.audience(runner.client, runner.campaign) if c.id == contact_id]
    act_sim.set_faults(error_rate=1.0, kinds=("503",))  # the PATCH fails: link minted only
    runner.run(contacts)
    act_sim.set_faults()
    assert get_ledger().get("CAMPAIGN#moved-camp", f"CONTACT#{contact_id}")["status"] == "minted"
    act_sim.contacts[contact_id]["emailAddress"] = "new.person@example.eu"
    contacts = [c for c in define.audience(runner.client, runner.campaign) if c.id == contact_id]
    runner.run(contacts)
    item = get_ledger().get("CAMPAIGN#moved-camp", f"CONTACT#{contact_id}")
    assert item["status"] == define.DONE
    assert item["subject"] == subject_key(PEPPER, "new.person@example.eu")
    page = client.http.get(link_of(act_sim, contact_id).removeprefix("http://testserver"))
    assert page.status_code == 200


def test_an_error_after_delivery_never_causes_a_second_one(act_env, act_sim):
    [contact_id] = add_contacts(act_sim, 1, prefix="once")
    runner = make_runner("once-camp")
    [contact] = [c for c in define.audience(runner.client, runner.campaign) if c.id == contact_id]
    assert runner.reach(contact) == (define.DONE, "")
    runner._record_failure(contact, "StoreUnavailable after the write landed")
    assert get_ledger().get("CAMPAIGN#once-camp", f"CONTACT#{contact_id}")["status"] == define.DONE
    assert runner.reach(contact) == ("already", "")


def test_remind_twice_reminds_nobody_twice(act_env, act_sim, mail_env, mail_sink):
    for i in range(2):
        act_sim.add_contact(firstName=f"R{i}", emailAddress=f"twice{i}@example.eu")
    act_sim.add_group("Twice", [c["id"] for c in act_sim.contacts.values()
                                if (c.get("emailAddress") or "").startswith("twice")])
    started = run_cli("campaign", "start", "--id", "twice-camp", "--purpose", "newsletter",
                      "--group", "Twice", "--delivery", "mail")
    assert started.returncode == 0, started.stderr
    first = run_cli("campaign", "remind", "--id", "twice-camp")
    assert "reminding 2 contact(s) (round 2)" in first.stderr
    again = run_cli("campaign", "remind", "--id", "twice-camp")
    assert "nobody left to remind in round 2" in again.stdout
    third = run_cli("campaign", "remind", "--id", "twice-camp", "--new-round")
    assert "(round 3)" in third.stderr


def test_a_campaign_never_asks_someone_erased_meanwhile(act_env, act_sim):
    """The tombstone is checked inside the link's transaction, not only before it."""
    from chalicelib.store.keys import subject_pk

    act_sim.add_contact(firstName="Late", lastName="Erased", emailAddress="late@example.eu")
    runner = make_runner("race-erase", delivery="csv", purposes=("newsletter",))
    contact = next(c for c in define.audience(runner.client, runner.campaign)
                   if c.email == "late@example.eu")
    subject = key("late@example.eu")
    get_ledger().put({"pk": subject_pk(subject), "sk": "TOMBSTONE", "subject": subject,
                      "erased_at": "2026-11-29T00:00:00.000Z"})  # erased after _reach looked
    assert runner._mint(contact, "late@example.eu", subject) == ("skipped", "suppressed")
    assert list(get_ledger().events(subject)) == []


# -- the language rule: each contact's language from an Act! field, else the campaign's ------

def _page_language(client, url: str) -> str:
    page = client.http.get(url.removeprefix("http://testserver")).body.decode()
    return re.search(r'<html lang="(\w+)"', page).group(1)


def test_the_language_rule_mails_each_contact_in_their_language(act_env, mail_env, act_sim,
                                                                  mail_sink, client):
    ids = add_language_contacts(act_sim, "lang", ("Français", "English", "", "Deutsch"))
    runner = make_runner("lang-mail", delivery="mail", locale="fr", locale_field=LANGUAGE_FIELD)
    contacts = [c for c in define.audience(runner.client, runner.campaign) if c.id in ids]
    assert [c.language for c in sorted(contacts, key=lambda c: ids.index(c.id))] == \
        ["Français", "English", None, "Deutsch"]
    assert runner.run(contacts).delivered == 4
    mails = {m.rcpt_tos[0]: m for m in mail_sink.wait_for(count=4)
             if m.rcpt_tos[0].startswith("lang")}
    expected = {"lang0@example.eu": "fr", "lang1@example.eu": "en",
                "lang2@example.eu": "fr", "lang3@example.eu": "fr"}  # empty, unknown: default
    for address, locale in expected.items():
        mail = mails[address]
        assert mail.message["Content-Language"] == locale, address
        url = re.search(r"http://testserver/c/\S+", mail.text()).group(0)
        assert url.endswith(f"?lang={locale}") and _page_language(client, url) == locale
    items = {i["contact_id"]: i for i in define.contact_items(get_ledger(), "lang-mail")}
    assert [items[i]["locale"] for i in ids] == ["fr", "en", "fr", "fr"]


def test_the_language_rule_writes_links_that_open_in_each_contacts_language(act_env, act_sim,
                                                                            client):
    ids = add_language_contacts(act_sim, "langf")
    runner = make_runner("lang-field", locale="en", locale_field=LANGUAGE_FIELD)
    stored = define.load(get_ledger(), "lang-field")
    assert (stored.locale, stored.locale_field) == ("en", LANGUAGE_FIELD)
    contacts = [c for c in define.audience(runner.client, runner.campaign) if c.id in ids]
    assert runner.run(contacts).delivered == 3
    pages = [_page_language(client, link_of(act_sim, contact_id)) for contact_id in ids]
    assert pages == ["fr", "en", "en"]  # Français, English, empty: the default
    # without the rule (an older campaign): everyone in the campaign's language, as before
    fixed = make_runner("lang-fixed", locale="fr")
    assert fixed.campaign.locale_field is None and "locale_field" not in fixed.campaign.item()
    fixed.run([c for c in define.audience(fixed.client, fixed.campaign) if c.id in ids])
    assert [_page_language(client, link_of(act_sim, i)) for i in ids] == ["fr", "fr", "fr"]


def test_a_language_field_act_lacks_is_refused_and_nothing_recorded(act_env, act_sim):
    with pytest.raises(BadInput, match="language field 'Langue': this Act! contact field "
                                       "does not exist"):
        make_runner("lang-bad", delivery="csv", locale_field="Langue")
    assert define.find(get_ledger(), "lang-bad") is None
    make_runner("lang-same", delivery="csv", locale="fr")
    with pytest.raises(BadInput, match="already exists with other settings"):
        add_language_contacts(act_sim, "x")
        make_runner("lang-same", delivery="csv", locale="fr", locale_field=LANGUAGE_FIELD)
