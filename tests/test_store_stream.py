"""The one stream decoder and router: each kind of item reaches the work it asks for."""

from __future__ import annotations

from typing import Any

from chalicelib.store import keys, stream
from chalicelib.store.ledger import to_item


def record(name: str, new: dict[str, Any] | None = None, old: dict[str, Any] | None = None,
           by_ttl: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if new is not None:
        data["NewImage"] = to_item(new)
    if old is not None:
        data["OldImage"] = to_item(old)
    raw: dict[str, Any] = {"eventName": name, "dynamodb": data}
    if by_ttl:
        raw["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return raw


def test_each_kind_goes_to_its_work_once_and_in_order() -> None:
    state = keys.item(keys.purpose("ab" * 32, "newsletter"), sync_status="pending")
    records = [
        record("MODIFY", state),
        record("MODIFY", state),  # the same state twice in a batch: pushed once
        record("INSERT", keys.item(keys.mail("m1"), mail_id="m1", status="queued", attempts=0)),
        record("MODIFY", keys.item(keys.mail("m2"), mail_id="m2", status="queued", attempts=1)),
        record("INSERT", keys.item(keys.act_hint("c-9"), contact_id="c-9")),
        record("INSERT", keys.item(keys.hookout("e1", 0), status="pending", attempts=0)),
        record("MODIFY", keys.item(keys.hookout("e1", 1), status="pending", attempts=2)),
        record("MODIFY", keys.item(keys.purpose("cd" * 32, "sms"), sync_status="synced")),
    ]
    routed = stream.route_records(records)
    assert routed.syncs == [keys.purpose("ab" * 32, "newsletter")]
    assert routed.mails == ["m1"]  # a retried mail is the sweep's, not the stream's
    assert routed.hints == ["c-9"]
    assert routed.hookouts == [keys.hookout("e1", 0)]
    assert routed.expired_profiles == []


def test_only_a_profile_the_ttl_removed_counts_as_expired() -> None:
    profile = keys.item(keys.profile("ef" * 32), subject="ef" * 32, created_at="2026-01-01")
    by_ttl = stream.route_records([record("REMOVE", old=profile, by_ttl=True)])
    by_erasure = stream.route_records([record("REMOVE", old=profile)])
    assert [p["subject"] for p in by_ttl.expired_profiles] == ["ef" * 32]
    assert by_erasure.expired_profiles == []


def test_decode_reads_keys_when_only_keys_are_sent() -> None:
    change = stream.decode({"eventName": "REMOVE",
                            "dynamodb": {"Keys": to_item(keys.item(keys.link("l1")))}})
    assert (change.pk, change.sk, change.new, change.old) == (*keys.link("l1"), None, None)
