"""Reading form and JSON posts safely: size limit, content type, one value per field."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from chalicelib.core.errors import BadInput, PayloadTooLarge, UnsupportedType

MAX_FORM_BYTES = 16 * 1024
MAX_FIELDS = 100
FORM_TYPE = "application/x-www-form-urlencoded"


JSON_TYPE = "application/json"


#: What Chalice hands over as ``raw_body``: bytes in Lambda, typed ``str | bytes``.
Body = bytes | str | None


def as_bytes(body: Body) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body or b""


def media_type(content_type: str | None) -> str:
    """``application/json; charset=utf-8`` → ``application/json``."""
    return (content_type or "").split(";")[0].strip().lower()


def _checked_body(body: Body, content_type: str | None, expected: str) -> bytes:
    """The body, if it has the expected type and fits the size limit."""
    media = media_type(content_type)
    if media != expected:
        raise UnsupportedType(f"Send this as {expected}, not {media or 'an empty type'}.")
    data = as_bytes(body)
    if len(data) > MAX_FORM_BYTES:
        raise PayloadTooLarge(f"This request is too large (over {MAX_FORM_BYTES // 1024} KB).")
    return data


def parse_form(body: Body, content_type: str | None) -> dict[str, str]:
    """Decode an ``application/x-www-form-urlencoded`` body into a dict of strings."""
    data = _checked_body(body, content_type, FORM_TYPE)
    try:
        pairs = parse_qsl(
            data.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInput("This form could not be read (bad encoding or too many fields).") from exc
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise BadInput(f"The field {name!r} was sent twice.")
        fields[name] = value
    return fields


def parse_json(body: Body, content_type: str | None) -> dict[str, Any]:
    """Decode a JSON object body (same size limit as forms); BadInput says what is wrong."""
    raw = _checked_body(body, content_type, JSON_TYPE)
    try:
        data = json.loads(raw.decode("utf-8"))
    except RecursionError as exc:  # "[[[[…" nested deeper than any form we read
        raise BadInput("The body is not valid JSON: nested too deeply.") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"The body is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise BadInput("The body must be a JSON object.")
    return data


ONE_CLICK = "List-Unsubscribe=One-Click"


def is_one_click(raw: Body, content_type: str | None) -> bool:
    """An RFC 8058 one-click unsubscribe POST: ``List-Unsubscribe=One-Click``, sent
    form-encoded or (as the RFC prefers) as ``multipart/form-data``."""
    body = as_bytes(raw)
    media = media_type(content_type)
    if media == FORM_TYPE:
        return ONE_CLICK.encode() in body.split(b"&")
    if media == "multipart/form-data":
        # Cold start: the e-mail parser is imported only for a multipart one-click POST.
        from email.parser import BytesParser
        from email.policy import default

        message = BytesParser(policy=default).parsebytes(
            b"Content-Type: "
            + (content_type or "").encode("latin-1", "replace")
            + b"\r\n\r\n"
            + body
        )
        for part in message.iter_parts() if message.is_multipart() else []:
            if part.get_param("name", header="content-disposition") == "List-Unsubscribe":
                # Raw bytes: a part with an odd type or charset must not raise.
                payload = part.get_payload(decode=True)
                return isinstance(payload, bytes) and payload.strip() == b"One-Click"
    return False
