"""Consent over time: validity per purpose, renewal mails, expiry, retention.

Against DynamoDB Local, the SMTP sink and the Act! simulator. Time is aged by running
the sweep ``as_of`` a later instant: decisions are recorded now, the sweep looks at
them from the day a renewal or an expiry is due.
"""
from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from chalicelib.consent import renewal, validity
from chalicelib.consent.catalogue import parse_catalogue
from chalicelib.core.clock import parse_iso
from chalicelib.core.errors import CatalogueError, ConfigError
from chalicelib.core.services import get_catalogue, get_ledger, get_postman
from chalicelib.core.settings import get_settings, load_settings
from chalicelib.proof.audit import verify_subject
from chalicelib.store import keys
from tests.conftest import ROOT
from tests.support.act import contact_by_email, drain_all, field_key
from tests.support.rights import confirmed, key
from tests.support.signup import decide, links_in

SHIPPED = (ROOT / "catalogue.toml").read_text(encoding="utf-8")
#: The shipped catalogue without its [retention] table and validity lines (each test
#: says its own; what is left holds the defaults).
BASE = re.sub(r"\[retention\]\nafter = .*\naction = .*\n|\n(validity|renewal) = .*(?=\n)", "",
              SHIPPED)


def _with(newsletter: str = "", retention: str = "") -> str:
    """The shipped catalogue with extra lines for the newsletter and a [retention] table."""
    text = BASE.replace('id = "newsletter"\n', f'id = "newsletter"\n{newsletter}\n', 1)
    return text.replace("[controller]", f"{retention}\n\n[controller]", 1) if retention else text


class _Aged:
    """A sweeper run ``as_of`` a later instant, reading the days from ``back`` days before
    it (a real run reads from where the last one stopped; aged, that would be years)."""

    def __init__(self, **kw: Any) -> None:
        self.sweeper = renewal.Sweeper(get_ledger(), get_settings(), get_catalogue(), **kw)

    def run(self, as_of: Any = None, back: int = 3, since: str | None = None) -> renewal.SweepReport:
        if as_of is None:
            return self.sweeper.run()
        return self.sweeper.run(as_of, since or (as_of - timedelta(days=back)).date().isoformat())


def _sweeper(**kw: Any) -> _Aged:
    return _Aged(**kw)


@pytest.fixture
def aged(mail_env: dict[str, str], act_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
         tmp_path: Path) -> Any:
    """Write the test catalogue with extra validity lines: ``aged(newsletter=..., retention=...)``."""
    path = Path(mail_env["CONSENT_CATALOGUE"])
    forms = path.read_text(encoding="utf-8").split("[[forms]]", 1)[1]

    def write(newsletter: str = "", retention: str = "") -> None:
        path.write_text(_with(newsletter, retention).split("[[forms]]")[0] + "[[forms]]" + forms,
                        encoding="utf-8")
    return write


# -- the catalogue ------------------------------------------------------------------------


def test_validity_defaults_to_three_years_with_three_renewal_mails() -> None:
    catalogue = parse_catalogue(BASE, "catalogue.toml")
    for purpose in catalogue.purposes.values():
        assert (purpose.validity_days, purpose.renewal_days) == (1095, (60, 30, 7))
    assert catalogue.retention.days is None
    shipped = parse_catalogue(SHIPPED, "catalogue.toml")
    assert (shipped.get("events").validity_days, shipped.get("events").renewal_days) == (730, (30,))
    assert (shipped.retention.days, shipped.retention.action) == (1095, "erase")


@pytest.mark.parametrize(("written", "days"), [('"3y"', 1095), ('"36m"', 1095), ('"1095d"', 1095),
                                               ('"8w"', 56), ('"none"', None)])
def test_validity_units(written: str, days: int | None) -> None:
    renewal_line = "renewal = []" if days is None else ""
    catalogue = parse_catalogue(_with(f"validity = {written}\n{renewal_line}"), "c.toml")
    assert catalogue.get("newsletter").validity_days == days


@pytest.mark.parametrize(("lines", "says"), [
    ('validity = "3 years"', "validity: '3 years' is not a period"),
    ('validity = "none"\nrenewal = [7]', "needs a validity"),
    ('validity = "30d"\nrenewal = [30]', "less than the validity"),
    ("renewal = [7, 7]", "lists a day twice"),
    ('renewal = ["7"]', "whole numbers"),
])
def test_bad_validity_is_refused_naming_the_line(lines: str, says: str) -> None:
    with pytest.raises(CatalogueError) as caught:
        parse_catalogue(_with(lines), "catalogue.toml")
    assert says in str(caught.value) and "catalogue.toml line" in str(caught.value)


def test_retention_table() -> None:
    catalogue = parse_catalogue(_with(retention='[retention]\nafter = "2y"\naction = "archive"'),
                                "c.toml")
    assert (catalogue.retention.days, catalogue.retention.action) == (730, "archive")
    with pytest.raises(CatalogueError, match="retention.action"):
        parse_catalogue(_with(retention='[retention]\naction = "shred"'), "c.toml")


def test_next_due_skips_renewal_days_already_past() -> None:
    until = "2030-03-31T10:00:00.000Z"
    assert validity.next_due(until, (60, 30, 7), "2029-01-01") == validity.Due("2030-01-30", 60)
    assert validity.next_due(until, (60, 30, 7), "2030-03-02") == validity.Due("2030-03-24", 7)
    assert validity.next_due(until, (60, 30, 7), "2030-03-25").action == "expire"


# -- the Act! status word -------------------------------------------------------------------


def test_act_status_values_take_a_fourth_word_and_keep_three(env: dict[str, str]) -> None:
    base = {**env, "ACT_API_URL": "http://127.0.0.1:9", "ACT_DATABASE": "d",
            "ACT_USERNAME": "u", "ACT_PASSWORD": "p"}
    three = load_settings({**base, "ACT_STATUS_VALUES": "Oui,Non,Retiré"}).act
    four = load_settings({**base, "ACT_STATUS_VALUES": "Oui,Non,Retiré,Expiré"}).act
    assert three is not None and three.status_values["expired"] == "Expired"
    assert four is not None and four.status_values == {
        "accepted": "Oui", "refused": "Non", "withdrawn": "Retiré", "expired": "Expiré"}
    with pytest.raises(ConfigError, match="three or four"):
        load_settings({**base, "ACT_STATUS_VALUES": "a,b"})
    assert load_settings(env).renewal_mails_per_run == 200
    with pytest.raises(ConfigError, match="RENEWAL_MAILS_PER_RUN"):
        load_settings({**env, "RENEWAL_MAILS_PER_RUN": "20000"})


# -- a decision records its expiry, indexed by day ------------------------------------------


def _state(email: str, purpose: str = "newsletter") -> dict[str, Any]:
    return get_ledger().get(*keys.purpose(key(email), purpose)) or {}


def test_acceptance_records_its_expiry_and_indexes_its_first_renewal(
        aged: Any, client: Any, mail_sink: Any) -> None:
    aged()
    confirmed(client, mail_sink, "val@example.eu", newsletter="accept", events="refuse")
    ledger, subject = get_ledger(), key("val@example.eu")
    state = _state("val@example.eu")
    decided = parse_iso(state["decided_at"])
    assert parse_iso(state["valid_until"]) == decided + timedelta(days=1095)
    accepted = [e for e in ledger.events(subject) if e["kind"] == "accepted"]
    assert accepted[-1]["valid_until"] == state["valid_until"]
    first = (decided + timedelta(days=1095 - 60)).date().isoformat()
    assert state["validity_due"] == first
    item = ledger.get(*keys.validity_due(first, subject, "newsletter"))
    assert item is not None and item["action"] == "renew" and item["step"] == 60
    assert "valid_until" not in _state("val@example.eu", "events")  # refused: nothing runs out
    ahead = validity.outlook(ledger, get_catalogue(), (decided + timedelta(days=1080)).date())
    assert ahead["newsletter"].ahead_30 == 1 and ahead["events"].ahead_90 == 0


