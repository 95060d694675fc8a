"""Re-permission campaigns built as the CLI builds them, and their Act! link field."""
from __future__ import annotations

from typing import Any

from chalicelib.act import fields as actfields
from chalicelib.act.client import ActClient
from chalicelib.campaigns import define
from chalicelib.campaigns import runner as campaign_runner
from chalicelib.core.services import get_catalogue, get_ledger, get_postman
from chalicelib.core.settings import get_settings

LINK_FIELD = "OptinProof Link"


def make_runner(campaign_id: str, delivery: str = "act-field", audience: str = "all",
                value: str | None = None, purposes: tuple[str, ...] = ("newsletter", "events"),
                round_no: int = 1, locale: str | None = None,
                locale_field: str | None = None,
                proof: str | None = None) -> campaign_runner.Runner:
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    # The client's waits (backoff, Retry-After) are not slept here: faults stay fast.
    client = ActClient(settings.act, sleep=lambda seconds: None) if settings.act else None
    campaign = define.define(ledger, settings, catalogue, campaign_id, list(purposes),
                                audience, value, delivery, locale,
                                link_field=LINK_FIELD if delivery == "act-field" else None,
                                locale_field=locale_field, client=client, proof=proof)
    key = actfields.link_field_key(client, LINK_FIELD, create=True) \
        if delivery == "act-field" else None
    postman = get_postman() if delivery == "mail" else None
    return campaign_runner.Runner(ledger, settings, catalogue, client, campaign, postman, key, round_no)


def add_contacts(act_sim: Any, count: int, prefix: str = "c") -> list[str]:
    return [act_sim.add_contact(firstName=f"P{i}", lastName="Test",
                                emailAddress=f"{prefix}{i}@example.eu")["id"]
            for i in range(count)]


def link_of(act_sim: Any, contact_id: str) -> str | None:
    key = next(f["columnName"].lower() for f in act_sim.fields
               if f.get("displayName") == LINK_FIELD or f.get("name") == LINK_FIELD)
    return (act_sim.contacts[contact_id].get("customFields") or {}).get(key)


LANGUAGE_FIELD = "Language"


def add_language_contacts(act_sim: Any, prefix: str,
                          languages: tuple[str, ...] = ("Français", "English", "")) -> list[str]:
    """A "Language" text field and one contact per value (empty: the field left blank)."""
    if not any(f.get("displayName") == LANGUAGE_FIELD for f in act_sim.fields):
        act_sim.add_field(LANGUAGE_FIELD, "Character", 20)
    key = next(f["columnName"].lower() for f in act_sim.fields
               if f.get("displayName") == LANGUAGE_FIELD)
    return [act_sim.add_contact(firstName=f"L{i}", lastName="Lang",
                                emailAddress=f"{prefix}{i}@example.eu",
                                customFields={key: value} if value else {})["id"]
            for i, value in enumerate(languages)]
