"""Proof events (chalicelib/proof.py): the per-subject hash chain and its canonical form.

The chain is what a regulator is handed: any edit, removal or reordering must be
reported at the first broken event, while erasure of IP / user agent must not break it.
"""
from __future__ import annotations

import copy
import hashlib
import time
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.proof.chain import (
    GENESIS_HASH, PERSONAL_FIELDS, SCHEMA_VERSION, canonical, event_hash, new_event_id,
    personal_hash, seal, verify_chain,
)

SUBJECT = "a" * 64
CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def build_chain(length: int = 5, subject: str = SUBJECT) -> list[dict[str, Any]]:
    """``length`` sealed events, each pointing at its predecessor, with IP and user agent."""
    events: list[dict[str, Any]] = []
    previous = GENESIS_HASH
    kinds = ["requested", "mail_sent", "accepted", "refused", "withdrawn"]
    for seq in range(1, length + 1):
        body = {
            "subject": subject, "seq": seq, "event_id": new_event_id(),
            "kind": kinds[(seq - 1) % len(kinds)], "at": f"2026-11-29T14:03:{seq:02d}.000Z",
            "purpose": "newsletter", "text_sha256": "f" * 64, "link_id": f"link-{seq}",
        }
        event = seal(body, {"ip": f"192.0.2.{seq}", "user_agent": "Mozilla/5.0 test"}, previous)
        events.append(event)
        previous = event["hash"]
    return events


@pytest.fixture
def chain() -> list[dict[str, Any]]:
    return build_chain()


# --- sealing and a sound chain ------------------------------------------------------


def test_intact_chain_verifies(chain: list[dict[str, Any]]) -> None:
    report = verify_chain(SUBJECT, chain, head_hash=chain[-1]["hash"], head_seq=len(chain))
    assert report.ok is True
    assert report.events == 5
    assert report.broken_seq is None
    assert report.reason == ""


def test_seal_links_and_commits(chain: list[dict[str, Any]]) -> None:
    """Each event names its predecessor's hash and commits to its personal fields."""
    assert chain[0]["prev_hash"] == GENESIS_HASH
    for before, after in zip(chain, chain[1:]):
        assert after["prev_hash"] == before["hash"]
    for event in chain:
        assert event["v"] == SCHEMA_VERSION
        assert event["hash"] == event_hash(event)
        assert len(event["personal_salt"]) == 32
        assert event["personal_hash"] == personal_hash(
            {"ip": event["ip"], "user_agent": event["user_agent"]}, event["personal_salt"])


def test_seal_without_personal_data_adds_no_commitment() -> None:
    """Events from the system (no request) carry no IP and no salt."""
    event = seal({"subject": SUBJECT, "seq": 1, "event_id": new_event_id(), "kind": "sync",
                  "at": "2026-11-29T14:03:12.000Z", "note": None}, {"ip": "", "user_agent": None},
                 GENESIS_HASH)
    assert not {"ip", "user_agent", "personal_salt", "personal_hash", "note"} & set(event)
    assert verify_chain(SUBJECT, [event]).ok


def test_same_ip_gets_different_commitments() -> None:
    """The random salt stops anyone guessing an IP from its hash."""
    one = seal({"subject": SUBJECT, "seq": 1, "kind": "x"}, {"ip": "192.0.2.1"}, GENESIS_HASH)
    two = seal({"subject": SUBJECT, "seq": 1, "kind": "x"}, {"ip": "192.0.2.1"}, GENESIS_HASH)
    assert one["personal_hash"] != two["personal_hash"]


def test_empty_chain_verifies_and_head_catches_everything_removed() -> None:
    assert verify_chain(SUBJECT, []).ok
    report = verify_chain(SUBJECT, [], head_seq=2)
    assert not report.ok and report.broken_seq == 1


# --- tampering is found at the first broken event -----------------------------------


@pytest.mark.parametrize("field, value", [
    ("kind", "accepted_forged"), ("at", "2020-01-01T00:00:00.000Z"), ("purpose", "events"),
    ("text_sha256", "0" * 64), ("link_id", "other"), ("event_id", "01ARZ3NDEKTSV4RRFFQ69G5FAV"),
    ("v", 2), ("personal_hash", "0" * 64), ("extra", "added"),
])
def test_editing_event_3_breaks_at_3(chain: list[dict[str, Any]], field: str, value: Any) -> None:
    """Any hashed field edited (or added) in event 3 is reported at 3, as altered."""
    chain[2][field] = value
    report = verify_chain(SUBJECT, chain)
    assert not report.ok
    assert report.broken_seq == 3
    assert "altered" in report.reason
    assert report.events == 2


def test_removing_a_hashed_field_of_event_3_breaks_at_3(chain: list[dict[str, Any]]) -> None:
    del chain[2]["purpose"]
    report = verify_chain(SUBJECT, chain)
    assert (report.ok, report.broken_seq) == (False, 3)
    assert "altered" in report.reason


