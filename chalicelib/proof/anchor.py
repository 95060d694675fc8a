"""Anchoring chain heads in trusted time: one RFC 3161 timestamp per run, for every
chain that changed since the last one.

The hash chain proves no event was altered after the next one was written; it cannot
prove we did not rewrite a whole chain. A timestamp from an outside authority (a
TSA; an eIDAS-qualified one in production) on a Merkle root over the chain heads
does: a head under a root stamped at time T existed at T, and so did every event
before it (each event's hash is in its successor's ``prev_hash``).

How a run finds what changed without a scan: the table stream (``on_table_change``)
notes each new chain head in a queue item, ``ANCHORQ#<shard>`` / ``<subject>#<seq>``
(16 shards, see ``store/keys.py``). A run reads the 16 shards, keeps each subject's
newest head, builds the tree (``proof/merkle.py``), asks the TSAs in order
(``proof/timestamp.py``), then writes:
- the anchor (``ANCHOR#<id>`` / ``ROOT``): root, token (base64 DER), TSA, time, count;
- per subject, its ``anchored`` reference (``SUBJ#<key>`` / ``ANCHOR#<id>``): leaf
  index, the head hash and seq anchored, and the inclusion path. Not a chain event: an
  event would move the head and ask for another anchor, forever;
- then deletes the queue items it read (their sort keys name the seq: a head noted
  meanwhile has its own item and waits for the next run).
A stream record delivered twice re-queues a head already anchored: the next run
anchors it again, which costs one leaf and proves the same thing (no read per head
to avoid it). A TSA that is down or refuses leaves the queue as it is, logs an ``anchor_alarm`` (a
CloudWatch metric through the embedded metric format), and the next run tries again.
Decisions never wait for any of this: it runs on its own schedule.

``catch_up`` finds heads that no anchor covers by a scan (a table created before
anchoring existed; ``make run``, where ``chalice local`` has no stream).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.clock import now_iso
from chalicelib.core.errors import TimestampFailed
from chalicelib.core.logs import log
from chalicelib.core.settings import AnchorSettings
from chalicelib.proof import merkle, timestamp
from chalicelib.proof.chain import new_event_id
from chalicelib.store import keys
from chalicelib.store.ledger import Ledger

#: Most leaves in one anchor; what is left waits for the next run (a path stays ≤ 17).
MAX_LEAVES = 100_000
#: The job's lease item: the schedule and the CLI never anchor the same heads at once.
LEASE = keys.ANCHOR_LEASE
LEASE_SECONDS = 900
#: CloudWatch namespace of the alarm metric (embedded metric format in the log line).
METRIC_NAMESPACE = "OptinProof"


@dataclass(frozen=True)
class Head:
    """A chain head to anchor: subject key, sequence and hash of its last event."""

    subject: str
    seq: int
    head_hash: str


@dataclass
class Outcome:
    """What a run did: the anchor written (or why none), how many heads, TSA calls."""

    anchor_id: str | None = None
    root: str | None = None
    leaves: int = 0
    tsa_calls: int = 0
    gen_time: str | None = None
    tsa_url: str | None = None
    skipped: str | None = None
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "anchor_id": self.anchor_id,
            "root": self.root,
            "leaves": self.leaves,
            "tsa_calls": self.tsa_calls,
            "gen_time": self.gen_time,
            "tsa_url": self.tsa_url,
            "skipped": self.skipped,
            "failures": self.failures,
        }


# -- the queue -----------------------------------------------------------------------------


def enqueue(ledger: Ledger, heads: Iterable[Head]) -> int:
    """Note heads the stream saw move (idempotent: a replayed record rewrites one item)."""
    items = [
        keys.item(keys.anchor_queue(h.subject, h.seq), head_hash=h.head_hash, noted_at=now_iso())
        for h in heads
    ]
    ledger.put_many(items)
    return len(items)


def queued(ledger: Ledger, limit: int = MAX_LEAVES) -> tuple[list[Head], list[keys.Key]]:
    """Each subject's newest queued head (at most ``limit``) and the queue items read."""
    newest: dict[str, Head] = {}
    read: list[keys.Key] = []
    for shard in keys.ANCHOR_QUEUE_SHARDS:
        digit = shard.removeprefix(keys.ANCHOR_QUEUE_PREFIX)
        for item in ledger.query(shard, digit):
            subject = keys.anchor_queue_subject(item["sk"])
            if subject not in newest and len(newest) >= limit:
                continue
            read.append((item["pk"], item["sk"]))
            seq = int(item["sk"].rpartition("#")[2])
            if subject not in newest or newest[subject].seq < seq:
                newest[subject] = Head(subject, seq, str(item["head_hash"]))
    return sorted(newest.values(), key=lambda h: h.subject), read


