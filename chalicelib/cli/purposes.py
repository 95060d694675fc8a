"""``purposes``: check the purpose catalogue before deploying it."""

from __future__ import annotations

from pathlib import Path

import click

from chalicelib.cli.common import group, print_data
from chalicelib.consent.catalogue import load_catalogue
from chalicelib.core.settings import catalogue_path

purposes = group("purposes", "check the purpose catalogue", "purposes check")


@purposes.command(
    "check",
    short_help="validate the catalogue and print each purpose's text version",
    help="Load the catalogue ($CONSENT_CATALOGUE or catalogue.toml) as the app "
    "would, and print the purposes with their versions.",
    example="purposes check --json",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def purposes_check(as_json: bool) -> int:
    """Loading it as the app does catches a broken catalogue before people see it."""
    catalogue = load_catalogue(catalogue_path())
    rows = [
        {
            "id": p.id,
            "version": p.version,
            "email_marketing": p.email_marketing,
            "texts": {loc: t.sha256 for loc, t in p.texts.items()},
            "legal_basis": p.legal_basis,
            "opt_out_version": p.opt_out_version,
        }
        for p in catalogue.purposes.values()
    ]
    if as_json:
        print_data({"controller": catalogue.controller.name, "purposes": rows}, True)
    else:
        print(
            f"{catalogue.source}: valid, controller {catalogue.controller.name!r}, "
            f"locales {', '.join(catalogue.locales)}"
        )
        for row in rows:
            basis = "" if row["legal_basis"] == "consent" else f"  ({row['legal_basis']})"
            print(f"  {row['id']:<20} version {row['version']}{basis}")
    return 0


@purposes.command(
    "register",
    short_help="the register of purposes as a PDF, for the record of processing",
    help="Write one page per purpose of the catalogue ($CONSENT_CATALOGUE or "
    "catalogue.toml): its texts in every language with their versions, the legal "
    "basis, the validity, the Act! fields and the forms that ask it.",
    example="purposes register --locale fr --out register-fr.pdf",
)
@click.option(
    "--locale",
    type=click.Choice(["en", "fr"]),
    default="en",
    show_default=True,
    help="language of the register",
)
@click.option("--out", default="purposes-register.pdf", show_default=True, help="the PDF file")
def purposes_register(locale: str, out: str) -> int:
    """What the company files with its record of processing (GDPR art. 30)."""
    from chalicelib.consent import register

    catalogue = load_catalogue(catalogue_path())
    Path(out).write_bytes(register.render(catalogue, locale))
    print(out)
    return 0
