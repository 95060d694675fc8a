"""Rendering pages: Jinja2 (autoescaped, translated) and the headers every page needs.

Tokens live in URLs, so pages must never leak them: no third-party resource, no
referrer, a strict Content-Security-Policy whose only style is our own inline sheet
(allowed by its hash, so no 'unsafe-inline'), and no framing except where a route
says so. Personal pages are never cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.core.templates import environment, resize_script, stylesheet
from chalicelib.web import errors as web_errors


@dataclass(frozen=True)
class Page:
    """A rendered page with its status and headers, ready for any web framework."""

    body: str
    status: int
    headers: dict[str, str]


def security_headers(
    frame_ancestors: str = "'none'",
    personal: bool = True,
    form_action: str = "'self'",
    script_source: str | None = None,
) -> dict[str, str]:
    """Headers for every HTML page; ``personal`` pages are never stored by caches.

    ``script_source``: the one inline script a framed page may run (by its hash)."""
    _, style_source = stylesheet()
    scripts = f"script-src {script_source}; " if script_source else ""
    headers = {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": (
            f"default-src 'none'; {scripts}style-src {style_source}; img-src 'self' data:; "
            f"form-action {form_action}; base-uri 'none'; frame-ancestors {frame_ancestors}"
        ),
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "interest-cohort=(), camera=(), microphone=(), geolocation=()",
        "Vary": "Accept-Language",
    }
    if frame_ancestors == "'none'":
        headers["X-Frame-Options"] = "DENY"
    headers["Cache-Control"] = "no-store" if personal else "public, max-age=300"
    return headers


def render(
    template: str,
    locale: str,
    status: int = 200,
    frame_ancestors: str = "'none'",
    form_action: str = "'self'",
    **context: Any,
) -> Page:
    """Render ``template`` in ``locale`` with the shared page context.

    Only the embeddable signup form passes ``frame_ancestors`` (its allowed origins);
    a page that may be framed carries the script that reports its height to the
    embedding page (the snippet sizes the iframe with it).
    """
    css, _ = stylesheet()
    script, script_source = resize_script() if frame_ancestors != "'none'" else ("", None)
    body = (
        environment(locale)
        .get_template(template)
        .render(locale=locale, stylesheet=css, resize_script=script, **context)
    )
    return Page(
        body,
        status,
        security_headers(frame_ancestors, form_action=form_action, script_source=script_source),
    )


#: The status code of each error a page can report; one place, first match wins.
#: Kept under its old name for the views: the table itself is :mod:`chalicelib.web.errors`.
error_status = web_errors.status
