"""The Act! Web API simulator: state, HTTP handler, faults, webhook delivery.

It answers like ``https://{server}/act.web.api`` as Act!'s Swagger and NOTES.md (in
``../shared/act-web-api/``) describe it: ``GET /authorize`` hands out HS256 JWTs, every
``/api/*`` call (but ``GET /api/system``) needs ``Authorization: Bearer`` and
``Act-Database-Name``, bodies are checked against Act!'s own definitions, collections
take OData, and errors have the ASP.NET shapes. Faults (latency, 500/429/503, slow
answers after which the write still happens, early token expiry, ignored PATCHes, a
per-minute budget) are switched on per instance with ``set_faults``.

State lives in plain dicts on the instance, guarded by ``sim.lock`` (an RLock);
tests read and write it directly. Choices where Act! publishes nothing are marked
[I] in comments and listed in the package docstring.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import math
import random
import re
import secrets
import socket
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, unquote_plus, urlsplit
from zoneinfo import ZoneInfo

from devstack.act_simulator import odata, seed, swagger, views
from devstack.act_simulator.odata import ODataError
from devstack.act_simulator.swagger import SchemaError
from devstack.dynamodb_local import ServiceError

BASE_PATH = "/act.web.api"
FAULT_KINDS = ("500", "429", "503", "timeout")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_NAMESPACE = uuid.UUID("5f0c8c3e-4d0a-4b8e-9a51-0a1c7e1d2b3f")
_TEXT_TYPES = ("Character", "InitialCaps", "Lowercase", "Uppercase", "Memo", "Url", "Email",
               "Phone", "Address", "Picture")
_DATE_TYPES = ("Date", "DateTime", "AnnualEvent")
_NUMBER_TYPES = ("Number", "Currency", "Decimal", "Calculated")
#: Act! type -> (Column.dataType, Column.columnType, default length) [I: Act! publishes none]
_TYPE_INFO: dict[str, tuple[str, str, int]] = {
    "YesNo": ("Boolean", "bit", 0), "Character": ("String", "nvarchar", 50),
    "InitialCaps": ("String", "nvarchar", 50), "Lowercase": ("String", "nvarchar", 50),
    "Uppercase": ("String", "nvarchar", 50), "Memo": ("String", "ntext", 0),
    "Url": ("String", "nvarchar", 255), "Number": ("Decimal", "decimal", 0),
    "Currency": ("Decimal", "money", 0), "Decimal": ("Decimal", "decimal", 0),
    "Date": ("DateTime", "datetime", 0), "Time": ("DateTime", "datetime", 0),
    "DateTime": ("DateTime", "datetime", 0), "AnnualEvent": ("DateTime", "datetime", 0),
    "Picture": ("Byte[]", "image", 0), "Calculated": ("Decimal", "decimal", 0),
    "Email": ("String", "nvarchar", 128), "Phone": ("String", "nvarchar", 32),
    "Address": ("String", "nvarchar", 128),
}
#: Contact properties the server sets; values sent for them are ignored (silently, as Act! does).
_CONTACT_READ_ONLY = ("id", "created", "edited", "editedBy", "isUser", "isImported", "importDate",
                      "recordManager")
_NAME_PARTS = ("namePrefix", "firstName", "middleName", "lastName", "nameSuffix")
_WEBHOOK_FIELDS = ("monitor", "triggerEvent", "monitorName", "queryOption", "callbackUrl",
                   "callbackId", "description")


# -- faults ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Faults:
    """What goes wrong, per simulator; all off by default. Replace with ``sim.set_faults``.

    Faults that answer instead of the real handler (401/429/500/503/400) change no
    state. ``"timeout"`` is the exception on purpose: the server sleeps
    ``timeout_seconds``, THEN performs the request normally, so a client that gave up
    finds its write done anyway (the case that makes retried POSTs duplicate records).
    ``/authorize`` and ``GET /api/system`` are exempt from ``error_rate``,
    ``bad_request_rate`` and ``token_expiry_rate``; ``latency`` applies to them too;
    ``rate_limit`` counts every ``/api`` call (an IIS-level budget), not ``/authorize``.
    """

    latency: float = 0.0
    error_rate: float = 0.0
    kinds: tuple[str, ...] = ("500",)
    retry_after: bool = False
    token_expiry_rate: float = 0.0
    expired_as_500: bool = False
    ignore_patch: bool = False
    bad_request_rate: float = 0.0
    timeout_seconds: float = 2.0
    rng_seed: int | None = None
    rate_limit: int | None = None
    #: Length of the ``rate_limit`` window in seconds (Act! Cloud: calls per minute).
    rate_window: float = 60.0

    def __post_init__(self) -> None:
        kinds = (self.kinds,) if isinstance(self.kinds, str) else tuple(str(k) for k in self.kinds)
        unknown = [k for k in kinds if k not in FAULT_KINDS]
        if unknown or not kinds:
            raise ValueError(f"Faults.kinds: {unknown or 'empty'}; choose among {', '.join(FAULT_KINDS)}")
        object.__setattr__(self, "kinds", kinds)
        for name in ("error_rate", "token_expiry_rate", "bad_request_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"Faults.{name} must be between 0 and 1")
        if self.latency < 0 or self.timeout_seconds < 0 or self.rate_window <= 0:
            raise ValueError("Faults: latency and timeout_seconds must be >= 0, rate_window > 0")
        if self.rate_limit is not None and self.rate_limit < 0:
            raise ValueError("Faults.rate_limit must be >= 0 (or None for no budget)")


# -- responses ------------------------------------------------------------------------------

@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = "application/json; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


def _json(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return Response(status, body, "application/json; charset=utf-8", list(headers or []))


def _no_content() -> Response:
    return Response(204, b"", None)


class ApiError(Exception):
    """Answer with ``status`` and ``{"message": ...}`` (what ASP.NET Web API sends)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> Response:
        return _json(self.status, {"message": self.message})


def _aspnet_500(exception_type: str, exception_message: str, where: str) -> dict[str, str]:
    """The stock ASP.NET Web API error object, with a plausible (fake) stack trace."""
    return {
        "message": "An error has occurred.",
        "exceptionMessage": exception_message,
        "exceptionType": exception_type,
        "stackTrace": (f"   at Act.Web.Api.Controllers.{where}\r\n"
                       "   at System.Web.Http.Controllers.ApiControllerActionInvoker."
                       "<InvokeActionAsyncCore>d__1.MoveNext()\r\n"
                       "   at System.Web.Http.Dispatcher.HttpControllerDispatcher."
                       "<SendAsync>d__15.MoveNext()"),
    }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_guid(value: str, what: str) -> str:
    if not _GUID.match(value):
        raise ApiError(400, f"The value '{value}' is not a valid {what} (a GUID is expected).")
    return value.lower()


def _column_key(column: dict[str, Any]) -> str:
    return str(column.get("columnName") or "").lower()


# -- request context ------------------------------------------------------------------------

