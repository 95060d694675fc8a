"""A local mail sink: a real SMTP server on loopback plus a small viewer in the browser.

The app's mails (confirmation links, notices) go to this sink in ``make run`` and in
the tests instead of a real relay: nothing leaves the machine, tests read what was sent
with ``sink.wait_for(to=...)``, and a person reads it at ``sink.http_url``. The SMTP
side is aiosmtpd (a real protocol implementation, so the sender's smtplib code runs
as in production); ``set_failure`` makes it refuse recipients with 451 or 550 to drive
the senders' retry logic. The viewer renders each mail's HTML part in a sandboxed
iframe under a CSP that forbids scripts and remote content, so a hostile mail can do
nothing to the viewer (or to the app on its other port).

Run on its own: ``python -m devstack.mailsink --smtp-port 1025 --http-port 8025``.
Everything binds 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import email
import email.message
import email.policy
import html
import ipaddress
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from devstack.dynamodb_local import ServiceError

FAILURE_MODES = (None, "tempfail", "permfail")
_FAILURE_REPLIES = {
    "tempfail": "451 4.3.0 Temporary failure: the mail sink is set to tempfail",
    "permfail": "550 5.1.1 Mailbox unavailable: the mail sink is set to permfail",
}
#: The viewer's own routes; ``add_page`` may not shadow them.
_RESERVED = re.compile(r"^/($|clear$|api(/|$)|mail(/|$))")
_MAIL_ROUTE = re.compile(r"^/mail/(?P<id>\d+)(?P<what>/html|\.eml)?$")
_STORED_NAME = re.compile(r"^(?P<id>\d+)\.(?:eml|json)$")
#: The HTML part of a mail may style itself and show inline (data:) images, nothing else:
#: no scripts, no remote images (tracking pixels), no forms. The sandbox tokens repeat the
#: iframe's: a CSP ``sandbox`` without them would forbid target=_blank and _top links.
_SANDBOX = "allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation"
MAIL_HTML_CSP = f"sandbox {_SANDBOX}; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
#: The viewer's own pages: inline CSS, the mail iframe and the clear form; no script at all.
_VIEWER_CSP = ("default-src 'none'; style-src 'unsafe-inline'; frame-src 'self'; "
               "form-action 'self'; base-uri 'none'; frame-ancestors 'self'")
_SHOWN_HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe",
                  "List-Unsubscribe-Post")


# -- stored mails ---------------------------------------------------------------------------

@dataclass(frozen=True)
class StoredMail:
    """One mail as the sink received it: the SMTP envelope and the raw bytes, unchanged."""

    id: str
    mail_from: str
    rcpt_tos: tuple[str, ...]
    received_at: str
    raw: bytes

    @property
    def message(self) -> email.message.EmailMessage:
        """Parsed afresh on each access, so callers may change it without touching the sink."""
        return email.message_from_bytes(self.raw, policy=email.policy.default)  # type: ignore[return-value]

    @property
    def subject(self) -> str:
        return _header(self.message, "Subject")

    def text(self) -> str:
        """The text/plain body (decoded, LF line ends), ``""`` if the mail has none."""
        return _body(self.message, "plain")

    def html(self) -> str:
        """The text/html body (decoded, LF line ends), ``""`` if the mail has none."""
        return _body(self.message, "html")

    def summary(self) -> dict[str, Any]:
        """What ``/api/mails`` lists for this mail."""
        return {"id": self.id, "from": self.mail_from, "to": list(self.rcpt_tos),
                "subject": self.subject, "received_at": self.received_at}


def _header(message: email.message.Message, name: str) -> str:
    """A header's decoded value(s), ``""`` if absent; never raises on a malformed header."""
    try:
        values = message.get_all(name) or []
        return ", ".join(str(value) for value in values)
    except Exception:  # a header the parser cannot make sense of: show it undecoded
        return ", ".join(str(v) for k, v in message.raw_items() if k.lower() == name.lower())  # type: ignore[attr-defined]


def _body(message: email.message.EmailMessage, subtype: str) -> str:
    """The decoded ``text/<subtype>`` body part (attachments skipped), ``""`` if none.

    Line ends are LF: SMTP carries CRLF, which would otherwise leak into every
    assertion and regex a test makes on the text.
    """
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):  # unknown or lying charset: show what we can
        content = (part.get_payload(decode=True) or b"").decode("utf-8", errors="replace")
    return content.replace("\r\n", "\n")


