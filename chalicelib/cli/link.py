"""``link``: mint signed links by hand (tests, support, a person who lost their mail)."""

from __future__ import annotations

import sys

import click

from chalicelib.cli.common import group, print_data
from chalicelib.consent import rules
from chalicelib.core.errors import OptinProofError
from chalicelib.core.services import get_catalogue, get_ledger
from chalicelib.core.settings import get_settings

LINK_ROUTES = {"confirm": "c", "withdraw": "u", "preferences": "p", "rights": "r"}

link = group("link", "mint signed links", "link mint --email ann@example.eu --purpose newsletter")


def link_url(base_url: str, kind: str, token: str, locale: str | None = None) -> str:
    """The public URL of a link: ``<base>/<route>/<token>[?lang=..]``."""
    if not base_url:
        raise OptinProofError(
            "PUBLIC_BASE_URL is not set (or pass --base-url): the address "
            "people open, e.g. https://consent.example.eu"
        )
    suffix = f"?lang={locale}" if locale else ""
    return f"{base_url.rstrip('/')}/{LINK_ROUTES[kind]}/{token}{suffix}"


@link.command(
    "mint",
    short_help="mint a link for an address and purposes, record it, print its URL",
    help="Mint a signed link for one address and one or more purposes, record "
    "its issuance in the proof trail, and print the URL to send.",
    example="link mint --email ann@example.eu --purpose newsletter --purpose events",
)
@click.option("--email", required=True, help="the person's e-mail address")
@click.option(
    "--purpose",
    multiple=True,
    required=True,
    help="a purpose id from the catalogue; repeat for several",
)
@click.option(
    "--kind", type=click.Choice(["confirm"]), default="confirm", help="link kind (default: confirm)"
)
@click.option(
    "--channel",
    default="cli",
    help="how the link reaches the person, recorded in the proof (default: cli)",
)
@click.option(
    "--locale",
    type=click.Choice(["en", "fr"]),
    help="page language to open the link in (default: the browser's)",
)
@click.option("--base-url", help="public base URL (default: $PUBLIC_BASE_URL)")
@click.option("--json", "as_json", is_flag=True, help="print JSON with the link id")
def link_mint(
    email: str,
    purpose: tuple[str, ...],
    kind: str,
    channel: str,
    locale: str | None,
    base_url: str | None,
    as_json: bool,
) -> int:
    """The issuance is recorded like the app's own, so the proof trail has no gap."""
    settings = get_settings()
    issued = rules.issue_link(
        get_ledger(settings),
        settings,
        get_catalogue(settings),
        email,
        list(purpose),
        kind=kind,
        channel=channel,
        locale=locale,
    )
    url = link_url(base_url or settings.public_base_url, kind, issued.token, locale)
    if as_json:
        print_data(
            {
                "url": url,
                "link_id": issued.link_id,
                "subject": issued.subject,
                "expires_at": issued.expires_at,
            },
            True,
        )
    else:
        print(url)
        print(
            f"link {issued.link_id} for subject {issued.subject[:12]}…, "
            f"expires {issued.expires_at}",
            file=sys.stderr,
        )
    return 0
