"""`make run`'s stack starts, serves the demo link it prints, and stops cleanly."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import urllib3

from devstack.dynamodb_local import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_local_stack_prints_a_working_demo_link(tmp_path):
    port, ddb_port, act_port = free_port(), free_port(), free_port()
    mail_port, smtp_port = free_port(), free_port()
    env = {**os.environ, "OPTINPROOF_STATE_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    for name in ("CONSENT_TABLE", "DYNAMODB_ENDPOINT", "LINK_SECRET_KEYS", "SUBJECT_PEPPER"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.run", "--port", str(port), "--dynamodb-port", str(ddb_port),
         "--act-port", str(act_port), "--mail-port", str(mail_port),
         "--smtp-port", str(smtp_port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = ""
    try:
        deadline = time.monotonic() + 90
        while "Stop everything" not in output and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            output += line
        assert "OptinProof local stack is up." in output, output
        demo = re.search(rf"http://127\.0\.0\.1:{port}/c/\S+", output).group(0)
        page = urllib3.request("GET", demo, timeout=10)
        assert page.status == 200 and "Save my choices" in page.data.decode()
        assert (tmp_path / "dev.env").stat().st_mode & 0o077 == 0
        assert "LINK_SECRET_KEYS" in (tmp_path / "dev.env").read_text()
        view = urllib3.request("GET", f"http://127.0.0.1:{act_port}/", timeout=10)
        assert view.status == 200 and "demo@example.com" in view.data.decode()
        demo_site = urllib3.request("GET", f"http://127.0.0.1:{mail_port}/embed-demo", timeout=10)
        assert f'src="http://127.0.0.1:{port}/signup/local-demo' in demo_site.data.decode()
        framed = urllib3.request("GET", f"http://127.0.0.1:{port}/signup/local-demo", timeout=10)
        assert framed.status == 200
        assert f"frame-ancestors http://127.0.0.1:{mail_port}" in \
            framed.headers["Content-Security-Policy"]
        mailbox = urllib3.request("GET", f"http://127.0.0.1:{mail_port}/", timeout=10)
        assert mailbox.status == 200
        # the loop: a signup on the demo form is mailed by the local sweep
        started = re.search(r'name="started" value="([^"]+)"', framed.data.decode()).group(1)
        time.sleep(2.1)  # the demo form's minimum fill time
        posted = urllib3.request(
            "POST", f"http://127.0.0.1:{port}/signup/local-demo",
            body=f"email=loop%40example.eu&purpose.newsletter=yes&started={started}",
            headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
        assert posted.status == 200 and "Check your inbox" in posted.data.decode()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            mails = urllib3.request("GET", f"http://127.0.0.1:{mail_port}/api/mails").json()
            if any("loop@example.eu" in str(m["to"]) for m in mails):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"no mail reached the local mailbox: {mails}")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    assert process.returncode == 0
    time.sleep(0.5)
    for probe in (port, ddb_port, act_port, mail_port):
        with pytest.raises(urllib3.exceptions.HTTPError):  # nothing listens any more
            urllib3.request("GET", f"http://127.0.0.1:{probe}/", timeout=1, retries=False)
