"""The Act! Web API client (act.web.api), as Act!'s Swagger and NOTES.md describe it.

What Act! does not give us, the client makes up for:
- no published token lifetime: the JWT is cached per container, refreshed after
  ``_TOKEN_REFRESH`` seconds, and re-authorised once on any 401;
- no documented rate limit or 429: 429, 503 and 5xx are retried with jittered
  backoff honouring ``Retry-After`` or ``X-RateLimit-Reset``, and calls slow down
  when ``X-RateLimit-Remaining`` runs low;
- no idempotency key: a POST is never retried after it may have reached Act! (a
  timeout or a 5xx); the caller remembers the posts it may have made and searches
  for its marker before posting again;
- two collection shapes (bare array or ``{"value": [...], "Count": n}``): both read.

Size: one class per remote API, field for field with Act!'s Swagger: paging,
retries and token handling live beside the calls that need them.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import urllib3

from chalicelib.act import dates
from chalicelib.core.clock import parse_instant
from chalicelib.core.errors import (
    ActAuthError,
    ActBadRequest,
    ActError,
    ActNotFound,
    ActUnavailable,
)
from chalicelib.core.logs import log
from chalicelib.core.settings import ActSettings

_TOKEN_REFRESH = 30 * 60  # Act! publishes no lifetime; one install saw 65 minutes
_RETRYABLE = {429, 500, 502, 503, 504}
_MAX_WAIT = 30.0  # longest single wait inside one call; longer Retry-After: give up, come back
_MAX_TOTAL_WAIT = 60.0  # all waits of one call together
_LOW_REMAINING = 3
_POOL = urllib3.PoolManager(num_pools=4, maxsize=16, retries=False)
_TOKENS: dict[tuple[str, str, str], tuple[str, float]] = {}
_TOKENS_LOCK = threading.Lock()


def odata_string(value: str) -> str:
    """An OData string literal: single quotes, inner quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def collection(payload: Any) -> list[dict[str, Any]]:
    """Items of a collection answer, bare array or ``{"value": [...]}`` envelope."""
    return collection_and_count(payload)[0]


def collection_and_count(payload: Any) -> tuple[list[dict[str, Any]], int | None]:
    """Items of a collection answer and the count it reports, if any.

    The envelope's ``Count`` was seen to be the page size on one install, so it only
    means a total when it is larger than the page (OData's ``@odata.count`` always is).
    """
    if isinstance(payload, list):
        return payload, None
    if isinstance(payload, dict) and isinstance(payload.get("value"), list):
        count = payload.get("@odata.count", payload.get("Count"))
        return payload["value"], count if isinstance(count, int) and count >= 0 else None
    raise ActError(
        f"Act! answered a collection with an unexpected shape ({type(payload).__name__})."
    )


def _error_message(response: urllib3.BaseHTTPResponse) -> str:
    body = _json_or_none(response.data) if response.data else {}
    if body is None:
        return (response.data or b"")[:200].decode("utf-8", "replace")
    if isinstance(body, dict):
        return str(body.get("exceptionMessage") or body.get("message") or body)[:300]
    return str(body)[:300]


def _json_or_none(data: bytes | None) -> Any:
    """Parsed JSON, or None for a body that is not JSON (e.g. an HTML error page)."""
    try:
        return json.loads(data or b"")
    except ValueError:
        return None


def _reset_delay(headers: Any, now: float) -> float | None:
    """Seconds to wait from ``Retry-After`` or ``X-RateLimit-Reset`` (epoch, delta or HTTP date)."""
    for name in ("Retry-After", "X-RateLimit-Reset"):
        value = headers.get(name)
        if not value:
            continue
        value = value.strip()
        try:
            number = float(value)
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - now)
            except (TypeError, ValueError):
                continue
        return max(0.0, number - now) if number > 10**9 else max(0.0, number)
    return None


