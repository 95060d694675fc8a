"""Breach notices (chalicelib/breach.py): every affected person still reachable is told
once, with proof, whatever fails on the way.

Real parts only: people are created through the real link issuance and decisions on
DynamoDB Local, mails travel over SMTP to the aiosmtpd sink, the chains are checked
by the same audit `chain verify` runs. The only stand-in is the throttle's sleep.
"""
from __future__ import annotations

import html
import json
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from chalicelib.proof import audit
from chalicelib.rights import breach
from chalicelib.consent import rules
from chalicelib.core.clock import now_iso
from chalicelib.core.errors import BadInput, ConfigError
from chalicelib.store.keys import subject_pk
from chalicelib.mail.compose import Template
from chalicelib.core.services import get_catalogue, get_ledger
from chalicelib.core.settings import get_settings
from chalicelib.consent.subjects import normalise_email, subject_key
from chalicelib.mail.transports import NoTransport, get_transport
from tests.conftest import PEPPER, scan_table

BREACH = "2026-11-shop-db"
NOTICE_EN = (
    "On 27 November 2026 someone copied the customer table of our web shop.\n"
    "It held names, e-mail addresses & order numbers; no passwords, no card numbers.\n"
    "\n"
    "Be wary of mails that ask for your password or payment details <even if they look like "
    "ours>: we never ask for them.\n"
    "\n"
    "We closed the hole the same day and informed the CNIL. Our data protection officer "
    "answers at dpo@example-outdoor.eu."
)
NOTICE_FR = (
    "Le 27 novembre 2026, quelqu'un a copié la table des clients de notre boutique en ligne.\n"
    "\n"
    "Méfiez-vous des e-mails qui vous demandent votre mot de passe : nous ne le demandons "
    "jamais."
)
SUBJECT_FR = "Information importante : incident de sécurité"


# -- people and tools ---------------------------------------------------------------------------

def person(email: str, locale: str = "en", decide: dict[str, str] | None = None) -> str:
    """Someone with a confirm link issued (and, if asked, decisions made); their subject."""
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    purposes = list(decide or {"newsletter": ""})
    issued = rules.issue_link(ledger, settings, catalogue, email, purposes, channel="test",
                                locale=locale)
    if decide:
        link, record = rules.open_link(ledger, settings, "confirm", issued.token)
        shown = {p: catalogue.get(p).text("en").sha256 for p in decide}
        rules.decide(ledger, catalogue, link, record, decide, "en", shown,
                       rules.RequestContext())
    return issued.subject


def erased(email: str) -> str:
    """Someone erased: the profile gone, a tombstone left (the chain stays)."""
    subject = person(email)
    ledger = get_ledger()
    ledger.delete(subject_pk(subject), "PROFILE")
    ledger.put({"pk": subject_pk(subject), "sk": "TOMBSTONE", "erased_at": now_iso()})
    return subject


def undeliverable(email: str) -> str:
    """Someone whose address bounced for good (as an SES permanent bounce leaves it)."""
    subject = person(email)
    get_ledger().set_profile_fields(subject, {"undeliverable": {"at": now_iso(),
                                                                "reason": "permanent bounce"}})
    return subject


def notice_dir(tmp_path: Path, files: dict[str, str | bytes], name: str = "notice") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for filename, content in files.items():
        path = folder / filename
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


def the_notice(tmp_path: Path, en: str = NOTICE_EN, fr: str | None = NOTICE_FR,
               breach_id: str = BREACH) -> breach.Notice:
    files = {"notice.en.txt": en}
    if fr is not None:
        files["notice.fr.txt"] = f"Subject: {SUBJECT_FR}\n\n{fr}"
    return breach.load_notice(breach_id, notice_dir(tmp_path, files, uuid.uuid4().hex),
                              get_catalogue())


def run(notice: breach.Notice, subjects: list[str], **options: Any) -> breach.Progress:
    settings = get_settings()
    options.setdefault("sleep", lambda seconds: None)
    options.setdefault("rate_per_second", 1000)
    return breach.notify(get_ledger(), settings, get_catalogue(), get_transport(
        settings.mail, settings.aws_region), notice, subjects, **options)