@dataclass
class _Ctx:
    method: str
    path: str
    params: dict[str, str]
    query: list[tuple[str, str]]
    headers: Any
    body: bytes
    user: str | None = None
    route: "_Route | None" = None
    #: The body came form-encoded (values are text until typed by the Swagger).
    form: bool = False

    def json(self) -> Any:
        """The body as JSON, or as a form where the route's Swagger ``consumes`` one.

        415 for other media types: XML is in Act!'s ``consumes`` too, but [I] its
        DataContract shape (namespaces, element order) is not published, so the
        simulator does not guess it. 400 when the body does not parse.
        """
        kind = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        consumes = self.route.consumes if self.route else ()
        if kind == FORM and FORM in consumes:
            self.form = True
            return _form_body(self.body, self.route.body_definition if self.route else None)
        if kind not in ("application/json", "text/json") and not kind.endswith("+json"):
            raise ApiError(415, f"The request entity's media type '{kind}' is not supported for "
                                "this resource (the simulator reads JSON, and forms where the "
                                "Swagger says the route consumes them).")
        if not self.body.strip():
            raise ApiError(400, "The request body is required.")
        try:
            return json.loads(self.body.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ApiError(400, f"The request body is not valid JSON: {exc}") from None


@dataclass
class _Route:
    method: str
    template: str
    handler: Callable[[_Ctx], Response]
    auth: bool = True
    faults: bool = True
    pattern: re.Pattern[str] = field(init=False)
    #: From the route's Swagger operation: takes OData options, body media types, body type.
    odata: bool = field(init=False)
    consumes: tuple[str, ...] = field(init=False)
    body_definition: str | None = field(init=False)

    def __post_init__(self) -> None:
        op = swagger.operation(self.method, self.template)
        self.odata = swagger.takes_odata(op)
        self.consumes = tuple(op.get("consumes") or ())
        self.body_definition = swagger.body_definition(op)
        parts = re.split(r"(\{\w+\})", self.template)
        regex = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
        self.pattern = re.compile(f"^{regex}/?$", re.IGNORECASE)


FORM = "application/x-www-form-urlencoded"


def _form_body(body: bytes, definition: str | None) -> Any:
    """A form-encoded body as ASP.NET binds it: ``a[b]=`` and ``a.b=`` nest, ``a[0][id]=``
    makes a list; values typed from the route's body definition (``swagger.from_form``)."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, f"The form body cannot be read: {exc}") from None
    if not pairs:
        raise ApiError(400, "The request body is required.")
    root: dict[str, Any] = {}
    for key, value in pairs:
        segments = [part for part in re.split(r"[\[\].]+", key) if part]
        if not segments:
            raise ApiError(400, f"The form field name '{key}' cannot be bound.")
        node = root
        for segment in segments[:-1]:
            node = node.setdefault(segment, {})
            if not isinstance(node, dict):
                raise ApiError(400, f"The form field '{key}' conflicts with another field.")
        node[segments[-1]] = value
    data = _lists(root)
    return swagger.from_form(definition, data) if definition else data


def _lists(node: Any) -> Any:
    """Nested dicts whose keys are all 0..n-1 become lists (``contacts[0][id]``)."""
    if not isinstance(node, dict):
        return node
    items = {key: _lists(value) for key, value in node.items()}
    if items and all(key.isdigit() for key in items):
        return [items[key] for key in sorted(items, key=int)]
    return items


# -- the simulator ----------------------------------------------------------------------------

class ActSimulator:
    """An Act! Web API on ``127.0.0.1:<port>``; a context manager, or ``start()``/``stop()``."""

    def __init__(self, port: int = 0, database: str = "OptinProofDemo",
                 users: dict[str, str] | None = None, token_ttl: float = 3900.0,
                 envelope: bool = False, seed: str = "demo", verbose: bool = False,
                 webhook_timeout: float = 5.0, timezone_name: str = "UTC",
                 offsets: bool = False) -> None:
        if seed not in ("demo", "empty"):
            raise ValueError(f"seed must be 'demo' or 'empty', not {seed!r}")
        #: The Act! server's clock: date-times are its wall time there, served without a
        #: zone (``offsets``: with the offset, as some Act! cloud hosts answer).
        self.zone = ZoneInfo(timezone_name)
        self.offsets = offsets
        self.port = port
        self.database = database
        self.users = dict(users if users is not None else {"OptinProof Sync": "sim-password"})
        self.token_ttl = float(token_ttl)
        self.envelope = envelope
        self.verbose = verbose
        self.webhook_timeout = webhook_timeout
        self.lock = threading.RLock()
        self.contacts: dict[str, dict[str, Any]] = {}
        self.histories: dict[str, dict[str, Any]] = {}
        self.fields: list[dict[str, Any]] = []
        self.history_types: list[dict[str, Any]] = []
        self.groups: dict[str, dict[str, Any]] = {}
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, int]] = []
        #: Swagger path template -> OData options that route ignores here, as an Act!
        #: install whose controller does not honour them would (e.g. ``{"$skip"}``).
        self.ignored_options: dict[str, set[str]] = {}
        # private bookkeeping: change sequence per record (for webhooks), webhook secrets
        self._seq = 0
        self._changes: dict[str, dict[str, int]] = {}  # record id -> {"created": seq, "updated": seq}
        self._hooks: dict[str, dict[str, Any]] = {}  # webhook id -> token, cert, mark, restarted
        self._last_stamp = datetime.min.replace(tzinfo=timezone.utc)
        self._secret = secrets.token_bytes(32)
        self._revoked: set[str] = set()
        self._faults = Faults()
        self._rng = random.Random()
        self._rate_start = 0.0
        self._rate_used = 0
        self._deliver_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes = self._build_routes()
        self._seed(seed)

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{BASE_PATH}"

    @property
    def view_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> "ActSimulator":
        if self._server is not None:
            return self
        try:
            server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        except OSError as exc:
            raise ServiceError(f"the Act! simulator cannot listen on 127.0.0.1:{self.port} ({exc}); "
                               "choose another port (--port) or stop what uses it.") from exc
        server.daemon_threads = True
        server.sim = self  # type: ignore[attr-defined]
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"act-simulator-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "ActSimulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults -----------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        with self.lock:
            self._faults = value
            self._rng = random.Random(value.rng_seed)
            self._rate_start, self._rate_used = 0.0, 0

    def set_faults(self, **kwargs: Any) -> Faults:
        """Replace every fault setting (unnamed ones go back to off); resets the RNG and budget."""
        self.faults = Faults(**kwargs)
        return self._faults

    def _roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        if rate >= 1:
            return True
        with self.lock:
            return self._rng.random() < rate

    # -- server-side helpers (the Python API) ------------------------------------------------

    def add_contact(self, **contact_fields: Any) -> dict[str, Any]:
        """Insert a contact as Act! itself would (a person typing it in): id, created, edited set.

        Takes Contact properties (``customFields`` keyed by lower-cased column name);
        ``created``/``edited``/``editedBy``/``id`` are honoured when given. Raises
        ValueError for what the API would answer 400.
        """
        given = {k: contact_fields.pop(k) for k in ("id", "created", "edited", "editedBy")
                 if k in contact_fields}
        with self.lock:
            try:
                contact = self._contact_from_body(contact_fields, None, "create",
                                                  given.get("editedBy") or seed.SEED_USER)
            except ApiError as exc:
                raise ValueError(exc.message) from None
            if given.get("id"):
                contact["id"] = str(given["id"])
            stamp = contact["edited"]
            contact["created"] = given.get("created") or stamp
            contact["edited"] = given.get("edited") or contact["created"]
            self.contacts[contact["id"]] = contact
            self._changes[contact["id"]] = {"created": self._next_seq(), "updated": 0}
            return copy.deepcopy(contact)

    def add_field(self, name: str, type: str = "Character", length: int | None = None) -> dict[str, Any]:
        """Create a contact field like ``POST /api/metadata/contact/fields``; ValueError on 400."""
        with self.lock:
            try:
                body = swagger.coerce(swagger.NEW_COLUMN, {"name": name, "type": type, "length": length})
                return copy.deepcopy(self._create_field(body))
            except SchemaError as exc:
                raise ValueError(str(exc)) from None
            except ApiError as exc:
                raise ValueError(exc.message) from None

    def add_group(self, name: str, member_ids: list[str] | tuple[str, ...] = (),
                  description: str | None = None) -> dict[str, Any]:
        """Create a group holding ``member_ids`` (a simulator convenience; not an API route)."""
        with self.lock:
            stamp = self._stamp()
            group = swagger.blank(swagger.GROUP)
            group.update({"id": str(uuid.uuid4()), "name": name, "description": description,
                          "hierarchyLevel": 0, "created": stamp, "edited": stamp,
                          "editedBy": seed.SEED_USER, "recordManager": seed.SEED_USER,
                          "memberIds": [m for m in member_ids if m in self.contacts]})
            group["contacts"] = len(group["memberIds"])
            self.groups[group["id"]] = group
            return copy.deepcopy(group)

    def history_for(self, contact_id: str) -> list[dict[str, Any]]:
        """Histories linked to ``contact_id``, oldest first (creation order)."""
        with self.lock:
            return [copy.deepcopy(h) for h in self.histories.values()
                    if any(c.get("id") == contact_id for c in h.get("contacts") or [])]

    def token_for(self, user: str | None = None) -> str:
        """A valid JWT for ``user`` (default: the first user), without an HTTP call."""
        return self._issue(user or next(iter(self.users)))

    # -- delivery of webhooks -----------------------------------------------------------------

    def deliver_webhooks(self) -> list[dict[str, Any]]:
        """One polling pass of Act!'s webhook service, driven by hand.

        For each registration not suspended, monitoring Contacts (or History) with
        triggerEvent Created or Updated: the records created (resp. updated after their
        creation) since its last successful delivery, filtered and shaped by its
        ``queryOption``, are POSTed as a JSON array of ``{id, created, edited, ...$select}``
        with ``Authorization: <callbackToken>``. A 2xx answer advances the watermark and
        resets ``failedAttempts``; anything else (or no answer) counts a failed attempt and
        keeps the records for the next pass; the third failure in a row suspends the
        registration (``suspended`` = when, as a date-time, per the Swagger). Returns one
        entry per POST made: ``{"webhook", "callbackUrl", "records", "status", "ok",
        "error", "failedAttempts", "suspended"}``.
        """
        with self._deliver_lock:
            with self.lock:
                jobs = self._delivery_jobs()
            results = []
            for job in jobs:
                status, error = self._post_callback(job["url"], job["token"], job["records"])
                ok = status is not None and 200 <= status < 300
                with self.lock:
                    view, hook = self.webhooks.get(job["id"]), self._hooks.get(job["id"])
                    if view is None or hook is None:
                        continue  # deleted while we were posting
                    if ok:
                        hook["mark"] = max(hook["mark"], job["upto"])
                        view["failedAttempts"] = 0
                        view["lastNotificationSent"] = self._stamp()
                    else:
                        view["failedAttempts"] = int(view.get("failedAttempts") or 0) + 1
                        if hook.get("restarted"):
                            view["failedRestarts"] = int(view.get("failedRestarts") or 0) + 1
                            hook["restarted"] = False
                        if view["failedAttempts"] >= 3 and not view.get("suspended"):
                            view["suspended"] = self._stamp()
                    results.append({"webhook": job["id"], "callbackUrl": job["url"],
                                    "records": job["records"], "status": status, "ok": ok,
                                    "error": error, "failedAttempts": view["failedAttempts"],
                                    "suspended": bool(view.get("suspended"))})
            return results

    def _delivery_jobs(self) -> list[dict[str, Any]]:
        jobs = []
        for hook_id, view in self.webhooks.items():
            hook = self._hooks.get(hook_id, {})
            if view.get("suspended") or view.get("triggerEvent") not in ("Created", "Updated"):
                continue
            if view.get("monitor") == "Contacts":
                table, resolve = self.contacts, self._contact_resolver()
            elif view.get("monitor") == "History":
                table, resolve = self.histories, swagger.resolver(swagger.HISTORY)
            else:
                continue  # the simulator keeps no companies, activities, products...
            which = "created" if view["triggerEvent"] == "Created" else "updated"
            changed = [record for rid, record in table.items()
                       if self._changes.get(rid, {}).get(which, 0) > hook.get("mark", 0)]
            upto = self._seq
            try:
                query = self._hook_query(view.get("queryOption"), resolve)
            except (ApiError, ODataError):
                continue
            selected = odata.apply(query, copy.deepcopy(changed), project=False)
            if not selected:
                hook["mark"] = upto
                continue
            extra = query.select or []
            records = [{"id": r.get("id"), "created": r.get("created"), "edited": r.get("edited"),
                        **{name: r.get(name) for name in extra}} for r in selected]
            jobs.append({"id": hook_id, "url": view.get("callbackUrl"), "token": hook.get("token"),
                         "records": records, "upto": upto})
        return jobs

    def _post_callback(self, url: str, token: str | None, records: list[dict[str, Any]]
                       ) -> tuple[int | None, str | None]:
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "User-Agent": "Act.Webhook.Notifications (Act! Web API simulator)"}
        if token:
            headers["Authorization"] = token
        request = urllib.request.Request(url, data=json.dumps(records, ensure_ascii=False).encode(),
                                         headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.webhook_timeout) as answer:
                answer.read()
                return answer.status, None
        except urllib.error.HTTPError as exc:
            return exc.code, f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"

    # -- time, ids, tokens ----------------------------------------------------------------------

    def _stamp(self) -> str:
        """Now, strictly later than the previous stamp (so ``edited gt`` never misses a write)."""
        with self.lock:
            now = datetime.now(timezone.utc)
            now = now.replace(microsecond=now.microsecond // 1000 * 1000)
            if now <= self._last_stamp:
                now = self._last_stamp + timedelta(milliseconds=1)
            self._last_stamp = now
            return self.served(now)

    def served(self, moment: datetime) -> str:
        """A date-time as this Act! answers it: its wall time, milliseconds, no zone (or,
        with ``offsets``, its offset). [I] NOTES §7: Act! keeps server-local time; the
        ``+00:00`` form was seen on a cloud host."""
        local = moment.astimezone(self.zone)
        text = local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}"
        if self.offsets:
            offset = local.strftime("%z")
            text += f"{offset[:3]}:{offset[3:]}"
        return text

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _user_id(self, user: str) -> str:
        return str(uuid.uuid5(_NAMESPACE, f"user:{user.lower()}"))

    def _issue(self, user: str) -> str:
        now = time.time()
        header = {"alg": "HS256", "typ": "JWT"}
        payload = {"iss": "act.web.api", "sub": self._user_id(user), "unique_name": user,
                   "database": self.database, "jti": uuid.uuid4().hex, "iat": int(now),
                   "nbf": int(now), "exp": round(now + self.token_ttl, 3)}
        signing_input = (_b64(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()))
        signature = hmac.new(self._secret, signing_input.encode("ascii"), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"

    def _verify(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this server issued, still valid; else None."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = json.loads(_unb64(parts[0]))
            claims = json.loads(_unb64(parts[1]))
            signature = _unb64(parts[2])
        except (ValueError, TypeError):
            return None
        expected = hmac.new(self._secret, f"{parts[0]}.{parts[1]}".encode("ascii"),
                            hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected) or header.get("alg") != "HS256":
            return None
        if not isinstance(claims, dict) or float(claims.get("exp", 0)) <= time.time():
            return None
        with self.lock:
            if claims.get("jti") in self._revoked:
                return None
        if claims.get("unique_name") not in self.users:
            return None
        return claims

    # -- HTTP entry point ------------------------------------------------------------------------

    def _serve(self, method: str, target: str, headers: Any, body: bytes) -> Response:
        split = urlsplit(target)
        path = split.path
        if path.lower() == BASE_PATH or path.lower().startswith(BASE_PATH + "/"):
            relative = path[len(BASE_PATH):] or "/"
            logged = unquote(relative) + (f"?{unquote_plus(split.query)}" if split.query else "")
            response = self._serve_api(method, relative, split.query, headers, body)
            with self.lock:
                self.requests.append((method, logged, response.status))
            if self.verbose:
                print(f"act-simulator: {method} {logged} -> {response.status}", file=sys.stderr)
                if body:
                    print(f"  request body: {body[:2000].decode('utf-8', 'replace')}", file=sys.stderr)
            return response
        status, page, content_type, headers = views.serve(self, method, path, split.query, body)
        return Response(status, page, content_type, headers)

    def _serve_api(self, method: str, relative: str, query_string: str, headers: Any,
                   body: bytes) -> Response:
        faults = self._faults
        if faults.latency:
            time.sleep(faults.latency)
        if relative.rstrip("/").lower() == "/authorize":
            # [D] "GET {base}/authorize"; the route is not in the Swagger, so no other verb
            if method != "GET":
                return _json(405, {"message": f"The requested resource does not support http "
                                              f"method '{method}'."})
            return self._authorize(headers)
        route, params, allowed = self._match(method, relative)
        if route is None:
            if allowed:
                return _json(405, {"message": f"The requested resource does not support http "
                                              f"method '{method}'."}, [("Allow", ", ".join(allowed))])
            return _json(404, {"message": f"No HTTP resource was found that matches the request URI "
                                          f"'{BASE_PATH}{relative}'."})
        rate_headers, exhausted = self._rate_limit(faults)
        if exhausted:
            return self._throttled(429, faults, rate_headers)
        query = parse_qsl(query_string, keep_blank_values=True)
        ignored = self.ignored_options.get(route.template, ())
        if not route.odata or ignored:  # Act! ignores OData options on routes that take none
            query = [(name, value) for name, value in query
                     if not name.startswith("$") or (route.odata and name.lower() not in ignored)]
        ctx = _Ctx(method, relative, params, query, headers, body, route=route)
        if route.auth:
            claims = self._authenticate(headers)
            if claims is None:
                return self._unauthorized(faults, rate_headers, route)
            ctx.user = claims["unique_name"]
            if route.faults and self._roll(faults.token_expiry_rate):
                with self.lock:
                    self._revoked.add(claims["jti"])
                return self._unauthorized(faults, rate_headers, route)
        if route.faults and self._roll(faults.error_rate):
            with self.lock:
                kind = self._rng.choice(faults.kinds)
            if kind == "timeout":
                time.sleep(faults.timeout_seconds)  # then do the work: the client gave up, the write lands
            elif kind == "500":
                return _json(500, _aspnet_500(
                    "System.Data.SqlClient.SqlException",
                    "Execution Timeout Expired. The timeout period elapsed prior to completion of the "
                    "operation or the server is not responding.", route.handler.__name__), rate_headers)
            else:
                return self._throttled(int(kind), faults, rate_headers)
        if route.faults and self._roll(faults.bad_request_rate):
            return _json(400, {"message": "The request is invalid."}, rate_headers)
        try:
            response = route.handler(ctx)
        except ApiError as exc:
            response = exc.response()
        except (SchemaError, ODataError) as exc:
            response = _json(400, {"message": str(exc)})
        except Exception as exc:  # a simulator bug: say so like ASP.NET would, and on stderr
            traceback.print_exc(file=sys.stderr)
            response = _json(500, _aspnet_500(f"Simulator.{type(exc).__name__}", str(exc),
                                              route.handler.__name__))
        response.headers.extend(rate_headers)
        return response

    def _match(self, method: str, relative: str) -> tuple[_Route | None, dict[str, str], list[str]]:
        allowed: list[str] = []
        for route in self._routes:
            found = route.pattern.match(relative)
            if not found:
                continue
            if route.method == method:
                return route, {k: unquote(v) for k, v in found.groupdict().items()}, []
            allowed.append(route.method)
        return None, {}, allowed

    def _rate_limit(self, faults: Faults) -> tuple[list[tuple[str, str]], bool]:
        if faults.rate_limit is None:
            return [], False
        with self.lock:
            now = time.time()
            if now >= self._rate_start + faults.rate_window:
                self._rate_start, self._rate_used = now, 0
            self._rate_used += 1
            remaining = max(0, faults.rate_limit - self._rate_used)
            reset = math.ceil(self._rate_start + faults.rate_window)
            exhausted = self._rate_used > faults.rate_limit
        return [("X-RateLimit-Limit", str(faults.rate_limit)),
                ("X-RateLimit-Remaining", str(remaining)),
                ("X-RateLimit-Reset", str(reset))], exhausted

    def _throttled(self, status: int, faults: Faults, rate_headers: list[tuple[str, str]]) -> Response:
        headers = list(rate_headers)
        if status == 429:  # a 429 always names the budget: a nominal one when none is set
            headers = [(k, "0" if k == "X-RateLimit-Remaining" else v) for k, v in headers] or [
                ("X-RateLimit-Limit", "60"), ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", str(math.ceil(time.time() + 1)))]
        # a 503 (IIS: app pool down) has X-RateLimit-* only when a budget is set, like every answer
        if faults.retry_after:  # seconds until the budget's window ends, else 1
            wait = 1
            if rate_headers:
                with self.lock:
                    wait = max(1, math.ceil(self._rate_start + faults.rate_window - time.time()))
            headers.append(("Retry-After", str(wait)))
        if status == 503:  # IIS answers 503 itself, in HTML
            return Response(503, b"<html><body><h1>Service Unavailable</h1><p>HTTP Error 503. The "
                                 b"service is unavailable.</p></body></html>",
                            "text/html; charset=us-ascii", headers)
        return _json(429, {"message": "Too many requests; try again later."}, headers)

    def _unauthorized(self, faults: Faults, rate_headers: list[tuple[str, str]],
                      route: _Route) -> Response:
        if faults.expired_as_500:  # what apimta.act.com answered an anonymous GET /api/contacts
            return _json(500, _aspnet_500("System.NullReferenceException",
                                          "Object reference not set to an instance of an object.",
                                          route.handler.__name__), rate_headers)
        return _json(401, {"message": "Authorization has been denied for this request."},
                     [("WWW-Authenticate", "Bearer"), *rate_headers])

    def _authenticate(self, headers: Any) -> dict[str, Any] | None:
        scheme, _, credentials = (headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        claims = self._verify(credentials.strip())
        database = (headers.get("Act-Database-Name") or "").strip()
        if claims is None or database.lower() != self.database.lower():
            return None
        return claims

    def _authorize(self, headers: Any) -> Response:
        """``GET /authorize``: Basic + database, or a still-valid Bearer -> a bare JWT as text."""
        denied = Response(401, b"", None, [("WWW-Authenticate", 'Basic realm="act.web.api"')])
        scheme, _, credentials = (headers.get("Authorization") or "").strip().partition(" ")
        database = (headers.get("Act-Database-Name") or "").strip()
        user: str | None = None
        if scheme.lower() == "basic":
            try:
                pair = base64.b64decode(credentials.strip(), validate=True)
                text = pair.decode("utf-8") if _is_utf8(pair) else pair.decode("latin-1")
            except ValueError:
                return denied
            name, sep, password = text.partition(":")
            # [I] user names compare case-insensitively (Act! shows display names), passwords exactly
            user = next((u for u in self.users if u.lower() == name.lower()), None)
            if not sep or user is None or not hmac.compare_digest(
                    self.users[user].encode(), password.encode()):
                return denied
            if database.lower() != self.database.lower():
                return denied
        elif scheme.lower() == "bearer":
            claims = self._verify(credentials.strip())
            # the database header may be left out on a refresh; if present it must match
            if claims is None or (database and database.lower() != self.database.lower()):
                return denied
            user = claims["unique_name"]
        else:
            return denied
        return Response(200, self._issue(user).encode("ascii"), "text/html; charset=utf-8")

    # -- routes -------------------------------------------------------------------------------

    def _build_routes(self) -> list[_Route]:
        routes = [
            _Route("GET", "/api/system", self._system, auth=False, faults=False),
            _Route("GET", "/api/contacts", self._contacts_list),
            _Route("POST", "/api/contacts", self._contact_create),
            _Route("GET", "/api/contacts/by-ids", self._contacts_by_ids),
            _Route("GET", "/api/contacts/{contactId}", self._contact_get),
            _Route("PUT", "/api/contacts/{contactId}", self._contact_put),
            _Route("PATCH", "/api/contacts/{contactId}", self._contact_patch),
            _Route("DELETE", "/api/contacts/{contactId}", self._contact_delete),
            _Route("GET", "/api/contacts/{id}/history", self._contact_history),
            _Route("GET", "/api/contacts/{contactId}/associated-groups", self._contact_groups),
            _Route("POST", "/api/sync-data/search-contacts-by-business-email", self._search_by_email),
            _Route("GET", "/api/metadata/{recordType}/fields", self._fields_list),
            _Route("POST", "/api/metadata/{recordType}/fields", self._field_create),
            _Route("GET", "/api/History", self._history_list),
            _Route("POST", "/api/History", self._history_create),
            _Route("GET", "/api/History/{id}", self._history_get),
            _Route("PUT", "/api/History/{id}", self._history_put),
            _Route("PATCH", "/api/History/{id}", self._history_patch),
            _Route("DELETE", "/api/History/{id}", self._history_delete),
            _Route("PUT", "/api/history/{id}/contacts/{contactId}", self._history_add_contact),
            _Route("DELETE", "/api/history/{id}/contacts/{contactId}", self._history_remove_contact),
            _Route("GET", "/api/history-types", self._history_types),
            _Route("GET", "/api/groups", self._groups_list),
            _Route("GET", "/api/groups/{groupId}", self._group_get),
            _Route("GET", "/api/groups/{groupId}/associated-contacts", self._group_contacts),
            _Route("PUT", "/api/groups/{groupId}/associated-contacts/{contactId}", self._group_add),
            _Route("DELETE", "/api/groups/{groupId}/associated-contacts/{contactId}", self._group_remove),
            _Route("GET", "/api/webhooks", self._webhooks_list),
            _Route("POST", "/api/webhooks", self._webhook_create),
            _Route("PUT", "/api/webhooks/reset-token", self._webhook_reset_token),
            _Route("GET", "/api/webhooks/{id}", self._webhook_get),
            _Route("PUT", "/api/webhooks/{id}", self._webhook_put),
            _Route("PATCH", "/api/webhooks/{id}", self._webhook_patch),
            _Route("DELETE", "/api/webhooks/{id}", self._webhook_delete),
            _Route("PUT", "/api/webhooks/{id}/suspend", self._webhook_suspend),
            _Route("PUT", "/api/webhooks/{id}/continue", self._webhook_continue),
        ]
        served = {(r.method, r.template.lower()) for r in routes}
        for method, path in sorted(swagger.operations()):
            if (method, path.lower()) not in served:  # declared by Act!, not simulated: say so
                routes.append(_Route(method, path, self._not_implemented))
        # a literal segment wins over a parameter (by-ids over {contactId})
        routes.sort(key=lambda r: r.template.count("{"))
        return routes

    def routes(self) -> list[tuple[str, str, bool]]:
        """``(method, Swagger path, implemented)`` of every routed operation."""
        return [(r.method, r.template, r.handler != self._not_implemented) for r in self._routes]

    def _not_implemented(self, ctx: _Ctx) -> Response:
        return _json(501, {"message": f"{ctx.method} {ctx.path} is in Act!'s Swagger but the "
                                      "simulator does not implement it."})

    # -- system ------------------------------------------------------------------------------

    def _system(self, ctx: _Ctx) -> Response:
        return _json(200, {
            "apiVersion": "1.1.1324.1", "sdkVersion": "25.101.0.0", "update": 1,
            "culture": {"displayName": "English (United States)", "name": "en-US",
                        "nativeName": "English (United States)", "threeLetterISOLanguageName": "eng",
                        "twoLetterISOLanguageName": "en",
                        "dateTimeFormat": {"fullDateTimePattern": "dddd, MMMM d, yyyy h:mm:ss tt",
                                           "longDatePattern": "dddd, MMMM d, yyyy",
                                           "longTimePattern": "h:mm:ss tt", "shortDatePattern": "M/d/yyyy",
                                           "shortTimePattern": "h:mm tt",
                                           "sortableDateTimePattern": "yyyy'-'MM'-'dd'T'HH':'mm':'ss"}},
        })

    # -- contacts ------------------------------------------------------------------------------

    def _custom_columns(self) -> dict[str, dict[str, Any]]:
        """customFields key (lower-cased column name) -> Column, for every non-built-in field."""
        builtin = {b[1] for b in seed.BUILTIN_FIELDS}
        return {_column_key(c): c for c in self.fields if c.get("columnName") not in builtin}

    def _contact_resolver(self) -> swagger.Resolver:
        types = {}
        for key, column in self._custom_columns().items():
            kind = column.get("type")
            types[key] = ("boolean" if kind == "YesNo" else "number" if kind in _NUMBER_TYPES
                          else "datetime" if kind in _DATE_TYPES else "string")
        return swagger.resolver(swagger.CONTACT, {"customFields": types})

    def _odata(self, ctx: _Ctx, resolve: swagger.Resolver) -> odata.Query:
        """The request's OData options, on a route whose Swagger summary takes "an
        (optional) OData query"; any other route never sees them (see ``_serve_api``)."""
        return odata.parse_query(ctx.query, resolve, zone=self.zone)

    def _contact(self, contact_id: str) -> dict[str, Any]:
        key = _check_guid(contact_id, "contact id")
        contact = self.contacts.get(key) or next(
            (c for cid, c in self.contacts.items() if cid.lower() == key), None)
        if contact is None:
            raise ApiError(404, f"The contact '{contact_id}' does not exist or is not visible to you.")
        return contact

    def _contacts_list(self, ctx: _Ctx) -> Response:
        with self.lock:
            query = self._odata(ctx, self._contact_resolver())
            items = odata.apply(query, copy.deepcopy(list(self.contacts.values())))
        if self.envelope:  # [3P] one v1.1.524 install; Count is the page size
            return _json(200, {"value": items, "Count": len(items)})
        return _json(200, items)

    def _contact_get(self, ctx: _Ctx) -> Response:
        with self.lock:
            return _json(200, copy.deepcopy(self._contact(ctx.params["contactId"])))

    def _contacts_by_ids(self, ctx: _Ctx) -> Response:
        ids = [value for name, value in ctx.query if name.lower() == "ids" and value.strip()]
        if not ids:
            raise ApiError(400, "The 'ids' query parameter is required (repeat it: ?ids=a&ids=b).")
        with self.lock:
            keys = [_check_guid(i.strip(), "contact id") for i in ids]
            found = [copy.deepcopy(self.contacts[k]) for k in dict.fromkeys(keys) if k in self.contacts]
            query = self._odata(ctx, self._contact_resolver())
            return _json(200, odata.apply(query, found))  # unknown ids are left out [I]

    def _contact_create(self, ctx: _Ctx) -> Response:
        body = ctx.json()
        with self.lock:
            contact = self._contact_from_body(body, None, "create", ctx.user or "", ctx.form)
            self.contacts[contact["id"]] = contact
            self._changes[contact["id"]] = {"created": self._next_seq(), "updated": 0}
            return _json(201, copy.deepcopy(contact))

    def _contact_put(self, ctx: _Ctx) -> Response:
        return self._contact_update(ctx, "put")

    def _contact_patch(self, ctx: _Ctx) -> Response:
        if self._faults.ignore_patch:  # [3P] "some PATCHes return 200 without changing anything"
            with self.lock:
                return _json(200, copy.deepcopy(self._contact(ctx.params["contactId"])))
        return self._contact_update(ctx, "patch")

    def _contact_update(self, ctx: _Ctx, mode: str) -> Response:
        body = ctx.json()
        with self.lock:
            existing = self._contact(ctx.params["contactId"])
            contact = self._contact_from_body(body, existing, mode, ctx.user or "", ctx.form)
            self.contacts[existing["id"]] = contact
            self._changes.setdefault(existing["id"], {"created": 0, "updated": 0})["updated"] = \
                self._next_seq()
            return _json(200, copy.deepcopy(contact))

    def _contact_delete(self, ctx: _Ctx) -> Response:
        with self.lock:
            contact = self._contact(ctx.params["contactId"])
            del self.contacts[contact["id"]]
            self._changes.pop(contact["id"], None)
            for group in self.groups.values():
                if contact["id"] in group.get("memberIds", []):
                    group["memberIds"].remove(contact["id"])
                    group["contacts"] = len(group["memberIds"])
            for history_id, history in list(self.histories.items()):
                history["contacts"] = [c for c in history.get("contacts") or []
                                       if c.get("id") != contact["id"]]
                if not history["contacts"] and not history.get("groups"):
                    del self.histories[history_id]  # Act! deletes a contact's own history with it
        return _no_content()

    def _contact_from_body(self, raw: Any, existing: dict[str, Any] | None, mode: str,
                           user: str, form: bool = False) -> dict[str, Any]:
        """The contact after a create / PUT (full replace) / PATCH (merge) with body ``raw``.

        Unknown top-level properties are ignored (ASP.NET/Json.NET behaviour: the call
        succeeds); a declared property of the wrong JSON type is a 400; customFields
        keys must be lower-cased column names known to metadata, values must fit the
        field's type.
        """
        try:
            data = swagger.coerce(swagger.CONTACT, raw)
        except SchemaError as exc:
            raise ApiError(400, str(exc)) from None
        if data is None:
            raise ApiError(400, "The request body is required.")
        custom = self._check_custom(data.pop("customFields", None), form)
        for name in _CONTACT_READ_ONLY:
            data.pop(name, None)
        if mode == "patch" and existing is not None:
            contact = copy.deepcopy(existing)
            for key, value in data.items():
                if isinstance(value, dict) and isinstance(contact.get(key), dict):
                    contact[key].update(value)  # addresses merge line by line, like customFields
                else:
                    contact[key] = value
            contact["customFields"].update(custom)
        else:
            contact = swagger.blank(swagger.CONTACT)
            contact.update({"contactType": "Contact", "isUser": False})
            contact["customFields"] = {key: None for key in self._custom_columns()}
            for key, value in data.items():
                if isinstance(value, dict) and isinstance(contact.get(key), dict):
                    contact[key].update(value)
                else:
                    contact[key] = value
            contact["customFields"].update(custom)
            if existing is not None:
                for key in ("id", "created", "isUser", "importDate", "isImported", "recordManager"):
                    contact[key] = existing.get(key)
            else:
                contact["id"] = str(uuid.uuid4())
                contact["recordManager"] = user
                contact["recordManagerID"] = contact.get("recordManagerID") or self._user_id(user)
        if "fullName" not in data and (existing is None or mode == "put" or
                                       any(part in data for part in _NAME_PARTS)):
            contact["fullName"] = " ".join(str(contact.get(p)) for p in _NAME_PARTS
                                           if contact.get(p)) or None
        stamp = self._stamp()
        if existing is None:
            contact["created"] = stamp
        contact["edited"] = stamp
        contact["editedBy"] = user
        return contact

    def _check_custom(self, custom: Any, form: bool = False) -> dict[str, Any]:
        """customFields checked against metadata; from a form, text typed by the field's
        Act! type first (``true``/``false`` for YesNo, digits for numbers, "" for null)."""
        if custom is None:
            return {}
        if not isinstance(custom, dict):
            raise ApiError(400, "customFields must be an object of key -> value.")
        columns = self._custom_columns()
        result = {}
        for raw_key, value in custom.items():
            key = str(raw_key).lower()
            column = columns.get(key)
            if column is None:
                raise ApiError(400, f"customFields: '{raw_key}' is not a contact field. Keys are the "
                                    "lower-cased columnName values of GET /api/metadata/contact/fields.")
            if column.get("isReadOnly"):
                continue  # read-only fields are ignored silently [3P: "silent no-ops"]
            if form:
                value = _form_value(column, value)
            result[key] = _custom_value(column, value, raw_key, self.zone, self.offsets)
        return result

    def _search_by_email(self, ctx: _Ctx) -> Response:
        body = ctx.json()
        if not isinstance(body, list) or not all(isinstance(e, str) for e in body):
            raise ApiError(400, "The body must be a JSON array of e-mail address strings.")
        with self.lock:
            by_email: dict[str, str] = {}
            for contact in self.contacts.values():
                address = (contact.get("emailAddress") or "").strip().lower()
                if address:
                    by_email.setdefault(address, contact["id"])
            # [I] e-mail -> contact id, matched case-insensitively on emailAddress; misses left out
            return _json(200, {e: by_email[e.strip().lower()] for e in body
                               if e.strip().lower() in by_email})

    def _contact_history(self, ctx: _Ctx) -> Response:
        contact_id = _check_guid(ctx.params["id"], "contact id")
        with self.lock:
            query = self._odata(ctx, swagger.resolver(swagger.HISTORY))
            rows = [copy.deepcopy(h) for h in self.histories.values()
                    if any(c.get("id") == contact_id for c in h.get("contacts") or [])]
            return _json(200, odata.apply(query, rows))

    def _contact_groups(self, ctx: _Ctx) -> Response:
        with self.lock:
            contact = self._contact(ctx.params["contactId"])
            query = self._odata(ctx, swagger.resolver(swagger.GROUP))
            rows = [self._group_view(g) for g in self.groups.values()
                    if contact["id"] in g.get("memberIds", [])]
            return _json(200, odata.apply(query, rows))

    # -- metadata ----------------------------------------------------------------------------------

    def _record_type(self, ctx: _Ctx) -> str:
        kind = ctx.params["recordType"].lower()
        if kind not in ("contact", "company", "group", "opportunity", "product"):
            raise ApiError(400, f"'{ctx.params['recordType']}' is not a record type the simulator "
                                "knows (Contact, Company, Group, Opportunity, Product).")
        return kind

    def _fields_list(self, ctx: _Ctx) -> Response:
        kind = self._record_type(ctx)
        with self.lock:
            query = self._odata(ctx, swagger.resolver(swagger.COLUMN))
            rows = copy.deepcopy(self.fields) if kind == "contact" else []  # only contacts have fields here
            return _json(200, odata.apply(query, rows))

    def _field_create(self, ctx: _Ctx) -> Response:
        if self._record_type(ctx) != "contact":
            raise ApiError(400, "The simulator creates contact fields only.")
        body = swagger.coerce(swagger.NEW_COLUMN, ctx.json())
        with self.lock:
            return _json(201, copy.deepcopy(self._create_field(body)))

    def _create_field(self, body: dict[str, Any]) -> dict[str, Any]:
        name = (body.get("name") or "").strip()
        if not name:
            raise ApiError(400, "name is required")
        if len(name) > 64:
            raise ApiError(400, "name: at most 64 characters")
        for column in self.fields:
            if name.lower() in {str(column.get(k) or "").lower() for k in ("name", "displayName")}:
                raise ApiError(400, f"A contact field named '{name}' already exists.")
        kind = body["type"]
        data_type, column_type, default_length = _TYPE_INFO[kind]
        length = body.get("length")
        if length is not None and kind in _TEXT_TYPES and kind not in ("Memo", "Picture"):
            if not 1 <= length <= 4000:
                raise ApiError(400, "length must be between 1 and 4000")
        else:
            length = default_length
        picklist = body.get("picklist")
        stamp = self._stamp()
        column = swagger.blank(swagger.COLUMN)
        column.update({
            "id": str(uuid.uuid4()), "name": name, "columnName": self._column_name(name),
            "recordType": "Contact", "aliasName": name, "displayName": name,
            "tableName": "TBL_CONTACT", "type": kind, "dataType": data_type, "columnType": column_type,
            "length": length, "precision": body.get("precision"), "scale": body.get("scale"),
            "defaultValue": body.get("defaultValue"), "fieldFormat": body.get("fieldFormat"),
            "isAllowBlank": body.get("isAllowBlank", True) is not False, "isCustom": True,
            "isDefinedField": True, "isDisplayed": True, "isNullable": True,
            "isPrimary": bool(body.get("isPrimary")), "isProtected": False,
            "isReadOnly": kind == "Calculated", "isTracked": bool(body.get("isTracked")),
            "isVirtual": False, "createDate": stamp, "editDate": stamp,
            "picklist": ({"id": picklist.get("id") or str(uuid.uuid4()), "name": picklist.get("name"),
                          "description": None, "isLimitToList": picklist.get("isLimitToList"),
                          "isMultiSelect": picklist.get("isMultiSelect"),
                          "isTypeAhead": picklist.get("isTypeAhead"),
                          "showDescription": picklist.get("showDescription")} if picklist else None),
        })
        self.fields.append(column)
        for contact in self.contacts.values():
            contact.setdefault("customFields", {})[_column_key(column)] = None
        return column

    def _column_name(self, name: str) -> str:
        """``CUST_ConsentNewsletter_041512345``: Act!-style, never derivable from the name alone."""
        stem = "".join(part[:1].upper() + part[1:] for part in re.findall(r"[A-Za-z0-9]+", name))
        taken = {str(c.get("columnName")).upper() for c in self.fields}
        moment = datetime.now(timezone.utc)
        number = int(moment.strftime("%H%M%S")) * 1000 + moment.microsecond // 1000
        while True:
            candidate = f"CUST_{stem[:30] or 'Field'}_{number % 1_000_000_000:09d}"
            if candidate.upper() not in taken:
                return candidate
            number += 1

    # -- history ------------------------------------------------------------------------------------

    def _history(self, history_id: str) -> dict[str, Any]:
        key = _check_guid(history_id, "history id")
        history = self.histories.get(key)
        if history is None:
            raise ApiError(404, f"The history '{history_id}' does not exist or is not visible to you.")
        return history

    def _history_list(self, ctx: _Ctx) -> Response:
        with self.lock:
            query = self._odata(ctx, swagger.resolver(swagger.HISTORY))
            return _json(200, odata.apply(query, copy.deepcopy(list(self.histories.values()))))

    def _history_get(self, ctx: _Ctx) -> Response:
        with self.lock:
            return _json(200, copy.deepcopy(self._history(ctx.params["id"])))

    def _history_create(self, ctx: _Ctx) -> Response:
        body = ctx.json()
        with self.lock:
            history = self._history_from_body(body, None, "create", ctx.user or "")
            self.histories[history["id"]] = history
            self._changes[history["id"]] = {"created": self._next_seq(), "updated": 0}
            return _json(201, copy.deepcopy(history))

    def _history_put(self, ctx: _Ctx) -> Response:
        return self._history_update(ctx, "put")

    def _history_patch(self, ctx: _Ctx) -> Response:
        return self._history_update(ctx, "patch")

    def _history_update(self, ctx: _Ctx, mode: str) -> Response:
        body = ctx.json()
        with self.lock:
            existing = self._history(ctx.params["id"])
            history = self._history_from_body(body, existing, mode, ctx.user or "")
            self.histories[existing["id"]] = history
            self._changes.setdefault(existing["id"], {"created": 0, "updated": 0})["updated"] = \
                self._next_seq()
            return _json(200, copy.deepcopy(history))

    def _history_delete(self, ctx: _Ctx) -> Response:
        with self.lock:
            history = self._history(ctx.params["id"])
            del self.histories[history["id"]]
            self._changes.pop(history["id"], None)
        return _no_content()

    def _history_add_contact(self, ctx: _Ctx) -> Response:
        with self.lock:
            history = self._history(ctx.params["id"])
            contact = self._contact(ctx.params["contactId"])
            if not any(c.get("id") == contact["id"] for c in history["contacts"]):
                history["contacts"].append(self._embedded_contact(contact))
                history["edited"], history["editUserName"] = self._stamp(), ctx.user
                history["editUserID"] = self._user_id(ctx.user or "")
            return _json(200, copy.deepcopy(history))

    def _history_remove_contact(self, ctx: _Ctx) -> Response:
        with self.lock:
            history = self._history(ctx.params["id"])
            contact_id = _check_guid(ctx.params["contactId"], "contact id")
            history["contacts"] = [c for c in history["contacts"] if c.get("id") != contact_id]
        return _no_content()

    def _embedded_contact(self, contact: dict[str, Any]) -> dict[str, Any]:
        return {"id": contact["id"], "displayName": contact.get("fullName"),
                "company": contact.get("company"), "isInvited": False}

    def _history_from_body(self, raw: Any, existing: dict[str, Any] | None, mode: str,
                           user: str) -> dict[str, Any]:
        """A history after create / PUT / PATCH. The author is always the signed-in user:
        ``createUserID``/``recordManagerID`` in the body are ignored [3P]."""
        data = swagger.coerce(swagger.HISTORY, raw)
        if data is None:
            raise ApiError(400, "The request body is required.")
        if data.get("companies") or data.get("opportunities"):
            raise ApiError(400, "The simulator keeps no companies or opportunities; link contacts "
                                "or groups.")
        history = copy.deepcopy(existing) if (existing is not None and mode == "patch") else \
            swagger.blank(swagger.HISTORY)
        if "contacts" in data or existing is None or mode == "put":
            embedded = []
            for item in data.get("contacts") or []:
                contact_id = str((item or {}).get("id") or "")
                if not _GUID.match(contact_id) or contact_id.lower() not in self.contacts:
                    raise ApiError(400, f"contacts: '{contact_id}' is not an existing contact id.")
                embedded.append(self._embedded_contact(self.contacts[contact_id.lower()]))
            history["contacts"] = embedded
        if "groups" in data or existing is None or mode == "put":
            groups = []
            for item in data.get("groups") or []:
                group_id = str((item or {}).get("id") or "")
                if group_id.lower() not in self.groups:
                    raise ApiError(400, f"groups: '{group_id}' is not an existing group id.")
                groups.append({"id": group_id.lower(), "name": self.groups[group_id.lower()]["name"]})
            history["groups"] = groups
        if not history["contacts"] and not history["groups"]:
            raise ApiError(400, "A history must be linked to at least one contact "
                                "(contacts: [{\"id\": ...}]).")
        type_id = data.get("historyTypeID")
        if type_id is None and isinstance(data.get("historyType"), dict):
            type_id = data["historyType"].get("id")
        if type_id is None and existing is not None and mode == "patch":
            type_id = existing.get("historyTypeID")
        history_type = next((t for t in self.history_types if t.get("id") == type_id), None)
        if history_type is None:
            raise ApiError(400, f"historyTypeID {type_id!r} is not a history type "
                                "(see GET /api/history-types)." if type_id is not None else
                                "historyTypeID is required (see GET /api/history-types).")
        history["historyTypeID"] = history_type["id"]
        history["historyType"] = {
            "id": history_type["id"], "name": history_type["name"],
            "activityTypeId": int(history_type["activityTypeId"]) if history_type.get("activityTypeId")
            else None, "activityTypeName": history_type.get("activityTypeName"),
            "description": history_type.get("description")}
        for key in ("regarding", "details", "duration", "isPrivate", "outlookID", "startTime", "endTime"):
            if key in data or mode == "put":
                history[key] = data.get(key) if key != "isPrivate" else bool(data.get(key))
        stamp = self._stamp()
        if existing is None:
            history["id"] = str(uuid.uuid4())
            history["created"] = stamp
            history["createUserName"], history["createUserID"] = user, self._user_id(user)
            history["recordManager"], history["recordManagerID"] = user, self._user_id(user)
        else:
            for key in ("id", "created", "createUserName", "createUserID", "recordManager",
                        "recordManagerID"):
                history[key] = existing.get(key)
        history["startTime"] = history.get("startTime") or stamp
        history["endTime"] = history.get("endTime") or history["startTime"]
        history["edited"] = stamp
        history["editUserName"], history["editUserID"] = user, self._user_id(user)
        first = self.contacts.get(history["contacts"][0]["id"]) if history["contacts"] else None
        if first:
            history["contactEmail"] = first.get("emailAddress")
            history["contactPhone"] = first.get("businessPhone")
            history["contactPhoneExt"] = first.get("businessExtension")
            history["contactCompany"] = first.get("company")
        return history

    def _history_types(self, ctx: _Ctx) -> Response:
        with self.lock:
            query = self._odata(ctx, swagger.resolver(swagger.HISTORY_TYPE))
            return _json(200, odata.apply(query, copy.deepcopy(self.history_types)))

    # -- groups -------------------------------------------------------------------------------------

    def _group_view(self, group: dict[str, Any]) -> dict[str, Any]:
        """A group as served: ``contacts`` is the member count (Swagger), member ids stay private."""
        view = {k: copy.deepcopy(v) for k, v in group.items() if k != "memberIds"}
        view["contacts"] = len(group.get("memberIds", []))
        return view

    def _group(self, group_id: str) -> dict[str, Any]:
        group = self.groups.get(_check_guid(group_id, "group id"))
        if group is None:
            raise ApiError(404, f"The group '{group_id}' does not exist or is not visible to you.")
        return group

    def _groups_list(self, ctx: _Ctx) -> Response:
        with self.lock:
            query = self._odata(ctx, swagger.resolver(swagger.GROUP))
            return _json(200, odata.apply(query, [self._group_view(g) for g in self.groups.values()]))

    def _group_get(self, ctx: _Ctx) -> Response:
        with self.lock:
            return _json(200, self._group_view(self._group(ctx.params["groupId"])))

    def _group_members(self, group: dict[str, Any], ctx: _Ctx | None = None) -> list[dict[str, Any]]:
        rows = [copy.deepcopy(self.contacts[m]) for m in group.get("memberIds", []) if m in self.contacts]
        if ctx is None:
            return rows
        return odata.apply(self._odata(ctx, self._contact_resolver()), rows)

    def _group_contacts(self, ctx: _Ctx) -> Response:
        with self.lock:
            return _json(200, self._group_members(self._group(ctx.params["groupId"]), ctx))

    def _group_add(self, ctx: _Ctx) -> Response:
        with self.lock:
            group = self._group(ctx.params["groupId"])
            contact = self._contact(ctx.params["contactId"])
            if contact["id"] not in group["memberIds"]:
                group["memberIds"].append(contact["id"])
                group["contacts"] = len(group["memberIds"])
            return _json(200, self._group_members(group))

    def _group_remove(self, ctx: _Ctx) -> Response:
        with self.lock:
            group = self._group(ctx.params["groupId"])
            contact_id = _check_guid(ctx.params["contactId"], "contact id")
            if contact_id in group["memberIds"]:
                group["memberIds"].remove(contact_id)
                group["contacts"] = len(group["memberIds"])
        return _no_content()

    # -- webhooks ------------------------------------------------------------------------------------

    def _webhook(self, hook_id: str) -> dict[str, Any]:
        view = self.webhooks.get(_check_guid(hook_id, "webhook id"))
        if view is None:
            raise ApiError(404, f"The webhook '{hook_id}' does not exist.")
        return view

    def _hook_query(self, option: str | None, resolve: swagger.Resolver) -> odata.Query:
        """Parse a registration's ``queryOption`` (``$filter=...&$select=...``)."""
        pairs = []
        for part in (option or "").lstrip("?").split("&"):
            if part.strip():
                name, _, value = part.partition("=")
                pairs.append((unquote(name.strip()), unquote(value)))
        for name, _ in pairs:
            if not name.startswith("$"):
                raise ApiError(400, f"queryOption: '{name}' is not an OData query option.")
        query = odata.parse_query(pairs, resolve, zone=self.zone, allowed=("$filter", "$select", "$orderby", "$top",
                                                             "$skip", "$count"))
        repeated = {"id", "created", "edited"} & set(query.select or [])
        if repeated:  # [D] repeating a default property "may stop the webhook firing": refuse it loudly
            raise ApiError(400, f"queryOption must not $select the default properties "
                                f"({', '.join(sorted(repeated))}); they are always sent.")
        return query

    def _webhook_fields(self, data: dict[str, Any], current: dict[str, Any] | None,
                        mode: str) -> dict[str, Any]:
        merged = {k: (current or {}).get(k) for k in _WEBHOOK_FIELDS} if mode == "patch" else {}
        merged.update({k: data.get(k) for k in _WEBHOOK_FIELDS if k in data or mode != "patch"})
        for required in ("monitor", "triggerEvent", "callbackUrl"):
            if not merged.get(required):
                raise ApiError(400, f"{required} is required.")
        if not re.match(r"^https?://[^\s/]+", merged["callbackUrl"]):
            raise ApiError(400, "callbackUrl must be an absolute http(s) URL.")
        if merged["monitor"] == "Custom" and not merged.get("monitorName"):
            raise ApiError(400, "monitorName is required when monitor is Custom.")
        resolve = (self._contact_resolver() if merged["monitor"] == "Contacts" else
                   swagger.resolver(swagger.HISTORY) if merged["monitor"] == "History" else
                   (lambda path: ("any", path)))
        self._hook_query(merged.get("queryOption"), resolve)
        return merged

    def _webhook_create(self, ctx: _Ctx) -> Response:
        data = swagger.coerce(swagger.WEBHOOK_REQUEST, ctx.json())
        with self.lock:
            merged = self._webhook_fields(data, None, "create")
            stamp = self._stamp()
            view = swagger.blank(swagger.REGISTRATION)
            view.update(merged)
            view.update({
                "id": str(uuid.uuid4()), "name": f"{merged['monitor']}.{merged['triggerEvent']}",
                "userId": self._user_id(ctx.user or ""), "username": ctx.user,
                "database": self.database, "server": "127.0.0.1",
                "authority": f"{self.base_url}/authorize", "resourceUrl": self.base_url,
                "created": stamp, "edited": stamp, "suspended": None, "failedAttempts": 0,
                "failedRestarts": 0, "lastNotificationSent": None})
            self.webhooks[view["id"]] = view
            self._hooks[view["id"]] = {"token": data.get("callbackToken"),
                                       "certHashString": data.get("certHashString"),
                                       "mark": self._seq, "restarted": False}
            return _json(201, copy.deepcopy(view))

    def _webhooks_list(self, ctx: _Ctx) -> Response:
        with self.lock:
            query = self._odata(ctx, swagger.resolver(swagger.REGISTRATION))
            return _json(200, odata.apply(query, copy.deepcopy(list(self.webhooks.values()))))

    def _webhook_get(self, ctx: _Ctx) -> Response:
        with self.lock:
            return _json(200, copy.deepcopy(self._webhook(ctx.params["id"])))

    def _webhook_put(self, ctx: _Ctx) -> Response:
        return self._webhook_update(ctx, "put")

    def _webhook_patch(self, ctx: _Ctx) -> Response:
        return self._webhook_update(ctx, "patch")

    def _webhook_update(self, ctx: _Ctx, mode: str) -> Response:
        data = swagger.coerce(swagger.WEBHOOK_REQUEST, ctx.json())
        with self.lock:
            view = self._webhook(ctx.params["id"])
            merged = self._webhook_fields(data, view, mode)
            hook = self._hooks.setdefault(view["id"], {"mark": self._seq})
            if (merged["monitor"], merged["triggerEvent"]) != (view["monitor"], view["triggerEvent"]):
                hook["mark"] = self._seq  # a new subject: start from now
            view.update(merged)
            view["name"] = f"{view['monitor']}.{view['triggerEvent']}"
            for secret in ("callbackToken", "certHashString"):
                if secret in data or mode == "put":
                    hook["token" if secret == "callbackToken" else secret] = data.get(secret)
            view["edited"] = self._stamp()
            return _json(200, copy.deepcopy(view))

    def _webhook_delete(self, ctx: _Ctx) -> Response:
        with self.lock:
            view = self._webhook(ctx.params["id"])
            del self.webhooks[view["id"]]
            self._hooks.pop(view["id"], None)
        return _no_content()

    def _webhook_suspend(self, ctx: _Ctx) -> Response:
        with self.lock:
            view = self._webhook(ctx.params["id"])
            if not view.get("suspended"):
                view["suspended"] = self._stamp()
            view["edited"] = self._stamp()
        return _no_content()

    def _webhook_continue(self, ctx: _Ctx) -> Response:
        with self.lock:
            view = self._webhook(ctx.params["id"])
            was_failing = int(view.get("failedAttempts") or 0) > 0
            view["suspended"] = None
            view["failedAttempts"] = 0
            view["edited"] = self._stamp()
            self._hooks.setdefault(view["id"], {"mark": self._seq})["restarted"] = was_failing
        return _no_content()

    def _webhook_reset_token(self, ctx: _Ctx) -> Response:
        """[I] Re-stamps the user's registrations (Act!'s service would re-read the user's token)."""
        with self.lock:
            mine = [v for v in self.webhooks.values() if v.get("username") == ctx.user]
            if not mine:
                raise ApiError(404, "You have no webhook registrations.")
            stamp = self._stamp()
            for view in mine:
                view["edited"] = stamp
            return _json(200, copy.deepcopy(mine[-1]))

    # -- seeding -------------------------------------------------------------------------------------

    def _seed(self, kind: str) -> None:
        with self.lock:
            long_ago = self.served(datetime(2015, 1, 1, tzinfo=timezone.utc))
            for display, column_name, act_type, length, _path, read_only in seed.BUILTIN_FIELDS:
                self.fields.append(self._seed_column(display, column_name, act_type, length, False,
                                                     read_only, long_ago))
            for display, column_name, act_type, length in seed.STANDARD_CUSTOM_FIELDS:
                # isCustom true: exactly the fields keyed in customFields are marked custom
                self.fields.append(self._seed_column(display, column_name, act_type, length, True,
                                                     False, long_ago))
            for type_id, name, activity_id, activity_name, recordable in seed.HISTORY_TYPES:
                self.history_types.append({
                    "id": type_id, "name": name, "activityTypeId": activity_id,
                    "activityTypeName": activity_name, "description": name, "isActive": True,
                    "isCustom": False, "isDefault": name == "General", "isUserRecordable": recordable})
            if kind == "empty":
                return
            now = datetime.now(timezone.utc).replace(microsecond=0)
            ids = []
            for number, spec in enumerate(seed.DEMO_CONTACTS):
                spec = dict(spec)
                when = self.served(now - timedelta(days=spec.pop("days_ago"), minutes=number))
                contact_id = str(uuid.uuid5(_NAMESPACE, f"demo-contact-{number}"))
                ids.append(self.add_contact(id=contact_id, created=when, edited=when,
                                            editedBy=seed.SEED_USER, **spec)["id"])
            for number, (name, description, members) in enumerate(seed.DEMO_GROUPS):
                group = self.add_group(name, [ids[i] for i in members], description)
                del self.groups[group["id"]]
                group["id"] = str(uuid.uuid5(_NAMESPACE, f"demo-group-{number}"))
                self.groups[group["id"]] = group

    def _seed_column(self, display: str, column_name: str, act_type: str, length: int,
                     custom: bool, read_only: bool, stamp: str) -> dict[str, Any]:
        data_type, column_type, _ = _TYPE_INFO[act_type]
        column = swagger.blank(swagger.COLUMN)
        column.update({
            "id": str(uuid.uuid5(_NAMESPACE, f"column:{column_name}")), "name": display,
            "columnName": column_name, "recordType": "Contact", "aliasName": display,
            "displayName": display, "tableName": "TBL_CONTACT", "type": act_type,
            "dataType": data_type, "columnType": column_type, "length": length,
            "isAllowBlank": True, "isCustom": custom, "isDefinedField": True, "isDisplayed": True,
            "isNullable": True, "isReadOnly": read_only, "createDate": stamp, "editDate": stamp,
            "picklist": None})
        return column


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _form_value(column: dict[str, Any], value: Any) -> Any:
    """A custom field's form text as the JSON value its Act! type takes."""
    if not isinstance(value, str):
        return value
    kind, text = column.get("type"), value.strip()
    if text == "" and kind not in _TEXT_TYPES:
        return None
    if kind == "YesNo" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if kind in _NUMBER_TYPES:
        try:
            return int(text) if text.lstrip("-").isdigit() else float(text)
        except ValueError:
            return value
    return value


def _custom_value(column: dict[str, Any], value: Any, key: str, zone: tzinfo,
                  offsets: bool = False) -> Any:
    """A custom field value checked (and, for dates, normalised) for the field's Act! type.

    [I] by analogy with the Swagger's typing of built-in fields: YesNo -> boolean;
    Number/Currency/Decimal -> number; Date/DateTime -> ISO-8601 string, kept as Act!
    does in server-local time without zone (a value without zone is taken as that wall
    time; one with a zone is converted to the server's ``zone``; Date keeps midnight);
    text types -> string no longer than the field's length. ``null`` clears any field;
    ``""`` clears a date field and is an empty string for text. With ``offsets`` a date
    is answered with the server's offset (``2026-03-01T10:15:00+01:00``), as seen on a
    cloud host.
    """
    kind = column.get("type")
    label = f"customFields.{key} ({column.get('displayName')}, {kind})"
    if value is None:
        return None
    if kind == "YesNo":
        if not isinstance(value, bool):
            raise ApiError(400, f"{label}: expected true or false, got {value!r}")
        return value
    if kind in _NUMBER_TYPES:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ApiError(400, f"{label}: expected a number, got {value!r}")
        return value
    if kind in _DATE_TYPES or kind == "Time":
        if not isinstance(value, str):
            raise ApiError(400, f"{label}: expected an ISO-8601 date string, got {value!r}")
        if not value.strip():
            return None
        try:
            if kind == "Time":
                swagger.parse_time(value)
                return value.strip()
            moment = swagger.parse_datetime(re.sub(r"(\.\d{6})\d+", r"\1", value))
        except ValueError:
            raise ApiError(400, f"{label}: {value!r} is not an ISO-8601 date") from None
        if moment.tzinfo is not None:
            moment = moment.astimezone(zone).replace(tzinfo=None)
        if kind in ("Date", "AnnualEvent"):
            moment = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        if offsets:
            offset = moment.replace(tzinfo=zone).strftime("%z")
            return moment.strftime("%Y-%m-%dT%H:%M:%S") + f"{offset[:3]}:{offset[3:]}"
        return moment.strftime("%Y-%m-%dT%H:%M:%S")
    if not isinstance(value, str):
        raise ApiError(400, f"{label}: expected a string, got {value!r}")
    length = column.get("length") or 0
    if length > 0 and len(value) > length:
        raise ApiError(400, f"{label}: {len(value)} characters, the field holds {length}")
    return value


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle + delayed ACK
        # add ~40 ms to every keep-alive answer
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        return  # requests are in sim.requests; --verbose prints them (to stderr)

    def _handle(self) -> None:
        sim: ActSimulator = self.server.sim  # type: ignore[attr-defined]
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            response = Response(411, b"", None)
            self.close_connection = True
        else:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = 0
            body = self.rfile.read(length) if length > 0 else b""
            response = sim._serve(self.command, self.path, self.headers, body)
        try:
            self.send_response(response.status)
            if response.content_type:
                self.send_header("Content-Type", response.content_type)
            for name, value in response.headers:
                self.send_header(name, value)
            if self.path.lower().startswith(BASE_PATH):
                self.send_header("X-AspNet-Version", "4.0.30319")
                self.send_header("Cache-Control", "no-cache")
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a "timeout" fault does that)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle
