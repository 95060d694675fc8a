"""Import benchmark: a 100,000-row file of existing consent evidence into DynamoDB Local.

    .venv/bin/python -m bench.imports [--rows 100000] [--workers 4]

Generates a generic CSV (a third of the rows grade A, B and C), imports it through
``consent.imports`` (each row an ``imported`` event sealed on its person's chain, its
state, profile and import key, in batched transactions of up to 100 items), then
imports the same file again (every row found already imported, nothing written).
The floor, measured in the same run against the same DynamoDB Local: raw
``BatchWriteItem`` of one plain item per row, 25 per call, with as many threads (what
a bulk load that proves nothing costs).
"""
from __future__ import annotations

import argparse
import csv
import io
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import local_table
from chalicelib.consent import imports
from chalicelib.consent.imports.writer import Importer
from chalicelib.core.services import get_catalogue, get_ledger
from chalicelib.core.settings import get_settings
from devstack.dynamodb_local import DynamoDBLocal

WORDING = "Yes, send me the monthly newsletter. I can unsubscribe at any time."


def generated(rows: int) -> str:
    """``rows`` generic rows, a third each of grades A, B and C."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["email", "consent", "opted_in_at", "optin_ip", "confirmed_at",
                     "confirm_ip", "double_opt_in", "wording"])
    for n in range(rows):
        at = f"2023-{1 + n % 12:02d}-{1 + n % 28:02d}T10:00:00Z"
        if n % 3 == 0:
            writer.writerow([f"bench{n}@example.eu", "yes", at, "192.0.2.1",
                             at.replace("T10", "T11"), "192.0.2.2", "yes", WORDING])
        elif n % 3 == 1:
            writer.writerow([f"bench{n}@example.eu", "yes", at, "", "", "", "", ""])
        else:
            writer.writerow([f"bench{n}@example.eu", "yes", "", "", "", "", "", ""])
    return out.getvalue()


def raw_batch_writes(client: Any, table: str, rows: int, workers: int) -> float:
    """Seconds to write ``rows`` plain items with BatchWriteItem (25 per call)."""
    def batch(start: int) -> None:
        request = {table: [
            {"PutRequest": {"Item": {"pk": {"S": f"RAW#{i}"}, "sk": {"S": "ROW"},
                                     "email": {"S": f"raw{i}@example.eu"},
                                     "grade": {"S": "B"}}}}
            for i in range(start, min(start + 25, rows))]}
        while request:
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(batch, range(0, rows, 25)))
    return time.perf_counter() - started


def timed_import(text: str, workers: int) -> tuple[float, dict[str, Any]]:
    importer = Importer(get_ledger(), get_settings(), get_catalogue(), "generic",
                        "newsletter", workers=workers)
    started = time.perf_counter()
    summary = imports.import_text(importer, text, imports.RejectsFile(None))
    return time.perf_counter() - started, summary.as_dict()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.imports", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    with DynamoDBLocal() as dynamodb:
        settings, client = local_table(dynamodb, "bench-import")
        client.update_table(TableName=settings.consent_table,
                            StreamSpecification={"StreamEnabled": False})
        text = generated(args.rows)
        floor = raw_batch_writes(client, settings.consent_table, args.rows, args.workers)
        first, summary = timed_import(text, args.workers)
        assert summary["imported"] == args.rows and summary["rejected"] == 0, summary
        again, rerun = timed_import(text, args.workers)
        assert rerun["imported"] == 0 and rerun["already_imported"] == args.rows, rerun
        print(f"{args.rows} rows, {args.workers} threads, grades {summary['grades']}")
        print(f"{'operation':<58}{'rows/s':>10}{'x floor':>9}")
        print(f"{'raw BatchWriteItem, 1 item per row (floor)':<58}{args.rows / floor:>10.0f}")
        for label, seconds in (
            ("import: event + state + profile + import key per row", first),
            ("import again: every row already imported, nothing written", again),
        ):
            print(f"{label:<58}{args.rows / seconds:>10.0f}{seconds / floor:>9.1f}")


if __name__ == "__main__":
    main()