def unanchored(ledger: Ledger, limit: int = MAX_LEAVES) -> list[Head]:
    """Chain heads no anchor covers yet, found by one paged scan (catch-up only)."""
    heads: dict[str, Head] = {}
    anchored: dict[str, int] = {}
    for item in ledger.scan_where(
        "begins_with(pk, :subj) AND (sk = :chain OR begins_with(sk, :anchor))",
        {":subj": keys.SUBJECT_PREFIX, ":chain": keys.CHAIN, ":anchor": keys.ANCHOR_PREFIX},
        "pk, sk, seq, head_hash, head_seq",
    ):
        subject = keys.subject_of(item["pk"])
        if item["sk"] == keys.CHAIN and item.get("head_hash"):
            heads[subject] = Head(subject, int(item["seq"]), str(item["head_hash"]))
        elif item["sk"].startswith(keys.ANCHOR_PREFIX):
            anchored[subject] = max(anchored.get(subject, 0), int(item.get("head_seq", 0)))
    waiting = [h for h in heads.values() if anchored.get(h.subject, 0) < h.seq]
    return sorted(waiting, key=lambda h: h.subject)[:limit]


# -- a run ---------------------------------------------------------------------------------


def run(
    ledger: Ledger,
    settings: AnchorSettings,
    catch_up: bool = False,
    s3: Any = None,
    limit: int = MAX_LEAVES,
) -> Outcome:
    """Anchor what waits (the queue; with ``catch_up`` also every unanchored head).

    Never raises for a TSA: a failure is logged as ``anchor_alarm`` and the queue is
    left for the next run. A store failure raises (nothing was half-written that a
    next run does not redo: the queue is deleted last)."""
    if not settings.tsa_urls:
        return Outcome(skipped="TSA_URLS is not set: anchoring is off")
    heads, read = queued(ledger, limit)
    if catch_up:  # the queue first: every queue item read is deleted once anchored
        known = {h.subject for h in heads}
        extra = [h for h in unanchored(ledger, limit) if h.subject not in known]
        heads = sorted([*heads, *extra[: max(0, limit - len(heads))]], key=lambda h: h.subject)
    if not heads:
        return Outcome(skipped="no chain head changed since the last anchor")
    tree = merkle.build([merkle.leaf_hash(h.subject, h.head_hash) for h in heads])
    outcome = Outcome(root=tree.root, leaves=len(heads))
    try:
        stamp, failures = timestamp.first_granted(
            settings.tsa_urls, bytes.fromhex(tree.root), settings.tsa_timeout
        )
    except TimestampFailed as exc:
        outcome.tsa_calls, outcome.failures = len(settings.tsa_urls), [str(exc)]
        outcome.skipped = "no TSA granted a token; the heads wait for the next run"
        alarm(str(exc), len(heads))
        return outcome
    outcome.tsa_calls, outcome.failures = len(failures) + 1, failures
    if failures:
        log("anchor_tsa_fallback", level="warning", failures=failures, tsa_url=stamp.tsa_url)
    anchor_id = new_event_id()
    record = _anchor_item(anchor_id, tree, stamp)
    ledger.put(record)
    ledger.put_many(_subject_items(anchor_id, tree, heads, stamp))
    if settings.bucket:
        _copy_to_bucket(s3, settings.bucket, record, heads)
    ledger.delete_many(read)
    outcome.anchor_id, outcome.gen_time, outcome.tsa_url = (
        anchor_id,
        stamp.info.gen_time,
        stamp.tsa_url,
    )
    log(
        "anchored",
        anchor_id=anchor_id,
        root=tree.root,
        leaves=len(heads),
        gen_time=stamp.info.gen_time,
        tsa_url=stamp.tsa_url,
    )
    return outcome


def run_leased(
    ledger: Ledger, settings: AnchorSettings, who: str, catch_up: bool = False, s3: Any = None
) -> Outcome:
    """:func:`run` under the job's lease, so the schedule and an operator's
    ``anchor run`` never build two anchors over the same queue at once."""
    owner = f"{who}:{uuid.uuid4().hex[:12]}"
    if not ledger.lease(*LEASE, owner, LEASE_SECONDS):
        return Outcome(skipped="another anchor run holds the lease")
    try:
        return run(ledger, settings, catch_up, s3)
    finally:
        ledger.release(*LEASE, owner)


