"""The benchmarks BENCHMARKS.md reports, each next to a floor measured in the same run.

    .venv/bin/python -m bench.proof [--quick]

1. cold import of ``app`` in a fresh process vs importing chalice + boto3 + jinja2 + itsdangerous alone;
2. link mint / verify per second vs a raw HMAC-SHA256 of the same payload;
3. confirmation POSTs per second in-process (Chalice test client) against DynamoDB
   Local vs raw ``TransactWriteItems`` per second, and DynamoDB round trips per decision;
4. campaign links minted for 100,000 contacts (CPU), and a campaign of 10,000 contacts
   written to the Act! simulator at 20 ms latency (throughput, concurrency);
5. Act! calls per decision synced (a person synced before, and a first sync).
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    memory = next((int(line.split()[1]) // 1024 for line in
                   Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0)
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    java = java.splitlines()[0] if java else "?"
    return (f"{cpu}, {os.cpu_count()} CPUs, {memory} MB RAM; Python {platform.python_version()}; "
            f"{java}; DynamoDB Local 3.3.0 (in memory)")


def per_second(func: Callable[[int], Any], seconds: float = 1.5) -> float:
    """Operations per second over about ``seconds`` (after a short warm-up)."""
    for i in range(20):
        func(i)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        func(count)
        count += 1
    return count / (time.perf_counter() - started)


def cold_import(snippets: dict[str, str], runs: int = 9) -> dict[str, float]:
    """Median wall time (ms) of each snippet in a fresh interpreter, ``runs`` times each.

    The snippets take turns (app, floor, app, floor...) after one untimed round, so
    drift on a shared machine (another job, a CPU's clock) hits them alike. Our modules
    are compiled on every run (no .pyc written), as in a package built from this tree;
    the libraries keep the .pyc their install wrote, as in Lambda.
    """
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    samples: dict[str, list[float]] = {name: [] for name in snippets}
    for round_ in range(runs + 1):
        for name, code in snippets.items():
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
            if round_:  # the first round warms the disk cache
                samples[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(taken) for name, taken in samples.items()}


class CallCounter:
    """Counts DynamoDB API calls made by botocore (the round trips)."""

    def __init__(self, client: Any) -> None:
        self.count = 0
        client.meta.events.register("before-call.dynamodb", self._seen)

    def _seen(self, **_: Any) -> None:
        self.count += 1


class _Quiet:
    """The app's JSON log lines go to a file during the run: the table is the output."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("w", encoding="utf-8")

    def write(self, text: str) -> int:
        return self.file.write(text)

    def flush(self) -> None:
        self.file.flush()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.proof", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    args = parser.parse_args()
    minted_n, campaign_n = (10_000, 500) if args.quick else (100_000, 10_000)

    from devstack.dynamodb_local import DynamoDBLocal, local_aws_environment

    rows: list[tuple[str, str, str, str]] = []
    table_out = sys.stdout
    sys.stdout = _Quiet(Path("/tmp/optinproof-bench.log"))  # type: ignore[assignment]
    cold = cold_import({"app": "import app", "floor": "import chalice, boto3, jinja2, itsdangerous"})
    app_ms, floor_ms = cold["app"], cold["floor"]
    rows.append(("cold import of app (fresh process, median of 9)", f"{app_ms:.0f} ms",
                 f"{floor_ms:.0f} ms: chalice+boto3+jinja2+itsdangerous",
                 f"{app_ms / floor_ms:.2f}x"))

    with DynamoDBLocal() as dynamodb:
        os.environ.update({**local_aws_environment(), "DYNAMODB_ENDPOINT": dynamodb.endpoint,
                           "CONSENT_TABLE": f"bench-proof-{uuid.uuid4().hex[:8]}",
                           "LINK_SECRET_KEYS": "b" * 48, "SUBJECT_PEPPER": "p" * 48,
                           "PUBLIC_BASE_URL": "http://testserver", "SIGNUP_MIN_RESPONSE": "0"})
        rows += links_and_decisions()
        rows += campaigns_and_act(minted_n, campaign_n)

    sys.stdout = table_out
    print(f"machine: {machine()}\n")
    print(f"{'measurement':<58} {'result':>22} {'floor (same run)':>38} {'ratio':>8}")
    for name, value, floor, ratio in rows:
        print(f"{name:<58} {value:>22} {floor:>38} {ratio:>8}")


def links_and_decisions() -> list[tuple[str, str, str, str]]:
    from chalice.test import Client

    from app import app
    from chalicelib.consent import rules
    from chalicelib.consent import links
    from chalicelib.store import schema
    from chalicelib.core.services import dynamodb_client, get_catalogue, get_ledger
    from chalicelib.core.settings import get_settings

    settings = get_settings()
    client = dynamodb_client()
    schema.create_table(client, settings.consent_table)
    ledger, catalogue = get_ledger(), get_catalogue()
    key = settings.link_secret_keys[-1].encode()
    token, _ = links.mint(settings, "confirm", "ab" * 32, ["newsletter", "events"])
    payload = token.rsplit(".", 1)[0].encode()
    raw = per_second(lambda i: hmac.new(key, payload, hashlib.sha256).digest())
    mint = per_second(lambda i: links.mint(settings, "confirm", "ab" * 32,
                                           ["newsletter", "events"]))
    verify = per_second(lambda i: links.verify(settings, "confirm", token))
    rows = [("link mint", f"{mint:,.0f}/s", f"{raw:,.0f}/s raw HMAC-SHA256", f"{raw / mint:.1f}x"),
            ("link verify", f"{verify:,.0f}/s", f"{raw:,.0f}/s raw HMAC-SHA256",
             f"{raw / verify:.1f}x")]

    # Confirmation POSTs through the whole app, in-process, against DynamoDB Local.
    count = 300
    issued = [rules.issue_link(ledger, settings, catalogue, f"b{i}@example.eu",
                                 ["newsletter", "events"], channel="bench") for i in range(count)]
    pages = []
    with Client(app, stage_name="bench", project_dir=str(ROOT)) as http:
        for link in issued:
            html = http.http.get(f"/c/{link.token}").body.decode()
            fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', html))
            fields.update({"decision.newsletter": "accept", "decision.events": "refuse"})
            pages.append((f"/c/{link.token}", urlencode(fields)))
        counter = CallCounter(client)
        captured = Captured(client)
        started = time.perf_counter()
        for path, body in pages:
            answer = http.http.post(path, body=body, headers={
                "Content-Type": "application/x-www-form-urlencoded"})
            assert answer.status_code == 200, answer.status_code
        post_rate = count / (time.perf_counter() - started)
        trips = counter.count / count
        captured.stop()
        rows += scanner_storm(http, ledger, settings, catalogue, client)

    # The floor: the very transactions those POSTs wrote, replayed on fresh keys.
    replays = [fresh_copy(request, n) for n, request in enumerate(captured.requests)]
    started = time.perf_counter()
    for request in replays:
        client.transact_write_items(TransactItems=request)
    raw_tx = len(replays) / (time.perf_counter() - started)
    items = statistics.median(len(r) for r in replays)
    rows.append(("confirmation POST (2 purposes), in-process", f"{post_rate:,.0f}/s",
                 f"{raw_tx:,.0f}/s raw TransactWriteItems ({items:.0f} items)",
                 f"{raw_tx / post_rate:.1f}x"))
    rows.append(("DynamoDB round trips per confirmation POST", f"{trips:.1f}", "1", ""))
    return rows


class Captured:
    """The TransactWriteItems requests the app sends, as sent."""

    def __init__(self, client: Any) -> None:
        self.client, self.requests = client, []
        client.meta.events.register("provide-client-params.dynamodb.TransactWriteItems",
                                    self._seen)

    def _seen(self, params: dict[str, Any], **_: Any) -> None:
        self.requests.append(params["TransactItems"])

    def stop(self) -> None:
        self.client.meta.events.unregister("provide-client-params.dynamodb.TransactWriteItems",
                                           self._seen)


def fresh_copy(request: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The same items on keys nobody wrote (``RAW#<n>#`` before each pk), conditions
    dropped (they were about the original keys): what DynamoDB itself costs to write them."""
    out = []
    for entry in request:
        (op, body), = entry.items()
        body = {**body}
        for name in ("Key", "Item"):
            if name in body:
                body[name] = {**body[name], "pk": {"S": f"RAW#{n}#{body[name]['pk']['S']}"}}
        condition = body.pop("ConditionExpression", "")
        if op == "ConditionCheck":
            body["ConditionExpression"] = "attribute_not_exists(pk)"
            body.pop("ExpressionAttributeValues", None)
            body.pop("ExpressionAttributeNames", None)
        elif condition:
            used = " ".join(str(body.get(k, "")) for k in ("UpdateExpression",))
            for group in ("ExpressionAttributeValues", "ExpressionAttributeNames"):
                kept = {k: v for k, v in body.get(group, {}).items() if k in used}
                if kept:
                    body[group] = kept
                else:
                    body.pop(group, None)
        out.append({op: body})
    return out


def scanner_storm(http: Any, ledger: Any, settings: Any, catalogue: Any,
                  client: Any) -> list[tuple[str, str, str, str]]:
    """DynamoDB requests of a link's page: first GET, a repeat, and 1,000 GETs (a mail
    scanner) on one campaign link."""
    from chalicelib.consent import rules

    issued = rules.issue_link(ledger, settings, catalogue, "storm@example.eu", ["newsletter"],
                              channel="campaign:bench")
    counter = CallCounter(client)
    http.http.get(f"/c/{issued.token}")
    first = counter.count
    http.http.get(f"/c/{issued.token}")
    repeat = counter.count - first
    for _ in range(998):
        http.http.get(f"/c/{issued.token}")
    return [("DynamoDB requests per confirmation GET (first open, then repeat)",
             f"{first} / {repeat}", "1 read (+1 write the first time)", ""),
            ("scanner storm: 1,000 GETs on one link", f"{counter.count} requests",
             "1,001", f"{counter.count / 1001:.2f}x")]


def campaigns_and_act(minted_n: int, campaign_n: int) -> list[tuple[str, str, str, str]]:
    from chalicelib.act import fields as actfields
    from chalicelib.campaigns import define
    from chalicelib.campaigns import runner as campaign_runner
    from chalicelib.consent import links
    from chalicelib.act.client import ActClient
    from chalicelib.core.services import get_catalogue, get_ledger
    from chalicelib.core.settings import get_settings
    from devstack.act_simulator import ActSimulator

    settings = get_settings()
    started = time.perf_counter()
    for i in range(minted_n):
        links.mint(settings, "confirm", f"{i:064x}", ["newsletter", "events"])
    mint_s = time.perf_counter() - started
    rows = [(f"campaign links minted for {minted_n:,} contacts (CPU)", f"{mint_s:.2f} s",
             f"{minted_n / mint_s:,.0f} links/s", "")]

    users = {"Bench": "bench-password"}
    with ActSimulator(port=0, database="Bench", users=users, seed="demo") as sim:
        os.environ.update({"ACT_API_URL": sim.base_url, "ACT_DATABASE": "Bench",
                           "ACT_USERNAME": "Bench", "ACT_PASSWORD": "bench-password",
                           "ACT_MAX_RETRIES": "6"})
        settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
        act = ActClient(settings.act)
        actfields.setup(act, catalogue)
        for i in range(campaign_n):
            sim.add_contact(firstName=f"C{i}", lastName="Bench", emailAddress=f"c{i}@bench.eu")
        campaign = define.define(ledger, settings, catalogue, "bench-campaign",
                                    ["newsletter"], "all", None, "act-field",
                                    link_field="OptinProof Link")
        key = actfields.link_field_key(act, "OptinProof Link", create=True)
        contacts = define.audience(act, campaign)
        latency, concurrency = 0.02, 16
        sim.set_faults(latency=latency)
        runner = campaign_runner.Runner(ledger, settings, catalogue, act, campaign, None, key)
        operations: dict[str, int] = {}
        items = {"written": 0}

        def seen(model: Any, **_: Any) -> None:
            operations[model.name] = operations.get(model.name, 0) + 1

        def written(params: dict[str, Any], model: Any, **_: Any) -> None:
            if model.name == "TransactWriteItems":
                items["written"] += len(params.get("TransactItems", ()))
            elif model.name == "BatchWriteItem":
                items["written"] += sum(len(v) for v in params.get("RequestItems", {}).values())
            elif model.name in ("PutItem", "UpdateItem", "DeleteItem"):
                items["written"] += 1

        ledger.client.meta.events.register("before-call.dynamodb", seen)
        ledger.client.meta.events.register("before-parameter-build.dynamodb", written)
        mark = len(sim.requests)
        started = time.perf_counter()
        progress = runner.run(contacts, concurrency=concurrency)
        run_s = time.perf_counter() - started
        ledger.client.meta.events.unregister("before-call.dynamodb", seen)
        ledger.client.meta.events.unregister("before-parameter-build.dynamodb", written)
        table_rate = _items_written_per_second(ledger)
        act_calls = sim.requests[mark:]
        done = max(progress.delivered, 1)
        writes = sum(n for name, n in operations.items() if name in
                     ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"))
        detail = "; ".join(f"{k} {n / done:.3f}" for k, n in sorted(operations.items()))
        print(f"DynamoDB requests per campaign contact, by kind: {detail}", file=sys.__stdout__)
        rate, floor = progress.delivered / run_s, concurrency / latency
        patches = sum(1 for method, _, _ in act_calls if method == "PATCH")
        rows += [(f"campaign of {len(contacts):,} contacts written to Act! ({run_s:.0f} s)",
                  f"{rate:,.0f} contacts/s",
                  f"{floor:,.0f}/s: {concurrency} at once / {latency * 1000:.0f} ms",
                  f"{rate / floor:.2f}x"),
                 ("DynamoDB requests per campaign contact (writes)",
                  f"{sum(operations.values()) / done:.2f} ({writes / done:.2f} writes)",
                  "1 write", f"{writes / done:.2f}x"),
                 ("DynamoDB items written per campaign contact (all requests)",
                  f"{items['written'] / done:.1f}",
                  f"{table_rate:,.0f} items/s: the table's pace (8 x 100)",
                  f"{rate * items['written'] / done / table_rate:.2f}x"),
                 ("Act! calls per campaign contact",
                  f"{len(act_calls) / done:.2f} ({patches / done:.2f} PATCH)",
                  "1: PATCH", f"{len(act_calls) / done:.2f}x")]

    rows += act_calls_per_decision()
    return rows


def _items_written_per_second(ledger: Any, seconds: float = 2.0) -> float:
    """The table's own pace in the same run: items written per second by 8 threads
    sending 100-item transactions (a campaign page's shape), to read a campaign's
    throughput against what DynamoDB Local can take at its items per contact."""
    from concurrent.futures import ThreadPoolExecutor

    def one(_: int) -> int:
        done = 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            ledger.client.transact_write_items(TransactItems=[
                {"Put": {"TableName": ledger.table,
                         "Item": {"pk": {"S": f"BENCH-{uuid.uuid4().hex}"}, "sk": {"S": "x"},
                                  "v": {"S": "x" * 300}}}} for _ in range(100)])
            done += 100
        return done

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        total = sum(pool.map(one, range(8)))
    return total / (time.perf_counter() - started)


def act_calls_per_decision(decisions: int = 50) -> list[tuple[str, str, str, str]]:
    """HTTP requests the Act! simulator receives per decision synced (a warm container:
    the field map and history type are resolved once, as in a long-lived Lambda): the
    first sync of each person (searched by address), then a second decision each (the
    normal case: the remembered contact PATCHed by id, and the history entry)."""
    from chalicelib.act import fields as actfields
    from chalicelib.consent import rules
    from chalicelib.store import schema
    from chalicelib.act import sync
    from chalicelib.act.client import ActClient
    from chalicelib.core.services import dynamodb_client, get_catalogue, get_ledger
    from chalicelib.core.settings import get_settings
    from devstack.act_simulator import ActSimulator

    with ActSimulator(port=0, database="Bench", users={"Bench": "bench-password"},
                      seed="demo") as sim:
        os.environ.update({"ACT_API_URL": sim.base_url,
                           "CONSENT_TABLE": f"bench-act-{uuid.uuid4().hex[:8]}"})
        settings, catalogue = get_settings(), get_catalogue()
        schema.create_table(dynamodb_client(), settings.consent_table)
        ledger = get_ledger()
        act = ActClient(settings.act)
        actfields.setup(act, catalogue)
        shown = {"newsletter": catalogue.get("newsletter").text("en").sha256}

        def decide_all(choice: str) -> None:
            for i in range(decisions):
                issued = rules.issue_link(ledger, settings, catalogue, f"d{i}@bench.eu",
                                          ["newsletter"], channel="bench")
                link, record = rules.open_link(ledger, settings, "confirm", issued.token)
                rules.decide(ledger, catalogue, link, record, {"newsletter": choice}, "en",
                             shown, rules.RequestContext())

        def measured(label: str) -> tuple[float, int]:
            before = len(sim.requests)
            report = sync.drain(pusher, sync.due_keys(ledger))
            done = max(report.synced, 1)
            kinds: dict[str, int] = {}
            for method, path, _status in sim.requests[before:]:
                parts = path.split("?")[0].split("/")
                name = f"{method} {'/'.join(p if not re.fullmatch(r'[0-9a-f-]{8,}', p) else '{id}' for p in parts[2:4])}"
                kinds[name] = kinds.get(name, 0) + 1
            detail = "; ".join(f"{k} {n / done:.1f}" for k, n in sorted(kinds.items()))
            print(f"Act! calls per decision, {label}, by kind: {detail}", file=sys.__stdout__)
            return (len(sim.requests) - before) / done, report.synced

        for i in range(decisions):
            sim.add_contact(firstName=f"D{i}", lastName="Bench", emailAddress=f"d{i}@bench.eu")
        pusher = sync.Pusher(ledger, act, catalogue, settings)
        pusher.keys()  # the field map and history type: once per container
        pusher.history_type()
        decide_all("accept")
        first, first_n = measured("first sync of a person")
        decide_all("refuse")
        calls, synced = measured("person synced before")
    return [(f"Act! calls per decision synced ({synced} decisions)", f"{calls:.1f}",
             "2: PATCH by id, history POST", f"{calls / 2:.1f}x"),
            (f"Act! calls per first sync of a person ({first_n} people)", f"{first:.1f}",
             "3: search, PATCH, history POST", f"{first / 3:.1f}x")]


if __name__ == "__main__":
    main()
