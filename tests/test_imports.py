"""Importing existing consent evidence: parsers, grades, the ledger, idempotency."""
from __future__ import annotations

import io
from typing import Any

import pytest

from chalicelib.consent import imports, stats
from chalicelib.consent.imports import sources
from chalicelib.consent.imports.grade import better, grade
from chalicelib.consent.imports.rows import Columns, Reject, Row, instant, read_csv
from chalicelib.consent.imports.writer import Importer, applies
from chalicelib.consent.subjects import subject_of_address
from chalicelib.core.errors import BadInput
from chalicelib.core.settings import get_settings
from chalicelib.proof import audit
from chalicelib.rights import erasure
from chalicelib.store import keys
from tests.support import imports as samples
from tests.support.consent import decide

# -- the grade: pure -------------------------------------------------------------------


def _row(**fields: Any) -> Row:
    return Row(1, "a@example.eu", fields.pop("decision", "accepted"), **fields)


def test_grade_a_needs_double_opt_in_times_ip_and_wording() -> None:
    full = dict(opted_in_at="2024-01-01T10:00:00.000Z", confirmed_at="2024-01-01T10:05:00.000Z",
                confirm_ip="192.0.2.1", double_opt_in=True, wording="Yes please")
    assert grade(_row(**full)) == "A"
    for missing in ("opted_in_at", "confirmed_at", "confirm_ip", "wording"):
        assert grade(_row(**{**full, missing: None})) == "B", missing
    assert grade(_row(**{**full, "double_opt_in": False})) == "B"
    assert grade(_row(**{**full, "wording": "   "})) == "B"


def test_grade_b_is_dated_and_c_is_a_flag_only() -> None:
    assert grade(_row(opted_in_at="2024-01-01T10:00:00.000Z")) == "B"
    assert grade(_row(decision="refused", refused_at="2024-01-01T10:00:00.000Z")) == "B"
    assert grade(_row()) == "C"
    assert grade(_row(optin_ip="192.0.2.1", double_opt_in=True, wording="x")) == "C"
    assert better("A", "B") and better("B", "C") and better("C", None)
    assert not better("B", "A") and not better("B", "B")


def test_dates_are_read_or_refused_never_guessed() -> None:
    assert instant("2023-03-01 09:05:12") == "2023-03-01T09:05:12.000Z"
    assert instant("2024-01-10T08:00:00+01:00") == "2024-01-10T07:00:00.000Z"
    assert instant("15/01/2024 10:30") == "2024-01-15T10:30:00.000Z"
    assert instant("  ") is None
    with pytest.raises(ValueError, match="unreadable date"):
        instant("yesterday-ish")


def test_csv_reading_sniffs_the_delimiter_and_counts_physical_lines() -> None:
    text = 'EMAIL;NOTE\r\na@example.eu;"two\nlines"\r\n\r\nb@example.eu;x\r\n'
    assert [(line, row["EMAIL"]) for line, row in read_csv(text)] == [
        (2, "a@example.eu"), (5, "b@example.eu")]
    assert Columns({"Email Address": " a@b.eu "}).get("EMAIL ADDRESS") == "a@b.eu"


# -- each source's parser --------------------------------------------------------------


def _parse(source: str, text: str, **options: Any) -> list[Row | Reject]:
    parser = sources.PARSERS[source]
    out: list[Row | Reject] = []
    for line, raw in read_csv(text):
        try:
            out.append(parser(line, Columns(raw), sources.Options(**options)))
        except ValueError as exc:
            out.append(Reject(line, str(exc)))
    return out


def test_mailchimp_rows() -> None:
    ada, bob, cleo, bad, dan = _parse("mailchimp", samples.mailchimp_subscribed(),
                                      wording=samples.WORDING)
    assert isinstance(ada, Row) and ada.double_opt_in and ada.confirm_ip == "192.0.2.11"
    assert grade(ada) == "A"
    assert isinstance(bob, Row) and not bob.double_opt_in and grade(bob) == "B"
    assert isinstance(cleo, Row) and grade(cleo) == "C"
    assert isinstance(bad, Row)  # the address is checked later, for every source alike
    assert isinstance(dan, Reject) and "unreadable date" in dan.reason
    (unsub,) = _parse("mailchimp", samples.mailchimp_unsubscribed())
    assert isinstance(unsub, Row) and unsub.decision == "refused"
    assert unsub.refused_at == "2024-02-02T08:00:00.000Z"
    cleaned = samples.to_csv(samples.MAILCHIMP_HEADER + ["CLEAN_TIME"],
                             [{"Email Address": "x@example.eu", "CLEAN_TIME": "2024-01-01"}])
    (reject,) = _parse("mailchimp", cleaned)
    assert isinstance(reject, Reject) and "cleaned" in reject.reason
    # without the wording nobody can show, a Mailchimp double opt-in is grade B
    assert grade(_parse("mailchimp", samples.mailchimp_subscribed())[0]) == "B"  # type: ignore[arg-type]