def everyone() -> list[str]:
    return breach.select(get_ledger(), get_settings(), get_catalogue(), breach.Selection()).subjects


def notified_events(subject: str) -> list[dict[str, Any]]:
    return [e for e in get_ledger().events(subject) if e["kind"] == "breach_notified"]


def key(email: str) -> str:
    return subject_key(PEPPER, normalise_email(email))


# -- the whole run ------------------------------------------------------------------------------

REACHABLE = ("ann@example.eu", "bob@example.eu", "cleo@example.eu")


def test_each_reachable_person_gets_one_mail_and_a_verifiable_event(mail_env, mail_sink, tmp_path):
    subjects = {email: person(email) for email in REACHABLE}
    gone = erased("gone@example.eu")
    bounced = undeliverable("bounced@example.eu")
    seen: list[str] = []

    progress = run(the_notice(tmp_path), everyone(), on_progress=lambda p: seen.append(p.line()))

    assert (progress.total, progress.notified, progress.before) == (5, 3, 0)
    assert progress.unreachable == {"erased": 1, "undeliverable": 1}
    assert (progress.failed, progress.permanent, progress.stopped) == (0, 0, False)
    assert len(seen) == 5 and seen[-1].startswith("5/5 people | notified 3 | before 0 | "
                                                  "unreachable 2 | failed 0 |")
    mails = mail_sink.messages
    assert sorted(r for m in mails for r in m.rcpt_tos) == sorted(REACHABLE)
    for stored in mails:
        (to,) = stored.rcpt_tos
        assert stored.subject == "Important information about your personal data"
        text, body = stored.text(), stored.html()
        for paragraph in NOTICE_EN.split("\n\n"):
            assert paragraph in text
            assert html.escape(paragraph.split("\n")[0]) in body
        assert "<even if" not in body and "&amp; order numbers" in body
        others = [e for e in (*REACHABLE, "gone@example.eu", "bounced@example.eu") if e != to]
        raw = stored.raw.decode("utf-8", "replace")
        assert not any(other in raw for other in others)
        message = stored.message
        assert message["List-Unsubscribe"] is None  # owed whatever the consent: no opt-out
        assert message["Reply-To"] == "privacy@example-outdoor.eu"
        assert message["Content-Language"] == "en"
        assert "https://" not in text.replace("https://example-outdoor.eu/privacy", "")
        assert "<img" not in body  # no tracking pixel
    for email, subject in subjects.items():
        (event,) = notified_events(subject)
        assert event["breach_id"] == BREACH and event["locale"] == "en"
        assert event["notice_sha256"] == breach.NoticeText(
            "en", "Important information about your personal data", NOTICE_EN).sha256
        assert event["transport"] == "smtp" and event["mail_kind"] == "breach"
        sent = next(m for m in mails if m.rcpt_tos == (email,))
        assert event["message_id"] == sent.message["Message-ID"]
        stored = get_ledger().get(f"MAILTPL#{event['template_version']}", "MAILTPL")
        assert stored["text"] == sent.text() and stored["html"] == sent.html()
        assert Template(stored["mail_kind"], stored["locale"], stored["subject"], stored["text"],
                        stored["html"]).sha256 == event["template_version"]
        assert audit.verify_subject(get_ledger(), subject).ok
    assert notified_events(gone) == [] and notified_events(bounced) == []
    assert audit.verify_subject(get_ledger(), gone).ok

    again = run(the_notice(tmp_path), everyone())
    assert (again.notified, again.before, again.unreachable) == (0, 3, {"erased": 1,
                                                                        "undeliverable": 1})
    assert len(mail_sink.messages) == 3
    assert all(len(notified_events(s)) == 1 for s in subjects.values())

    result = breach.report(get_ledger(), BREACH)
    assert (result.notified, result.unreachable, result.failed, result.permanent) == (
        3, {"erased": 1, "undeliverable": 1}, 0, 0)
    assert result.first_at <= result.last_at and result.locales == ["en", "fr"]
    assert json.dumps(result.as_dict())


