"""Who may call the admin API: operators holding a short-lived token the CLI signed.

Why signed tokens rather than IAM authorisation or API Gateway API keys:
- they work the same in Lambda, under ``chalice local`` and in tests, so the check
  that protects production is the one the test suite exercises;
- an operator gets one with a single command (``cli admin token``) from the machine
  that already holds the deployment secrets, and it expires by itself (at most
  12 hours); API Gateway API keys never expire and are meant for metering, not
  for authentication;
- every call is logged with the operator's name written into the token;
- rotating ``ADMIN_SECRET_KEYS`` (newest last) revokes every token signed by a
  removed key at once.

The keys are their own secret (not the link keys): a leaked link key must never
open the admin API. No key set means the admin API is off (403), not open.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from itsdangerous import BadData, URLSafeSerializer

from chalicelib.core.errors import AdminDenied
from chalicelib.core.settings import Settings

_SALT = "optinproof.admin"
MAX_TTL = 12 * 3600
DEFAULT_TTL = 3600
_OPERATOR = re.compile(r"[A-Za-z0-9._@-]{1,64}")


@dataclass(frozen=True)
class Operator:
    """The person an admin token was minted for; ``use`` is ``api`` (a bearer token for
    the admin API) or ``browser`` (a sign-in link's session: reads, and the
    dashboard's own buttons, never the admin API's changes)."""

    name: str
    token_id: str
    expires_at: int
    use: str = "api"


def _serializer(settings: Settings) -> URLSafeSerializer:
    if not settings.admin_secret_keys:
        raise AdminDenied("The admin API is off: set ADMIN_SECRET_KEYS to turn it on.", 403)
    return URLSafeSerializer(
        list(settings.admin_secret_keys),
        salt=_SALT,
        signer_kwargs={"digest_method": hashlib.sha256},
    )


def mint(
    settings: Settings,
    operator: str,
    ttl: int = DEFAULT_TTL,
    now: float | None = None,
    use: str = "api",
) -> str:
    """A bearer token for ``operator``, valid ``ttl`` seconds (at most 12 hours)."""
    if not _OPERATOR.fullmatch(operator or ""):
        raise AdminDenied("Name the operator with 1-64 letters, digits, '.', '_', '@' or '-'.", 400)
    if not 0 < ttl <= MAX_TTL:
        raise AdminDenied(
            f"An admin token lives between 1 second and {MAX_TTL // 3600} hours.", 400
        )
    expires = int((now if now is not None else time.time()) + ttl)
    if use not in ("api", "browser"):
        raise AdminDenied("A token is for the api or a browser.", 400)
    return _serializer(settings).dumps(
        {"op": operator, "exp": expires, "use": use, "jti": secrets.token_urlsafe(9)}
    )


def bearer(header: str | None) -> str:
    """The token of an ``Authorization: Bearer ...`` header."""
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AdminDenied(
            "Send an admin token: Authorization: Bearer <token> "
            "(mint one with: python -m chalicelib.cli admin token)."
        )
    return token.strip()


def verify(settings: Settings, token: str, now: float | None = None) -> Operator:
    """The operator of a valid, unexpired token; AdminDenied otherwise."""
    serializer = _serializer(settings)
    try:
        payload = serializer.loads(token)
    except BadData as exc:
        raise AdminDenied(
            "This admin token is not valid (altered, or its key was retired)."
        ) from exc
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("exp"), int)
        or not isinstance(payload.get("op"), str)
    ):
        raise AdminDenied("This admin token is not one we issue.")
    if payload["exp"] <= (now if now is not None else time.time()):
        raise AdminDenied("This admin token has expired; mint a new one.")
    return Operator(
        payload["op"],
        str(payload.get("jti", "")),
        payload["exp"],
        "browser" if payload.get("use") == "browser" else "api",
    )


# -- the dashboard in a browser: a signed link sets a session cookie ----------------------

COOKIE = "optinproof_admin"


def token_from(headers: dict[str, str], allow_cookie: bool) -> str:
    """The bearer token, or (for pages) the session cookie's token."""
    if headers.get("authorization"):
        return bearer(headers.get("authorization"))
    if allow_cookie:
        for part in (headers.get("cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and value:
                return value
    return bearer(None)


def session_cookie(token: str, operator: Operator, now: float | None = None) -> str:
    """The Set-Cookie value of a browser session: HttpOnly, Secure, SameSite=Strict, /admin."""
    max_age = max(0, operator.expires_at - int(now if now is not None else time.time()))
    return f"{COOKIE}={token}; Path=/admin; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict"


def cleared_cookie() -> str:
    return f"{COOKIE}=; Path=/admin; Max-Age=0; HttpOnly; Secure; SameSite=Strict"


def login_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/admin/login?token={token}"


def authenticate(settings: Settings, headers: dict[str, str], allow_cookie: bool) -> Operator:
    """The operator of a request: the admin API must be on (403), the token valid (401)."""
    _serializer(settings)
    return verify(settings, token_from(headers, allow_cookie))