def test_renewal_mail_then_renewed_acceptance_resets_the_expiry(
        aged: Any, client: Any, mail_sink: Any) -> None:
    aged()
    confirmed(client, mail_sink, "renew@example.eu", newsletter="accept", events="refuse")
    before = _state("renew@example.eu")
    until = parse_iso(before["valid_until"])
    mail_sink.clear()
    report = _sweeper(deliver=get_postman().deliver).run(as_of=until - timedelta(days=59))
    assert report.renewal_mails == 1 and report.expired == 0
    assert len(mail_sink.messages) == 1
    mail = mail_sink.messages[0]
    assert "Do you still want to hear from Example Outdoor SAS?" in mail.subject
    assert "Monthly newsletter" in mail.text() and "Invitations" not in mail.text()
    subject = key("renew@example.eu")
    events = list(get_ledger().events(subject))
    issued = [e for e in events if e.get("channel") == "renewal" and e["kind"] == "link_issued"]
    assert issued and issued[0]["renewal_of"] == {"newsletter": before["valid_until"]}
    assert events[-1]["kind"] == "mail_sent" and events[-1]["mail_kind"] == "renew"
    # the same day again: nothing more (the index moved on to the 30-day mail)
    assert _sweeper().run(as_of=until - timedelta(days=59)).renewal_mails == 0
    thirty = (until - timedelta(days=30)).date().isoformat()
    assert get_ledger().get(*keys.validity_due(thirty, subject, "newsletter")) is not None
    # the person accepts again from the mail: a new expiry, the old index item gone
    answer = decide(client, links_in(mail)["confirm"], newsletter="accept")
    assert answer.status_code == 200, answer.body
    after = _state("renew@example.eu")
    assert after["state"] == "accepted" and after["valid_until"] > before["valid_until"]
    # decided the same (real) day, its first renewal falls on the same day: rewritten
    first = get_ledger().get(*keys.validity_due(after["validity_due"], subject, "newsletter"))
    assert first is not None and first["event_id"] == after["event_id"] != before["event_id"]
    # the moved 30-day item is stale now: the sweep drops it and mails nothing
    mail_sink.clear()
    late = _sweeper(deliver=get_postman().deliver).run(as_of=until - timedelta(days=29))
    assert late.renewal_mails == 0 and late.stale == 1 and not mail_sink.messages
    assert verify_subject(get_ledger(), subject).ok


