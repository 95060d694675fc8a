"""``forms``: list the catalogue's signup forms and print their embed code."""

from __future__ import annotations

import os
from typing import Any

import click

from chalicelib.cli.common import group, print_data
from chalicelib.consent.catalogue import load_catalogue
from chalicelib.core.errors import OptinProofError
from chalicelib.core.settings import catalogue_path
from chalicelib.web import embed

forms = group("forms", "list signup forms, print their embed code", "forms list --json")


@forms.command(
    "list",
    short_help="the catalogue's signup forms",
    help="List the [[forms]] of the catalogue.",
    example="forms list --json",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def forms_list(as_json: bool) -> int:
    """Which forms exist and where each may be embedded."""
    catalogue = load_catalogue(catalogue_path())
    rows: list[dict[str, Any]] = [
        {
            "id": f.id,
            "purposes": list(f.purposes),
            "allowed_origins": list(f.allowed_origins),
            "locale": f.locale,
            "ask_name": f.ask_name,
            "min_fill_seconds": f.min_fill_seconds,
            "allow_plain_html": f.allow_plain_html,
            "redirect_after_submit": f.redirect_after_submit,
            "redirect_after_confirm": f.redirect_after_confirm,
        }
        for f in catalogue.forms.values()
    ]
    if as_json:
        print_data(rows, True)
        return 0
    if not rows:
        print("no [[forms]] in the catalogue")
    for row in rows:
        print(
            f"{row['id']:<16} purposes {', '.join(row['purposes'])}; embeddable on "
            f"{', '.join(row['allowed_origins']) or 'no other website'}"
        )
    return 0


@forms.command(
    "snippet",
    short_help="print copy-paste code that embeds a form on a website",
    help="Print embed code for one form: an <iframe> (any site; fill-time check "
    "included), a plain HTML <form> (no script; needs allow_plain_html), or "
    "a script posting JSON (CORS limited to the form's allowed_origins).",
    example="forms snippet --form website --kind iframe --lang fr",
)
@click.option("--form", "form_id", required=True, help="form id from the catalogue")
@click.option(
    "--kind",
    type=click.Choice(list(embed.KINDS)),
    default="iframe",
    help="iframe (default), html or script",
)
@click.option("--lang", type=click.Choice(["en", "fr"]), help="form language")
@click.option("--base-url", help="public base URL (default: $PUBLIC_BASE_URL)")
def forms_snippet(form_id: str, kind: str, lang: str | None, base_url: str | None) -> int:
    """Code a web editor can paste as is, pointing at this deployment."""
    catalogue = load_catalogue(catalogue_path())
    form = catalogue.forms.get(form_id)
    if form is None:
        raise OptinProofError(
            f"no form {form_id!r} in the catalogue; known: {', '.join(catalogue.forms) or 'none'}"
        )
    base = (base_url or os.environ.get("PUBLIC_BASE_URL", "")).rstrip("/")
    if not base:
        raise OptinProofError(
            "PUBLIC_BASE_URL is not set (or pass --base-url): the address "
            "of the app, e.g. https://consent.example.eu"
        )
    print(embed.snippet(kind, base, form, catalogue, lang))
    return 0
