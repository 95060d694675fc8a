"""Validity benchmark: the sweep expiring N consents, and the expiry figures, in DynamoDB Local.

    .venv/bin/python -m bench.validity [--people 500] [--n 20]

Records N real acceptances of a purpose valid 30 days (``rules.decide``, so the index
items and counters are the ones commits write), then times:

- a decision with a validity (index item + expiry counter in its transaction) beside
  the same decision on a purpose that never expires, and a raw ``put_item`` floor;
- the validity sweep run 31 days later (``as_of``), expiring every consent: per person,
  against the raw ``put_item`` floor (each expiry is one read and one transaction);
- the dashboard's expiry figures from counters (``validity.outlook``) against a full
  Scan of the table (what they would cost without counters).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import local_table, median_ms
from chalicelib.consent import renewal, rules, validity
from chalicelib.consent.rules import RequestContext
from chalicelib.core.clock import utcnow
from chalicelib.core.services import get_catalogue, get_ledger
from chalicelib.core.settings import PACKAGE_ROOT, get_settings
from devstack.dynamodb_local import DynamoDBLocal

CTX = RequestContext("192.0.2.1", "bench", "en")


def catalogue_file() -> Path:
    """The shipped catalogue; newsletter valid 30 days without renewal, events never expiring."""
    text = (PACKAGE_ROOT / "catalogue.toml").read_text(encoding="utf-8")
    text = text.replace('validity = "3y"\nrenewal = [60, 30, 7]', 'validity = "30d"\nrenewal = []')
    text = text.replace('validity = "2y"\nrenewal = [30]', 'validity = "none"\nrenewal = []')
    path = Path(tempfile.mkdtemp()) / "catalogue.toml"
    path.write_text(text, encoding="utf-8")
    return path


def accept(n: int, purpose: str) -> float:
    """Median ms of a one-purpose acceptance (link issued beforehand, not timed)."""
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    samples = []
    for i in range(n):
        issued = rules.issue_link(
            ledger, settings, catalogue, f"p{i}-{purpose}@example.eu", [purpose]
        )
        link, record = rules.open_link(ledger, settings, "confirm", issued.token)
        shown = {purpose: catalogue.get(purpose).text("en").sha256}
        start = time.perf_counter()
        rules.decide(ledger, catalogue, link, record, {purpose: "accept"}, "en", shown, CTX)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)



def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.validity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=500)
    parser.add_argument("--n", type=int, default=20)
    args = parser.parse_args()
    with DynamoDBLocal() as dynamodb:
        settings, client = local_table(dynamodb, "bench-val",
                                       CONSENT_CATALOGUE=str(catalogue_file()))
        ledger, catalogue = get_ledger(), get_catalogue()
        table = settings.consent_table
        def raw_put() -> None:
            client.put_item(
                TableName=table, Item={"pk": {"S": f"X#{uuid.uuid4().hex}"}, "sk": {"S": "X"}})

        median_ms(raw_put, 50)  # warm DynamoDB Local's JVM before any measurement
        accept(args.n, "promotions")
        put = median_ms(raw_put, args.n)
        never = accept(args.n, "events")
        dated = accept(args.people, "newsletter")
        put = min(put, median_ms(raw_put, args.n))  # the floor, before and after: the lower
        started = time.perf_counter()
        report = renewal.Sweeper(ledger, settings, catalogue).run(
            utcnow() + timedelta(days=31), utcnow().date().isoformat())
        sweep_ms = (time.perf_counter() - started) * 1000
        assert report.expired == args.people, report
        today = (utcnow() + timedelta(days=31)).date()
        outlook = median_ms(lambda: validity.outlook(ledger, catalogue, today), args.n)
        assert validity.outlook(ledger, catalogue, today)["newsletter"].expired_now == args.people

        def scan() -> None:
            kwargs: dict[str, Any] = {"TableName": table}
            while True:
                page = client.scan(**kwargs)
                if "LastEvaluatedKey" not in page:
                    return
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

        scanned = median_ms(scan, max(3, args.n // 4))
        per = sweep_ms / args.people
        print(f"{'operation':<58}{'median ms':>10}{'x floor':>9}")
        print(f"{'raw boto3 put_item (floor)':<58}{put:>10.3f}")
        print(f"{'decide, purpose that never expires':<58}{never:>10.3f}{never / put:>9.1f}")
        print(f"{'decide, purpose with validity (index + counter)':<58}{dated:>10.3f}"
              f"{dated / put:>9.1f}")
        print(f"{f'sweep: expire one consent (of {args.people}), per person':<58}{per:>10.3f}"
              f"{per / put:>9.1f}")
        print(f"{f'full Scan of the table ({args.people * 2}+ people) (floor)':<58}{scanned:>10.3f}")
        print(f"{'expiry figures from counters (validity.outlook)':<58}{outlook:>10.3f}"
              f"{outlook / scanned:>9.2f}")


if __name__ == "__main__":
    main()