def _now_iso() -> str:
    """UTC, ISO 8601 with milliseconds and ``Z`` (the format the Act! simulator uses too)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _loopback(host: str) -> str:
    """``host`` if it is an IPv4 loopback address: the sink must never listen on a network."""
    host = "127.0.0.1" if host == "localhost" else host
    try:
        loopback = ipaddress.IPv4Address(host).is_loopback
    except ValueError:  # a name, or not an address at all
        loopback = False
    if loopback:
        return host
    raise ValueError(f"the mail sink only listens on IPv4 loopback (127.0.0.1), not {host!r}")


# -- the folder ---------------------------------------------------------------------------------

def _write_atomically(path: Path, data: bytes) -> None:
    """Write via a temporary file, so a crash never leaves half a mail for the next start."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _save(folder: Path, mail: StoredMail) -> None:
    """``<id>.eml`` holds the raw mail (opens in any mail client); ``<id>.json`` the envelope,
    which the raw bytes do not carry (Bcc recipients, bounce address, arrival time)."""
    envelope = {"mail_from": mail.mail_from, "rcpt_tos": list(mail.rcpt_tos),
                "received_at": mail.received_at}
    _write_atomically(folder / f"{mail.id}.json", json.dumps(envelope, indent=1).encode("utf-8"))
    _write_atomically(folder / f"{mail.id}.eml", mail.raw)


def _load(folder: Path) -> list[StoredMail]:
    """The mails saved in ``folder``, oldest first. An ``.eml`` dropped in by hand (no
    ``.json``) gets its envelope from its From/To/Cc headers and its time from the file."""
    mails = []
    for path in folder.glob("*.eml"):
        if not path.stem.isdigit():
            continue
        raw = path.read_bytes()
        try:
            envelope = json.loads(path.with_suffix(".json").read_text("utf-8"))
        except (OSError, ValueError):
            envelope = _envelope_from_headers(raw, path)
        mails.append(StoredMail(id=path.stem, mail_from=str(envelope.get("mail_from", "")),
                                rcpt_tos=tuple(envelope.get("rcpt_tos") or ()),
                                received_at=str(envelope.get("received_at", "")), raw=raw))
    return sorted(mails, key=lambda mail: int(mail.id))


def _envelope_from_headers(raw: bytes, path: Path) -> dict[str, Any]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    addresses = []
    for name in ("To", "Cc"):
        try:
            for header in message.get_all(name) or []:
                addresses += [a.addr_spec for a in header.addresses]
        except Exception:  # malformed header: the mail is still worth showing
            continue
    try:
        senders = [a.addr_spec for a in message["From"].addresses] if message["From"] else []
    except Exception:
        senders = []
    stamp = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
    return {"mail_from": senders[0] if senders else "", "rcpt_tos": addresses,
            "received_at": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")}


def _remove_stored(folder: Path) -> None:
    """Delete the sink's own files only (``<digits>.eml``/``.json``), nothing else in the folder."""
    for path in folder.iterdir():
        if _STORED_NAME.match(path.name):
            path.unlink(missing_ok=True)


# -- SMTP ----------------------------------------------------------------------------------------

class _SmtpHandler:
    """aiosmtpd hooks. Defining ``handle_RCPT`` means aiosmtpd no longer records the
    recipient itself: the hook must append it to ``envelope.rcpt_tos``."""

    def __init__(self, sink: "MailSink") -> None:
        self.sink = sink

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        refusal = _FAILURE_REPLIES.get(self.sink.failure or "")
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        mail = self.sink._store(str(envelope.mail_from or ""), tuple(envelope.rcpt_tos), raw)
        return f"250 2.0.0 OK: queued as {mail.id}"


class _Controller(Controller):
    """A Controller serving an already bound socket.

    aiosmtpd's Controller cannot take port 0: after binding it connects to
    ``self.port`` to check the server is up, so it needs the number beforehand. Binding
    the socket ourselves gives a free port without the race of ``free_port()``.
    """

    def __init__(self, handler: _SmtpHandler, sock: socket.socket) -> None:
        host, port = sock.getsockname()[:2]
        # server_hostname: without it aiosmtpd calls socket.getfqdn() on every connection,
        # which takes seconds where the DNS does not know the machine
        super().__init__(handler, hostname=host, port=port, server_hostname="mailsink.localhost")
        self._sock = sock

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock)