def test_a_transport_failure_mid_run_is_finished_by_the_next_run(mail_env, mail_sink, tmp_path):
    """The sink starts refusing after the first mail; the next run sends exactly the rest."""
    emails = ["p1@example.eu", "p2@example.eu", "p3@example.eu", "p4@example.eu"]
    for email in emails:
        person(email)

    def break_after_first(progress: breach.Progress) -> None:
        if progress.notified == 1:
            mail_sink.set_failure("tempfail")

    first = run(the_notice(tmp_path), everyone(), on_progress=break_after_first)
    assert (first.notified, first.failed, first.permanent) == (1, 3, 0)
    assert all("451" in error and "@" not in error for error in first.errors)
    assert len(mail_sink.messages) == 1
    failed = [i for i in breach.progress_items(get_ledger(), BREACH) if i["status"] == "failed"]
    assert len(failed) == 3 and all(not i["permanent"] and i["attempts"] == 1 for i in failed)
    assert breach.report(get_ledger(), BREACH).failed == 3

    mail_sink.set_failure(None)
    second = run(the_notice(tmp_path), everyone())
    assert (second.notified, second.before, second.failed) == (3, 1, 0)
    assert sorted(r for m in mail_sink.messages for r in m.rcpt_tos) == emails
    for email in emails:
        (event,) = notified_events(key(email))
        assert event["attempts"] == (1 if email in mail_sink.messages[0].rcpt_tos else 2)
        assert audit.verify_subject(get_ledger(), key(email)).ok
    assert breach.report(get_ledger(), BREACH).notified == 4


def test_a_permanent_refusal_is_not_tried_again(mail_env, mail_sink, tmp_path):
    person("refused@example.eu")
    mail_sink.set_failure("permfail")
    first = run(the_notice(tmp_path), everyone())
    assert (first.notified, first.failed, first.permanent) == (0, 0, 1)
    mail_sink.set_failure(None)
    second = run(the_notice(tmp_path), everyone())
    assert (second.notified, second.permanent) == (0, 1)
    assert mail_sink.messages == []
    assert breach.report(get_ledger(), BREACH).permanent == 1


def test_a_person_another_run_is_on_is_left_to_it(mail_env, mail_sink, tmp_path):
    subject = person("busy@example.eu")
    ledger = get_ledger()
    assert ledger.lease(breach.breach_pk(BREACH), f"LOCK#{subject}", "other-run", 60)
    assert run(the_notice(tmp_path), [subject]).busy == 1
    assert mail_sink.messages == []
    ledger.release(breach.breach_pk(BREACH), f"LOCK#{subject}", "other-run")
    assert run(the_notice(tmp_path), [subject]).notified == 1


def test_each_person_gets_the_notice_in_their_language(mail_env, mail_sink, tmp_path):
    person("anne@example.fr", locale="fr")
    person("ann@example.eu", locale="en")
    progress = run(the_notice(tmp_path), everyone())
    assert progress.notified == 2
    french = mail_sink.wait_for(to="anne@example.fr")[0]
    assert french.subject == SUBJECT_FR and french.message["Content-Language"] == "fr"
    assert "quelqu'un a copié" in french.text() and "copied the customer" not in french.text()
    assert "Bonjour," in french.text()
    english = mail_sink.wait_for(to="ann@example.eu")[0]
    assert "copied the customer" in english.text() and "copié" not in english.text()
    (event,) = notified_events(key("anne@example.fr"))
    assert event["locale"] == "fr"
    assert event["notice_sha256"] == breach.NoticeText("fr", SUBJECT_FR, NOTICE_FR).sha256


def test_a_language_without_a_text_gets_the_default_one(mail_env, mail_sink, tmp_path):
    person("anne@example.fr", locale="fr")
    run(the_notice(tmp_path, fr=None), everyone())
    (mail,) = mail_sink.messages
    assert "copied the customer" in mail.text() and mail.message["Content-Language"] == "en"
    assert notified_events(key("anne@example.fr"))[0]["locale"] == "en"