def test_brevo_rows() -> None:
    eve, fay, gus, hal = _parse("brevo", samples.brevo())
    assert isinstance(eve, Row) and eve.double_opt_in and grade(eve) == "B"  # no IP from Brevo
    assert isinstance(fay, Row) and fay.opted_in_at and not fay.double_opt_in
    assert isinstance(gus, Reject) and "no consent" in gus.reason
    assert isinstance(hal, Row) and hal.decision == "refused"
    assert hal.refused_at == "2024-01-01T10:00:00.000Z"


def test_act_rows() -> None:
    ida, jo, kim, lea = _parse("act", samples.act_export(), act_flag="Newsletter opt-in",
                               act_date="Opt-in date")
    assert isinstance(ida, Row) and ida.opted_in_at == "2024-01-15T10:30:00.000Z"
    assert grade(ida) == "B"
    assert isinstance(jo, Row) and grade(jo) == "C"
    assert isinstance(kim, Reject) and "says no" in kim.reason
    assert isinstance(lea, Row) and lea.email == ""
    (first, *_) = _parse("act", samples.act_export())
    assert isinstance(first, Reject) and "--act-flag" in first.reason


def test_generic_rows() -> None:
    rows = _parse("generic", samples.generic())
    assert [grade(r) if isinstance(r, Row) else "reject" for r in rows] == [
        "A", "B", "C", "B", "C", "reject"]
    assert isinstance(rows[3], Row) and rows[3].decision == "refused"
    assert isinstance(rows[5], Reject) and "maybe" in rows[5].reason


# -- into the ledger -------------------------------------------------------------------


def _import(ledger, catalogue, source: str, text: str, purpose: str | None = "newsletter",
            **options: Any) -> tuple[dict[str, Any], list[Reject]]:
    rejects = imports.RejectsFile(None)
    importer = Importer(ledger, get_settings(), catalogue, source, purpose,
                        sources.Options(**options))
    summary = imports.import_text(importer, text, rejects)
    return summary.as_dict(), rejects.rejects


def _subject(address: str) -> str:
    return subject_of_address(get_settings(), address)


def test_mailchimp_import_records_graded_events_and_states(ledger, catalogue) -> None:
    summary, rejects = _import(ledger, catalogue, "mailchimp", samples.mailchimp_subscribed(),
                               wording=samples.WORDING)
    assert summary == {"rows": 5, "imported": 3, "already_imported": 0, "rejected": 2,
                       "applied": 3, "kept_newer_decision": 0,
                       "grades": {"A": 1, "B": 1, "C": 1}}
    assert sorted((r.line, r.reason.split(" (")[0]) for r in rejects) == [
        (5, "invalid e-mail address"),
        (6, "unreadable date 'yesterday-ish'")]
    ada = _subject("ada@example.eu")
    (event,) = ledger.events(ada)
    assert event["kind"] == "imported" and event["grade"] == "A" and event["source"] == "mailchimp"
    assert event["ip"] == "192.0.2.11" and event["applied"] is True
    assert event["confirmed_at"] == "2023-03-01T09:05:12.000Z"
    assert "Email Address" in event["columns"] and "ada@example.eu" not in str(event)
    state = ledger.get(*keys.purpose(ada, "newsletter"))
    assert state["state"] == "accepted" and state["source"] == "imported"
    assert state["grade"] == "A" and state["decided_at"] == "2023-03-01T09:05:12.000Z"
    assert "sync_status" not in state  # imported evidence is not pushed to Act!
    assert ledger.get(*keys.profile(ada))["email"] == "ada@example.eu"
    assert audit.verify_subject(ledger, ada).ok
    record = next(ledger.query(keys.subject_pk(ada), keys.IMPORTED_PREFIX))
    assert record["columns"]["OPTIN_IP"] == "192.0.2.10"
    assert imports.writer.verify_columns(record, event)
    assert stats.grades(ledger) == {"newsletter": {"A": 1, "B": 1, "C": 1}}
    counts = stats.per_purpose(ledger.query(keys.STATS_PURPOSES, "S"))
    assert counts["newsletter"]["accepted"] == 3


def test_a_rerun_of_the_same_file_imports_nothing_twice(ledger, catalogue, table_items) -> None:
    _import(ledger, catalogue, "generic", samples.generic())
    before = table_items()
    summary, rejects = _import(ledger, catalogue, "generic", samples.generic())
    assert summary["imported"] == 0 and summary["already_imported"] == 4
    assert len(rejects) == 2
    after = table_items()
    assert len(after) == len(before)
    assert stats.grades(ledger) == {"newsletter": {"A": 1}, "promotions": {"B": 1},
                                    "events": {"C": 1}}


