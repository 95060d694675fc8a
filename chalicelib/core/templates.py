"""The Jinja2 templates and the stylesheet every page and mail is made from.

In ``core`` because three capabilities render them: the web pages, the mails
(``mail.compose``, breach notices) and the evidence pack; none of those should import
the web layer to get a template. Environments are built on first use and cached per
locale, so an import costs nothing.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from jinja2 import Environment, FileSystemLoader

from chalicelib.core.i18n import format_moment, translations
from chalicelib.core.settings import PACKAGE_ROOT

TEMPLATE_DIR = PACKAGE_ROOT / "templates"
STYLESHEET = TEMPLATE_DIR / "static" / "page.css"
RESIZE_SCRIPT = TEMPLATE_DIR / "static" / "resize.js"


@lru_cache(maxsize=1)
def stylesheet() -> tuple[str, str]:
    """The inline stylesheet and its CSP source expression."""
    css = STYLESHEET.read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode()
    return css, f"'sha256-{digest}'"


@lru_cache(maxsize=1)
def resize_script() -> tuple[str, str]:
    """The framed pages' one script (it posts the page's height to the embedding page)
    and its CSP source expression."""
    js = RESIZE_SCRIPT.read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode()
    return js, f"'sha256-{digest}'"


@lru_cache(maxsize=8)
def environment(locale: str) -> Environment:
    """One Jinja2 environment per locale, with its translations installed."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        # Plain-text mails are not HTML: escaping "&" there would corrupt addresses.
        autoescape=lambda name: not (name or "").endswith(".txt"),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.filters["moment"] = lambda value: format_moment(value, locale)
    env.filters["paragraphs"] = lambda text: [p.strip() for p in text.split("\n\n") if p.strip()]
    return env
