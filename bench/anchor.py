"""Anchor benchmark: what one anchor costs for 10,000 changed chains.

    .venv/bin/python -m bench.anchor [--chains 10000]

In DynamoDB Local with the loopback RFC 3161 TSA (devstack/tsa.py, ``openssl ts
-reply``): queues N moved chain heads as the stream handler does, then times one
anchor run (read the 16 queue shards, build the tree, one TSA call, write the root,
N per-subject ``anchored`` items, delete the queue), counting DynamoDB requests by
operation and TSA calls. Floors measured in the same run: hashing the N leaves and
building the tree alone, a raw BatchWriteItem of N items of the same size, and one
raw TSA round trip.
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import time
from typing import Any

from bench.common import local_table
from chalicelib.core.services import get_ledger
from chalicelib.proof import anchor, merkle, timestamp
from devstack.dynamodb_local import DynamoDBLocal
from devstack.tsa import LocalTSA


def heads(count: int) -> list[anchor.Head]:
    return [
        anchor.Head(hashlib.sha256(f"s{i}".encode()).hexdigest(), 3,
                    hashlib.sha256(f"h{i}".encode()).hexdigest())
        for i in range(count)
    ]


class Counter:
    """DynamoDB requests by operation, counted on the client as botocore sends them."""

    def __init__(self, client: Any) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        client.meta.events.register("before-call.dynamodb", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def take(self) -> dict[str, int]:
        found, self.calls = dict(self.calls), collections.Counter()
        return found


def raw_batch_write(client: Any, table: str, count: int) -> float:
    """N items shaped like the per-subject anchored items, 25 per BatchWriteItem."""
    path = [["L", "ab" * 32]] * max(1, (count - 1).bit_length())
    items = [{"pk": {"S": f"RAW#{i:064x}"}, "sk": {"S": "ANCHOR#X"},
              "leaf": {"S": "cd" * 32}, "head_hash": {"S": "ef" * 32},
              "path": {"L": [{"L": [{"S": s}, {"S": h}]} for s, h in path]}}
             for i in range(count)]
    started = time.perf_counter()
    for start in range(0, count, 25):
        request = {table: [{"PutRequest": {"Item": item}} for item in items[start:start + 25]]}
        while request:
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.anchor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chains", type=int, default=10_000)
    args = parser.parse_args()
    tsa = LocalTSA().start()
    with DynamoDBLocal() as dynamodb:
        settings, client = local_table(dynamodb, "bench-anchor", TSA_URLS=tsa.url)
        ledger = get_ledger()
        counter = Counter(ledger.client)
        moved = heads(args.chains)

        started = time.perf_counter()
        anchor.enqueue(ledger, moved)
        enqueue_s, enqueue_calls = time.perf_counter() - started, counter.take()

        calls_before = tsa.calls
        started = time.perf_counter()
        outcome = anchor.run(ledger, settings.anchor)
        run_s, run_calls = time.perf_counter() - started, counter.take()
        assert outcome.anchor_id and outcome.leaves == args.chains, outcome
        tsa_calls = tsa.calls - calls_before

        started = time.perf_counter()
        merkle.build([merkle.leaf_hash(h.subject, h.head_hash) for h in moved])
        tree_s = time.perf_counter() - started
        raw_s = raw_batch_write(client, settings.consent_table, args.chains)
        started = time.perf_counter()
        timestamp.ask(tsa.url, bytes(32), 10.0)
        tsa_s = time.perf_counter() - started
    tsa.stop()

    print(f"\nanchor of {args.chains:,} changed chains (DynamoDB Local, loopback TSA)\n")
    print(f"{'operation':<58}{'seconds':>9}{'x floor':>9}")
    print(f"{'hash leaves + build the tree (floor)':<58}{tree_s:>9.3f}")
    print(f"{'raw BatchWriteItem of the same number of items (floor)':<58}{raw_s:>9.3f}")
    print(f"{'one raw TSA round trip (floor)':<58}{tsa_s:>9.3f}")
    print(f"{'stream side: queue the moved heads (BatchWriteItem)':<58}{enqueue_s:>9.3f}"
          f"{enqueue_s / raw_s:>9.2f}")
    floor = tree_s + 2 * raw_s + tsa_s  # write the anchored items, delete the queue
    print(f"{'anchor run: read queue, tree, TSA, write, delete queue':<58}{run_s:>9.3f}"
          f"{run_s / floor:>9.2f}")
    print(f"\nDynamoDB requests, stream side: {enqueue_calls}")
    print(f"DynamoDB requests, anchor run: {run_calls} (total {sum(run_calls.values())})")
    print(f"TSA calls: {tsa_calls}; tree depth (path length): "
          f"{max(1, (args.chains - 1).bit_length())}")


if __name__ == "__main__":
    main()
