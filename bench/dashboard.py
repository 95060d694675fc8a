"""Dashboard benchmark: the page with 100,000 subjects in DynamoDB Local.

    .venv/bin/python -m bench.dashboard [--subjects 100000] [--n 30]

Seeds N subjects (profile, purpose state, chain head: what a confirmed person leaves)
with BatchWriteItem, records a few hundred real decisions through the ledger (so the
counters are the ones commits keep), then times the whole dashboard (all its queries
plus the HTML render) against two floors measured in the same run: one raw GetItem,
and one full Scan of the table (what a page would cost without counters).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalicelib.consent import rules
from chalicelib.web import dashboard
from chalicelib.store import schema
from chalicelib.web import views
from chalicelib.consent.rules import RequestContext
from chalicelib.core.services import dynamodb_client, get_catalogue, get_ledger
from chalicelib.core.settings import get_settings
from devstack.dynamodb_local import DynamoDBLocal, local_aws_environment


def seed(client: Any, table: str, subjects: int, workers: int = 8) -> float:
    """Write ``subjects`` confirmed-looking people; returns seconds taken."""
    def batch(start: int) -> None:
        items = []
        for i in range(start, min(start + 8, subjects)):
            pk = {"S": f"SUBJ#{i:064x}"}
            items += [
                {"pk": pk, "sk": {"S": "CHAIN"}, "seq": {"N": "3"}},
                {"pk": pk, "sk": {"S": "PROFILE"}, "email": {"S": f"seed{i}@example.eu"}},
                {"pk": pk, "sk": {"S": "PURPOSE#newsletter"}, "state": {"S": "accepted"},
                 "purpose": {"S": "newsletter"}, "sync_status": {"S": "synced"}},
            ]
        request = {table: [{"PutRequest": {"Item": item}} for item in items]}
        while request:
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(batch, range(0, subjects, 8)))
    return time.perf_counter() - started


def timed(func: Any, n: int) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        func()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=100_000)
    parser.add_argument("--decisions", type=int, default=300)
    parser.add_argument("--n", type=int, default=30)
    args = parser.parse_args()
    with DynamoDBLocal() as dynamodb:
        os.environ.update({**local_aws_environment(), "DYNAMODB_ENDPOINT": dynamodb.endpoint,
                           "CONSENT_TABLE": f"bench-dash-{uuid.uuid4().hex[:8]}",
                           "LINK_SECRET_KEYS": "b" * 48, "SUBJECT_PEPPER": "p" * 48,
                           "ADMIN_SECRET_KEYS": "a" * 48})
        settings, client = get_settings(), dynamodb_client()
        schema.create_table(client, settings.consent_table)
        ledger, catalogue = get_ledger(), get_catalogue()
        seconds = seed(client, settings.consent_table, args.subjects)
        print(f"seeded {args.subjects} subjects ({3 * args.subjects} items) in {seconds:.0f} s",
              flush=True)
        shown = {p: catalogue.get(p).text("en").sha256 for p in catalogue.purposes}
        for i in range(args.decisions):
            issued = rules.issue_link(ledger, settings, catalogue, f"d{i}@example.eu",
                                        ["newsletter", "events"], channel="form:website")
            link, record = rules.open_link(ledger, settings, "confirm", issued.token)
            rules.decide(ledger, catalogue, link, record,
                           {"newsletter": "accept", "events": "refuse" if i % 3 else "accept"},
                           "en", shown, RequestContext())
        chosen = dashboard.filters({}, catalogue, ledger)

        class Operator:
            name, token_id = "bench", "bench"

        def page() -> None:
            data = dashboard.data(ledger, catalogue, chosen, "en")
            views.dashboard_page(settings, catalogue, "en", data, chosen, Operator())

        raw = timed(lambda: client.get_item(TableName=settings.consent_table, Key={
            "pk": {"S": "STATS#PURPOSE#newsletter"}, "sk": {"S": "S0"}}), args.n)
        dash = timed(page, args.n)
        started = time.perf_counter()
        scanned = sum(page_["Count"] for page_ in client.get_paginator("scan").paginate(
            TableName=settings.consent_table, Select="COUNT"))
        scan_ms = (time.perf_counter() - started) * 1000
        counts = dashboard.purposes(ledger, catalogue, chosen, "en")
    print(f"\n{'operation':<58} {'p50 ms':>9} {'p95 ms':>9} {'x floor':>8}")
    print(f"{'raw GetItem of one counter shard (floor)':<58} {raw[0]:>9.2f} {raw[1]:>9.2f}")
    print(f"{'dashboard: every query + HTML render':<58} {dash[0]:>9.2f} {dash[1]:>9.2f} "
          f"{dash[0] / raw[0]:>8.1f}")
    print(f"{f'one Scan of the table ({scanned} items, what counters avoid)':<58} "
          f"{scan_ms:>9.0f} {'':>9} {scan_ms / raw[0]:>8.0f}")
    print("\ncounts shown:", {row["purpose"]: row["accepted"] for row in counts},
          f"(the {args.subjects} seeded people were written without commits, so only the "
          f"{args.decisions} real decisions are counted)")


if __name__ == "__main__":
    main()
