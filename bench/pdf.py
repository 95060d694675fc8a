"""PDF rendering beside the HTML rendering of the same data, in the same run.

    .venv/bin/python -m bench.pdf --n 30

One person with a realistic history (a signup through the form, its mail sent to a
real SMTP sink, decisions changed a few times: ~20 events) on DynamoDB Local. The
data is read once (``access.export``, ``evidence.pack``); then each view is rendered
``n`` times: the HTML report page against its PDF, the evidence pack's HTML against
the dossier PDF, and the register of purposes. The floor is the HTML view of the same
data. A fresh interpreter then measures what the first PDF of a cold Lambda container
costs: importing fpdf2, and the first document (fonts parsed, subset, written).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

from bench.common import local_table, median_ms, smtp_env
from chalicelib.consent import register, rules, submissions
from chalicelib.consent.rules import RequestContext
from chalicelib.core.services import (
    get_catalogue,
    get_ledger,
    get_postman,
    get_signups,
)
from chalicelib.core.settings import get_settings
from chalicelib.proof import dossier, evidence
from chalicelib.rights import access
from chalicelib.web import report_pdf, views
from devstack.dynamodb_local import DynamoDBLocal
from devstack.mailsink import MailSink

COLD = """
import time
begun = time.perf_counter()
import app
started = time.perf_counter()
import fpdf
imported = time.perf_counter()
from chalicelib.consent.catalogue import load_catalogue
from chalicelib.consent import register
from chalicelib.core.settings import PACKAGE_ROOT
catalogue = load_catalogue(PACKAGE_ROOT / "catalogue.toml")
ready = time.perf_counter()
register.render(catalogue, "fr")
done = time.perf_counter()
print((started - begun) * 1000, (imported - started) * 1000, (done - ready) * 1000)
"""



def cold(runs: int = 7) -> list[float]:
    """Medians (import app, then import fpdf2, then the first document) in ms, each run
    in a fresh interpreter: what a cold container pays, against its own ``import app``."""
    runs_ms = [[float(x) for x in subprocess.run(
        [sys.executable, "-c", COLD], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}).stdout.split()]
        for _ in range(runs)]
    return [statistics.median(run[i] for run in runs_ms) for i in range(3)]


def history(subject_email: str) -> str:
    """A signup, its mail, then decisions changed a few times; the subject key."""
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    ctx = RequestContext("127.0.0.1", "bench", "fr")
    outcome = get_signups().submit(catalogue.forms["website"], submissions.Submission(
        subject_email, ("newsletter", "events"), name="Zoé Bench"), "fr", ctx)
    get_postman().deliver(outcome.mail_id or "")
    issued = rules.issue_link(ledger, settings, catalogue, subject_email,
                              ["newsletter", "events"], channel="bench")
    link, record = rules.open_link(ledger, settings, "confirm", issued.token)
    shown = {p: catalogue.get(p).text("fr").sha256 for p in ("newsletter", "events")}
    for round_ in range(4):
        choice = "accept" if round_ % 2 == 0 else "refuse"
        rules.decide(ledger, catalogue, link, record, {"newsletter": choice, "events": "accept"},
                     "fr", shown, ctx)
    return link.subject


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pdf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=30, help="renders per measurement")
    n = parser.parse_args().n
    with DynamoDBLocal() as dynamodb, MailSink() as sink:
        settings, _ = local_table(dynamodb, "bench", **smtp_env(sink.smtp_port))
        ledger, catalogue = get_ledger(), get_catalogue()
        subject = history("zoe.bench@example.eu")
        data = access.export(ledger, settings, catalogue, subject, "fr")
        pack = evidence.pack(ledger, settings, catalogue, subject)
        receipt = dossier.receipt_of(ledger, settings, catalogue, subject, "fr")
        hrefs: dict[str, str | None] = {"export": "e", "erase": "x", "pdf": "p"}
        report_pdf.render(settings, catalogue, "fr", data)  # fpdf2 imported, fonts read
        sizes = {"report": len(report_pdf.render(settings, catalogue, "fr", data)),
                 "dossier": len(dossier.render(pack, receipt, "fr")),
                 "register": len(register.render(catalogue, "fr"))}
        rows = [
            ("access report: HTML page (floor)", median_ms(lambda: views.rights_report_page(
                settings, catalogue, "fr", data, hrefs), n)),
            ("access report: PDF", median_ms(
                lambda: report_pdf.render(settings, catalogue, "fr", data), n)),
            ("evidence pack: HTML (floor)", median_ms(lambda: evidence.html(pack, "fr"), n)),
            ("evidence dossier: PDF (with the receipt)", median_ms(
                lambda: dossier.render(pack, receipt, "fr"), n)),
            ("register of purposes: PDF (3 purposes)", median_ms(
                lambda: register.render(catalogue, "fr"), n)),
        ]
    app_ms, imported, first = cold()
    print(f"{len(data['events'])} events, {len(pack['texts'])} texts, "
          f"{len(pack['evidence']['mail_templates'])} mail template(s); PDF sizes: "
          + ", ".join(f"{name} {size / 1024:.0f} KB" for name, size in sizes.items()))
    print(f"{'operation':<48} {'median ms':>10} {'x floor':>8}")
    floor = 0.0
    for name, value in rows:
        floor = value if "floor" in name else floor
        ratio = "" if "floor" in name else f"{value / floor:8.1f}"
        print(f"{name:<48} {value:>10.3f} {ratio:>8}")
    print(f"{'cold container: import app (floor)':<48} {app_ms:>10.1f}")
    print(f"{'cold container: then import fpdf2':<48} {imported:>10.1f} {imported / app_ms:8.1f}")
    print(f"{'cold container: then the first PDF (register)':<48} {first:>10.1f}")


if __name__ == "__main__":
    main()
