"""Bounded load on the confirmation pages: real HTTP, from a second process, on loopback.

    .venv/bin/python -m bench.load --decisions 2000 --subjects 200 --concurrency 20

Without ``--drive`` this prepares everything, then measures:

1. a private DynamoDB Local (in memory), a fresh table, and the app behind Chalice's
   threaded local HTTP server on 127.0.0.1 (listen backlog 128, no access log, and
   TCP_NODELAY: Chalice writes headers and body separately, so with Nagle on every
   answer waits ~40 ms for the client's delayed ACK; ``--nagle`` measures it that way);
2. ``--subjects`` people, each with one confirm link for 2 or 3 purposes;
3. this same file run again with ``--drive`` as a SECOND PROCESS: the load driver;
4. every subject's chain verified (``audit.verify_subject``), and the decision events
   of each subject compared with the changes the driver was shown.

``--drive`` is the driver alone: a plain urllib3 client with a pool of ``--concurrency``
connections that only ever talks to 127.0.0.1. It reads a plan (JSON: ``{"base":
"http://127.0.0.1:PORT", "subjects": [{"id": ..., "path": "/c/...", "purposes": [...]}]}``)
and prints one JSON report on stdout. Each decision is what a browser does: GET the
page, read its hidden fields (the anti-forgery ``form_token``, ``lang``, and the
``text.<purpose>`` hashes of the wording shown), then POST the choices with them.

The load has two parts:

- the main run: decisions spread round-robin over the subjects (so one subject's
  decisions follow each other), each flipping the choice of one or all of its purposes
  (accept / refuse alternate, so states change: refused, accepted, withdrawn, ...);
  one in ten decisions after a subject's first repeats its previous one exactly (a
  double click, which must record nothing);
- bursts: ``--burst-size`` clients GET the same subject's page, wait at a barrier,
  then POST different choices at the same instant (concurrent clicks on one chain).

The report holds the status counts, GET / POST latency percentiles (p50, p90, p99,
max), throughput, and per subject the number of purpose changes the result pages
reported ("Your choices were recorded": one list item per changed purpose). The
preparing process adds the app's ``TransactWriteItems`` outcomes (written, or cancelled
and on which item: a lost race the ledger rebuilds on fresh data), the app's log events,
and the ledger check; it exits 1 on any 5xx, connection error, broken chain, or a
subject whose decision events differ from the changes its pages reported.
"""
from __future__ import annotations

import argparse
import contextlib
import html
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
FORM_TYPE = "application/x-www-form-urlencoded"
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
#: The result page's "recorded" notice lists one <li> per purpose that changed.
RECORDED = re.compile(r'<div class="notice" role="status">\s*<p><strong>.*?</strong></p>\s*'
                      r'<ul>(.*?)</ul>', re.S)
UNCHANGED = "Nothing changed: these choices were already recorded."
PURPOSE_SETS = (("newsletter", "events"), ("newsletter", "promotions", "events"),
                ("promotions", "events"))


# -- the driver (second process): urllib3 only, 127.0.0.1 only -----------------------------

