"""DynamoDB: subjects, their chained events and purpose states, links, texts.

One table, single-table design (see DESIGN.md). The only way to add events is
:meth:`Ledger.commit`: it reads the subject's snapshot, lets the caller decide what to
write, seals the events onto the chain and writes everything in one
``TransactWriteItems`` conditioned on the chain head. If another writer moved the
head in between, the whole transaction is cancelled and rebuilt from a fresh
snapshot, so concurrent clicks can never fork a chain or half-write a decision.

Size: the commit, its snapshot read and the few query shapes it rests on stay in
one module on purpose, so every condition a write depends on can be read in one place.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any, Protocol

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ReadTimeoutError,
)

from chalicelib.core.clock import iso, utcnow
from chalicelib.core.errors import (
    Contention,
    OutcomeUnknown,
    RequiredItemMissing,
    StoreUnavailable,
)
from chalicelib.core.logs import log
from chalicelib.proof import chain as proof
from chalicelib.store import keys

PENDING_SYNC_INDEX = "pending-sync"
_MAX_ATTEMPTS = 40
#: DynamoDB's limit of items in one TransactGetItems.
_MAX_TRANSACT_GET = 100
#: DynamoDB's limit of items in one TransactWriteItems.
_MAX_TRANSACT_WRITE = 100
_SERIALIZER = TypeSerializer()
_STORED_TEXTS: set[tuple[str, str, str]] = set()
_DESERIALIZER = TypeDeserializer()


def to_item(data: dict[str, Any]) -> dict[str, Any]:
    """Python dict → DynamoDB attribute map, dropping None (absent means unset)."""
    return {k: _SERIALIZER.serialize(v) for k, v in data.items() if v is not None}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    return value


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB attribute map → Python dict with ints instead of Decimals."""
    return {k: _plain(_DESERIALIZER.deserialize(v)) for k, v in item.items()}


def _key(key: keys.Key) -> dict[str, Any]:
    return to_item({"pk": key[0], "sk": key[1]})