def test_newer_imports_replace_older_and_our_own_decisions_win(ledger, catalogue) -> None:
    # Bob opted in in Mailchimp, then unsubscribed there: the refusal is newer.
    _import(ledger, catalogue, "mailchimp", samples.mailchimp_subscribed())
    summary, _ = _import(ledger, catalogue, "mailchimp", samples.mailchimp_unsubscribed())
    assert summary["applied"] == 1
    bob = _subject("bob@example.eu")
    assert ledger.get(*keys.purpose(bob, "newsletter"))["state"] == "withdrawn"
    assert stats.grades(ledger)["newsletter"] == {"B": 1, "C": 1}  # Ada (no wording), Cléo
    assert audit.verify_subject(ledger, bob).ok
    # Cléo decides through OptinProof: her own refusal stands, whatever is imported later.
    decide("cleo@example.eu", newsletter="refuse")
    late = samples.to_csv(["email", "consent", "opted_in_at"], [
        {"email": "cleo@example.eu", "consent": "yes", "opted_in_at": "2030-01-01T00:00:00Z"}])
    summary, _ = _import(ledger, catalogue, "generic", late)
    assert summary["imported"] == 1 and summary["kept_newer_decision"] == 1
    cleo = _subject("cleo@example.eu")
    state = ledger.get(*keys.purpose(cleo, "newsletter"))
    assert state["state"] == "withdrawn" and "source" not in state
    assert stats.grades(ledger)["newsletter"]["C"] == 0  # her imported grade C ended
    assert audit.verify_subject(ledger, cleo).ok


def test_applies_rules() -> None:
    from chalicelib.consent.imports.writer import Prepared
    dated = Prepared(_row(opted_in_at="2024-01-01T00:00:00.000Z"), "s", "a", "p", "B", "i")
    flag = Prepared(_row(), "s", "a", "p", "C", "i")
    assert applies({}, dated) and applies({}, flag)
    assert not applies({"state": "accepted"}, dated)  # ours
    older = {"state": "accepted", "source": "imported", "grade": "C",
             "source_at": "2023-01-01T00:00:00.000Z"}
    assert applies(older, dated)
    assert not applies({**older, "source_at": "2025-01-01T00:00:00.000Z"}, dated)
    assert not applies(older, flag)
    assert applies({**older, "source_at": None, "grade": "C"}, dated)


def test_erasure_strips_imported_columns_and_blocks_reimport(ledger, catalogue) -> None:
    _import(ledger, catalogue, "brevo", samples.brevo())
    eve = _subject("eve@example.eu")
    erasure.erase(ledger, catalogue, eve, "test", "keep", None)
    record = next(ledger.query(keys.subject_pk(eve), keys.IMPORTED_PREFIX))
    assert "columns" not in record and "columns_salt" not in record
    assert audit.verify_subject(ledger, eve).ok
    assert stats.grades(ledger)["newsletter"] == {"B": 1}  # Fay only: Eve's ended
    again = samples.brevo().replace("2024-05-10 14:00:00", "2024-05-11 14:00:00")
    summary, rejects = _import(ledger, catalogue, "brevo", again)
    assert any("erasure" in r.reason for r in rejects)
    assert (summary["imported"], summary["already_imported"]) == (0, 2)  # Fay, Hal: done


def test_act_export_import_and_bad_files(ledger, catalogue) -> None:
    summary, rejects = _import(ledger, catalogue, "act", samples.act_export(),
                               act_flag="Newsletter opt-in", act_date="Opt-in date")
    assert summary["grades"] == {"A": 0, "B": 1, "C": 1}
    assert sorted(r.reason for r in rejects) == [
        "no e-mail address", "the field 'Newsletter opt-in' says no: no consent"]
    with pytest.raises(BadInput, match="no header"):
        _import(ledger, catalogue, "generic", "\n\n")
    with pytest.raises(BadInput, match="purpose"):
        Importer(ledger, get_settings(), catalogue, "mailchimp", None)
    with pytest.raises(BadInput, match="Source"):
        Importer(ledger, get_settings(), catalogue, "hubspot", "newsletter")
    summary, rejects = _import(ledger, catalogue, "generic", "email,consent\na@example.eu,yes,x\n")
    assert rejects[0].reason == "more values than the header has columns"


def test_dry_run_grades_without_writing(ledger, catalogue, table_items) -> None:
    before = table_items()
    importer = Importer(ledger, get_settings(), catalogue, "generic", None, dry_run=True)
    summary = imports.import_text(importer, samples.generic(), imports.RejectsFile(None))
    assert summary.as_dict()["grades"] == {"A": 1, "B": 2, "C": 1}
    assert table_items() == before