def test_renewal_mails_are_throttled_per_run(aged: Any, client: Any, mail_sink: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    aged()
    for name in ("one", "two", "three"):
        confirmed(client, mail_sink, f"{name}@example.eu", newsletter="accept", events="refuse")
    until = parse_iso(_state("one@example.eu")["valid_until"])
    monkeypatch.setenv("RENEWAL_MAILS_PER_RUN", "2")
    mail_sink.clear()
    first = _sweeper(deliver=get_postman().deliver).run(as_of=until - timedelta(days=59))
    assert (first.renewal_mails, first.deferred) == (2, 1) and len(mail_sink.messages) == 2
    second = _sweeper(deliver=get_postman().deliver).run(as_of=until - timedelta(days=59))
    assert (second.renewal_mails, second.deferred) == (1, 0) and len(mail_sink.messages) == 3


def test_expiry_is_an_event_a_state_and_an_act_status(
        aged: Any, client: Any, mail_sink: Any, act_sim: Any, pusher: Any) -> None:
    aged('validity = "30d"\nrenewal = [7]')
    act_sim.add_contact(firstName="Eve", lastName="Expiry", emailAddress="eve@example.eu")
    confirmed(client, mail_sink, "eve@example.eu", newsletter="accept", events="refuse")
    drain_all(pusher)
    status = field_key(act_sim, "Consent Newsletter")
    assert contact_by_email(act_sim, "eve@example.eu")["customFields"][status] == "Accepted"
    written = _state("eve@example.eu")["valid_until"]
    until = parse_iso(written)
    # read from before the 7-day renewal: an item still waiting for its mail when the
    # expiry has come is expired, not mailed
    dry = _sweeper(dry_run=True).run(as_of=until + timedelta(hours=1), back=10)
    assert dry.expired == 1 and _state("eve@example.eu")["state"] == "accepted"
    report = _sweeper().run(as_of=until + timedelta(hours=1), back=10)
    assert report.expired == 1
    state, subject = _state("eve@example.eu"), key("eve@example.eu")
    assert state["state"] == "expired" and state["valid_until"] == written
    last = list(get_ledger().events(subject))[-1]
    assert (last["kind"], last["previous_state"], last["channel"]) == (
        "expired", "accepted", "validity")
    assert verify_subject(get_ledger(), subject).ok
    drain_all(pusher)
    contact = contact_by_email(act_sim, "eve@example.eu")
    assert contact["customFields"][status] == "Expired"
    assert contact["aemOptOut"] is True  # no e-mail-marketing purpose accepted any more
    counts = validity.outlook(get_ledger(), get_catalogue(), (until + timedelta(days=2)).date())
    assert counts["newsletter"].expired_now == 1 and counts["newsletter"].past_30 == 1
    assert _sweeper().run(as_of=until + timedelta(days=1)).expired == 0  # once
    # accepting again from the expired state: accepted, counted again
    answer = decide(client, "/c/" + _fresh_link("eve@example.eu"), newsletter="accept")
    assert answer.status_code == 200
    again = validity.outlook(get_ledger(), get_catalogue(), date.today())
    assert again["newsletter"].expired_now == 0


def _fresh_link(email: str) -> str:
    from chalicelib.consent import rules
    issued = rules.issue_link(get_ledger(), get_settings(), get_catalogue(), email, ["newsletter"])
    return issued.token


def test_retention_erases_a_person_without_contact_once_nothing_runs(
        aged: Any, client: Any, mail_sink: Any) -> None:
    aged('validity = "30d"\nrenewal = []', '[retention]\nafter = "60d"\naction = "archive"')
    confirmed(client, mail_sink, "old@example.eu", newsletter="accept", events="refuse")
    subject, ledger = key("old@example.eu"), get_ledger()
    profile = ledger.get(*keys.profile(subject)) or {}
    due = profile["retention_due"]
    start = parse_iso(profile["last_contact_at"])
    erased: list[tuple[str, str]] = []

    def erase(who: str, mode: str) -> None:
        from chalicelib.rights import erasure
        erased.append((who, mode))
        erasure.erase(ledger, get_catalogue(), who, "retention", mode)

    run = _sweeper(erase=erase).run(as_of=start + timedelta(days=61), back=40)
    assert run.expired == 1 and run.archived == 1 and erased == [(subject, "keep")]
    assert ledger.get(*keys.profile(subject)) is None
    assert ledger.get(*keys.tombstone(subject)) is not None
    assert ledger.get(*keys.validity_due(due, subject, keys.RETENTION_SK)) is None
    kinds = [e["kind"] for e in ledger.events(subject)]
    assert kinds[-2:] == ["expired", "erased"]  # the proof stays
    assert verify_subject(ledger, subject).ok


def test_retention_waits_for_a_consent_still_running(aged: Any, client: Any,
                                                     mail_sink: Any) -> None:
    aged(retention='[retention]\nafter = "30d"')
    confirmed(client, mail_sink, "keep@example.eu", newsletter="accept", events="refuse")
    subject = key("keep@example.eu")
    start = parse_iso((get_ledger().get(*keys.profile(subject)) or {})["last_contact_at"])
    run = _sweeper(erase=lambda *a: pytest.fail("erased")).run(as_of=start + timedelta(days=31))
    assert run.retention_moved == 1 and run.erased == 0
    moved = (get_ledger().get(*keys.profile(subject)) or {})["retention_due"]
    assert moved == _state("keep@example.eu")["valid_until"][:10]


def test_a_run_is_told_busy_while_another_holds_the_lease(env: dict[str, str]) -> None:
    ledger = get_ledger()
    assert ledger.lease(*keys.VALIDITY_LEASE, "other", 60)
    assert _sweeper().run().busy
    assert ledger.get(*keys.VALIDITY_CURSOR) is None


# -- the dashboard and the CLI -----------------------------------------------------------------


def test_dashboard_shows_expiries_ahead_from_counters(aged: Any, client: Any, mail_sink: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import csv
    import io
    from urllib.parse import urlencode

    from chalicelib.web import admin_auth
    from tests.support.admin import ADMIN_KEY

    aged('validity = "30d"\nrenewal = [7]')
    confirmed(client, mail_sink, "dash@example.eu", newsletter="accept", events="accept")
    monkeypatch.setenv("ADMIN_SECRET_KEYS", ADMIN_KEY)
    token = admin_auth.mint(get_settings(), "olga@example.eu", 600)
    login = client.http.get(f"/admin/login?{urlencode({'token': token})}")
    cookie = login.headers["Set-Cookie"].split(";", 1)[0]
    html = client.http.get("/admin/dashboard", headers={"Cookie": cookie}).body.decode()
    assert "Consent running out" in html
    answer = client.http.get("/admin/dashboard?format=csv&table=expiries",
                             headers={"Cookie": cookie})
    rows = {r["purpose"]: r for r in csv.DictReader(io.StringIO(answer.body.decode()))}
    assert rows["newsletter"]["validity_days"] == "30"
    assert rows["newsletter"]["next_30_days"] == "1" and rows["newsletter"]["expired_now"] == "0"
    assert rows["events"]["validity_days"] == "1095" and rows["events"]["next_90_days"] == "0"


def test_cli_sweep_dry_run_and_expiries(aged: Any, client: Any, mail_sink: Any) -> None:
    import json

    from tests.support.cli import run_cli

    aged('validity = "30d"\nrenewal = [7]')
    confirmed(client, mail_sink, "cli@example.eu", newsletter="accept", events="refuse")
    env = _settings_env()
    later = (date.today() + timedelta(days=31)).isoformat()
    dry = run_cli("consent", "sweep", "--dry-run", "--as-of", later, "--json", env=env)
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    # read from today on: the 7-day renewal not sent by then is past its expiry
    assert report["dry_run"] and report["expired"] == 1 and report["renewal_mails"] == 0
    week = (date.today() + timedelta(days=24)).isoformat()
    soon = json.loads(run_cli("consent", "sweep", "--dry-run", "--as-of", week, "--json",
                              env=env).stdout)
    assert (soon["renewal_mails"], soon["expired"]) == (1, 0)
    assert _state("cli@example.eu")["state"] == "accepted"  # a dry run writes nothing
    refused = run_cli("consent", "sweep", "--as-of", later, env=env)
    assert refused.returncode == 2 and "only go with --dry-run" in refused.stderr
    listed = run_cli("consent", "expiries", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["newsletter"]["ahead_30"] == 1
    assert run_cli("consent", "sweep", "--help").returncode == 0


def _settings_env() -> dict[str, str]:
    import os

    from chalicelib.core.settings import _ENV_NAMES
    return {name: os.environ[name] for name in _ENV_NAMES if name in os.environ}


def test_backfill_gives_earlier_acceptances_their_expiry_once(
        aged: Any, client: Any, mail_sink: Any) -> None:
    """An acceptance recorded while its purpose had no validity (as every acceptance of
    an earlier version) gets one, counted from its decision, with an event on the chain;
    the sweep then expires it like any other."""
    import json

    from chalicelib.consent import backfill
    from tests.support.cli import run_cli

    aged('validity = "none"\nrenewal = []')
    confirmed(client, mail_sink, "old@example.eu", newsletter="accept", events="refuse")
    assert "valid_until" not in _state("old@example.eu")
    aged('validity = "30d"\nrenewal = [7]')
    dry = run_cli("consent", "backfill", "--dry-run", "--json", env=_settings_env())
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["stamped"] == 1
    assert "valid_until" not in _state("old@example.eu")  # a dry run writes nothing

    ledger, subject = get_ledger(), key("old@example.eu")
    report = backfill.run(ledger, get_catalogue())
    assert (report.people, report.stamped, report.already_due) == (1, 1, 0)
    state = _state("old@example.eu")
    until = parse_iso(state["valid_until"])
    assert until == parse_iso(state["decided_at"]) + timedelta(days=30)
    last = list(ledger.events(subject))[-1]
    assert (last["kind"], last["valid_until"], last["accepted_event_id"]) == (
        "validity_set", state["valid_until"], state["event_id"])
    assert "valid_until" not in _state("old@example.eu", "events")  # refused: nothing runs
    assert verify_subject(ledger, subject).ok
    ahead = validity.outlook(ledger, get_catalogue(), date.today())
    assert ahead["newsletter"].ahead_30 + ahead["newsletter"].ahead_90 >= 1
    assert backfill.run(ledger, get_catalogue()).stamped == 0  # nothing twice

    assert _sweeper().run(as_of=until + timedelta(hours=1), back=10).expired == 1
    assert _state("old@example.eu")["state"] == "expired"
    assert verify_subject(ledger, subject).ok
