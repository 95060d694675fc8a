"""``erase``: erase one person's personal data (GDPR art. 17) and keep the proof."""

from __future__ import annotations

import sys

import click

from chalicelib.cli.common import ExampleCommand, exactly_one, operator, subject_of
from chalicelib.core.services import get_act_client, get_catalogue, get_ledger, get_pusher
from chalicelib.core.settings import get_settings
from chalicelib.proof import audit
from chalicelib.rights import erasure
from chalicelib.store import keys


@click.command(
    "erase",
    cls=ExampleCommand,
    short_help="erase a person's personal data (GDPR art. 17), keep the proof",
    help="Remove the address, name, language, IP addresses and user agents of one "
    "person from the table, end their consent states and links, leave a "
    "tombstone under the keyed hash of the address, and clear or delete their "
    "Act! contact (ERASURE_ACT or --act). The events stay, without personal "
    "data, and their chain still verifies. Idempotent: run again to finish an "
    "Act! step that failed.",
    example="erase --email ann@example.eu --yes",
)
@click.option("--email", help="the person's address")
@click.option("--subject", help="the subject key (64 hex characters)")
@click.option(
    "--act",
    "act_mode",
    type=click.Choice(list(erasure.ACT_MODES)),
    help="Act! contact: clear the consent fields, delete it, or keep it "
    "(default: ERASURE_ACT, clear)",
)
@click.option("--yes", is_flag=True, help="really erase (no undo)")
def erase(email: str | None, subject: str | None, act_mode: str | None, yes: bool) -> int:
    """No undo, hence --yes; exit 2 without it so a script notices it did nothing."""
    exactly_one({"email": email, "subject": subject}, "email", "subject")
    settings = get_settings()
    ledger, key = get_ledger(settings), subject_of(email, subject)
    profile, states = ledger.current(key)
    held = (
        profile is not None
        or states
        or erasure.tombstone(ledger, key)
        or ledger.get(*keys.chain(key))
    )
    if not held:
        print(f"nothing is held about {email or key}", file=sys.stderr)
        return 1
    if not yes:
        print(
            f"would erase subject {key} (Act!: {act_mode or settings.erasure_act}); "
            "run again with --yes to do it",
            file=sys.stderr,
        )
        return 2
    done = erasure.erase_with_act(
        ledger,
        get_catalogue(settings),
        settings,
        key,
        operator(),
        act_mode or settings.erasure_act,
        get_act_client(settings) if settings.act else None,
        get_pusher(settings) if settings.act else None,
    )
    verdict = audit.verify_subject(ledger, key)
    print(
        f"{'already erased' if done.already else 'erased'} {key} at {done.erased_at}: "
        f"{done.links_revoked} link(s) revoked, personal fields removed from "
        f"{done.events_stripped} event(s); Act!: "
        f"{', '.join(f'{k} {v}' for k, v in done.act.items()) or 'nothing to do'}; "
        f"chain {'verifies' if verdict.ok else 'BROKEN: ' + verdict.reason}"
    )
    failed = any(v.startswith(("failed", "pending")) for v in done.act.values())
    return 1 if failed or not verdict.ok else 0