def test_rehashing_an_edited_event_breaks_the_next_one(chain: list[dict[str, Any]]) -> None:
    """Recomputing event 3's own hash is not enough: event 4 still points at the old one."""
    assert chain[2]["kind"] == "accepted"
    chain[2]["kind"] = "refused"
    chain[2]["hash"] = event_hash(chain[2])
    report = verify_chain(SUBJECT, chain)
    assert (report.ok, report.broken_seq) == (False, 4)
    assert "prev_hash" in report.reason


def test_editing_prev_hash_breaks_at_that_event(chain: list[dict[str, Any]]) -> None:
    chain[2]["prev_hash"] = "1" * 64
    report = verify_chain(SUBJECT, chain)
    assert (report.ok, report.broken_seq) == (False, 3)


def test_event_of_another_subject(chain: list[dict[str, Any]]) -> None:
    chain[2]["subject"] = "b" * 64
    report = verify_chain(SUBJECT, chain)
    assert (report.ok, report.broken_seq) == (False, 3)
    assert "another subject" in report.reason


def test_deleting_event_3_is_a_sequence_gap(chain: list[dict[str, Any]]) -> None:
    """The first event that fails is the one found where 3 was expected (seq 4)."""
    del chain[2]
    report = verify_chain(SUBJECT, chain)
    assert not report.ok
    assert report.broken_seq == 4
    assert "sequence gap: expected event 3, found 4" in report.reason
    assert report.events == 2


def test_renumbering_after_a_deletion_is_still_caught(chain: list[dict[str, Any]]) -> None:
    """Hiding the gap by renumbering breaks the hashes instead."""
    del chain[2]
    for event in chain[2:]:
        event["seq"] -= 1
    report = verify_chain(SUBJECT, chain)
    assert (report.ok, report.broken_seq) == (False, 3)


def test_reordering_is_detected(chain: list[dict[str, Any]]) -> None:
    chain[2], chain[3] = chain[3], chain[2]
    report = verify_chain(SUBJECT, chain)
    assert (report.ok, report.broken_seq) == (False, 4)
    assert "sequence gap: expected event 3" in report.reason


def test_inserting_a_forged_event_is_detected(chain: list[dict[str, Any]]) -> None:
    """A forged event sealed onto event 2 pushes the real event 3 out of line."""
    forged = seal({"subject": SUBJECT, "seq": 3, "event_id": new_event_id(), "kind": "accepted",
                   "at": "2026-11-29T14:03:02.500Z"}, {}, chain[1]["hash"])
    chain.insert(2, forged)
    report = verify_chain(SUBJECT, chain)
    assert (report.ok, report.broken_seq) == (False, 3)
    assert "sequence gap" in report.reason


def test_removed_tail_is_only_seen_with_the_head(chain: list[dict[str, Any]]) -> None:
    """Events alone cannot show a removed tail; the recorded head can."""
    head_hash, head_seq = chain[-1]["hash"], len(chain)
    shortened = chain[:3]
    assert verify_chain(SUBJECT, shortened).ok

    by_seq = verify_chain(SUBJECT, shortened, head_seq=head_seq)
    assert not by_seq.ok
    assert by_seq.broken_seq == 4
    assert "chain head says 5 events, found 3" in by_seq.reason

    by_hash = verify_chain(SUBJECT, shortened, head_hash=head_hash)
    assert not by_hash.ok
    assert "head hash differs" in by_hash.reason


@pytest.mark.parametrize("field, value", [("ip", "203.0.113.66"), ("user_agent", "curl/8")])
def test_changing_ip_or_user_agent_is_detected(chain: list[dict[str, Any]], field: str,
                                               value: str) -> None:
    """IP and user agent are not hashed directly, but their commitment is."""
    chain[2][field] = value
    report = verify_chain(SUBJECT, chain)
    assert (report.ok, report.broken_seq) == (False, 3)
    assert "IP or user agent" in report.reason


def test_deleting_only_the_ip_is_detected(chain: list[dict[str, Any]]) -> None:
    """Half an erasure (IP gone, salt kept) does not match the commitment."""
    del chain[2]["ip"]
    report = verify_chain(SUBJECT, chain)
    assert (report.ok, report.broken_seq) == (False, 3)
    assert "IP or user agent" in report.reason


def test_erasure_keeps_the_chain_verifying(chain: list[dict[str, Any]]) -> None:
    """Erasure deletes ip, user_agent and personal_salt; personal_hash stays; chain holds."""
    head = chain[-1]["hash"]
    for event in chain:
        for name in (*PERSONAL_FIELDS, "personal_salt"):
            event.pop(name, None)
        assert "personal_hash" in event
    report = verify_chain(SUBJECT, chain, head_hash=head, head_seq=5)
    assert report.ok and report.events == 5


