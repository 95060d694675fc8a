"""Decisions recorded through the consent rules directly (no page, no mail)."""
from __future__ import annotations

from chalicelib.consent import rules
from chalicelib.consent.rules import RequestContext
from chalicelib.core.services import get_catalogue, get_ledger
from chalicelib.core.settings import get_settings

CTX = RequestContext("192.0.2.10", "pytest", "en")


def decide(email: str, **choices: str) -> rules.IssuedLink:
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    issued = rules.issue_link(ledger, settings, catalogue, email, list(choices), channel="test")
    link, record = rules.open_link(ledger, settings, "confirm", issued.token)
    shown = {p: catalogue.get(p).text("en").sha256 for p in choices}
    rules.decide(ledger, catalogue, link, record, choices, "en", shown, CTX)
    return issued
