"""The admin API's import route: a CSV body read as ``optinproof import`` reads a file.

Apart from ``web/blueprints/admin.py`` so the blueprint stays a route map; what an
import does is ``consent/imports``. The body is limited to what one request can import
within API Gateway's 29 s; bigger files go through the CLI, which has no such limit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Response

from chalicelib.consent import imports
from chalicelib.consent.imports.sources import Options
from chalicelib.consent.imports.writer import Importer
from chalicelib.core.errors import BadInput, PayloadTooLarge
from chalicelib.core.logs import log
from chalicelib.core.services import get_catalogue, get_ledger, get_settings
from chalicelib.web import http

if TYPE_CHECKING:
    from chalice.app import Request

    from chalicelib.web.admin_auth import Operator

MAX_IMPORT_BYTES = 1024 * 1024


def answer(request: Request, operator: Operator) -> Response:
    """The summary (counts by grade) and each rejected line, or a clear 400 / 413."""

    params = http.query(request)
    body = request.raw_body or b""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if len(raw) > MAX_IMPORT_BYTES:
        raise PayloadTooLarge(
            f"This file is over {MAX_IMPORT_BYTES // 1024} KB: import it with the CLI "
            "(optinproof import FILE --source ...), which has no size limit."
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252")
    if not text.strip():
        raise BadInput("The body is empty: send the CSV file as the request body.")
    settings = get_settings()
    zone = None
    if params.get("source") == "act" and settings.act:
        from chalicelib.act import dates

        zone = dates.zone(settings.act.timezone)
    importer = Importer(
        get_ledger(),
        settings,
        get_catalogue(),
        params.get("source", ""),
        params.get("purpose") or None,
        Options(params.get("wording"), params.get("act_flag"), params.get("act_date"), zone),
        dry_run=params.get("dry_run") in ("1", "true", "yes"),
        workers=1,
    )
    rejects = imports.RejectsFile(None)
    summary = imports.import_text(importer, text, rejects)
    log("admin_import", operator=operator.name, source=importer.source, rows=summary.rows)
    return http.json_answer(
        request,
        {
            **summary.as_dict(),
            "source": importer.source,
            "purpose": importer.purpose,
            "dry_run": importer.dry_run,
            "rejects": [{"line": r.line, "reason": r.reason} for r in rejects.rejects],
        },
    )