def test_rejects_file_has_line_reason_and_columns() -> None:
    out = io.StringIO()
    rejects = imports.RejectsFile(out)
    rejects(Reject(7, "no e-mail address", {"email": "", "consent": "yes"}))
    assert out.getvalue().splitlines() == ["line,reason,columns",
                                           "7,no e-mail address,email=; consent=yes"]


# -- what the person, a receipt and the evidence pack say about it ------------------------


def test_receipt_evidence_and_export_say_imported_never_double_opt_in(ledger, catalogue) -> None:
    import json
    from pathlib import Path

    from jsonschema import Draft202012Validator, FormatChecker

    from chalicelib.proof import evidence, receipts

    _import(ledger, catalogue, "mailchimp", samples.mailchimp_subscribed())
    decide("bob@example.eu", events="accept")  # Bob also confirmed events with us
    bob = _subject("bob@example.eu")
    receipt = receipts.for_subject(ledger, catalogue, bob)
    schema = json.loads((Path(__file__).resolve().parent.parent / "schemas"
                         / "consent-receipt.v1.json").read_text())
    Draft202012Validator(schema, format_checker=FormatChecker()).validate(receipt)
    method = receipt["collectionMethod"]
    assert "Imported from mailchimp (evidence grade B); not a double opt-in" in method
    assert len(receipt["services"][0]["purposes"]) == 1  # only Bob's own double opt-in
    row = {r["id"]: r for r in receipt[receipts.EXTENSION]["purposes"]}["newsletter"]
    assert (row["source"], row["import_source"], row["evidence_grade"]) == (
        "imported", "mailchimp", "B")
    data = evidence.pack(ledger, get_settings(), catalogue, bob)
    (news,) = [p for p in data["purposes"] if p["id"] == "newsletter"]
    assert news["imported"] == {"source": "mailchimp", "grade": "B"}
    page = evidence.html(data, "fr")
    assert "importé de mailchimp, niveau B" in page
    from chalicelib.rights import access
    exported = access.export(ledger, get_settings(), catalogue, bob)
    (row,) = exported["imported_rows"]
    assert row["columns"]["OPTIN_IP"] == "198.51.100.7" and row["grade"] == "B"
    assert {p["id"]: p.get("imported") for p in exported["purposes"]}["newsletter"] == {
        "source": "mailchimp", "grade": "B"}


def test_an_import_keeps_the_address_a_known_person_gave(ledger, catalogue) -> None:
    decide("Zoe.Martin@example.eu", events="accept")
    rows = samples.to_csv(["email", "consent"], [{"email": "zoe.martin@example.eu",
                                                   "consent": "yes"}])
    summary, _ = _import(ledger, catalogue, "generic", rows)
    assert summary["applied"] == 1  # newsletter: no decision of hers yet
    zoe = _subject("zoe.martin@example.eu")
    assert ledger.get(*keys.profile(zoe))["email"] == "Zoe.Martin@example.eu"


def test_imported_acceptances_hold_for_the_validity_from_their_own_date(ledger, catalogue) -> None:
    """An imported opt-in is no fresher than its date: the validity (3 years) counts from
    the last contact the row proves, so a 2023 confirmation has already run out and the
    next validity sweep records its expiry; an undated flag counts from the import."""
    from datetime import timedelta

    from chalicelib.consent import renewal
    from chalicelib.core.clock import iso, parse_iso

    _import(ledger, catalogue, "mailchimp", samples.mailchimp_subscribed(),
            wording=samples.WORDING)
    ada, cleo = _subject("ada@example.eu"), _subject("cleo@example.eu")
    (event,) = ledger.events(ada)
    expected = iso(parse_iso("2023-03-01T09:05:12.000Z") + timedelta(days=1095))
    assert event["valid_until"] == expected  # the event records the expiry it implies
    assert ledger.get(*keys.purpose(ada, "newsletter"))["valid_until"] == expected
    (flag,) = ledger.events(cleo)
    assert flag["valid_until"] == iso(parse_iso(flag["at"]) + timedelta(days=1095))

    report = renewal.Sweeper(ledger, get_settings(), catalogue).run()
    assert report.expired == 2  # ada (confirmed 2023) and bob (opted in 2022)
    state = ledger.get(*keys.purpose(ada, "newsletter"))
    assert state["state"] == "expired" and state["valid_until"] == expected
    assert [e["kind"] for e in ledger.events(ada)] == ["imported", "expired"]
    assert audit.verify_subject(ledger, ada).ok
    assert ledger.get(*keys.purpose(cleo, "newsletter"))["state"] == "accepted"
    # the grade counters follow: only cleo's flag (grade C) is still in force
    assert stats.grades(ledger) == {"newsletter": {"A": 0, "B": 0, "C": 1}}
    counts = stats.per_purpose(ledger.query(keys.STATS_PURPOSES, "S"))
    assert counts["newsletter"]["accepted"] == 1