def test_the_rate_is_kept_between_sends(mail_env, mail_sink, tmp_path):
    for email in REACHABLE:
        person(email)
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # really waits (1 s at most): the clock is real
        waits.append(seconds)
        time.sleep(seconds)

    progress = run(the_notice(tmp_path), everyone(), rate_per_second=2, sleep=sleep)
    assert progress.notified == 3
    assert len(waits) <= 2 and all(0 < wait <= 0.5 for wait in waits)
    received = [datetime.fromisoformat(m.received_at) for m in mail_sink.messages]
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(received, received[1:])]
    assert len(gaps) == 2 and all(gap >= 0.4 for gap in gaps), gaps  # 0.5 s, less SMTP jitter


def test_pace_spaces_sends_evenly():
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pace = breach.Pace(4, sleep=sleep, clock=lambda: now[0])
    pace.wait()
    pace.wait()
    now[0] += 0.1
    pace.wait()
    now[0] += 1.0
    pace.wait()
    assert slept == [0.25, pytest.approx(0.15)]
    with pytest.raises(BadInput, match="positive number of mails per second"):
        breach.Pace(0)


def test_a_deadline_stops_cleanly_and_the_next_run_resumes(mail_env, mail_sink, tmp_path):
    for email in REACHABLE:
        person(email)
    stopped = run(the_notice(tmp_path), everyone(), deadline=0.0)
    assert stopped.stopped and stopped.notified == 0 and mail_sink.messages == []
    assert run(the_notice(tmp_path), everyone()).notified == 3


def test_no_transport_refuses_before_recording_anything(env, tmp_path):
    person("ann@example.eu")
    settings = get_settings()
    with pytest.raises(ConfigError, match="MAIL_TRANSPORT"):
        breach.notify(get_ledger(), settings, get_catalogue(), NoTransport(),
                      the_notice(tmp_path), everyone())
    assert get_ledger().get(breach.breach_pk(BREACH), "NOTICE") is None


# -- who is affected ----------------------------------------------------------------------------

def test_selection_by_purpose_state(mail_env, mail_sink, tmp_path):
    accepted = {person(e, decide={"newsletter": "accept"}) for e in ("a1@example.eu",
                                                                     "a2@example.eu")}
    refused = person("r@example.eu", decide={"newsletter": "refuse"})
    person("other@example.eu", decide={"events": "accept"})
    person("pending@example.eu")
    ledger, settings, catalogue = get_ledger(), get_settings(), get_catalogue()

    picked = breach.select(ledger, settings, catalogue, breach.Selection(purpose="newsletter"))
    assert set(picked.subjects) == accepted
    either = breach.select(ledger, settings, catalogue,
                           breach.Selection(purpose="newsletter", states=("accepted", "refused")))
    assert set(either.subjects) == accepted | {refused}
    assert len(everyone()) == 5

    run(the_notice(tmp_path), picked.subjects)
    assert sorted(r for m in mail_sink.messages for r in m.rcpt_tos) == ["a1@example.eu",
                                                                           "a2@example.eu"]
    with pytest.raises(BadInput, match="not in the catalogue"):
        breach.select(ledger, settings, catalogue, breach.Selection(purpose="lottery"))
    with pytest.raises(BadInput, match="accepted, refused, withdrawn; not pending"):
        breach.select(ledger, settings, catalogue,
                      breach.Selection(purpose="newsletter", states=("pending",)))


def test_selection_by_address_file(mail_env, mail_sink, tmp_path):
    known = person("ann@example.eu")
    also = person("bob@example.eu")
    person("not-listed@example.eu")
    gone = erased("gone@example.eu")
    listed = tmp_path / "affected.txt"
    listed.write_text("# exported from the shop's database\n"
                      "Ann@Example.EU\n"
                      "\n"
                      "bob@example.eu\n"
                      "stranger@example.eu\n"
                      "not an address\n"
                      "ann@example.eu\n"
                      "gone@example.eu\n", encoding="utf-8")
    selected = breach.select(get_ledger(), get_settings(), get_catalogue(), breach.Selection(
        addresses=breach.read_addresses(listed)))
    assert selected.subjects == [known, also, gone]
    assert (selected.unknown, selected.invalid_lines) == (1, [6])

    progress = run(the_notice(tmp_path), selected.subjects)
    assert (progress.notified, progress.unreachable) == (2, {"erased": 1})
    assert sorted(r for m in mail_sink.messages for r in m.rcpt_tos) == ["ann@example.eu",
                                                                           "bob@example.eu"]
    dump = json.dumps(scan_table(get_ledger()), default=str)
    assert "stranger" not in dump and key("stranger@example.eu") not in dump
    with pytest.raises(BadInput, match="cannot read the address file"):
        breach.read_addresses(tmp_path / "missing.txt")
    (tmp_path / "latin1.txt").write_bytes("zoé@example.eu\n".encode("latin-1"))
    with pytest.raises(BadInput, match="latin1.txt: not UTF-8"):
        breach.read_addresses(tmp_path / "latin1.txt")


