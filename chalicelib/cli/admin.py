"""``admin``: short-lived access to the admin API and the dashboard."""

from __future__ import annotations

import sys

import click

from chalicelib.cli.common import group
from chalicelib.core.settings import get_settings, parse_duration
from chalicelib.web import admin_auth

admin = group("admin", "access to the admin API", "admin token --operator alice@example.eu")


@admin.command(
    "token",
    short_help="mint a short-lived admin API token for an operator",
    help="Print a bearer token for the admin API (/admin/...), signed with the newest "
    "ADMIN_SECRET_KEYS key. Send it as 'Authorization: Bearer <token>'. It "
    "expires by itself; removing the key from ADMIN_SECRET_KEYS revokes every "
    "token it signed.",
    example="admin token --operator alice@example.eu --ttl 2h",
)
@click.option(
    "--operator",
    required=True,
    help="who will use it (logged with every call), e.g. alice@example.eu",
)
@click.option("--ttl", default="1h", help="lifetime: 90s, 15m, 1h … at most 12h (default 1h)")
def admin_token(operator: str, ttl: str) -> int:
    """Short-lived and named, so every admin call is attributable and expires."""
    lifetime = parse_duration(ttl, "--ttl")
    token = admin_auth.mint(get_settings(), operator, lifetime)
    print(token)
    print(
        f"valid {ttl} for {operator}; use: curl -H 'Authorization: Bearer {token}' "
        f"{get_settings().public_base_url or 'http://127.0.0.1:8000'}/admin/campaigns",
        file=sys.stderr,
    )
    return 0


@admin.command(
    "link",
    short_help="a sign-in link to the dashboard for an operator's browser",
    help="Print a link that signs a browser in to the dashboard (/admin/dashboard) "
    "for --ttl (default 8h, at most 12h): opening it sets an HttpOnly, Secure, "
    "SameSite=Strict cookie. Send it only to the operator it names.",
    example="admin link --operator olga@example.eu --ttl 8h",
)
@click.option("--operator", required=True, help="who will use it (logged)")
@click.option("--ttl", default="8h", help="how long the session lasts (default 8h)")
@click.option("--base-url", help="the app's address (default: PUBLIC_BASE_URL)")
def admin_link(operator: str, ttl: str, base_url: str | None) -> int:
    """A browser cannot send a bearer header; the link sets a cookie instead."""
    settings = get_settings()
    base = base_url or settings.public_base_url or "http://127.0.0.1:8000"
    token = admin_auth.mint(settings, operator, parse_duration(ttl, "--ttl"), use="browser")
    print(admin_auth.login_url(base, token))
    return 0