def test_erasure_of_one_event_keeps_the_chain_verifying(chain: list[dict[str, Any]]) -> None:
    for name in (*PERSONAL_FIELDS, "personal_salt"):
        chain[2].pop(name, None)
    assert verify_chain(SUBJECT, chain).ok


def test_ip_changed_and_salt_dropped_is_detected(chain: list[dict[str, Any]]) -> None:
    """Faking an IP must not pass by also deleting the salt that would expose it."""
    chain[2]["ip"] = "203.0.113.66"
    del chain[2]["personal_salt"]
    report = verify_chain(SUBJECT, chain)
    assert (report.ok, report.broken_seq) == (False, 3)


def test_ip_added_to_an_event_without_one_is_detected() -> None:
    events = []
    previous = GENESIS_HASH
    for seq in (1, 2):
        event = seal({"subject": SUBJECT, "seq": seq, "kind": "sync"}, {}, previous)
        events.append(event)
        previous = event["hash"]
    events[0]["ip"] = "203.0.113.66"
    report = verify_chain(SUBJECT, events)
    assert (report.ok, report.broken_seq) == (False, 1)


# --- DynamoDB round trip ------------------------------------------------------------


def test_decimal_numbers_from_dynamodb_verify(chain: list[dict[str, Any]]) -> None:
    """boto3 hands numbers back as Decimal; the chain must still verify."""
    stored = copy.deepcopy(chain)
    for event in stored:
        event["seq"] = Decimal(event["seq"])
        event["v"] = Decimal(event["v"])
    assert isinstance(stored[0]["seq"], Decimal)
    report = verify_chain(SUBJECT, stored, head_seq=Decimal(5), head_hash=chain[-1]["hash"])
    assert report.ok and report.events == 5


def test_seal_accepts_a_decimal_seq() -> None:
    """Sealing with a Decimal seq hashes as the int would."""
    body = {"subject": SUBJECT, "seq": 1, "event_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "kind": "requested", "at": "2026-11-29T14:03:12.000Z"}
    with_int = seal(body, {}, GENESIS_HASH)
    with_decimal = seal({**body, "seq": Decimal(1)}, {}, GENESIS_HASH)
    assert with_int["hash"] == with_decimal["hash"]
    assert verify_chain(SUBJECT, [with_decimal]).ok


def test_non_integer_decimal_is_refused() -> None:
    with pytest.raises(ValueError, match="non-integer"):
        canonical({"seq": Decimal("1.5")})


# --- canonical form -----------------------------------------------------------------


def test_canonical_is_key_order_independent() -> None:
    one = {"b": 1, "a": {"y": [1, 2], "x": "é"}, "c": None}
    two = {"a": {"x": "é", "y": [1, 2]}, "b": 1}
    assert canonical(one) == canonical(two)
    assert canonical(one) == '{"a":{"x":"é","y":[1,2]},"b":1}'.encode("utf-8")


def test_canonical_keeps_list_order() -> None:
    """Lists are ordered data (e.g. purposes shown), not sets."""
    assert canonical({"p": [1, 2]}) != canonical({"p": [2, 1]})


@pytest.mark.parametrize("data", [{"x": 1.0}, {"x": {"y": 0.5}}, {"x": [1, 2.5]}])
def test_canonical_rejects_floats(data: dict[str, Any]) -> None:
    """Floats have no single textual form; events may not hold them."""
    with pytest.raises(ValueError, match="float"):
        canonical(data)


def test_event_hash_ignores_personal_fields_and_itself(chain: list[dict[str, Any]]) -> None:
    event = chain[0]
    stripped = {k: v for k, v in event.items()
                if k not in ("ip", "user_agent", "personal_salt", "hash")}
    assert event_hash(event) == hashlib.sha256(canonical(stripped)).hexdigest()


# --- event ids ----------------------------------------------------------------------


def test_event_id_is_a_ulid() -> None:
    event_id = new_event_id()
    assert len(event_id) == 26
    assert set(event_id) <= CROCKFORD
    assert event_id[0] in "01234567"  # 128 bits in 130: the first char holds 3 bits


def test_event_id_encodes_the_current_millisecond() -> None:
    before = int(time.time() * 1000)
    event_id = new_event_id()
    after = int(time.time() * 1000)
    millis = 0
    for char in event_id[:10]:
        millis = millis * 32 + "0123456789ABCDEFGHJKMNPQRSTVWXYZ".index(char)
    assert before <= millis <= after  # first 10 chars = bits 80..129 = the 48-bit time


def test_event_ids_are_unique_and_sort_by_time() -> None:
    """Ids made 2 ms apart sort in creation order as plain strings."""
    ids = []
    for _ in range(5):
        ids.append(new_event_id())
        time.sleep(0.002)
    assert ids == sorted(ids)
    assert len({new_event_id() for _ in range(1000)}) == 1000