def test_selection_since_a_moment(mail_env, tmp_path):
    person("early@example.eu")
    moment = now_iso()
    late = person("late@example.eu")
    selected = breach.select(get_ledger(), get_settings(), get_catalogue(),
                             breach.Selection(since=moment))
    assert selected.subjects == [late]
    assert breach.parse_moment("2026-11-29", "--since") == "2026-11-29T00:00:00.000Z"
    assert breach.parse_moment("2026-11-29T15:00:00+01:00", "x") == "2026-11-29T14:00:00.000Z"
    with pytest.raises(BadInput, match="not an ISO 8601"):
        breach.parse_moment("last tuesday", "--since")


def test_a_dry_run_counts_without_sending(mail_env, mail_sink, tmp_path):
    person("ann@example.eu")
    erased("gone@example.eu")
    undeliverable("bounced@example.eu")
    counts = breach.survey(get_ledger(), BREACH, everyone())
    assert counts == {"total": 3, "reachable": 1, "notified_before": 0, "erased": 1,
                      "undeliverable": 1}
    assert mail_sink.messages == [] and get_ledger().get(breach.breach_pk(BREACH),
                                                           "NOTICE") is None


# -- the notice ---------------------------------------------------------------------------------

@pytest.mark.parametrize("files, message", [
    ({"notice.fr.txt": NOTICE_FR}, r"no notice\.en\.txt.*default language \(en\)"),
    ({"notice.en.txt": "  \n\n "}, r"notice\.en\.txt: the notice text is empty"),
    ({"notice.en.txt": "Subject: Only a subject\n"}, r"notice\.en\.txt: the notice text is empty"),
    ({"notice.en.txt": "Subject:\n\nText"}, r"notice\.en\.txt: the Subject: line is empty"),
    ({"notice.en.txt": "Subject: " + "x" * 201 + "\n\nText"}, r"at most|under 200"),
    ({"notice.en.txt": "x" * 25_000}, r"notice\.en\.txt: 25000 bytes"),
    ({"notice.en.txt": "é" * 10_200}, r"notice\.en\.txt: the notice has 20400 bytes"),
    ({"notice.en.txt": "Bonjour, café".encode("latin-1")}, r"notice\.en\.txt: not UTF-8"),
    ({"notice.en.txt": "one\ntwo \x07 bell"}, r"notice\.en\.txt: line 2 holds a control"),
    ({"notice.en.txt": NOTICE_EN, "notice.de.txt": "Hallo"}, r"notice\.de\.txt: 'de' is not a "
                                                             r"language of the catalogue"),
    ({"notice.txt": NOTICE_EN}, r"notice\.txt: name the file after its language"),
])
def test_a_notice_that_cannot_be_sent_is_refused_naming_the_file(env, tmp_path, files, message):
    folder = notice_dir(tmp_path, files)
    with pytest.raises(BadInput, match=message):
        breach.load_notice(BREACH, folder, get_catalogue())


def test_notice_ids_and_directories_are_checked(env, tmp_path):
    folder = notice_dir(tmp_path, {"notice.en.txt": NOTICE_EN})
    for bad in ("ab", "Shop-DB", "-shop", "x" * 49, "shop db"):
        with pytest.raises(BadInput, match="3-48 lower-case letters"):
            breach.load_notice(bad, folder, get_catalogue())
    with pytest.raises(BadInput, match="is not a directory"):
        breach.load_notice(BREACH, tmp_path / "nowhere", get_catalogue())
    loaded = breach.load_notice(BREACH, folder, get_catalogue(), aware_at="2026-11-27T08:00Z")
    assert loaded.texts == {"en": NOTICE_EN} and loaded.subjects == {}
    assert loaded.aware_at == "2026-11-27T08:00:00.000Z"
    with pytest.raises(BadInput, match="is in the future"):
        breach.load_notice(BREACH, folder, get_catalogue(), aware_at="2999-01-01")