def _bind(host: str, port: int, what: str, option: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServiceError(f"the mail sink's {what} cannot listen on {host}:{port} ({exc}); "
                           f"choose another port ({option}) or stop what uses it.") from exc
    return sock


# -- the sink ------------------------------------------------------------------------------------

class MailSink:
    """SMTP on ``host:smtp_port`` and the viewer on ``http_url``; a context manager, or
    ``start()``/``stop()``. Port 0 picks a free port (read it back after ``start()``)."""

    def __init__(self, host: str = "127.0.0.1", smtp_port: int = 0, http_port: int = 0,
                 folder: Path | None = None) -> None:
        self.host = _loopback(host)
        self.smtp_port = smtp_port
        self.http_port = http_port
        self.folder = Path(folder) if folder is not None else None
        self.failure: str | None = None
        self._mails: list[StoredMail] = []
        self._last_id = 0
        self._pages: dict[str, bytes] = {}
        self._changed = threading.Condition()
        self._controller: _Controller | None = None
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "MailSink":
        if self._controller is not None:
            return self
        self._load_folder()
        smtp_socket = _bind(self.host, self.smtp_port, "SMTP server", "--smtp-port")
        controller = _Controller(_SmtpHandler(self), smtp_socket)
        try:
            controller.start()
        except BaseException:
            smtp_socket.close()
            raise
        self._controller = controller
        self.smtp_port = controller.port
        try:
            self._start_viewer()
        except BaseException:
            self.stop()
            raise
        return self

    def _load_folder(self) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        stored = _load(self.folder)
        with self._changed:
            known = {mail.id for mail in self._mails}
            self._mails += [mail for mail in stored if mail.id not in known]
            self._mails.sort(key=lambda mail: int(mail.id))
            self._last_id = max([self._last_id] + [int(mail.id) for mail in self._mails])

    def _start_viewer(self) -> None:
        try:
            server = ThreadingHTTPServer((self.host, self.http_port), _ViewerHandler)
        except OSError as exc:
            raise ServiceError(f"the mail sink's viewer cannot listen on {self.host}:{self.http_port} "
                               f"({exc}); choose another port (--http-port) or stop what uses it.") from exc
        server.daemon_threads = True
        server.sink = self  # type: ignore[attr-defined]
        self._http = server
        self.http_port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"mailsink-viewer-{self.http_port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
        server, self._http = self._http, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "MailSink":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- mails -------------------------------------------------------------------------------

    def _store(self, mail_from: str, rcpt_tos: tuple[str, ...], raw: bytes) -> StoredMail:
        """Called on the SMTP thread for each mail accepted; wakes ``wait_for``."""
        with self._changed:
            self._last_id += 1
            mail = StoredMail(id=f"{self._last_id:06d}", mail_from=mail_from, rcpt_tos=rcpt_tos,
                              received_at=_now_iso(), raw=raw)
            if self.folder is not None:
                _save(self.folder, mail)
            self._mails.append(mail)
            self._changed.notify_all()
        return mail

    @property
    def messages(self) -> list[StoredMail]:
        """All mails received, oldest first (a copy: safe to keep while mails arrive)."""
        with self._changed:
            return list(self._mails)

    def get(self, mail_id: str) -> StoredMail | None:
        with self._changed:
            return next((mail for mail in self._mails if mail.id == mail_id), None)

    def wait_for(self, to: str | None = None, count: int = 1, timeout: float = 10.0) -> list[StoredMail]:
        """The mails (to ``to``, if given: a recipient of the SMTP envelope, compared
        case-insensitively) once there are at least ``count``; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [mail for mail in self._mails if _addressed_to(mail, to)]
                left = deadline - time.monotonic()
                if len(found) >= count or left <= 0:
                    break
                self._changed.wait(left)
            if len(found) >= count:
                return found
            seen = sorted({rcpt for mail in self._mails for rcpt in mail.rcpt_tos})
        raise TimeoutError(
            f"mail sink: waited {timeout:g}s for {count} mail(s)"
            f"{f' to {to}' if to else ''}, got {len(found)}; it holds {len(self.messages)} "
            f"mail(s) in all, to: {', '.join(seen[:10]) or 'nobody'}{' ...' if len(seen) > 10 else ''}")

    def clear(self) -> None:
        """Forget every mail, in memory and in the folder. Ids keep counting up, so a
        viewer tab left open never shows a different mail under the same address."""
        with self._changed:
            self._mails.clear()
            if self.folder is not None and self.folder.is_dir():
                _remove_stored(self.folder)
            self._changed.notify_all()

    def set_failure(self, mode: str | None) -> None:
        """None accepts mail; "tempfail" answers 451 4.3.0 to RCPT TO, "permfail" 550 5.1.1."""
        if mode not in FAILURE_MODES:
            raise ValueError(f"set_failure: {mode!r}; choose None, 'tempfail' or 'permfail'")
        self.failure = mode

    def add_page(self, path: str, html: str) -> None:
        """Serve ``html`` as-is at ``path`` (no CSP): a page on an origin other than the app's."""
        if not path.startswith("/") or _RESERVED.match(path):
            raise ValueError(f"add_page: {path!r} must start with / and not be one of the "
                             "viewer's own routes (/, /clear, /api/..., /mail/...)")
        with self._changed:
            self._pages[path] = html.encode("utf-8")

    def page(self, path: str) -> bytes | None:
        with self._changed:
            return self._pages.get(path)


def _addressed_to(mail: StoredMail, to: str | None) -> bool:
    return to is None or to.strip().lower() in (rcpt.lower() for rcpt in mail.rcpt_tos)


# -- the viewer ----------------------------------------------------------------------------------

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 1.5rem auto; max-width: 70rem;
       padding: 0 1rem; color: #1d1d1f; }
h1 { font-size: 1.4rem; } a { color: #0645ad; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #ddd;
         vertical-align: top; overflow-wrap: anywhere; }
th { background: #f4f4f6; } td.when { white-space: nowrap; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
dt { font-weight: 600; } dd { margin: 0; overflow-wrap: anywhere; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f6f6f8; padding: .8rem;
      border: 1px solid #ddd; }
iframe { width: 100%; height: 36rem; border: 1px solid #bbb; background: #fff; }
.muted { color: #666; } form { display: inline; } nav { margin-bottom: 1rem; }
"""


def _page(title: str, body: str) -> bytes:
    """A complete viewer page; ``title`` is escaped here, ``body`` must be escaped already."""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
            f"<body>{body}</body></html>\n").encode("utf-8")


def _index_page(mails: list[StoredMail]) -> bytes:
    rows = "".join(
        f'<tr><td class="when">{html.escape(m.received_at)}</td><td>{html.escape(m.mail_from)}</td>'
        f"<td>{html.escape(', '.join(m.rcpt_tos))}</td>"
        f'<td><a href="/mail/{html.escape(m.id)}">{html.escape(m.subject) or "(no subject)"}</a></td></tr>'
        for m in reversed(mails))
    table = (f"<table><thead><tr><th>Received (UTC)</th><th>From</th><th>To</th><th>Subject</th>"
             f"</tr></thead><tbody>{rows}</tbody></table>" if mails
             else '<p class="muted">No mail yet. Reload this page when one has been sent.</p>')
    return _page("Mail sink", (
        f"<h1>Mail sink: {len(mails)} mail(s)</h1>"
        '<nav><a href="/">Reload</a> · <a href="/api/mails">JSON</a> · '
        '<form method="post" action="/clear"><button type="submit">Delete all mails</button></form>'
        f"</nav>{table}"))


def _mail_page(mail: StoredMail) -> bytes:
    message = mail.message
    quoted = html.escape(mail.id)
    fields = [("Received", mail.received_at), ("Envelope from", mail.mail_from),
              ("Envelope to", ", ".join(mail.rcpt_tos))]
    fields += [(name, _header(message, name) or "(not set)") for name in _SHOWN_HEADERS]
    headers = "".join(f"<dt>{html.escape(name)}</dt><dd>{html.escape(value)}</dd>"
                      for name, value in fields)
    text = mail.text()
    text_block = (f"<pre>{html.escape(text)}</pre>" if text
                  else '<p class="muted">This mail has no text/plain part.</p>')
    html_block = (f'<iframe sandbox="{_SANDBOX}" src="/mail/{quoted}/html" '
                  f'title="HTML part of the mail" referrerpolicy="no-referrer"></iframe>'
                  f'<p><a href="/mail/{quoted}/html" target="_blank" rel="noopener">'
                  "Open the HTML part alone</a></p>" if mail.html()
                  else '<p class="muted">This mail has no text/html part.</p>')
    return _page(f"Mail {mail.id}: {mail.subject}", (
        f'<nav><a href="/">All mails</a> · <a href="/mail/{quoted}.eml">Download .eml</a></nav>'
        f"<h1>{html.escape(mail.subject) or '(no subject)'}</h1><dl>{headers}</dl>"
        f"<h2>Text part</h2>{text_block}<h2>HTML part</h2>{html_block}"))


def _not_found(what: str) -> bytes:
    return _page("Not found", f'<h1>Not found</h1><p>{html.escape(what)}</p><p><a href="/">All mails</a></p>')


class _ViewerHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "OptinProofMailSink/1"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle + delayed ACK
        # add ~40 ms to every keep-alive answer
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        return  # a viewer's requests are not worth a line each on the dev console

    @property
    def sink(self) -> MailSink:
        return self.server.sink  # type: ignore[attr-defined]

    def _send(self, status: int, body: bytes, content_type: str = "text/html; charset=utf-8",
              headers: tuple[tuple[str, str], ...] = ()) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _viewer(self, status: int, body: bytes) -> None:
        self._send(status, body, headers=(("Content-Security-Policy", _VIEWER_CSP),))

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        page = self.sink.page(path)
        if page is not None:
            self._send(200, page)
        elif path == "/":
            self._viewer(200, _index_page(self.sink.messages))
        elif path == "/api/mails":
            body = json.dumps([mail.summary() for mail in self.sink.messages], ensure_ascii=False)
            self._send(200, body.encode("utf-8"), "application/json; charset=utf-8")
        elif path == "/clear":
            self._send(405, _not_found("Delete all mails with the button on the list page (POST)."),
                       headers=(("Allow", "POST"),))
        elif match := _MAIL_ROUTE.match(path):
            self._mail(match["id"], match["what"])
        else:
            self._viewer(404, _not_found(f"Nothing at {path}."))

    do_HEAD = do_GET

    def _mail(self, mail_id: str, what: str | None) -> None:
        mail = self.sink.get(mail_id)
        if mail is None:
            self._viewer(404, _not_found(f"No mail {mail_id} (deleted, or not received yet)."))
        elif what is None:
            self._viewer(200, _mail_page(mail))
        elif what == ".eml":
            self._send(200, mail.raw, "message/rfc822",
                       (("Content-Disposition", f'attachment; filename="{mail.id}.eml"'),))
        elif body := mail.html():
            self._send(200, body.encode("utf-8"), headers=(("Content-Security-Policy", MAIL_HTML_CSP),
                                                           ("Referrer-Policy", "no-referrer")))
        else:
            self._viewer(404, _not_found(f"Mail {mail_id} has no text/html part."))

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > 0:
            self.rfile.read(length)
        path = urlsplit(self.path).path
        if path != "/clear":
            self._viewer(404, _not_found(f"Nothing to post to at {path}."))
        elif not self._same_origin():
            self._viewer(403, _not_found("Only the viewer's own page may delete the mails."))
        else:
            self.sink.clear()
            self._send(303, b"", headers=(("Location", "/"),))

    def _same_origin(self) -> bool:
        """Refuse a cross-site form post (another page open in the browser emptying the sink);
        clients that send no Origin (curl, tests) are let through."""
        origin = self.headers.get("Origin")
        port = self.sink.http_port
        return origin is None or origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}",
                                            self.sink.http_url)


# -- command line ----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack.mailsink", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smtp-port", type=int, default=1025,
                        help="SMTP port on 127.0.0.1 (default 1025; 0: any free port)")
    parser.add_argument("--http-port", type=int, default=8025,
                        help="viewer port on 127.0.0.1 (default 8025; 0: any free port)")
    parser.add_argument("--folder", type=Path, default=None,
                        help="keep the mails as <id>.eml files here, across restarts "
                             "(default: in memory only)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        sink = MailSink(smtp_port=args.smtp_port, http_port=args.http_port, folder=args.folder).start()
    except (ValueError, OSError, ServiceError) as exc:
        print(f"mail sink: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("Mail sink is up.\n"
          f"  SMTP    {sink.host}:{sink.smtp_port}\n"
          f"  Viewer  {sink.http_url}/\n"
          f"  Folder  {sink.folder or '(none: mails are kept in memory)'}"
          f" ({len(sink.messages)} mail(s))\n"
          "Stop it with Ctrl-C.", flush=True)
    try:
        stop.wait()
    finally:
        sink.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
