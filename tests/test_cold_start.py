"""Cold start, proved without a clock: ``import app`` in a fresh interpreter declares
every route, schedule and stream handler, and loads nothing a request may not need.

Chalice must see every route at import time, so the blueprint modules are imported;
what their handlers use (the consent rules, the pages, Babel, email-validator, the
catalogue, the templates) is imported or built by the first request that needs it,
then cached. The time itself is measured by bench/proof.py, never asserted.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Our modules ``import app`` may load: the route map, the blueprints, and what their
#: declarations need (the guards, the accepted content types, the lazy accessors, the
#: exception classes their handlers catch, the log line).
AT_IMPORT = {
    "app",
    "chalicelib",
    "chalicelib.core",
    "chalicelib.core.clock",
    "chalicelib.core.errors",
    "chalicelib.core.logs",
    "chalicelib.core.services",
    "chalicelib.web",
    "chalicelib.web.blueprints",
    "chalicelib.web.blueprints.admin",
    "chalicelib.web.blueprints.campaigns",
    "chalicelib.web.blueprints.events",
    "chalicelib.web.blueprints.fallback",
    "chalicelib.web.blueprints.hooks",
    "chalicelib.web.blueprints.public",
    "chalicelib.web.blueprints.rights",
    "chalicelib.web.blueprints.signup",
    "chalicelib.web.forms",
    "chalicelib.web.guards",
    "chalicelib.web.http",
}
#: Libraries only some requests need: each loads with the first request that does.
#: (boto3, with botocore and urllib3, loads at import: nearly every request needs it.)
DEFERRED_LIBRARIES = ("babel", "email_validator", "jinja2", "itsdangerous", "tomllib")

PROBE = r"""
import json, sys

import app

imported = sorted(sys.modules)
routes = sorted(app.app.routes)
handlers = sorted(name for name in app.app.handler_map)

from chalice.test import Client

with Client(app.app, stage_name="test", project_dir=sys.argv[1]) as client:
    health = client.http.get("/health")
    page = client.http.get("/rights", headers={"accept-language": "fr"})

print(json.dumps({
    "imported": imported, "routes": routes, "handlers": handlers,
    "health": [health.status_code, json.loads(health.body)],
    "page": [page.status_code, page.body.decode("utf-8")],
    "after": sorted(sys.modules),
}))
"""


def _probe() -> dict:
    env = {name: value for name, value in os.environ.items()
           if name in ("PATH", "HOME", "LANG", "TMPDIR", "SYSTEMROOT")}
    env.update({
        "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1",
        "CONSENT_TABLE": "cold-start", "LINK_SECRET_KEYS": "k" * 48,
        "SUBJECT_PEPPER": "p" * 48, "PUBLIC_BASE_URL": "http://testserver",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    done = subprocess.run([sys.executable, "-c", PROBE, str(ROOT)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_import_loads_only_the_route_declarations_and_a_first_request_loads_the_rest() -> None:
    probe = _probe()
    ours = {name for name in probe["imported"] if name == "app" or name.startswith("chalicelib")}
    assert ours - AT_IMPORT == set(), (
        "imported by `import app` (cold start): import these in the handler or function "
        f"that uses them, or add them to AT_IMPORT saying why: {sorted(ours - AT_IMPORT)}"
    )
    libraries = [name for name in probe["imported"] if name.split(".")[0] in DEFERRED_LIBRARIES]
    assert libraries == []
    # Nothing is read or parsed at import: no settings (os.environ), no catalogue file.
    assert "chalicelib.core.settings" not in probe["imported"]
    assert "chalicelib.consent.catalogue" not in probe["imported"]
    assert "chalicelib.core.templates" not in probe["imported"]

    # Every route, schedule and the stream handler are declared all the same.
    assert {"/c/{token}", "/u/{token}", "/p/{token}", "/signup/{form_id}", "/rights",
            "/admin/campaigns", "/hooks/ses/{secret}", "/health"} <= set(probe["routes"])
    assert {"on_table_change", "sync_sweep", "mail_sweep", "webhooks_sweep",
            "campaign_sweep"} <= set(probe["handlers"])

    # The first requests load what they need, and answer as always.
    status, health = probe["health"]
    assert status == 200 and health["status"] == "ok" and "newsletter" in health["purposes"]
    status, page = probe["page"]
    assert status == 200 and 'lang="fr"' in page
    assert {"chalicelib.consent.catalogue", "chalicelib.core.templates", "jinja2"} <= set(
        probe["after"]
    )