def test_a_notice_file_is_cleaned_so_what_is_hashed_is_what_is_sent(env, tmp_path):
    folder = notice_dir(tmp_path, {"notice.en.txt": b"\xef\xbb\xbfSubject:  Data breach at the "
                                   b"shop \r\n\r\nFirst line.   \r\nSecond\r\n\r\n\r\n"})
    notice = breach.load_notice(BREACH, folder, get_catalogue())
    assert notice.subjects == {"en": "Data breach at the shop"}
    assert notice.texts == {"en": "First line.\nSecond"}


def test_the_same_id_with_other_words_is_refused(mail_env, mail_sink, tmp_path):
    person("ann@example.eu")
    run(the_notice(tmp_path), everyone())
    person("bob@example.eu")
    changed = the_notice(tmp_path, en=NOTICE_EN + "\n\nOne more thing.")
    with pytest.raises(BadInput, match=r"already has a notice.*the en text differs.*new id"):
        run(changed, everyone())
    fewer = the_notice(tmp_path, fr=None)
    with pytest.raises(BadInput, match="recorded in en, fr, now given in en"):
        run(fewer, everyone())
    assert [m.rcpt_tos for m in mail_sink.messages] == [("ann@example.eu",)]

    same = run(the_notice(tmp_path), everyone())  # the same words again: finishes the job
    assert (same.notified, same.before) == (1, 1)
    stored = get_ledger().get(breach.breach_pk(BREACH), "NOTICE")
    assert stored["texts"]["en"]["text"] == NOTICE_EN and stored["operator"] == "cli"
    assert stored["texts"]["fr"]["sha256"] == breach.NoticeText("fr", SUBJECT_FR,
                                                                NOTICE_FR).sha256


def test_the_report_shows_how_long_after_learning_of_it_people_were_told(mail_env, mail_sink,
                                                                         tmp_path):
    person("ann@example.eu")
    folder = notice_dir(tmp_path, {"notice.en.txt": NOTICE_EN})
    notice = breach.load_notice(BREACH, folder, get_catalogue(), aware_at="2026-01-01T00:00:00Z")
    run(notice, everyone(), operator="dpo")
    result = breach.report(get_ledger(), BREACH)
    assert result.operator == "dpo" and result.aware_at == "2026-01-01T00:00:00.000Z"
    assert result.first_at == result.last_at and result.hours_after_awareness > 24
    assert breach.breaches(get_ledger())[0]["breach"] == BREACH
    with pytest.raises(BadInput, match="There is no notice for breach 'other-breach'"):
        breach.report(get_ledger(), "other-breach")


def test_cli_notify_resume_report_and_preview(mail_env, mail_sink, tmp_path, capsys):
    from chalicelib.cli import main

    for address in ("cli1@example.eu", "cli2@example.eu"):
        person(address, decide={"newsletter": "accept"})
    folder = notice_dir(tmp_path, {"notice.en.txt": NOTICE_EN})
    mail_sink.clear()
    assert main(["breach", "notify", "--id", "cli-breach-1", "--notice-dir", str(folder),
                 "--dry-run", "--json"]) == 0
    assert not mail_sink.messages
    assert main(["breach", "notify", "--id", "cli-breach-1", "--notice-dir", str(folder),
                 "--aware-at", "2026-11-28T10:00:00Z", "--rate", "50"]) == 0
    assert "2 notified now" in capsys.readouterr().out
    assert len(mail_sink.messages) == 2
    assert main(["breach", "notify", "--id", "cli-breach-1", "--notice-dir", str(folder)]) == 0
    assert "0 notified now, 2 before" in capsys.readouterr().out
    assert len(mail_sink.messages) == 2
    assert main(["breach", "report", "--id", "cli-breach-1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["notified"] == 2
    assert main(["breach", "preview", "--id", "cli-breach-1", "--notice-dir", str(folder)]) == 0
    assert "Subject:" in capsys.readouterr().out
