"""Reading form posts safely: size limit, content type, one value per field."""
from __future__ import annotations

from urllib.parse import parse_qsl

from chalicelib.errors import BadInput

MAX_FORM_BYTES = 16 * 1024
MAX_FIELDS = 100
FORM_TYPE = "application/x-www-form-urlencoded"


class PayloadTooLarge(BadInput):
    """Body over :data:`MAX_FORM_BYTES`; mapped to HTTP 413."""


class UnsupportedType(BadInput):
    """Body not form-encoded; mapped to HTTP 415."""


def parse_form(body: bytes | None, content_type: str | None) -> dict[str, str]:
    """Decode an ``application/x-www-form-urlencoded`` body into a dict of strings."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media != FORM_TYPE:
        raise UnsupportedType(f"Send this form as {FORM_TYPE}, not {media or 'an empty type'}.")
    body = body or b""
    if len(body) > MAX_FORM_BYTES:
        raise PayloadTooLarge(f"This form is too large (over {MAX_FORM_BYTES // 1024} KB).")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                          max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInput("This form could not be read (bad encoding or too many fields).") from exc
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise BadInput(f"The field {name!r} was sent twice.")
        fields[name] = value
    return fields
