"""The simulator's own pages: what the simulated Act! database holds, for a person to look at.

``GET /`` lists the contacts (last edited first) with their custom fields under their
display names and their histories (newest first); ``GET /contacts/{id}`` shows one
contact in full. This is how someone running ``make run`` sees what their click did
in "Act!". The pages live outside ``/act.web.api``, need no token, are served on
127.0.0.1 only, load nothing from elsewhere, and escape every value.
"""
from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from html import escape
from typing import TYPE_CHECKING, Any

from devstack.act_simulator.odata import _to_datetime

if TYPE_CHECKING:
    from devstack.act_simulator.server import ActSimulator

_HEADERS = [("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "
                                        "form-action 'self'; frame-ancestors 'none'"),
            ("Referrer-Policy", "no-referrer"), ("X-Content-Type-Options", "nosniff"),
            ("Cache-Control", "no-store")]
_HTML = "text/html; charset=utf-8"
_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:1.5rem auto;max-width:70rem;padding:0 1rem;color:#1b1b1b}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}h3{font-size:1rem;margin:.2rem 0}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.25rem .4rem;
text-align:left;vertical-align:top}th{background:#f4f4f4}.muted{color:#666}.card{border:1px solid #ccc;
border-radius:6px;padding:.6rem .9rem;margin:.8rem 0}.kv{display:grid;grid-template-columns:14rem 1fr;
gap:.1rem .8rem}pre{white-space:pre-wrap;margin:.2rem 0;font:13px/1.4 ui-monospace,monospace}
.tag{display:inline-block;padding:0 .4rem;border-radius:4px;background:#eee;font-size:.85em}
.bad{background:#fde2e2}.ok{background:#e2f5e2}
"""


def _when(value: Any) -> datetime:
    return _to_datetime(value) or datetime.min.replace(tzinfo=timezone.utc)


def _e(value: Any) -> str:
    if value is None or value == "":
        return '<span class="muted">—</span>'
    if isinstance(value, bool):
        return "yes" if value else "no"
    return escape(str(value))


def _page(title: str, body: str) -> bytes:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>{body}"
            f"</body></html>").encode("utf-8")


def _snapshot(sim: "ActSimulator") -> dict[str, Any]:
    with sim.lock:
        return {"contacts": copy.deepcopy(list(sim.contacts.values())),
                "histories": copy.deepcopy(list(sim.histories.values())),
                "fields": copy.deepcopy(sim.fields),
                "webhooks": copy.deepcopy(list(sim.webhooks.values())),
                "requests": list(sim.requests[-20:]),
                "custom": {key: col.get("displayName") or col.get("name")
                           for key, col in sim._custom_columns().items()}}


def _histories_of(contact_id: str, histories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    mine = [h for h in histories if any(c.get("id") == contact_id for c in h.get("contacts") or [])]
    return sorted(mine, key=lambda h: (_when(h.get("created")), _when(h.get("startTime"))), reverse=True)


def _history_html(histories: list[dict[str, Any]]) -> str:
    if not histories:
        return '<p class="muted">No history.</p>'
    rows = "".join(
        f"<tr><td>{_e(h.get('startTime'))}</td><td>{_e((h.get('historyType') or {}).get('name'))}</td>"
        f"<td><strong>{_e(h.get('regarding'))}</strong><pre>{_e(h.get('details'))}</pre></td>"
        f"<td>{_e(h.get('createUserName'))}</td></tr>" for h in histories)
    return ("<table><tr><th>When</th><th>Type</th><th>Regarding / details</th><th>By</th></tr>"
            f"{rows}</table>")


def _custom_html(contact: dict[str, Any], names: dict[str, str], show_empty: bool) -> str:
    values = contact.get("customFields") or {}
    items = [(names.get(key, key), key, value) for key, value in values.items()
             if show_empty or value not in (None, "")]
    if not items:
        return '<p class="muted">No custom field values.</p>'
    return '<div class="kv">' + "".join(
        f'<div>{escape(str(name))} <span class="muted">({escape(key)})</span></div><div>{_e(value)}</div>'
        for name, key, value in sorted(items, key=lambda item: str(item[0]).lower())) + "</div>"


def _contact_card(contact: dict[str, Any], snap: dict[str, Any]) -> str:
    cid = str(contact.get("id"))
    flag = ('<span class="tag bad">aemOptOut</span>' if contact.get("aemOptOut") else "")
    return (f'<section class="card"><h3><a href="/contacts/{escape(cid, quote=True)}">'
            f"{_e(contact.get('fullName'))}</a> {flag}</h3>"
            f"<div class=\"muted\">{_e(contact.get('emailAddress'))} · {_e(contact.get('company'))} · "
            f"edited {_e(contact.get('edited'))} by {_e(contact.get('editedBy'))}</div>"
            f"{_custom_html(contact, snap['custom'], False)}"
            f"{_history_html(_histories_of(cid, snap['histories']))}</section>")


def _hook_state(hook: dict[str, Any]) -> str:
    if hook.get("suspended"):
        return f'<span class="tag bad">suspended {_e(hook.get("suspended"))}</span>'
    return '<span class="tag ok">active</span>'


def index(sim: "ActSimulator") -> bytes:
    snap = _snapshot(sim)
    contacts = sorted(snap["contacts"], key=lambda c: _when(c.get("edited")), reverse=True)
    hooks = "".join(
        f"<tr><td>{_e(w.get('name'))}</td><td>{_e(w.get('callbackUrl'))}</td>"
        f"<td>{_e(w.get('queryOption'))}</td><td>{_e(w.get('failedAttempts'))}</td>"
        f"<td>{_hook_state(w)}</td>"
        f"<td>{_e(w.get('lastNotificationSent'))}</td></tr>" for w in snap["webhooks"])
    hooks_html = (
        "<table><tr><th>Webhook</th><th>Callback</th><th>queryOption</th><th>Failed</th><th>State</th>"
        f"<th>Last sent</th></tr>{hooks}</table>"
        '<form method="post" action="/webhooks/deliver"><p><button>Deliver webhooks now</button> '
        '<span class="muted">(one polling pass of Act!\'s webhook service)</span></p></form>'
        if snap["webhooks"] else '<p class="muted">No webhook registrations.</p>')
    requests = "".join(f"<tr><td>{_e(m)}</td><td><code>{_e(p)}</code></td><td>{_e(s)}</td></tr>"
                       for m, p, s in reversed(snap["requests"]))
    body = (
        f"<h1>Act! Web API simulator — database {escape(sim.database)}</h1>"
        f'<p class="muted">API base URL <code>{escape(sim.base_url)}</code> · users: '
        f"{escape(', '.join(sim.users))} · {len(contacts)} contacts, {len(snap['histories'])} "
        f"histories, {len(snap['fields'])} contact fields. Reload to see new changes.</p>"
        f"<h2>Contacts (last edited first)</h2>{''.join(_contact_card(c, snap) for c in contacts)}"
        f"<h2>Webhooks</h2>{hooks_html}"
        f"<h2>Last API calls</h2>"
        + (f"<table><tr><th>Method</th><th>Path</th><th>Status</th></tr>{requests}</table>"
           if requests else '<p class="muted">None yet.</p>'))
    return _page(f"Act! simulator — {sim.database}", body)


def contact_page(sim: "ActSimulator", contact_id: str) -> bytes | None:
    snap = _snapshot(sim)
    contact = next((c for c in snap["contacts"] if str(c.get("id")).lower() == contact_id.lower()), None)
    if contact is None:
        return None
    plain = {k: v for k, v in contact.items() if k != "customFields"}
    shown = {k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else v
             for k, v in plain.items() if v not in (None, "", False, {})}
    rows = "".join(f"<div>{escape(k)}</div><div>{_e(v)}</div>" for k, v in shown.items())
    body = (f'<p><a href="/">← all contacts</a></p><h1>{_e(contact.get("fullName"))}</h1>'
            f"<h2>Contact</h2><div class=\"kv\">{rows}</div>"
            f"<h2>Custom fields</h2>{_custom_html(contact, snap['custom'], True)}"
            f"<h2>History (newest first)</h2>"
            f"{_history_html(_histories_of(str(contact.get('id')), snap['histories']))}")
    return _page(f"{contact.get('fullName') or contact_id} — Act! simulator", body)


def serve(sim: "ActSimulator", method: str, path: str, query: str,
          body: bytes) -> tuple[int, bytes, str | None, list[tuple[str, str]]]:
    """``(status, body, content type, headers)`` for a request outside ``/act.web.api``."""
    if method in ("GET", "HEAD") and path in ("/", "/index.html"):
        return 200, index(sim), _HTML, list(_HEADERS)
    if method in ("GET", "HEAD") and path.startswith("/contacts/"):
        page = contact_page(sim, path[len("/contacts/"):].strip("/"))
        if page is not None:
            return 200, page, _HTML, list(_HEADERS)
        return 404, _page("Not found", '<h1>No such contact</h1><p><a href="/">All contacts</a></p>'), \
            _HTML, list(_HEADERS)
    if method == "POST" and path == "/webhooks/deliver":
        sim.deliver_webhooks()
        return 303, b"", None, [("Location", "/"), *_HEADERS]
    return 404, _page("Not found", '<h1>Not found</h1><p>The Act! API is under <code>/act.web.api</code>; '
                                   'the simulator\'s pages are at <a href="/">/</a>.</p>'), \
        _HTML, list(_HEADERS)