def _store_error(operation: str, exc: Exception) -> StoreUnavailable:
    """Log a DynamoDB failure and say it in words a person can act on."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        log("store_error", level="error", operation=operation, code=code)
        return StoreUnavailable(f"DynamoDB {operation} failed ({code}).")
    log("store_error", level="error", operation=operation, code=type(exc).__name__)
    return StoreUnavailable(f"DynamoDB is unreachable ({type(exc).__name__}).")


@dataclass
class Snapshot:
    """What a writer needs to know about a subject before deciding what to write."""

    subject: str
    seq: int
    head_hash: str
    states: dict[str, dict[str, Any]]
    profile: dict[str, Any] | None
    #: Other items read in the same consistent read (``Reads.items``), by key; absent
    #: ones are missing.
    items: dict[keys.Key, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Reads:
    """A snapshot narrowed to what one decision needs, read in ONE round trip.

    ``TransactGetItems`` of the chain head, the profile, the named purposes' states and
    ``items`` (e.g. the link the decision comes through): a serializable view, so the
    states and the head it is conditioned on belong to the same moment. Without it a
    snapshot reads the head, then every state (two round trips).
    """

    purposes: tuple[str, ...]
    items: tuple[keys.Key, ...] = ()

    def keys_for(self, subject: str) -> list[keys.Key]:
        return [
            keys.chain(subject),
            keys.profile(subject),
            *(keys.purpose(subject, p) for p in self.purposes),
            *self.items,
        ]


@dataclass
class Draft:
    """An event to append: its fields, and the personal fields committed by hash."""

    body: dict[str, Any]
    personal: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """What one commit writes. ``events`` get sealed in order onto the chain."""

    events: list[Draft] = field(default_factory=list)
    puts: list[dict[str, Any]] = field(default_factory=list)
    profile: dict[str, Any] | None = None
    #: Items that must exist for the write to happen (checked in the transaction).
    checks: list[tuple[str, str]] = field(default_factory=list)
    #: Items that must NOT exist for the write to happen (e.g. an erasure's tombstone).
    absent: list[tuple[str, str]] = field(default_factory=list)
    #: Items written only if they do not exist yet (a claim: the first writer wins);
    #: one that exists refuses the write, as an ``absent`` item does.
    create: list[dict[str, Any]] = field(default_factory=list)
    #: Attributes to set on other items: ``(pk, sk, fields, ttl)``; an item that is gone
    #: is recreated as a stub expiring at ``ttl`` (epoch seconds), never an error.
    updates: list[tuple[str, str, dict[str, Any], int]] = field(default_factory=list)
    #: Items to delete (e.g. a sent mail's outbox entry).
    deletes: list[tuple[str, str]] = field(default_factory=list)
    #: Profile attributes to remove (e.g. the expiry of a pending request once decided).
    profile_remove: tuple[str, ...] = ()
    #: Items made from the sealed events (hashes known), written in the same transaction.
    derived: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None

    def empty(self) -> bool:
        return not (
            self.events or self.puts or self.profile or self.updates or self.deletes or self.create
        )


Counters = dict[tuple[str, str], dict[str, int]]


class Tally(Protocol):
    """What a commit also writes, derived from the events it seals: counters to add to
    and values to append to profile lists (``(counters, remember)``). The services layer
    gives the dashboard's (``consent.stats.deltas``); the ledger knows no counter.

    ``seed``: the same seed picks the same counter shards, so the subjects of one
    batched transaction add to one item per counter (a transaction may not name an
    item twice); ``None`` picks at random.
    """

    def __call__(
        self,
        states: dict[str, dict[str, Any]],
        profile: dict[str, Any] | None,
        sealed: list[dict[str, Any]],
        seed: int | None = None,
    ) -> tuple[Counters, dict[str, list[Any]]]: ...


def _snapshot_of(subject: str, found: dict[keys.Key, dict[str, Any]]) -> Snapshot:
    """A snapshot from items read by key (``Reads.keys_for``); absent ones are missing."""
    found = dict(found)
    chain = found.pop(keys.chain(subject), {})
    profile = found.pop(keys.profile(subject), None)
    states = {
        item["purpose"]: found.pop(key)
        for key, item in list(found.items())
        if key[0] == keys.subject_pk(subject) and key[1].startswith(keys.PURPOSE_PREFIX)
    }
    return Snapshot(
        subject,
        int(chain.get("seq", 0)),
        chain.get("head_hash", proof.GENESIS_HASH),
        states,
        profile,
        found,
    )


class Ledger:
    """Narrow interface to the consent table; receives its client, patches nothing."""

    def __init__(self, client: Any, table: str, tally: Tally | None = None) -> None:
        self.client = client
        self.table = table
        self.tally = tally

    # -- reads -------------------------------------------------------------------

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return getattr(self.client, operation)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise _store_error(operation, exc) from exc

    def _conditional(self, operation: str, **kwargs: Any) -> bool:
        """Run a conditional write; False when its condition failed, else as :meth:`_call`."""
        try:
            getattr(self.client, operation)(**kwargs)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise _store_error(operation, exc) from exc
        except BotoCoreError as exc:
            raise _store_error(operation, exc) from exc

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self._call(
            "get_item", TableName=self.table, ConsistentRead=True, Key=to_item({"pk": pk, "sk": sk})
        )
        item = response.get("Item")
        return from_item(item) if item else None

    def query(self, pk: str, prefix: str, forward: bool = True) -> Iterator[dict[str, Any]]:
        """All items of partition ``pk`` whose sort key starts with ``prefix``, paged."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "ConsistentRead": True,
            "ScanIndexForward": forward,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": to_item({":pk": pk, ":prefix": prefix}),
        }
        return self._paged("query", kwargs)

    def get_many(self, keys: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """Items by key, 100 per BatchGetItem, in the order given (missing ones left out)."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for start in range(0, len(keys), 100):
            request = {
                self.table: {
                    "Keys": [to_item({"pk": pk, "sk": sk}) for pk, sk in keys[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            while request:
                page = self._call("batch_get_item", RequestItems=request)
                for item in page.get("Responses", {}).get(self.table, []):
                    plain = from_item(item)
                    found[(plain["pk"], plain["sk"])] = plain
                request = page.get("UnprocessedKeys") or {}
        return [found[key] for key in keys if key in found]

    def query_between(self, pk: str, low: str, high: str) -> Iterator[dict[str, Any]]:
        """Items of partition ``pk`` whose sort key is between ``low`` and ``high``."""
        return self._paged(
            "query",
            {
                "TableName": self.table,
                "ConsistentRead": True,
                "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
                "ExpressionAttributeValues": to_item({":pk": pk, ":low": low, ":high": high}),
            },
        )

    def _paged(self, operation: str, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item of a query or scan, following ``LastEvaluatedKey``."""
        while True:
            page = self._call(operation, **kwargs)
            for item in page.get("Items", []):
                yield from_item(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs = {**kwargs, "ExclusiveStartKey": page["LastEvaluatedKey"]}

    def _read(self, subject: str, reads: Reads | None) -> Snapshot | None:
        """A commit's snapshot; ``None`` only when a narrowed read (``reads``) met a
        concurrent transaction and must be tried again."""
        if reads is not None and len(reads.keys_for(subject)) <= _MAX_TRANSACT_GET:
            return self._narrow_snapshot(subject, reads)
        return self.snapshot(subject)

    def _narrow_snapshot(self, subject: str, reads: Reads) -> Snapshot | None:
        wanted = reads.keys_for(subject)
        try:
            response = self.client.transact_get_items(
                TransactItems=[{"Get": {"TableName": self.table, "Key": _key(k)}} for k in wanted]
            )
        except ClientError as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if "TransactionConflict" in reasons or exc.response.get("Error", {}).get("Code") in (
                "TransactionConflictException",
                "TransactionInProgressException",
            ):
                return None
            raise _store_error("transact_get_items", exc) from exc
        except BotoCoreError as exc:
            raise _store_error("transact_get_items", exc) from exc
        found = {
            key: from_item(answer["Item"])
            for key, answer in zip(wanted, response.get("Responses", []), strict=False)
            if answer.get("Item")
        }
        return _snapshot_of(subject, found)

    def snapshots(
        self, subjects: list[str], reads: Reads, extra: list[keys.Key] | None = None
    ) -> tuple[dict[str, Snapshot], dict[keys.Key, dict[str, Any]]]:
        """Many subjects' snapshots (as ``reads`` narrows them) and ``extra`` items, in
        BatchGetItem rounds of 100 keys: a page of a campaign read at once.

        Each item is read consistently, but the whole is not one serializable view: a
        plan built on these goes through :meth:`commit_many`, whose transactions are
        conditioned on each chain head, so a subject that moved meanwhile is refused and
        the caller takes the one-subject path (:meth:`commit`) for it.
        """
        wanted = list(
            dict.fromkeys([k for s in subjects for k in reads.keys_for(s)] + (extra or []))
        )
        found = {(item["pk"], item["sk"]): item for item in self.get_many(wanted)}
        snaps = {
            subject: _snapshot_of(
                subject, {k: found[k] for k in reads.keys_for(subject) if k in found}
            )
            for subject in subjects
        }
        return snaps, found

    def commit_many(
        self, plans: list[tuple[Snapshot, Plan]], limit: int = _MAX_TRANSACT_WRITE
    ) -> list[list[dict[str, Any]] | None]:
        """Write many subjects' plans in as few ``TransactWriteItems`` as fit ``limit`` items.

        Each subject's items stay in one transaction, conditioned on its chain head and
        its plan's checks exactly as :meth:`commit` does; the counters of a transaction's
        subjects are summed into one item each. Returns, per plan, the sealed events, or
        ``None`` when its transaction was refused (a chain head moved, a condition
        failed, the outcome is unknown): nothing of it is known written, and the caller
        takes the one-subject path, which reads again. Plans are not rebuilt here.
        """
        results: list[list[dict[str, Any]] | None] = [[] for _ in plans]
        seed = random.randrange(1 << 30)
        chunk: list[int] = []
        request: list[dict[str, Any]] = []
        merged: Counters = {}

        def flush() -> None:
            nonlocal request, merged
            if chunk and not self._transact_many([*request, *self._counter_items(merged)]):
                for index in chunk:
                    results[index] = None
            chunk.clear()
            request, merged = [], {}

        for index, (snap, plan) in enumerate(plans):
            if plan.empty():
                continue
            trial: Counters = {k: dict(v) for k, v in merged.items()}
            sealed, items = self._transaction(snap, plan, seed, trial)
            if chunk and len(request) + len(items) + len(trial) > limit:
                flush()
                trial = {}
                sealed, items = self._transaction(snap, plan, seed, trial)
            chunk.append(index)
            request.extend(items)
            merged = trial
            results[index] = sealed
        flush()
        return results

    def _counter_items(self, counters: Counters) -> list[dict[str, Any]]:
        return [{"Update": self._counter_update(pk, sk, f)} for (pk, sk), f in counters.items()]

    def _transact_many(self, request: list[dict[str, Any]], attempts: int = 6) -> bool:
        """One batched transaction: True when written. A conflict with another
        transaction (no condition failed) is tried again; a failed condition or an
        unknown outcome is False (the caller redoes each subject on its own)."""
        for attempt in range(attempts):
            try:
                self.client.transact_write_items(
                    TransactItems=request, ClientRequestToken=str(uuid.uuid4())
                )
                return True
            except ClientError as exc:
                error, reasons = _refusal(exc)
                if (
                    error.get("Code")
                    not in (
                        "TransactionConflictException",
                        "TransactionCanceledException",
                    )
                    or "ConditionalCheckFailed" in reasons
                ):
                    if error.get("Code") != "TransactionCanceledException":
                        log(
                            "store_error",
                            level="warning",
                            operation="transact_write_items",
                            code=error.get("Code"),
                            reasons=reasons,
                        )
                    return False
            except BotoCoreError as exc:
                log(
                    "store_error",
                    level="warning",
                    operation="transact_write_items",
                    code=type(exc).__name__,
                )
                return False
            time.sleep(random.uniform(0, min(0.5, 0.01 * 2 ** min(attempt, 6))))
        return False

    def snapshot(self, subject: str) -> Snapshot:
        """Chain head, profile and every purpose state, in two consistent reads.

        ``PROFILE`` and ``PURPOSE#...`` sort after ``EVENT#...``, so one range query
        from "P" fetches them without touching the (many) events.
        """
        chain = self.get(*keys.chain(subject)) or {}
        profile, states = self.current(subject)
        return Snapshot(
            subject,
            int(chain.get("seq", 0)),
            chain.get("head_hash", proof.GENESIS_HASH),
            states,
            profile,
        )

    def holds(self, subject: str) -> bool:
        """Whether anything is held about the person: a chain, a profile or a state."""
        return bool(self.get(*keys.chain(subject))) or self.current(subject) != (None, {})

    def current(self, subject: str) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
        """Profile and purpose states in one consistent query (what pages show)."""
        profile, states = None, {}
        for item in self._paged(
            "query",
            {
                "TableName": self.table,
                "ConsistentRead": True,
                "KeyConditionExpression": "pk = :pk AND sk >= :from",
                "ExpressionAttributeValues": to_item(
                    {":pk": keys.subject_pk(subject), ":from": keys.AFTER_EVENTS}
                ),
            },
        ):
            if item["sk"] == keys.PROFILE:
                profile = item
            elif item["sk"].startswith(keys.PURPOSE_PREFIX):
                states[item["purpose"]] = item
        return profile, states

    def subjects(self) -> Iterator[str]:
        """Every subject with a chain head, a profile or events (paged scan, once each)."""
        seen: set[str] = set()
        for item in self._paged(
            "scan",
            {
                "TableName": self.table,
                "ProjectionExpression": "pk, sk",
                "FilterExpression": "begins_with(pk, :subj) AND (sk = :chain OR sk = :profile "
                "OR begins_with(sk, :event))",
                "ExpressionAttributeValues": to_item(
                    {
                        ":subj": keys.SUBJECT_PREFIX,
                        ":chain": keys.CHAIN,
                        ":profile": keys.PROFILE,
                        ":event": keys.EVENT_PREFIX,
                    }
                ),
            },
        ):
            subject = keys.subject_of(item["pk"])
            if subject not in seen:
                seen.add(subject)
                yield subject

    def scan_items(self, pk_prefix: str, sk: str | None = None) -> Iterator[dict[str, Any]]:
        """Every item of one kind (e.g. outbox mails): a paged scan, for operator commands."""
        condition, values = "begins_with(pk, :prefix)", {":prefix": pk_prefix}
        if sk is not None:
            condition, values[":sk"] = condition + " AND sk = :sk", sk
        return self._paged(
            "scan",
            {
                "TableName": self.table,
                "FilterExpression": condition,
                "ExpressionAttributeValues": to_item(values),
            },
        )

    def events(self, subject: str) -> Iterator[dict[str, Any]]:
        """The subject's events in chain order, exactly as sealed (without table keys)."""
        for item in self.query(keys.subject_pk(subject), keys.EVENT_PREFIX):
            item.pop("pk", None)
            item.pop("sk", None)
            yield item

    def link(self, link_id: str) -> dict[str, Any] | None:
        return self.get(*keys.link(link_id))

    def sync_keys(
        self, shards: list[str], due_before: str | None = None
    ) -> Iterator[tuple[str, str]]:
        """``(pk, sk)`` of purpose states in the pending-sync index, oldest due first."""
        for shard in shards:
            condition, values = "sync_shard = :shard", {":shard": shard}
            if due_before:
                condition += " AND sync_due <= :due"
                values[":due"] = due_before
            for item in self._paged(
                "query",
                {
                    "TableName": self.table,
                    "IndexName": PENDING_SYNC_INDEX,
                    "KeyConditionExpression": condition,
                    "ExpressionAttributeValues": to_item(values),
                },
            ):
                yield item["pk"], item["sk"]

    def update_state(
        self,
        pk: str,
        sk: str,
        event_id: str,
        set_fields: dict[str, Any],
        remove: tuple[str, ...] = (),
        extra_condition: str = "",
        extra_values: dict[str, Any] | None = None,
    ) -> bool:
        """Update sync bookkeeping of a purpose state, only if its decision is still ``event_id``.

        False when a newer decision replaced it (or ``extra_condition`` failed): the newer
        decision carries its own pending sync, so the caller just moves on.
        """
        names = {f"#s{i}": name for i, name in enumerate(set_fields)}
        names.update({f"#r{i}": name for i, name in enumerate(remove)})
        values = {f":s{i}": value for i, value in enumerate(set_fields.values())}
        values[":event"] = event_id
        values.update(extra_values or {})
        expression = "SET " + ", ".join(f"#s{i} = :s{i}" for i in range(len(set_fields)))
        if remove:
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
        condition = "event_id = :event" + (f" AND ({extra_condition})" if extra_condition else "")
        return self._conditional(
            "update_item",
            TableName=self.table,
            Key=to_item({"pk": pk, "sk": sk}),
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_item(values),
        )

    # -- a per-person lock for pushes to Act! (decisions never overwrite this item) -----

    def acquire_lock(self, subject: str, owner: str, seconds: int) -> bool:
        """Take the subject's sync lock if free or expired; False when someone holds it."""
        return self.lease(*keys.sync_lock(subject), owner, seconds)

    def lease(self, pk: str, sk: str, owner: str, seconds: int) -> bool:
        """Take a lock item if free or expired; False when someone else holds it."""
        return self._conditional("put_item", **self._lease_put(pk, sk, owner, seconds))

    def _lease_put(self, pk: str, sk: str, owner: str, seconds: int) -> dict[str, Any]:
        now = utcnow()
        return {
            "TableName": self.table,
            "Item": to_item(
                {
                    "pk": pk,
                    "sk": sk,
                    "owner": owner,
                    "until": iso(now + timedelta(seconds=seconds)),
                    "expires_at": int(now.timestamp()) + seconds + 3600,
                }
            ),
            "ConditionExpression": "attribute_not_exists(pk) OR #until < :now",
            "ExpressionAttributeNames": {"#until": "until"},
            "ExpressionAttributeValues": to_item({":now": iso(now)}),
        }

    def lease_many(self, locks: list[keys.Key], owner: str, seconds: int) -> bool:
        """Take up to 100 lock items in one transaction: all of them, or (False) none,
        when someone else holds one (the caller then takes them one by one)."""
        if not locks:
            return True
        return self._transact_many(
            [{"Put": self._lease_put(pk, sk, owner, seconds)} for pk, sk in locks], attempts=3
        )

    def release_many(self, locks: list[keys.Key], owner: str) -> None:
        """Give lock items back in one transaction; one by one if some is no longer ours."""
        request = [
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": _key(lock),
                    "ConditionExpression": "#owner = :me",
                    "ExpressionAttributeNames": {"#owner": "owner"},
                    "ExpressionAttributeValues": to_item({":me": owner}),
                }
            }
            for lock in locks
        ]
        if locks and not self._transact_many(request, attempts=3):
            for lock in locks:
                self.release(*lock, owner)

    def put_many(self, items: list[dict[str, Any]]) -> None:
        """Write bookkeeping items (never events), 25 per BatchWriteItem, unconditionally."""
        self._batch_write([{"PutRequest": {"Item": to_item(item)}} for item in items], "writes")

    def delete_many(self, keys_: list[keys.Key]) -> None:
        """Delete bookkeeping items (never events), 25 per BatchWriteItem, unconditionally."""
        self._batch_write([{"DeleteRequest": {"Key": _key(key)}} for key in keys_], "deletes")

    def _batch_write(self, requests: list[dict[str, Any]], what: str) -> None:
        """25 requests per BatchWriteItem, what DynamoDB leaves unprocessed sent again
        with jittered backoff; StoreUnavailable when it keeps refusing."""
        for start in range(0, len(requests), 25):
            pending = {self.table: requests[start : start + 25]}
            for attempt in range(_MAX_ATTEMPTS):
                answer = self._call("batch_write_item", RequestItems=pending)
                pending = answer.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(random.uniform(0, min(0.5, 0.01 * 2 ** min(attempt, 6))))
            else:
                raise StoreUnavailable(f"DynamoDB kept refusing a batch of {what}.")

    def scan_where(
        self,
        condition: str,
        values: dict[str, Any],
        projection: str | None = None,
        names: dict[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """A paged scan with a filter: for catch-up jobs and operator commands only.
        ``names``: placeholders the condition uses for reserved words (``#state``)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": condition,
            "ExpressionAttributeValues": to_item(values),
        }
        placeholders = dict(names or {})
        if projection:  # every name through a placeholder: no clash with reserved words
            fields = [name.strip() for name in projection.split(",")]
            kwargs["ProjectionExpression"] = ", ".join(f"#p{i}" for i in range(len(fields)))
            placeholders.update({f"#p{i}": n for i, n in enumerate(fields)})
        if placeholders:
            kwargs["ExpressionAttributeNames"] = placeholders
        return self._paged("scan", kwargs)

    def release(self, pk: str, sk: str, owner: str) -> None:
        """Give a lock item back, if it is still ours."""
        self._conditional(
            "delete_item",
            TableName=self.table,
            Key=to_item({"pk": pk, "sk": sk}),
            ConditionExpression="#owner = :me",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues=to_item({":me": owner}),
        )

    def renew_lock(self, subject: str, owner: str, seconds: int) -> bool:
        """Extend our lock; False if it expired and someone else took it."""
        now = utcnow()
        return self._conditional(
            "update_item",
            TableName=self.table,
            Key=_key(keys.sync_lock(subject)),
            UpdateExpression="SET #until = :until",
            ConditionExpression="#owner = :me",
            ExpressionAttributeNames={"#until": "until", "#owner": "owner"},
            ExpressionAttributeValues=to_item(
                {":until": iso(now + timedelta(seconds=seconds)), ":me": owner}
            ),
        )

    def release_lock(self, subject: str, owner: str) -> None:
        self.release(*keys.sync_lock(subject), owner)

    def claim(self, pk: str, sk: str, owner: str, seconds: int) -> bool:
        """Lease an existing work item (e.g. a mail to send) so only one worker handles it."""
        now = utcnow()
        return self._conditional(
            "update_item",
            TableName=self.table,
            Key=to_item({"pk": pk, "sk": sk}),
            UpdateExpression="SET claimed_by = :me, claimed_until = :until",
            ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(claimed_until) "
            "OR claimed_until < :now)",
            ExpressionAttributeValues=to_item(
                {":me": owner, ":until": iso(now + timedelta(seconds=seconds)), ":now": iso(now)}
            ),
        )

    def set_profile_fields(self, subject: str, fields: dict[str, Any]) -> None:
        """Cache facts on an existing profile (e.g. Act! contact ids); no-op if erased."""
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":v{i}": value for i, value in enumerate(fields.values())}
        self._conditional(
            "update_item",
            TableName=self.table,
            Key=_key(keys.profile(subject)),
            UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields))),
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_item(values),
        )

    def set_fields(self, pk: str, sk: str, fields: dict[str, Any]) -> None:
        """Set attributes of a bookkeeping item, creating it if absent (never an event)."""
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":v{i}": value for i, value in enumerate(fields.values())}
        self._call(
            "update_item",
            TableName=self.table,
            Key=to_item({"pk": pk, "sk": sk}),
            UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_item(values),
        )

    def put(self, item: dict[str, Any], only_new: bool = False) -> bool:
        """Write a bookkeeping item (never an event); with ``only_new``, False if it exists."""
        if not only_new:
            self._call("put_item", TableName=self.table, Item=to_item(item))
            return True
        return self._conditional(
            "put_item",
            TableName=self.table,
            Item=to_item(item),
            ConditionExpression="attribute_not_exists(pk)",
        )

    def delete(self, pk: str, sk: str, if_equal: dict[str, Any] | None = None) -> bool:
        """Remove a bookkeeping item (a processed hint); never an event.

        With ``if_equal``, only while those attributes still hold those values (a newer
        hint written meanwhile stays); False when it was not deleted.
        """
        if not if_equal:
            self._call("delete_item", TableName=self.table, Key=to_item({"pk": pk, "sk": sk}))
            return True
        names = {f"#c{i}": name for i, name in enumerate(if_equal)}
        values = {f":c{i}": value for i, value in enumerate(if_equal.values())}
        return self._conditional(
            "delete_item",
            TableName=self.table,
            Key=to_item({"pk": pk, "sk": sk}),
            ConditionExpression=" AND ".join(f"#c{i} = :c{i}" for i in range(len(if_equal))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_item(values),
        )

    def remove_attributes(self, pk: str, sk: str, names: tuple[str, ...]) -> None:
        """Erasure only: drop personal attributes from an item that exists (an event keeps
        its commitment to them, so its hash still verifies)."""
        aliases = {f"#r{i}": name for i, name in enumerate(names)}
        self._conditional(
            "update_item",
            TableName=self.table,
            Key=to_item({"pk": pk, "sk": sk}),
            UpdateExpression="REMOVE " + ", ".join(aliases),
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames=aliases,
        )

    def put_versioned(self, item: dict[str, Any], expected_version: int) -> bool:
        """Write ``item`` (with ``version = expected_version + 1``) only if nobody else did.

        Optimistic concurrency for small counters (e.g. throttles): False when another
        writer got there first, so the caller re-reads and decides again.
        """
        condition = "attribute_not_exists(pk)" if expected_version == 0 else "version = :expected"
        extra = (
            {}
            if expected_version == 0
            else {"ExpressionAttributeValues": to_item({":expected": expected_version})}
        )
        return self._conditional(
            "put_item",
            TableName=self.table,
            ConditionExpression=condition,
            Item=to_item({**item, "version": expected_version + 1}),
            **extra,
        )

    def put_text(self, text_sha256: str, data: dict[str, Any]) -> None:
        """Keep the exact wording of a purpose text version, for evidence. Idempotent."""
        self.put_content(keys.TEXT, text_sha256, data)

    def put_content(self, kind: str, sha256: str, data: dict[str, Any]) -> None:
        """Keep a content-addressed item (``<kind>#<sha256>``) for evidence. Idempotent.

        The same content always makes the same item; written before any event that
        cites it, and once per container per table. First writer wins: a stored
        wording is never replaced.
        """
        if (self.table, kind, sha256) in _STORED_TEXTS:
            return
        pk, sk = keys.content(kind, sha256)
        self._conditional(
            "put_item",
            TableName=self.table,
            ConditionExpression="attribute_not_exists(pk)",
            Item=to_item({"pk": pk, "sk": sk, **data}),
        )
        _STORED_TEXTS.add((self.table, kind, sha256))

    # -- the one write path --------------------------------------------------------

    def commit(
        self, subject: str, build: Callable[[Snapshot], Plan], reads: Reads | None = None
    ) -> tuple[Snapshot, list[dict[str, Any]]]:
        """Build a plan from a fresh snapshot and write it atomically, retrying on races.

        ``build`` must be a pure function of the snapshot: it may run several times.
        With ``reads``, the snapshot holds only what they name (a decision: its purposes
        and its link), read in one round trip. Returns the snapshot the plan was built
        on and the sealed events written.
        """
        for attempt in range(_MAX_ATTEMPTS):
            snap = self._read(subject, reads)
            if snap is None:  # the read met a write in progress: wait, read again
                time.sleep(random.uniform(0, min(0.5, 0.01 * 2 ** min(attempt, 6))))
                continue
            plan = build(snap)
            if plan.empty():
                return snap, []
            sealed, request = self._transaction(snap, plan)
            if self._transact(request, len(plan.checks) + len(plan.absent) + len(plan.create)):
                return snap, sealed
            time.sleep(random.uniform(0, min(0.5, 0.01 * 2 ** min(attempt, 6))))
        log("chain_contention", level="warning", subject=subject, attempts=_MAX_ATTEMPTS)
        raise Contention("Too many simultaneous changes for this person; please try again.")

    def _transaction(
        self, snap: Snapshot, plan: Plan, seed: int | None = None, merged: Counters | None = None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The plan's transaction items: chain head, events, counters, puts, updates,
        deletes, profile, then its conditions (last, as :meth:`_transact` reads them).

        With ``merged``, the counters are added there instead (a batched transaction
        writes each counter item once for all its subjects)."""
        pk = keys.subject_pk(snap.subject)
        sealed, head, seq = [], snap.head_hash, snap.seq
        for draft in plan.events:
            seq += 1
            event = proof.seal(
                {**draft.body, "subject": snap.subject, "seq": seq}, draft.personal, head
            )
            head = event["hash"]
            sealed.append(event)
        now = sealed[-1]["at"] if sealed else None
        chain_update: dict[str, Any] = {
            "TableName": self.table,
            "Key": _key(keys.chain(snap.subject)),
            "UpdateExpression": "SET seq = :new, head_hash = :head, updated_at = :now, "
            "subject = :subject",
            "ExpressionAttributeValues": to_item(
                {
                    ":new": seq,
                    ":head": head,
                    ":now": now,
                    ":subject": snap.subject,
                    **({":old": snap.seq} if snap.seq else {}),
                }
            ),
            "ConditionExpression": "seq = :old" if snap.seq else "attribute_not_exists(pk)",
        }
        request: list[dict[str, Any]] = []
        if sealed:
            request.append({"Update": chain_update})
        elif snap.seq:
            request.append(
                {
                    "ConditionCheck": {
                        "TableName": self.table,
                        "Key": chain_update["Key"],
                        "ConditionExpression": "seq = :old",
                        "ExpressionAttributeValues": to_item({":old": snap.seq}),
                    }
                }
            )
        for event in sealed:
            request.append(
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": to_item({"pk": pk, "sk": keys.event_sk(event["seq"]), **event}),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        counters, remember = (
            self.tally(snap.states, snap.profile, sealed, seed) if self.tally else ({}, {})
        )
        if merged is not None:
            for counter, fields in counters.items():
                into = merged.setdefault(counter, {})
                for name, delta in fields.items():
                    into[name] = into.get(name, 0) + delta
            counters = {}
        if remember and not any(d == keys.profile(snap.subject) for d in plan.deletes):
            profile = dict(plan.profile or {})
            for name, values in remember.items():  # e.g. a person asked twice is pending once
                profile[name] = [*((snap.profile or {}).get(name) or []), *values]
            plan.profile = profile
        request.extend(
            {"Update": self._counter_update(pk_, sk_, fields)}
            for (pk_, sk_), fields in counters.items()
        )
        derived = plan.derived(sealed) if plan.derived else []
        for item in [*plan.puts, *derived]:
            request.append({"Put": {"TableName": self.table, "Item": to_item(item)}})
        for item_pk, item_sk, fields, ttl in plan.updates:
            request.append({"Update": self._stub_safe_update(item_pk, item_sk, fields, ttl)})
        for item_pk, item_sk in plan.deletes:
            request.append(
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": to_item({"pk": item_pk, "sk": item_sk}),
                    }
                }
            )
        if plan.profile is not None:
            request.append({"Update": self._profile_update(pk, plan.profile, plan.profile_remove)})
        if sealed or plan.puts or plan.create:
            conditions = [(key, "attribute_exists(pk)") for key in plan.checks]
            conditions += [(key, "attribute_not_exists(pk)") for key in plan.absent]
            for (check_pk, check_sk), condition in conditions:
                request.append(
                    {
                        "ConditionCheck": {
                            "TableName": self.table,
                            "Key": to_item({"pk": check_pk, "sk": check_sk}),
                            "ConditionExpression": condition,
                        }
                    }
                )
            for item in plan.create:
                request.append(
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": to_item(item),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    }
                )
        return sealed, request

    def _counter_update(self, pk: str, sk: str, fields: dict[str, int]) -> dict[str, Any]:
        names = {f"#c{i}": name for i, name in enumerate(fields)}
        values = {f":c{i}": delta for i, delta in enumerate(fields.values())}
        return {
            "TableName": self.table,
            "Key": to_item({"pk": pk, "sk": sk}),
            "UpdateExpression": "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(fields))),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": to_item(values),
        }

    def set_once(self, pk: str, sk: str, name: str, value: Any) -> bool:
        """Set an attribute of an existing item unless it is set; True if this call set it."""
        return self._conditional("update_item", **self._set_once_update(pk, sk, name, value))

    def _set_once_update(self, pk: str, sk: str, name: str, value: Any) -> dict[str, Any]:
        return {
            "TableName": self.table,
            "Key": to_item({"pk": pk, "sk": sk}),
            "UpdateExpression": "SET #n = :v",
            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(#n)",
            "ExpressionAttributeNames": {"#n": name},
            "ExpressionAttributeValues": to_item({":v": value}),
        }

    def set_once_counted(
        self, pk: str, sk: str, name: str, value: Any, counters: dict[keys.Key, dict[str, int]]
    ) -> bool:
        """:meth:`set_once` and the counters it justifies, in one request: the counters
        move only if this call set the attribute (a page's first opening)."""
        if not counters:
            return self.set_once(pk, sk, name, value)
        request = [
            {"Update": self._set_once_update(pk, sk, name, value)},
            *({"Update": self._counter_update(k[0], k[1], f)} for k, f in counters.items()),
        ]
        try:
            self.client.transact_write_items(TransactItems=request)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                return False  # set already (or the item is gone), or a concurrent writer
            raise _store_error("transact_write_items", exc) from exc
        except BotoCoreError as exc:
            raise _store_error("transact_write_items", exc) from exc

    def add_counters(self, counters: dict[tuple[str, str], dict[str, int]]) -> None:
        """Counter changes outside a commit (a page opened, a sync done, an expiry)."""
        for (pk, sk), fields in counters.items():
            self._call("update_item", **self._counter_update(pk, sk, fields))

    def _profile_update(
        self, pk: str, fields: dict[str, Any], remove: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        fields = {name: value for name, value in fields.items() if value is not None}
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        names.update({f"#r{i}": name for i, name in enumerate(remove)})
        values = {f":v{i}": value for i, value in enumerate(fields.values())}
        sets = [f"#f{i} = :v{i}" for i in range(len(fields))]
        sets.append("created_at = if_not_exists(created_at, :created)")
        values[":created"] = fields.get("updated_at")
        expression = "SET " + ", ".join(sets)
        if remove:
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
        return {
            "TableName": self.table,
            "Key": _key((pk, keys.PROFILE)),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": to_item(values),
        }

    def _stub_safe_update(
        self, pk: str, sk: str, fields: dict[str, Any], ttl: int
    ) -> dict[str, Any]:
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":v{i}": value for i, value in enumerate(fields.values())}
        sets = [f"#f{i} = :v{i}" for i in range(len(fields))]
        sets.append("expires_at = if_not_exists(expires_at, :ttl)")
        values[":ttl"] = ttl
        return {
            "TableName": self.table,
            "Key": to_item({"pk": pk, "sk": sk}),
            "UpdateExpression": "SET " + ", ".join(sets),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": to_item(values),
        }

    def _transact(self, request: list[dict[str, Any]], checks: int = 0) -> bool:
        """True when written; False when another writer moved the chain head first.

        Only a lost race is retried: the chain head's condition failed, or DynamoDB
        saw a conflicting transaction. Any other cancelled condition means the table
        holds something it should not (an event where the next one belongs): that is
        reported, never retried or overwritten.
        """
        try:
            # The token makes botocore's own retry of a lost response idempotent.
            self.client.transact_write_items(
                TransactItems=request, ClientRequestToken=str(uuid.uuid4())
            )
            return True
        except ClientError as exc:
            error, reasons = _refusal(exc)
            if (
                error.get("Code") == "TransactionConflictException"
                or "TransactionConflict" in reasons
            ):
                return False
            if (
                error.get("Code") == "TransactionCanceledException"
                and reasons
                and reasons[0] == "ConditionalCheckFailed"
            ):
                return False  # the chain head moved: rebuild on a fresh snapshot
            if checks and "ConditionalCheckFailed" in reasons[len(reasons) - checks :]:
                raise RequiredItemMissing(
                    "An item this write depends on no longer exists (or "
                    "one it must not meet now does)."
                ) from exc
            log(
                "store_error",
                level="error",
                operation="transact_write_items",
                code=error.get("Code"),
                reasons=reasons,
            )
            raise StoreUnavailable(
                f"DynamoDB write failed ({error.get('Code')}: "
                f"{', '.join(str(r) for r in reasons)})."
            ) from exc
        except (ReadTimeoutError, ConnectionClosedError) as exc:
            # Sent, but the answer was lost: it may have been written. Never claim
            # "nothing changed"; the person looks again and sees what is recorded.
            log(
                "store_outcome_unknown",
                level="error",
                operation="transact_write_items",
                code=type(exc).__name__,
            )
            raise OutcomeUnknown(
                "DynamoDB did not answer a write it received; it may or may not have been saved."
            ) from exc
        except BotoCoreError as exc:
            raise _store_error("transact_write_items", exc) from exc


def _refusal(exc: ClientError) -> tuple[dict[str, Any], list[Any]]:
    """A refused transaction's error and each item's cancellation code, read one way
    for the single commit and the batched one (which then differ in what they do)."""
    reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
    return dict(exc.response.get("Error", {})), reasons