def _anchor_item(anchor_id: str, tree: merkle.Tree, stamp: timestamp.Stamp) -> dict[str, Any]:
    return keys.item(
        keys.anchor(anchor_id),
        anchor_id=anchor_id,
        root=tree.root,
        leaf_count=len(tree.levels[0]),
        token=stamp.token_b64,
        tsa_url=stamp.tsa_url,
        gen_time=stamp.info.gen_time,
        tsa_serial=str(stamp.info.serial),
        tsa_policy=stamp.info.policy,
        created_at=now_iso(),
    )


def _subject_items(
    anchor_id: str, tree: merkle.Tree, heads: list[Head], stamp: timestamp.Stamp
) -> list[dict[str, Any]]:
    """Each subject's ``anchored`` reference; its path makes the 400 KB item limit moot."""
    return [
        keys.item(
            keys.subject_anchor(head.subject, anchor_id),
            anchor_id=anchor_id,
            leaf_index=index,
            leaf=tree.levels[0][index],
            head_hash=head.head_hash,
            head_seq=head.seq,
            path=tree.path(index),
            root=tree.root,
            gen_time=stamp.info.gen_time,
        )
        for index, head in enumerate(heads)
    ]


def _copy_to_bucket(s3: Any, bucket: str, record: dict[str, Any], heads: list[Head]) -> None:
    """A write-once copy of the anchor and its leaves in an Object Lock bucket (the
    bucket's default COMPLIANCE retention applies). A failure is an alarm, not a loss:
    the table holds the anchor."""
    body = json.dumps(
        {
            **{k: v for k, v in record.items() if k not in ("pk", "sk")},
            "leaves": [
                {"subject": h.subject, "seq": h.seq, "head_hash": h.head_hash} for h in heads
            ],
        },
        sort_keys=True,
    ).encode("utf-8")
    try:
        client = s3 or _s3_client()
        client.put_object(
            Bucket=bucket,
            Key=f"anchors/{record['anchor_id']}.json",
            Body=body,
            ContentType="application/json",
            ChecksumAlgorithm="SHA256",
        )
    except Exception as exc:  # noqa: BLE001 - any S3 failure: the table copy stands
        alarm(f"the anchor could not be copied to s3://{bucket}: {type(exc).__name__}", 0)


def _s3_client() -> Any:
    import boto3

    return boto3.client("s3")


def alarm(reason: str, waiting: int) -> None:
    """One structured log line CloudWatch turns into the ``AnchorFailures`` metric
    (embedded metric format): an alarm on it tells an operator anchoring is late."""
    log(
        "anchor_alarm",
        level="error",
        reason=reason,
        waiting=waiting,
        AnchorFailures=1,
        _aws={
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": METRIC_NAMESPACE,
                    "Dimensions": [[]],
                    "Metrics": [{"Name": "AnchorFailures", "Unit": "Count"}],
                }
            ],
        },
    )


# -- what an evidence pack carries ---------------------------------------------------------


def subject_anchors(ledger: Ledger, subject: str) -> list[dict[str, Any]]:
    """Every anchor covering ``subject``, oldest first, each complete with its proof:
    the head anchored, the leaf, its inclusion path, the root and the TSA token.

    Events stay exactly as sealed (a field added to an event would change its hash),
    so each anchor says which events it covers: ``first_seq`` to ``head_seq``, the
    events after the previous anchor's head up to its own (an anchor's head commits
    to every event before it through ``prev_hash``)."""
    found: list[dict[str, Any]] = []
    refs = list(ledger.query(keys.subject_pk(subject), keys.ANCHOR_PREFIX))
    wanted = [keys.anchor(keys.anchor_id_of(ref["sk"])) for ref in refs]
    roots = {item["anchor_id"]: item for item in ledger.get_many(wanted)}
    covered = 0
    for ref in refs:
        anchor_id = keys.anchor_id_of(ref["sk"])
        root = roots.get(anchor_id) or {}
        head_seq = int(ref["head_seq"])
        found.append(
            {
                "anchor_id": anchor_id,
                "first_seq": covered + 1 if head_seq > covered else head_seq,
                "head_seq": head_seq,
                "head_hash": ref["head_hash"],
                "leaf_index": int(ref["leaf_index"]),
                "leaf": ref["leaf"],
                "path": [[str(side), str(sibling)] for side, sibling in ref.get("path") or []],
                "root": ref["root"],
                "leaf_count": int(root.get("leaf_count", 0)),
                "gen_time": root.get("gen_time") or ref.get("gen_time"),
                "tsa_url": root.get("tsa_url"),
                "token": root.get("token"),
            }
        )
        covered = max(covered, head_seq)
    return found