@dataclass
class ActClient:
    """One Act! database, reached as one integration user."""

    config: ActSettings
    sleep: Callable[[float], None] = time.sleep
    http: urllib3.PoolManager = _POOL

    @property
    def tz(self) -> ZoneInfo:
        """The Act! server's zone (``ACT_TIMEZONE``): its dates are wall times there."""
        return dates.zone(self.config.timezone)

    @property
    def _token_key(self) -> tuple[str, str, str]:
        return (self.config.api_url, self.config.database, self.config.username)

    # -- authentication ------------------------------------------------------------

    def authorize(self, refresh_from: str | None = None) -> str:
        """Get a JWT: Basic credentials, or a refresh from a still-valid Bearer token."""
        if refresh_from:
            auth = f"Bearer {refresh_from}"
        else:
            pair = f"{self.config.username}:{self.config.password}".encode()
            auth = "Basic " + base64.b64encode(pair).decode("ascii")
        response = self._send(
            "GET", "/authorize", {"Authorization": auth, "Act-Database-Name": self.config.database}
        )
        if response.status == 401:
            if refresh_from:
                return self.authorize()
            raise ActAuthError(
                "Act! refused the sign-in. Check ACT_USERNAME (the user's name as shown in "
                "Act!'s Manage Users, e.g. 'John Hollo'), ACT_PASSWORD and ACT_DATABASE "
                f"({self.config.database!r}); Act! does not say which one is wrong."
            )
        if response.status != 200:
            raise ActUnavailable(
                f"Act! sign-in answered HTTP {response.status}: {_error_message(response)}"
            )
        token = response.data.decode("utf-8").strip().strip('"')
        if token.count(".") != 2:
            raise ActError(
                "Act! sign-in did not return a token; is ACT_API_URL the API "
                "address (ending in /act.web.api)?"
            )
        with _TOKENS_LOCK:
            _TOKENS[self._token_key] = (token, time.monotonic())
        return token

    def _token(self) -> str:
        with _TOKENS_LOCK:
            cached = _TOKENS.get(self._token_key)
        if cached and time.monotonic() - cached[1] < _TOKEN_REFRESH:
            return cached[0]
        return self.authorize(refresh_from=cached[0] if cached else None)

    def _forget_token(self, token: str) -> None:
        with _TOKENS_LOCK:
            if _TOKENS.get(self._token_key, ("",))[0] == token:
                del _TOKENS[self._token_key]

    # -- transport -----------------------------------------------------------------

    def _send(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> urllib3.BaseHTTPResponse:
        try:
            return self.http.request(
                method,
                self.config.api_url + path,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(
                    connect=min(5.0, self.config.timeout), read=self.config.timeout
                ),
                retries=False,
                redirect=False,
            )
        except urllib3.exceptions.ConnectTimeoutError as exc:
            raise ActUnavailable(
                f"cannot reach Act! at {self.config.api_url} (connect timeout)"
            ) from exc
        except urllib3.exceptions.NewConnectionError as exc:
            raise ActUnavailable(f"cannot reach Act! at {self.config.api_url}: {exc}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise ActUnavailable(
                f"Act! did not answer in {self.config.timeout:g}s ({type(exc).__name__})",
                ambiguous=method != "GET",
            ) from exc

    def request(
        self, method: str, path: str, params: dict[str, Any] | list | None = None, body: Any = None
    ) -> Any:
        """Call ``/api/...``; JSON in and out; retries only what is safe to retry."""
        query = ("?" + urlencode(params, doseq=True, quote_via=quote)) if params else ""
        data = json.dumps(body).encode("utf-8") if body is not None else None
        safe_to_repeat = method in ("GET", "PUT", "PATCH", "DELETE")
        reauthorised, waited = False, 0.0
        for attempt in range(self.config.max_retries + 1):
            try:
                token = self._token()
                headers = {
                    "Authorization": f"Bearer {token}",
                    "Act-Database-Name": self.config.database,
                    "Accept": "application/json",
                }
                if data is not None:
                    headers["Content-Type"] = "application/json"
                response = self._send(method, path + query, headers, data)
            except ActUnavailable as exc:
                if (exc.ambiguous and not safe_to_repeat) or attempt == self.config.max_retries:
                    raise
                waited += self._backoff(attempt, None, waited)
                continue
            if response.status == 401 and not reauthorised:
                self._forget_token(token)
                reauthorised = True
                continue
            if (
                response.status in _RETRYABLE
                and attempt < self.config.max_retries
                and (safe_to_repeat or response.status == 429)
            ):
                waited += self._backoff(attempt, response, waited)
                continue
            self._pace(response)
            return self._result(method, path, response)
        raise ActUnavailable(
            f"Act! {method} {path} kept failing after {self.config.max_retries + 1} attempts"
        )

    def _backoff(
        self, attempt: int, response: urllib3.BaseHTTPResponse | None, waited: float
    ) -> float:
        """Wait before a retry; give up (with Act!'s delay) when told to wait too long."""
        told = _reset_delay(response.headers, time.time()) if response is not None else None
        delay = told if told is not None else random.uniform(0, min(_MAX_WAIT, 0.2 * 2**attempt))
        if delay > _MAX_WAIT or waited + delay > _MAX_TOTAL_WAIT:
            raise ActUnavailable(
                f"Act! asks to wait {delay:.0f}s (HTTP "
                f"{getattr(response, 'status', '-')}); retrying later",
                retry_after=delay,
            )
        log(
            "act_retry",
            attempt=attempt + 1,
            status=getattr(response, "status", None),
            wait=round(delay, 3),
        )
        self.sleep(delay)
        return delay

    def _pace(self, response: urllib3.BaseHTTPResponse) -> None:
        """Slow down before Act! has to say 429."""
        remaining = response.headers.get("X-RateLimit-Remaining")
        if (
            remaining is not None
            and remaining.strip().isdigit()
            and int(remaining) <= _LOW_REMAINING
        ):
            delay = _reset_delay(response.headers, time.time())
            if delay:
                self.sleep(min(delay / (int(remaining) + 1), _MAX_WAIT))

    def _result(self, method: str, path: str, response: urllib3.BaseHTTPResponse) -> Any:
        status = response.status
        if status in (200, 201):
            try:
                return json.loads(response.data) if response.data else None
            except ValueError as exc:
                raise ActError(f"Act! {method} {path} answered something that is not JSON") from exc
        if status == 204:
            return None
        message = _error_message(response)
        if status == 404:
            raise ActNotFound(f"Act! {method} {path}: not found ({message or 'no detail'})")
        if status == 400:
            raise ActBadRequest(f"Act! rejected {method} {path}: {message}")
        if status == 401:
            with _TOKENS_LOCK:
                _TOKENS.pop(self._token_key, None)
            raise ActAuthError(
                "Act! refused the token twice; check the integration user's "
                "'Web API Access' permission."
            )
        if status == 403:
            raise ActAuthError(
                f"Act! forbids {method} {path} (403: {message}); the user may lack "
                "'Web API Access', or the server's IP allow-list blocks us."
            )
        raise ActUnavailable(
            f"Act! {method} {path} answered HTTP {status}: {message}",
            ambiguous=method == "POST" and status >= 500,
        )

    # -- the calls OptinProof makes --------------------------------------------------

    def system(self) -> dict[str, Any]:
        """``GET /api/system`` (anonymous): API version and culture; the health probe."""
        response = self._send("GET", "/api/system", {"Accept": "application/json"})
        info = _json_or_none(response.data) if response.status == 200 else None
        if isinstance(info, dict):
            return info
        raise ActUnavailable(
            f"Act! /api/system answered HTTP {response.status} without its JSON; "
            f"is ACT_API_URL ({self.config.api_url}) the API address ending in "
            "/act.web.api?"
        )

    def contact_fields(self) -> list[dict[str, Any]]:
        return collection(self.request("GET", "/api/metadata/contact/fields"))

    def create_contact_field(
        self, name: str, field_type: str, length: int | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "type": field_type, "isAllowBlank": True}
        if length:
            body["length"] = length
        return self.request("POST", "/api/metadata/contact/fields", body=body)

    def contacts_by_email(self, email: str) -> list[dict[str, Any]]:
        """Contacts whose primary address is ``email`` (compared case-insensitively)."""
        found = collection(
            self.request(
                "GET",
                "/api/contacts",
                params={"$filter": f"emailAddress eq {odata_string(email)}", "$top": "50"},
            )
        )
        wanted = email.casefold()
        return [c for c in found if str(c.get("emailAddress") or "").casefold() == wanted]

    def contact(self, contact_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/contacts/{quote(contact_id, safe='')}")

    def create_contact(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/api/contacts", body=body)

    def patch_contact(self, contact_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Merge ``body`` into the contact; Act! answers 200 with the contact as stored
        (its Swagger: ``Contact``), which is what a caller checks its values in."""
        return self.request("PATCH", f"/api/contacts/{quote(contact_id, safe='')}", body=body)

    def delete_contact(self, contact_id: str) -> None:
        self.request("DELETE", f"/api/contacts/{quote(contact_id, safe='')}")

    def history_types(self) -> list[dict[str, Any]]:
        return collection(self.request("GET", "/api/history-types"))

    def contact_history(self, contact_id: str, containing: str) -> list[dict[str, Any]]:
        return collection(
            self.request(
                "GET",
                f"/api/contacts/{quote(contact_id, safe='')}/history",
                params={"$filter": f"contains(details,{odata_string(containing)})", "$top": "10"},
            )
        )

    def post_history(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/api/History", body=body)

    # -- reading many contacts (campaigns) ------------------------------------------------

    def groups_named(self, name: str) -> list[dict[str, Any]]:
        """Groups whose name is ``name`` (case-insensitive), to pick a campaign's audience."""
        found = collection(
            self.request(
                "GET",
                "/api/groups",
                params={"$filter": f"name eq {odata_string(name)}", "$top": "20"},
            )
        )
        return [g for g in found if str(g.get("name") or "").casefold() == name.casefold()]

    def group(self, group_id: str) -> dict[str, Any]:
        """``GET /api/groups/{groupId}``: one group (ActNotFound when it does not exist)."""
        return self.request("GET", f"/api/groups/{quote(group_id, safe='')}")

    def contact_groups(self, contact_id: str) -> list[dict[str, Any]]:
        """``GET /api/contacts/{contactId}/associated-groups``: the groups a contact is in."""
        return collection(
            self.request("GET", f"/api/contacts/{quote(contact_id, safe='')}/associated-groups")
        )

    def remove_from_group(self, group_id: str, contact_id: str) -> None:
        """``DELETE /api/groups/{groupId}/associated-contacts/{contactId}`` (204)."""
        self.request(
            "DELETE",
            f"/api/groups/{quote(group_id, safe='')}/associated-contacts/"
            f"{quote(contact_id, safe='')}",
        )

    def groups(self, page_size: int = 200) -> list[dict[str, Any]]:
        """Every group (id and name), by name: the list a campaign's audience is picked from.

        ``GET /api/groups`` "Get all groups matching an (optional) OData query" [S]; paged
        like contacts, ordered by name then id so ``$skip`` pages are stable.
        """
        return list(
            self.pages("/api/groups", {"$orderby": "name,id", "$select": "id,name"}, page_size)
        )

    def count_contacts(
        self, odata_filter: str | None = None, group_id: str | None = None, page_size: int = 500
    ) -> int:
        """How many contacts match (all, a group, an OData ``$filter``), read from Act!.

        Act! implements no ``$count`` and reports no reliable total, so the ids are read
        page by page (``$select=id``, the lightest answer) and counted.
        """
        path = (
            f"/api/groups/{quote(group_id, safe='')}/associated-contacts"
            if group_id
            else "/api/contacts"
        )
        params = {"$orderby": "id", "$select": "id"}
        if odata_filter:
            params["$filter"] = odata_filter
        return sum(1 for _ in self.pages(path, params, page_size))

    def iter_contacts(
        self,
        odata_filter: str | None = None,
        group_id: str | None = None,
        page_size: int = 200,
        custom_fields: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Every contact of the database, of a group, or matching an OData ``$filter``;
        with ``custom_fields``, each with its ``customFields`` (a campaign's language field:
        OData selects the whole map, never one key of it).

        Both routes take "an (optional) OData query" (their Swagger summaries; Act!'s
        OData page lists ``/api/groups/{id}/contacts`` among the paged surfaces). Act!
        gives no next link and no reliable total: pages of ``$top`` advance with
        ``$skip``, ordered by ``id``, and :func:`pages` ends every loop.
        """
        path = (
            f"/api/groups/{quote(group_id, safe='')}/associated-contacts"
            if group_id
            else "/api/contacts"
        )
        select = "id,emailAddress,firstName,lastName,edited" + (
            ",customFields" if custom_fields else ""
        )
        params = {"$orderby": "id", "$select": select}
        if odata_filter:
            params["$filter"] = odata_filter
        yield from self.pages(path, params, page_size)

    def pages(
        self, path: str, params: dict[str, str], page_size: int = 200
    ) -> Iterator[dict[str, Any]]:
        """Each record of a collection once, page by page, in a loop that always ends.

        It stops on an empty or short page, once it has as many records as a total Act!
        reports (an envelope ``Count`` larger than the page is one), and when a page
        bigger than asked brings nothing new (the route ignored ``$top`` and ``$skip``
        and sent everything). A full page of records already seen means the route
        ignores ``$skip``: that is an error naming the route, never a silent stop.
        """
        seen: set[str] = set()
        skip, total = 0, None
        while True:
            payload = self.request(
                "GET", path, params={**params, "$top": str(page_size), "$skip": str(skip)}
            )
            page, count = collection_and_count(payload)
            if count is not None and count > len(page):
                total = count
            fresh = [item for item in page if str(item.get("id")) not in seen]
            seen.update(str(item.get("id")) for item in fresh)
            yield from fresh
            if len(page) < page_size or (total is not None and len(seen) >= total):
                return
            if not fresh:
                if len(page) > page_size:
                    return
                raise ActError(
                    f"Act! GET {path} answered the same {len(page)} records again at "
                    f"$skip={skip}: this Act! ignores $skip on that route, so its "
                    "records cannot be read page by page."
                )
            skip += len(page)

    # -- webhooks (self-hosted Act! only) and polling (Act! cloud) --------------------------

    def webhooks(self) -> list[dict[str, Any]]:
        return collection(self.request("GET", "/api/webhooks"))

    def register_webhook(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/api/webhooks", body=body)

    def update_webhook(self, webhook_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("PUT", f"/api/webhooks/{quote(webhook_id, safe='')}", body=body)

    def edited_since(self, since: str, page_size: int = 200) -> Iterator[dict[str, Any]]:
        """Contacts edited after the instant ``since`` (ISO 8601 with its zone), oldest first.

        The literal carries the zone (Act!'s local time and its offset), never a bare
        date. Keyset paging on ``edited`` (``ge`` the last instant seen, ids already
        given at that instant left out), not ``$skip``: our own writes edit contacts
        during a poll, and with ``$skip`` a contact moving later would shift the pages
        and hide another. A full page that brings nothing new cannot make progress:
        an error naming the route, never an endless loop.
        """
        mark, given, skip, strict = parse_instant(since), set(), 0, True
        while True:
            operator = "gt" if strict else "ge"
            page = collection(
                self.request(
                    "GET",
                    "/api/contacts",
                    params={
                        "$filter": f"edited {operator} {dates.literal(mark, self.tz)}",
                        "$orderby": "edited,id",
                        "$top": str(page_size),
                        "$skip": str(skip),
                        "$select": "id,created,edited",
                    },
                )
            )
            fresh = 0
            for contact in page:
                if (
                    dates.from_act(contact.get("edited"), self.tz) == mark
                    and contact["id"] in given
                ):
                    continue
                fresh += 1
                yield contact
            if len(page) < page_size:
                return
            last = dates.from_act(page[-1].get("edited"), self.tz)
            if last is None:
                raise ActError(
                    "Act! GET /api/contacts answered a contact without its 'edited' "
                    "date; contacts edited since a time cannot be read."
                )
            if not fresh:
                raise ActError(
                    f"Act! GET /api/contacts answered {len(page)} contacts edited "
                    f"at {dates.literal(last, self.tz)} again (at $skip={skip}): "
                    "this Act! ignores $skip, so the poll cannot page through them."
                )
            at_last = {c["id"] for c in page if dates.from_act(c.get("edited"), self.tz) == last}
            if last == mark:  # a whole page at one instant: step through it
                skip += page_size
                given |= at_last
            else:
                skip, given = 0, at_last
            mark, strict = last, False
