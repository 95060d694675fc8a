"""Run the Act! Web API simulator on its own: ``python -m devstack.act_simulator --port 8002``.

Prints the API base URL, user, password and database to configure OptinProof with
(ACT_API_URL, ACT_USERNAME, ACT_PASSWORD, ACT_DATABASE), and the address of the page
that shows the simulated database. Ctrl-C stops it. Nothing of request bodies is
printed unless --verbose.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from zoneinfo import ZoneInfoNotFoundError

from devstack.act_simulator.server import FAULT_KINDS, ActSimulator
from devstack.dynamodb_local import ServiceError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack.act_simulator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8002,
                        help="port on 127.0.0.1 (default 8002; 0: any free port)")
    parser.add_argument("--seed", choices=("demo", "empty"), default="demo",
                        help="demo: a dozen contacts and two groups; "
                             "empty: fields and history types only")
    parser.add_argument("--database", default="OptinProofDemo",
                        help="Act! database name (default OptinProofDemo)")
    parser.add_argument("--user", default="OptinProof Sync",
                        help="the Act! user's display name (default 'OptinProof Sync')")
    parser.add_argument("--password", default="sim-password", help="its password (default sim-password)")
    parser.add_argument("--token-ttl", type=float, default=3900.0,
                        help="JWT lifetime in seconds (default 3900 = 65 minutes, as one install had)")
    parser.add_argument("--envelope", action="store_true",
                        help='answer GET /api/contacts as {"value": [...], "Count": n} '
                             'instead of a bare array')
    parser.add_argument("--timezone", default="UTC",
                        help="the Act! server's time zone (IANA name, default UTC): date-times are "
                             "its wall time, without a zone")
    parser.add_argument("--offsets", action="store_true",
                        help="answer date-times with their UTC offset (as some Act! cloud hosts do)")
    parser.add_argument("--webhook-interval", type=float, default=0.0, metavar="SECONDS",
                        help="deliver webhooks every SECONDS (Act! polls every 900 s); default 0: only "
                             "when asked from the page")
    faults = parser.add_argument_group("faults (all off by default)")
    faults.add_argument("--latency", type=float, default=0.0, help="seconds added to every API call")
    faults.add_argument("--error-rate", type=float, default=0.0,
                        help="fraction (0..1) of API calls that fail")
    faults.add_argument("--fault-kinds", default="500",
                        help=f"comma list among {', '.join(FAULT_KINDS)} (default 500)")
    faults.add_argument("--retry-after", action="store_true", help="send Retry-After on 429/503")
    faults.add_argument("--rate-limit", type=int, default=None, help="calls per minute before 429")
    faults.add_argument("--expired-as-500", action="store_true",
                        help="answer a bad or expired token with 500 (as apimta.act.com did) instead of 401")
    faults.add_argument("--ignore-patch", action="store_true",
                        help="PATCH /api/contacts/{id} answers 200 and changes nothing")
    parser.add_argument("--verbose", action="store_true", help="print each API call (and its body) to stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        sim = ActSimulator(port=args.port, database=args.database, users={args.user: args.password},
                           token_ttl=args.token_ttl, envelope=args.envelope, seed=args.seed,
                           verbose=args.verbose, timezone_name=args.timezone,
                           offsets=args.offsets)
        sim.set_faults(latency=args.latency, error_rate=args.error_rate,
                       kinds=tuple(k.strip() for k in args.fault_kinds.split(",") if k.strip()),
                       retry_after=args.retry_after, rate_limit=args.rate_limit,
                       expired_as_500=args.expired_as_500, ignore_patch=args.ignore_patch)
        sim.start()
    except (ValueError, ServiceError, ZoneInfoNotFoundError) as exc:
        print(f"act simulator: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("Act! Web API simulator is up.\n"
          f"  API base URL  {sim.base_url}\n"
          f"  User          {args.user}\n"
          f"  Password      {args.password}\n"
          f"  Database      {sim.database}\n"
          f"  Time zone     {sim.zone.key} (set ACT_TIMEZONE to it)\n"
          f"  Database view {sim.view_url}\n"
          f"  Seed          {args.seed} ({len(sim.contacts)} contacts)\n"
          "Stop it with Ctrl-C.", flush=True)
    try:
        while not stop.wait(args.webhook_interval or 3600):
            if args.webhook_interval:
                sim.deliver_webhooks()
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
