"""Asking for consent from inside Act!: an Act! user adds contacts to a group or sets a
field; OptinProof mails the confirmation request, clears the trigger and shows the
state on the contact. Everything goes over HTTP to the Act! simulator and the SMTP sink.
"""
from __future__ import annotations

import threading
from typing import Any

import pytest

from chalicelib.act import ask
from chalicelib.consent.subjects import subject_key
from chalicelib.core.errors import ActError, ConfigError
from chalicelib.core.services import get_asker, get_ledger, get_postman, get_pusher, get_reconciler
from chalicelib.core.settings import load_settings
from chalicelib.mail import outbox
from chalicelib.store import keys
from tests.conftest import PEPPER
from tests.support.act import drain_all, field_key
from tests.support.cli import run_cli
from tests.support.consent import decide as decide_directly
from tests.support.signup import decide, links_in

GROUP = "Demande de consentement"
FIELD = "OptinProof Ask"


@pytest.fixture
def ask_env(act_env, mail_env, monkeypatch, act_sim) -> dict[str, str]:
    values = {"ACT_ASK_GROUP": GROUP, "ACT_ASK_FIELD": FIELD, "ACT_ASK_VALUE": "Ask"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    setup = run_cli("act", "setup")  # creates the trigger field, as an operator would
    assert setup.returncode == 0 and f"created  {FIELD} (Character)" in setup.stdout, setup
    act_sim.add_group(GROUP)
    return {**act_env, **mail_env, **values}


def group_members(sim: Any) -> list[str]:
    with sim.lock:
        return list(next(g for g in sim.groups.values() if g["name"] == GROUP)["memberIds"])


def into_group(sim: Any, *contacts: dict[str, Any]) -> None:
    with sim.lock:
        group = next(g for g in sim.groups.values() if g["name"] == GROUP)
        group["memberIds"] += [c["id"] for c in contacts]


def fields_of(sim: Any, contact: dict[str, Any]) -> dict[str, Any]:
    with sim.lock:
        return dict(sim.contacts[contact["id"]]["customFields"])


def send_queued() -> list[str]:
    return [r.status for r in outbox.sweep(get_postman(), include_later=True)]


def kinds(email: str) -> list[dict[str, Any]]:
    return [e for e in get_ledger().events(subject_key(PEPPER, email)) if e["kind"] == "act_ask"]


def test_group_trigger_mails_a_link_that_confirms_and_act_shows_it(ask_env, act_sim, mail_sink,
                                                                   client):
    contact = act_sim.add_contact(firstName="Gaëlle", emailAddress="gaelle@example.eu")
    into_group(act_sim, contact)
    result = run_cli("act", "ask", "--process")
    assert result.returncode == 0, result.stderr
    assert f"{contact['id']}: group -> asked" in result.stdout
    assert group_members(act_sim) == [], "the trigger is cleared: the contact left the group"
    status = field_key(act_sim, "Consent Newsletter")
    promotions = field_key(act_sim, "Consent Promotions")
    # without ACT_ASK_PURPOSES: the catalogue's e-mail marketing purposes
    assert fields_of(act_sim, contact)[status] == "Requested"
    assert fields_of(act_sim, contact)[promotions] == "Requested"
    assert not fields_of(act_sim, contact).get(field_key(act_sim, "Consent Events"))
    [history] = act_sim.history_for(contact["id"])
    assert history["regarding"] == "OptinProof: consent requested"
    [event] = kinds("gaelle@example.eu")
    assert (event["trigger"], event["outcome"], event["act_contact_id"]) == \
        ("group", "asked", contact["id"])
    assert event["purposes"] == ["newsletter", "promotions"]

    assert send_queued() == ["sent"]
    [mail] = mail_sink.wait_for("gaelle@example.eu")
    assert "Hello Gaëlle," in mail.text() and "Monthly newsletter" in mail.text()
    answer = decide(client, links_in(mail)["confirm"], newsletter="accept", promotions="refuse")
    assert answer.status_code == 200, answer.body
    drain_all(get_pusher())
    assert fields_of(act_sim, contact)[status] == "Accepted"
    assert fields_of(act_sim, contact)[promotions] == "Refused"

    again = run_cli("act", "ask", "--process")  # nothing holds a trigger any more
    assert "0 asked, 0 skipped" in again.stdout and send_queued() == []
    listed = run_cli("act", "ask")
    assert f"contact {contact['id']}  group  asked" in listed.stdout, listed.stdout
    assert run_cli("chain", "verify", "--all").returncode == 0


def test_field_trigger_asks_in_the_contacts_language_and_is_emptied(ask_env, act_sim,
                                                                     mail_sink, monkeypatch):
    monkeypatch.setenv("ACT_ASK_PURPOSES", "events")
    monkeypatch.setenv("ACT_ASK_LOCALE_FIELD", "Consent Events UTC")  # any text field will do
    trigger = field_key(act_sim, FIELD)
    language = field_key(act_sim, "Consent Events UTC")
    contact = act_sim.add_contact(firstName="Élodie", emailAddress="elodie@example.fr",
                                  editedBy="Chris Huffman",
                                  customFields={trigger: "Ask", language: "Français"})
    other = act_sim.add_contact(firstName="Nope", emailAddress="nope@example.fr",
                                customFields={trigger: "Later"})
    report = get_asker().scan()
    assert [(o.contact_id, o.triggers, o.outcome) for o in report.outcomes] == \
        [(contact["id"], ("field",), "asked")]
    assert not fields_of(act_sim, contact).get(trigger), "the field is emptied"
    assert fields_of(act_sim, other)[trigger] == "Later"
    assert fields_of(act_sim, contact)[field_key(act_sim, "Consent Events")] == "Requested"
    [event] = kinds("elodie@example.fr")
    assert (event["trigger"], event["act_user"], event["locale"]) == \
        ("field", "Chris Huffman", "fr")
    assert send_queued() == ["sent"]
    [mail] = mail_sink.wait_for("elodie@example.fr")
    assert "Invitations à nos événements" in mail.text()


def test_a_trigger_seen_twice_sends_one_mail(ask_env, act_sim, mail_sink):
    """A webhook hint and the poll at the same moment; then a clearing that failed."""
    trigger = field_key(act_sim, FIELD)
    contact = act_sim.add_contact(firstName="Twice", emailAddress="twice@example.eu",
                                  customFields={trigger: "Ask"})
    into_group(act_sim, contact)
    outcomes: list[Any] = []
    start = threading.Barrier(2)

    def worker(via_reconciler: bool) -> None:
        start.wait()
        if via_reconciler:  # the webhook path: a hint reconciled
            outcomes.append(get_reconciler().process(contact["id"]))
        else:
            outcomes.append(get_asker().scan())

    threads = [threading.Thread(target=worker, args=(flag,)) for flag in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 2
    assert send_queued() == ["sent"]
    assert len(mail_sink.wait_for("twice@example.eu")) == 1
    assert group_members(act_sim) == [] and not fields_of(act_sim, contact).get(trigger)
    [event] = kinds("twice@example.eu")
    assert event["trigger"] == "group+field"

    # Act! failed while the trigger was being cleared: seeing it again only clears it.
    again = act_sim.add_contact(firstName="Again", emailAddress="again@example.eu")
    into_group(act_sim, again)
    asker = get_asker()
    real = asker.client.remove_from_group

    def broken(*args: Any) -> None:
        raise ActError("Act! answered HTTP 500")

    asker.client.remove_from_group = broken  # type: ignore[method-assign]
    assert asker.scan().errors == 1
    assert group_members(act_sim) == [again["id"]]
    asker.client.remove_from_group = real  # type: ignore[method-assign]
    [outcome] = asker.scan().outcomes
    assert (outcome.outcome, outcome.reason) == ("cleared", "asked")
    assert group_members(act_sim) == []
    assert send_queued() == ["sent"] and len(mail_sink.wait_for("again@example.eu")) == 1
    assert len(kinds("again@example.eu")) == 1
    # cleared: adding the contact again later is a new request
    into_group(act_sim, again)
    assert [o.outcome for o in get_asker().scan().outcomes] == ["asked"]


def test_who_cannot_be_asked_is_skipped_with_the_reason(ask_env, act_sim, mail_sink, monkeypatch):
    monkeypatch.setenv("ACT_ASK_PURPOSES", "newsletter")
    nobody = act_sim.add_contact(firstName="No", lastName="Address")
    invalid = act_sim.add_contact(firstName="Bad", emailAddress="bad@@example")
    decide_directly("erased@example.eu", newsletter="accept")
    assert run_cli("erase", "--email", "erased@example.eu", "--act", "keep", "--yes").returncode == 0
    erased = act_sim.add_contact(firstName="Erased", emailAddress="erased@example.eu")
    decide_directly("spam@example.eu", newsletter="refuse")
    get_ledger().set_profile_fields(subject_key(PEPPER, "spam@example.eu"),
                                    {"complained_at": "2026-11-01T00:00:00.000Z"})
    complained = act_sim.add_contact(firstName="Spam", emailAddress="spam@example.eu")
    decide_directly("fan@example.eu", newsletter="accept")
    fan = act_sim.add_contact(firstName="Fan", emailAddress="fan@example.eu")
    people = (nobody, invalid, erased, complained, fan)
    into_group(act_sim, *people)
    mail_sink.clear()

    report = get_asker().scan()
    reasons = {o.contact_id: o.reason for o in report.outcomes if o.outcome == "skipped"}
    assert reasons == {nobody["id"]: "no_address", invalid["id"]: "invalid_address",
                       erased["id"]: "erased", complained["id"]: "complained",
                       fan["id"]: "already_accepted"}
    assert report.as_dict()["skipped"]["erased"] == 1
    assert group_members(act_sim) == [], "a skipped contact leaves the group too"
    assert send_queued() == [] and mail_sink.messages == []
    [note] = act_sim.history_for(nobody["id"])
    assert note["regarding"] == "OptinProof: consent not requested"
    assert "no e-mail address" in note["details"]
    # a known person's chain says why; an erased one gets no chain back
    assert [e["reason"] for e in kinds("spam@example.eu")] == ["complained"]
    assert [e["reason"] for e in kinds("fan@example.eu")] == ["already_accepted"]
    assert kinds("erased@example.eu") == []
    listed = {row["contact_id"]: row["reason"] for row in ask.claims(get_ledger())}
    assert listed == reasons


def test_the_scheduled_act_poll_handles_triggers_under_its_lease(ask_env, act_sim, mail_sink,
                                                                 monkeypatch, client):
    contact = act_sim.add_contact(firstName="Sched", emailAddress="sched@example.eu")
    into_group(act_sim, contact)

    def act_poll() -> Any:
        return client.lambda_.invoke("act_poll", client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[])).payload

    ledger = get_ledger()
    assert ledger.lease(*keys.ACT_POLL_LEASE, "another-invocation", 60)
    assert act_poll() == {"busy": True}
    assert group_members(act_sim) == [contact["id"]], "nothing done while another one runs"
    ledger.release(*keys.ACT_POLL_LEASE, "another-invocation")

    result = act_poll()
    # the edit poll (Act! cloud) met the contact first; the trigger scan found it done
    assert result["poll"]["read"] >= 1 and not result["poll"]["unfinished"]
    assert result["ask"] == {"asked": 0, "skipped": {}, "cleared": 0, "errors": 0,
                             "unfinished": False}
    assert [e["outcome"] for e in kinds("sched@example.eu")] == ["asked"]
    assert group_members(act_sim) == []
    assert ledger.get(*keys.ACT_POLL_LEASE) is None, "the lease is given back"
    assert send_queued() == ["sent"] and mail_sink.wait_for("sched@example.eu")

    monkeypatch.setenv("ACT_POLL", "triggers")  # self-hosted Act! with webhooks
    assert "poll" not in act_poll()
    monkeypatch.setenv("ACT_POLL", "false")
    assert act_poll() == {"off": True}


def test_act_check_says_which_triggers_are_configured(ask_env, act_sim, monkeypatch):
    checked = run_cli("act", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"ok      ask trigger  group  group '{GROUP}' exists" in checked.stdout
    assert f"ok      ask trigger  field  field '{FIELD}'" in checked.stdout
    monkeypatch.setenv("ACT_ASK_GROUP", "Nobody made this group")
    missing = run_cli("act", "check")
    assert missing.returncode == 1
    assert "PROBLEM ask trigger  group" in missing.stdout and "no group of that name" in \
        missing.stdout


def test_ask_settings_are_checked_when_loaded(env, act_env, monkeypatch):
    base = {**act_env}
    with pytest.raises(ConfigError, match="ACT_ASK_VALUE='Ask' is set but ACT_ASK_FIELD"):
        load_settings({**base, "ACT_ASK_VALUE": "Ask"})
    with pytest.raises(ConfigError, match="ACT_POLL='sometimes'"):
        load_settings({**base, "ACT_POLL": "sometimes"})
    act = load_settings({**base, "ACT_ASK_GROUP": GROUP}).act
    assert act is not None and (act.ask_group, act.ask_value, act.poll) == (GROUP, "Ask", "on")
    monkeypatch.setenv("ACT_ASK_GROUP", GROUP)
    monkeypatch.setenv("ACT_ASK_PURPOSES", "newsletter,horoscopes")
    with pytest.raises(ConfigError, match="unknown purpose.*horoscopes"):
        get_asker()
    monkeypatch.setenv("ACT_ASK_PURPOSES", "")
    monkeypatch.setenv("ACT_ASK_LOCALE", "de")
    with pytest.raises(ConfigError, match="ACT_ASK_LOCALE='de' is not a catalogue language"):
        get_asker()


def test_a_group_missing_in_act_holds_up_nothing_else(ask_env, act_sim, client, monkeypatch):
    monkeypatch.setenv("ACT_ASK_GROUP", "Deleted meanwhile")
    contact = act_sim.add_contact(firstName="New", emailAddress="new@example.eu")
    outcome = get_reconciler().process(contact["id"])  # a webhook hint is reconciled anyway
    assert outcome.contact_id == contact["id"] and not outcome.actions
    result = client.lambda_.invoke("act_poll", client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[])).payload
    assert "no group of that name" in result["ask"]["error"]
    assert result["poll"]["read"] >= 1, "the poll itself ran"


def test_a_poll_cut_by_its_deadline_loses_nothing(ask_env, act_sim):
    from chalicelib.act import reconcile

    first = act_sim.add_contact(firstName="Late", emailAddress="late@example.eu")
    ledger, since = get_ledger(), "2000-01-01T00:00:00.000Z"
    report = reconcile.poll(ledger, get_reconciler(), since, deadline=0.0)  # already over
    assert report.unfinished and report.reconciled == [] and report.watermark == since
    into_group(act_sim, first)
    after = reconcile.poll(ledger, get_reconciler())  # from the watermark it kept
    assert first["id"] in [o.contact_id for o in after.reconciled]
    assert group_members(act_sim) == [] and kinds("late@example.eu")
