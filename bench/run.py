"""Benchmarks: each measured operation next to a floor measured in the same run.

    make bench            (or: .venv/bin/python -m bench.run --n 300)

Floors: a raw HMAC-SHA256 for link signing/verifying, a raw boto3 ``put_item`` for a
recorded decision, a signup and a throttle hit, a bare Jinja2 render for the page and
the mail; a signup's mail goes through a real SMTP sink on loopback. Timings are medians in ms on
DynamoDB Local started for the run; the ratio column is the cost over the floor.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import smtplib
import statistics
import time
from collections.abc import Callable

from jinja2 import Template

from bench.common import local_table, smtp_env
from chalicelib.consent import links, requests, rules, submissions
from chalicelib.consent.rules import PurposeState, RequestContext
from chalicelib.consent.throttle import Throttle
from chalicelib.core.services import (
    get_catalogue,
    get_ledger,
    get_postman,
    get_signups,
)
from chalicelib.mail import compose
from chalicelib.web import views
from devstack.dynamodb_local import DynamoDBLocal
from devstack.mailsink import MailSink


def median_ms(func: Callable[[int], object], n: int) -> float:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        func(i)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def raw_smtp(port: int, message: object) -> None:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="bench.local") as client:
        client.send_message(message)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="iterations per measurement")
    n = parser.parse_args().n
    with DynamoDBLocal() as dynamodb, MailSink() as sink:
        settings, client = local_table(dynamodb, "bench", **smtp_env(sink.smtp_port),
                                       THROTTLE_SIGNUPS_PER_IP="1000000/1h")
        ledger, catalogue = get_ledger(), get_catalogue()
        key = settings.link_secret_keys[-1].encode()
        token, _ = links.mint(settings, "confirm", "ab" * 32, ["newsletter", "events"])
        issued = [rules.issue_link(ledger, settings, catalogue, f"p{i}@example.eu",
                                     ["newsletter"], channel="bench") for i in range(n)]
        records = [rules.open_link(ledger, settings, "confirm", link.token) for link in issued]
        shown = {"newsletter": catalogue.get("newsletter").text("en").sha256}
        ctx = RequestContext("127.0.0.1", "bench", "en")
        page_states = [PurposeState(p, None, None) for p in ("newsletter", "promotions", "events")]
        page_template = Template("<p>{{ x }}</p>" * 50)
        signups, postman, throttle = get_signups(), get_postman(), Throttle(ledger)
        form = catalogue.forms["website"]
        outcomes: list[requests.Outcome] = []

        sample = compose.compose(settings, catalogue, "confirm", "en", "raw@example.eu",
                              ("newsletter",), {"confirm_url": "u", "withdraw_url": "w"}).message

        def submit(i: int) -> None:
            outcomes.append(signups.submit(form, submissions.Submission(
                f"s{i}@example.eu", ("newsletter", "events")), "en", ctx))

        rows = [
            ("raw HMAC-SHA256 (floor)", median_ms(
                lambda i: hmac.new(key, f"payload{i}".encode(), hashlib.sha256).digest(), n)),
            ("links.mint", median_ms(
                lambda i: links.mint(settings, "confirm", "ab" * 32, ["newsletter"]), n)),
            ("links.verify", median_ms(lambda i: links.verify(settings, "confirm", token), n)),
            ("raw boto3 put_item (floor)", median_ms(lambda i: client.put_item(
                TableName=settings.consent_table,
                Item={"pk": {"S": f"BENCH#{i}"}, "sk": {"S": "X"}}), n)),
            ("consent.issue_link (event+link+profile)", median_ms(
                lambda i: rules.issue_link(ledger, settings, catalogue, f"q{i}@example.eu",
                                             ["newsletter"], channel="bench"), n)),
            ("consent.decide (1 purpose)", median_ms(
                lambda i: rules.decide(ledger, catalogue, records[i][0], records[i][1],
                                         {"newsletter": "accept"}, "en", shown, ctx), n)),
            ("signup.submit (2 purposes: 5 events, 2 links, outbox)", median_ms(submit, n)),
            ("throttle hit (read + conditional put)", median_ms(
                lambda i: throttle.hit("bench", f"k{i}", settings.mail.per_address), n)),
            ("raw smtplib send to the same sink (floor)", median_ms(
                lambda i: raw_smtp(sink.smtp_port, sample), n)),
            ("mail sent to SMTP sink + mail_sent event", median_ms(
                lambda i: postman.deliver(outcomes[i].mail_id or ""), n)),
            ("bare Jinja2 render (floor)", median_ms(lambda i: page_template.render(x=i), n)),
            ("confirm page render (3 purposes, fr)", median_ms(lambda i: views.confirm_page(
                settings, catalogue, "fr", "token", "link-id", page_states), n)),
            ("mail compose (confirm, 2 purposes, fr)", median_ms(lambda i: compose.compose(
                settings, catalogue, "confirm", "fr", f"m{i}@example.eu",
                ("newsletter", "events"), {"confirm_url": "u", "withdraw_url": "w"}), n)),
        ]
    floors = {"links": rows[0][1], "store": rows[3][1], "smtp": rows[8][1], "page": rows[10][1]}
    print(f"{'operation':<54} {'median ms':>10} {'x floor':>8}")
    for index, (name, value) in enumerate(rows):
        floor = (floors["links"] if index < 3 else floors["store"] if index < 8
                 else floors["smtp"] if index < 10 else floors["page"])
        ratio = "" if "floor" in name else f"{value / floor:8.1f}"
        print(f"{name:<54} {value:>10.3f} {ratio:>8}")


if __name__ == "__main__":
    main()