def percentiles(samples: list[float]) -> dict[str, float]:
    """p50 / p90 / p99 / max in ms (nearest rank), and the sample count."""
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)

    def rank(p: float) -> float:
        return ordered[max(0, min(len(ordered) - 1, int(-(-p * len(ordered) // 100)) - 1))]

    return {"n": len(ordered), "p50": round(rank(50), 2), "p90": round(rank(90), 2),
            "p99": round(rank(99), 2), "max": round(ordered[-1], 2),
            "mean": round(sum(ordered) / len(ordered), 2)}


def changed_count(page: str) -> int:
    """How many purposes a result page says were just recorded."""
    found = RECORDED.search(page)
    return found.group(1).count("<li>") if found else 0


class Driver:
    """Sends the decisions and keeps what it saw; thread-safe."""

    def __init__(self, base: str, concurrency: int, timeout: float) -> None:
        import urllib3

        parts = urlsplit(base)
        if parts.scheme != "http" or parts.hostname != "127.0.0.1" or not parts.port:
            raise SystemExit(f"bench.load --drive only talks to http://127.0.0.1:PORT, not {base!r}")
        self.pool = urllib3.HTTPConnectionPool(
            "127.0.0.1", parts.port, maxsize=concurrency, block=True, retries=False,
            timeout=urllib3.Timeout(connect=10, read=timeout))
        self.lock = threading.Lock()
        self.status: dict[str, Counter[str]] = {"GET": Counter(), "POST": Counter()}
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.changed: Counter[str] = Counter()
        self.posts_ok: Counter[str] = Counter()
        #: User-Agent of each POST answered 200 -> purposes its page said were recorded.
        self.per_request: dict[str, int] = {}
        self.unchanged_answers = 0
        self.samples: list[dict[str, Any]] = []  # a few non-2xx answers, for the report

    def _request(self, method: str, path: str, label: str, **kwargs: Any) -> tuple[int | str, str]:
        started = time.perf_counter()
        try:
            response = self.pool.request(method, path, **kwargs)
            status: int | str = response.status
            body = response.data.decode("utf-8", "replace")
        except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
            status, body = f"error:{type(exc).__name__}", str(exc)
        elapsed = (time.perf_counter() - started) * 1000
        with self.lock:
            self.status[method][str(status)] += 1
            self.latency[label].append(elapsed)
            if not (isinstance(status, int) and 200 <= status < 300) and len(self.samples) < 10:
                self.samples.append({"method": method, "status": status,
                                     "body": re.sub(r"<style>.*?</style>", "", body, flags=re.S)[:400]})
        return status, body

    def page(self, path: str, agent: str) -> dict[str, str] | None:
        status, body = self._request("GET", path, "GET", headers={
            "User-Agent": agent, "Accept-Language": "en"})
        if status != 200:
            return None
        return {name: html.unescape(value) for name, value in HIDDEN.findall(body)}

    def post(self, subject: str, path: str, fields: dict[str, str], choices: dict[str, str],
             agent: str, label: str) -> int | str:
        body = urlencode({**fields, **{f"decision.{p}": c for p, c in choices.items()}})
        status, page = self._request("POST", path, label, body=body, headers={
            "Content-Type": FORM_TYPE, "User-Agent": agent, "Accept-Language": "en"})
        if status == 200:
            count = changed_count(page)
            with self.lock:
                self.posts_ok[subject] += 1
                self.changed[subject] += count
                self.per_request[agent] = count
                if count == 0 and UNCHANGED in page:
                    self.unchanged_answers += 1
        return status

    def decide(self, subject: str, path: str, choices: dict[str, str], agent: str) -> None:
        fields = self.page(path, agent)
        if fields is not None:
            self.post(subject, path, fields, choices, agent, "POST")


def plan_main(subjects: list[dict[str, Any]], count: int) -> tuple[list[tuple[dict[str, Any], dict[str, str]]], int]:
    """``count`` decisions round-robin over the subjects, and how many purpose changes
    they make when each subject's decisions run in order (they are ``len(subjects)``
    tasks apart, so they do unless a request stalls for a long while)."""
    last: dict[tuple[str, str], str] = {}
    previous: dict[str, dict[str, str]] = {}
    tasks, expected = [], 0
    for index in range(count):
        number, k = index % len(subjects), index // len(subjects)
        subject = subjects[number]
        purposes = subject["purposes"]
        if k > 0 and (number + k) % 10 == 0:  # a double click: the same choices again,
            # which must record nothing (one in ten decisions after the first)
            choices = dict(previous[subject["id"]])
        else:
            chosen = purposes if k % 3 == 0 else [purposes[k % len(purposes)]]
            choices = {}
            for position, purpose in enumerate(chosen):
                before = last.get((subject["id"], purpose))
                if before is None:  # the first choice: half accept, half refuse
                    choice = "accept" if (number + position) % 2 == 0 else "refuse"
                else:  # then flip: refused -> accepted -> withdrawn -> accepted ...
                    choice = "refuse" if before == "accept" else "accept"
                choices[purpose] = last[(subject["id"], purpose)] = choice
                expected += 1
        previous[subject["id"]] = choices
        tasks.append((subject, choices))
    return tasks, expected


def run_burst(driver: Driver, subject: dict[str, Any], size: int, number: int) -> None:
    """``size`` clients load the page, then all POST different choices at once."""
    barrier = threading.Barrier(size)

    def click(i: int) -> None:
        agent = f"bench-burst-{number}-{i}"
        fields = driver.page(subject["path"], agent)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=60)
        if fields is None:
            return
        choices = {p: "accept" if (i + j) % 2 == 0 else "refuse"
                   for j, p in enumerate(subject["purposes"])}
        if i % 4 == 3:  # some clicks name only one purpose
            first = subject["purposes"][0]
            choices = {first: choices[first]}
        driver.post(subject["id"], subject["path"], fields, choices, agent, "POST_burst")

    with ThreadPoolExecutor(max_workers=size) as pool:
        list(pool.map(click, range(size)))


def drive(plan: dict[str, Any], decisions: int, concurrency: int, bursts: int,
          burst_size: int, timeout: float) -> dict[str, Any]:
    subjects = plan["subjects"]
    driver = Driver(plan["base"], concurrency, timeout)
    bursts = min(bursts, max(0, decisions // max(1, burst_size)))
    main_count = decisions - bursts * burst_size
    tasks, expected = plan_main(subjects, main_count)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(lambda numbered: driver.decide(
            numbered[1][0]["id"], numbered[1][0]["path"], numbered[1][1],
            f"bench-main-{numbered[0]}"), enumerate(tasks)))
    main_seconds = time.perf_counter() - started

    burst_started = time.perf_counter()
    burst_subjects = [subjects[(b * len(subjects)) // max(1, bursts)] for b in range(bursts)]
    for number, subject in enumerate(burst_subjects):
        run_burst(driver, subject, burst_size, number)
    burst_seconds = time.perf_counter() - burst_started

    posts = sum(driver.status["POST"].values())
    gets = sum(driver.status["GET"].values())
    five = sum(n for counts in driver.status.values() for code, n in counts.items()
               if code.startswith("5"))
    errors = sum(n for counts in driver.status.values() for code, n in counts.items()
                 if code.startswith("error"))
    return {
        "base": plan["base"], "subjects": len(subjects), "concurrency": concurrency,
        "decisions": {"planned": decisions, "main": main_count, "bursts": bursts,
                      "burst_size": burst_size, "posted": posts},
        "status": {method: dict(sorted(counts.items())) for method, counts in driver.status.items()},
        "status_5xx": five, "transport_errors": errors,
        "latency_ms": {label: percentiles(values) for label, values in sorted(driver.latency.items())},
        "throughput": {
            "main_seconds": round(main_seconds, 3), "burst_seconds": round(burst_seconds, 3),
            "main_decisions_per_s": round(main_count / main_seconds, 1) if main_seconds else None,
            "main_requests_per_s": round(2 * main_count / main_seconds, 1) if main_seconds else None,
            "all_requests": posts + gets,
        },
        "changes": {"seen": sum(driver.changed.values()), "expected_main_if_in_order": expected,
                    "unchanged_answers": driver.unchanged_answers},
        "per_subject": {s["id"]: {"posts_ok": driver.posts_ok[s["id"]],
                                  "changed": driver.changed[s["id"]]} for s in subjects},
        "per_request": driver.per_request,
        "samples": driver.samples,
    }


def latency_table(report: dict[str, Any]) -> str:
    lines = [f"{'requests':<12} {'n':>6} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'max ms':>9}"]
    for label, stats in report["latency_ms"].items():
        if stats.get("n"):
            lines.append(f"{label:<12} {stats['n']:>6} {stats['p50']:>9.1f} {stats['p90']:>9.1f} "
                         f"{stats['p99']:>9.1f} {stats['max']:>9.1f}")
    return "\n".join(lines)


# -- the side under test (first process): DynamoDB Local, the app, the links -------------

class QuietServer:
    """The app behind Chalice's threaded local HTTP server (one thread per connection),
    on a free 127.0.0.1 port, without an access log line per request, and with
    TCP_NODELAY on its connections (``nagle_off``; Chalice's own server leaves Nagle on)."""

    def __init__(self, backlog: int = 128, nagle_off: bool = True) -> None:
        from chalice.cli.factory import CLIFactory
        from chalice.local import (
            ChaliceRequestHandler, CustomLocalChalice, LocalChalice, LocalDevServer,
        )

        from app import app
        from devstack.dynamodb_local import free_port

        class Handler(ChaliceRequestHandler):
            # The handler sends the headers and the body in two writes: with Nagle on, the
            # body waits for the client's delayed ACK (~40 ms on Linux) on every response.
            disable_nagle_algorithm = nagle_off

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """No access log: it would cost more than the requests measured."""

        self.app, self.original_class = app, type(app)
        config = CLIFactory(str(ROOT)).create_config_obj(chalice_stage_name="test")
        # What chalice.local.create_local_server does (a thread-local current_request),
        # with our handler; undone by close().
        CustomLocalChalice.__bases__ = (LocalChalice, self.original_class)
        app.__class__ = CustomLocalChalice
        self.port = free_port()
        self.server = LocalDevServer(app, config, "127.0.0.1", self.port, handler_cls=Handler)
        # socketserver listens with a backlog of 5: raise it for many simultaneous clients.
        self.server.server.socket.listen(backlog)
        self.thread = threading.Thread(target=self.server.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server.server_close()
        self.thread.join(10)
        self.app.__class__ = self.original_class

    def __enter__(self) -> "QuietServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def counting_transactions() -> Iterator[Counter[str]]:
    """Count the app's ``TransactWriteItems`` calls: written, or cancelled and why, on
    which item (the ledger rebuilds a cancelled commit on fresh data; it logs only a
    subject that gave up after all its attempts). Listens to botocore's events on the
    app's DynamoDB client; changes nothing."""
    from chalicelib.core.services import dynamodb_client

    client, local = dynamodb_client(), threading.local()
    counts: Counter[str] = Counter()

    def before(params: dict[str, Any], **_: Any) -> None:
        local.items = params.get("TransactItems") or []

    def after(parsed: dict[str, Any], **_: Any) -> None:
        code = (parsed.get("Error") or {}).get("Code")
        if not code:
            counts["written"] += 1
            return
        counts[f"cancelled ({code})"] += 1
        for item, reason in zip(getattr(local, "items", []), parsed.get("CancellationReasons") or []):
            if reason.get("Code") in (None, "None"):
                continue
            body = next(iter(item.values()))
            key = body.get("Key") or body.get("Item") or {}
            pk, sk = key.get("pk", {}).get("S", ""), key.get("sk", {}).get("S", "")
            where = ("chain head" if sk == "CHAIN" else "event" if sk.startswith("EVENT#")
                     else pk.split("#")[0] + "#" + pk.split("#")[1] if pk.startswith("STATS#")
                     else pk.split("#")[0] + " " + sk.split("#")[0])
            counts[f"  {reason['Code']} on {where}"] += 1

    events = client.meta.events
    events.register("before-parameter-build.dynamodb.TransactWriteItems", before)
    events.register("after-call.dynamodb.TransactWriteItems", after)
    try:
        yield counts
    finally:
        events.unregister("before-parameter-build.dynamodb.TransactWriteItems", before)
        events.unregister("after-call.dynamodb.TransactWriteItems", after)


def log_counts(text: str) -> Counter[str]:
    """``event`` of each JSON log line the app wrote."""
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        with contextlib.suppress(ValueError, AttributeError):
            counts[json.loads(line).get("event", "?")] += 1
    return counts


def mint_subjects(count: int, prefix: str = "load") -> list[dict[str, Any]]:
    """One confirm link per subject, for 2 or 3 purposes, recorded like the CLI does."""
    from chalicelib.consent import rules
    from chalicelib.core.services import get_catalogue, get_ledger
    from chalicelib.core.settings import get_settings

    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()

    def one(i: int) -> dict[str, Any]:
        purposes = PURPOSE_SETS[i % len(PURPOSE_SETS)]
        issued = rules.issue_link(ledger, settings, catalogue, f"{prefix}{i}@example.eu",
                                    list(purposes), channel="bench")
        return {"id": issued.subject, "path": f"/c/{issued.token}", "purposes": list(purposes)}

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(count)))


def check_ledger(subjects: list[dict[str, Any]], report: dict[str, Any]) -> dict[str, Any]:
    """Every chain verifies; each subject's decision events are exactly the changes the
    driver was shown, and each purpose's state is its last event."""
    from chalicelib.proof import audit
    from chalicelib.proof.audit import DECISIONS
    from chalicelib.core.services import get_ledger

    ledger = get_ledger()
    broken, mismatched, events_total = [], [], 0
    for subject in subjects:
        verdict = audit.verify_subject(ledger, subject["id"])
        if not verdict.ok:
            broken.append({"subject": subject["id"], "reason": verdict.reason})
        events = [e for e in ledger.events(subject["id"]) if e.get("kind") in DECISIONS]
        events_total += len(events)
        seen = report["per_subject"][subject["id"]]["changed"]
        if len(events) != seen:
            mismatched.append({"subject": subject["id"], "events": len(events), "seen": seen})
    return {"chains_verified": len(subjects) - len(broken), "broken": broken,
            "decision_events": events_total, "changes_seen": report["changes"]["seen"],
            "mismatched": mismatched}


def run_driver(plan_file: Path, decisions: int, concurrency: int, bursts: int,
               burst_size: int, timeout: float = 60) -> dict[str, Any]:
    """Run the driver as a second process and return its JSON report."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.load", "--drive", "--plan", str(plan_file),
         "--decisions", str(decisions), "--concurrency", str(concurrency),
         "--bursts", str(bursts), "--burst-size", str(burst_size), "--timeout", str(timeout)],
        cwd=ROOT, capture_output=True, text=True, timeout=1800,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        raise RuntimeError(f"the driver failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def prepare_and_run(args: argparse.Namespace) -> int:
    from chalicelib.store import schema
    from chalicelib.core.services import dynamodb_client
    from devstack.dynamodb_local import DynamoDBLocal, local_aws_environment

    with DynamoDBLocal() as dynamodb:
        os.environ.update({
            **local_aws_environment(), "DYNAMODB_ENDPOINT": dynamodb.endpoint,
            "CONSENT_TABLE": f"load-{uuid.uuid4().hex[:8]}", "LINK_SECRET_KEYS": "l" * 48,
            "SUBJECT_PEPPER": "p" * 48, "PUBLIC_BASE_URL": "http://127.0.0.1",
            "MAIL_TRANSPORT": "none"})
        for name in ("WEBHOOK_SUBSCRIBERS", "RECEIPT_MAIL", "ACT_API_URL", "CONSENT_CATALOGUE"):
            os.environ.pop(name, None)
        table = os.environ["CONSENT_TABLE"]
        schema.create_table(dynamodb_client(), table)
        # The stream only feeds the Act! sync, which is not part of this load.
        dynamodb_client().update_table(TableName=table,
                                       StreamSpecification={"StreamEnabled": False})
        t0 = time.perf_counter()
        subjects = mint_subjects(args.subjects)
        print(f"minted {len(subjects)} links in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        logs = io.StringIO()
        with QuietServer(nagle_off=not args.nagle) as server, tempfile.TemporaryDirectory() as tmp, \
                counting_transactions() as transactions:
            plan_file = Path(tmp) / "plan.json"
            plan_file.write_text(json.dumps({"base": server.url, "subjects": subjects}))
            with contextlib.redirect_stdout(logs):
                report = run_driver(plan_file, args.decisions, args.concurrency, args.bursts,
                                    args.burst_size, args.timeout)
        report["server"] = {"transactions": dict(transactions),
                            "log_events": dict(log_counts(logs.getvalue()))}
        report["ledger"] = check_ledger(subjects, report)
    report.pop("per_subject")
    report.pop("per_request")
    print(latency_table(report), file=sys.stderr)
    print(json.dumps(report, indent=2))
    ok = (report["status_5xx"] == 0 and report["transport_errors"] == 0
          and not report["ledger"]["broken"] and not report["ledger"]["mismatched"])
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=2000, help="decision POSTs in all")
    parser.add_argument("--subjects", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20, help="driver connections")
    parser.add_argument("--bursts", type=int, default=20,
                        help="bursts of simultaneous POSTs on one subject")
    parser.add_argument("--burst-size", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=60, help="read timeout per request")
    parser.add_argument("--nagle", action="store_true",
                        help="leave Nagle's algorithm on, as Chalice's local server does "
                             "(adds a delayed-ACK wait, ~40 ms, to every response)")
    parser.add_argument("--drive", action="store_true", help="be the driver only (needs --plan)")
    parser.add_argument("--plan", type=Path, help="the driver's plan (JSON)")
    args = parser.parse_args(argv)
    if args.drive:
        if not args.plan:
            parser.error("--drive needs --plan")
        plan = json.loads(args.plan.read_text())
        report = drive(plan, args.decisions, args.concurrency, args.bursts, args.burst_size,
                       args.timeout)
        print(json.dumps(report))
        return 0
    return prepare_and_run(args)


if __name__ == "__main__":
    sys.exit(main())
