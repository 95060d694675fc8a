"""Re-permission campaigns: ask the contacts already in Act! to confirm, per purpose.

A campaign is recorded once (``CAMPAIGN#<id>``) and then *run*, as often as needed:
each contact of its audience gets one confirmation link, delivered one of three ways
(written into an Act! contact field for an Act! emarketing mailing, mailed by us, or
exported as CSV). Every contact's progress is an item of the campaign
(``CAMPAIGN#<id>`` / ``CONTACT#<act id>``) written in the same transaction as the
link, so a run that stops anywhere resumes where it stopped and never delivers to
the same contact twice. One address reached through two contacts is asked once.

This module holds what a campaign *is* (its definition, audience, rounds and the
Act! fields it writes links into); :mod:`.runner` runs it, :mod:`.report` follows it,
:mod:`.jobs` schedules runs from the admin API and the sweep.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadData

from chalicelib.act import fields as actfields
from chalicelib.act.client import ActClient
from chalicelib.consent import links
from chalicelib.consent.catalogue import Catalogue
from chalicelib.core.clock import now_iso
from chalicelib.core.errors import (
    ActError,
    BadInput,
    ConfigError,
    OptinProofError,
    UnknownCampaign,
)
from chalicelib.core.i18n import locale_of
from chalicelib.core.settings import Settings
from chalicelib.store import keys
from chalicelib.store.ledger import Ledger

DELIVERIES = ("act-field", "mail", "csv")


#: The Act! contact fields campaigns write links into (``FIELD#<customFields key>``).
LINK_FIELDS_PK = keys.LINK_FIELDS
_ID = re.compile(r"[a-z0-9][a-z0-9-]{2,47}")


#: Statuses of a contact in a campaign; "failed" ones are tried again by the next run.
DONE, SKIPPED, FAILED = "done", "skipped", "failed"


@dataclass(frozen=True)
class Campaign:
    """What a campaign asks, of whom, and how the links travel."""

    id: str
    purposes: tuple[str, ...]
    audience: str  # all | group | filter
    audience_value: str | None
    delivery: str
    locale: str
    link_field: str | None = None
    created_at: str = ""
    #: The language rule: each contact's language from this Act! field (display name),
    #: else :attr:`locale`. None: everyone gets :attr:`locale`.
    locale_field: str | None = None
    #: Ask only the contacts whose proof is weak or missing (:mod:`.proof`); None: all.
    proof: str | None = None

    @property
    def channel(self) -> str:
        return f"campaign:{self.id}"

    def locale_for(self, contact: Contact, locales: tuple[str, ...]) -> str:
        """The contact's language: their Act! field's, if the rule names one the
        catalogue has, else the campaign's."""
        if self.locale_field:
            return locale_of(contact.language, locales) or self.locale
        return self.locale

    def item(self) -> dict[str, Any]:
        return {
            **keys.item(keys.campaign(self.id)),
            "campaign_id": self.id,
            "purposes": list(self.purposes),
            "audience": self.audience,
            "audience_value": self.audience_value,
            "delivery": self.delivery,
            "locale": self.locale,
            "link_field": self.link_field,
            "created_at": self.created_at,
            **({"locale_field": self.locale_field} if self.locale_field else {}),
            **({"proof": self.proof} if self.proof else {}),
        }

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in self.item().items() if k not in ("pk", "sk")}


def define(
    ledger: Ledger,
    settings: Settings,
    catalogue: Catalogue,
    campaign_id: str | None,
    purposes: list[str],
    audience: str,
    audience_value: str | None,
    delivery: str | None,
    locale: str | None = None,
    link_field: str | None = None,
    locale_field: str | None = None,
    client: ActClient | None = None,
    proof: str | None = None,
) -> Campaign:
    """Validate and record a campaign; an existing id with other settings is refused.

    ``proof``: ask only the contacts whose proof is weak or missing (:mod:`.proof`).

    ``locale_field``: each contact's language from that Act! field, else ``locale``;
    checked against Act!'s fields when ``client`` is given and Act! answers.
    """
    for name, value in (
        ("id", campaign_id),
        ("delivery", delivery),
        ("locale", locale),
        ("link_field", link_field),
        ("locale_field", locale_field),
        ("audience", audience_value),
    ):
        if value is not None and not isinstance(value, str):
            raise BadInput(f"The campaign's {name} must be text.")
    if not _ID.fullmatch(campaign_id or ""):
        raise BadInput(
            f"Campaign id {campaign_id!r}: use 3-48 lower-case letters, digits or "
            "'-' (e.g. repermission-2026-12)."
        )
    unknown = [p for p in purposes if p not in catalogue.purposes]
    if not purposes or unknown:
        raise BadInput(
            f"Name purposes from the catalogue ({', '.join(catalogue.purposes)})"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            + "."
        )
    if audience not in ("all", "group", "filter") or (audience != "all" and not audience_value):
        raise BadInput(
            'Choose the audience: all, a group (--group NAME) or an OData filter (--filter "...").'
        )
    if delivery not in DELIVERIES:
        raise BadInput(f"Delivery must be one of {', '.join(DELIVERIES)}.")
    if delivery == "act-field" and not link_field:
        raise BadInput(
            "Delivery act-field needs --link-field, the Act! contact field (display "
            "name) that will hold each contact's link."
        )
    if delivery == "mail" and settings.mail.transport == "none":
        raise ConfigError("Delivery mail needs MAIL_TRANSPORT (ses or smtp) and MAIL_FROM.")
    if not settings.public_base_url:
        raise ConfigError("Campaign links need PUBLIC_BASE_URL (the address people open).")
    locale = locale or catalogue.default_locale
    if locale not in catalogue.locales:
        raise BadInput(
            f"Language {locale!r} is not in the catalogue ({', '.join(catalogue.locales)})."
        )
    locale_field = (locale_field or "").strip() or None
    proof = _proof_target(proof)
    if locale_field and client is not None:
        check_locale_field(client, locale_field)
    campaign = Campaign(
        str(campaign_id),
        tuple(dict.fromkeys(purposes)),
        audience,
        audience_value,
        str(delivery),
        locale,
        link_field,
        now_iso(),
        locale_field,
        proof,
    )
    existing = find(ledger, campaign.id)
    if existing is not None:
        same = {**existing.item(), "created_at": ""} == {**campaign.item(), "created_at": ""}
        if not same:
            raise BadInput(
                f"Campaign {campaign_id!r} already exists with other settings; "
                "run it as it is (campaign run --id) or choose another id."
            )
        return existing
    ledger.put(campaign.item(), only_new=True)
    return campaign


def _proof_target(proof: Any) -> str | None:
    """The campaign's proof target, checked (blank: everyone, as before)."""
    from chalicelib.campaigns.proof import TARGETS

    if proof is not None and not isinstance(proof, str):
        raise BadInput("The campaign's proof must be text.")
    proof = (proof or "").strip() or None
    if proof is not None and proof not in TARGETS:
        raise BadInput(
            f"proof {proof!r}: choose weak (imported grade B or C), none (no proof at "
            "all) or weak_or_none, or leave it out to ask everyone."
        )
    return proof


def check_locale_field(client: ActClient, name: str) -> None:
    """At define time: :func:`language_key`, unless Act! does not answer (the first run
    then checks, and says what is wrong)."""
    try:
        columns = client.contact_fields()
    except ActError:
        return
    language_key(columns, name)


def language_key(columns: list[dict[str, Any]], name: str) -> str:
    """The ``customFields`` key of the language field ``name`` (display name); BadInput
    unless Act! has it as a text field."""
    found = actfields.check_named(columns, name, actfields.LOCALE_ROLE)
    if not found.ok or not found.key:
        problem = "does not exist" if found.key is None else found.problem
        raise BadInput(
            f"The language field {name!r}: this Act! contact field {problem}. Name an "
            "existing text field (display name) holding each contact's language, "
            'e.g. "Français", "English" or "fr".'
        )
    return found.key


def audience_of(body: dict[str, Any]) -> tuple[str, str | None]:
    """The audience of an admin API request: ``all``, ``{"group": ...}``, ``{"filter": ...}``."""
    audience = body.get("audience")
    if audience == "all":
        return "all", None
    if isinstance(audience, dict) and len(audience) == 1:
        ((kind, value),) = audience.items()
        if kind in ("group", "filter") and isinstance(value, str) and value.strip():
            return kind, value.strip()
    raise BadInput('Choose the audience: "all", {"group": "NAME"} or {"filter": "ODATA"}.')


def purposes_of(body: dict[str, Any]) -> list[str]:
    purposes = body.get("purposes")
    if not isinstance(purposes, list) or not all(isinstance(p, str) for p in purposes):
        raise BadInput('"purposes" must be a list of purpose ids, e.g. ["newsletter"].')
    return purposes


def load(ledger: Ledger, campaign_id: str) -> Campaign:
    """The campaign, or UnknownCampaign (404) naming how to create it."""
    campaign = find(ledger, campaign_id)
    if campaign is None:
        raise UnknownCampaign(
            f"There is no campaign {campaign_id!r} (create it with campaign start)."
        )
    return campaign


def find(ledger: Ledger, campaign_id: str) -> Campaign | None:
    item = ledger.get(*keys.campaign(campaign_id))
    if item is None:
        return None
    return Campaign(
        item["campaign_id"],
        tuple(item["purposes"]),
        item["audience"],
        item.get("audience_value"),
        item["delivery"],
        item["locale"],
        item.get("link_field"),
        item.get("created_at", ""),
        item.get("locale_field"),
        item.get("proof"),
    )


def current_round(ledger: Ledger, campaign: Campaign) -> int:
    """The campaign's latest round (1, then 2+ for reminders)."""
    item = ledger.get(*keys.campaign(campaign.id)) or {}
    return int(item.get("round", 1))


def set_round(ledger: Ledger, campaign: Campaign, round_no: int) -> None:
    item = ledger.get(*keys.campaign(campaign.id)) or campaign.item()
    ledger.put({**item, "round": round_no})


@dataclass(frozen=True)
class Contact:
    id: str
    email: str | None
    first_name: str | None
    #: The value of the campaign's language field (the rule), as Act! holds it.
    language: str | None = None


def audience(client: ActClient, campaign: Campaign) -> list[Contact]:
    """Every contact the campaign addresses, read from Act! page by page."""
    group_id = None
    if campaign.audience == "group":
        groups = client.groups_named(campaign.audience_value or "")
        if len(groups) != 1:
            raise BadInput(
                f"Act! has {len(groups)} group(s) named {campaign.audience_value!r}; "
                "exactly one is needed."
            )
        group_id = groups[0]["id"]
    odata_filter = campaign.audience_value if campaign.audience == "filter" else None
    # The language rule's field comes with the pages (customFields): no call per contact.
    key = (
        language_key(client.contact_fields(), campaign.locale_field)
        if campaign.locale_field
        else None
    )
    contacts: dict[str, Contact] = {}  # Act! pages by $skip: a contact added meanwhile
    for c in client.iter_contacts(  # shifts pages and repeats one: once each
        odata_filter=odata_filter, group_id=group_id, custom_fields=bool(key)
    ):
        language = (c.get("customFields") or {}).get(key) if key else None
        contacts.setdefault(
            str(c["id"]),
            Contact(
                str(c["id"]),
                (c.get("emailAddress") or "").strip() or None,
                (c.get("firstName") or "").strip() or None,
                str(language or "").strip() or None,
            ),
        )
    return list(contacts.values())


def contact_items(ledger: Ledger, campaign_id: str) -> Iterable[dict[str, Any]]:
    return ledger.query(keys.campaign_pk(campaign_id), keys.CAMPAIGN_CONTACT_PREFIX)


def link_field_keys(ledger: Ledger) -> dict[str, str]:
    """``customFields`` key -> display name of every field a campaign wrote links into."""
    return {
        item["key"]: item.get("field") or item["key"]
        for item in ledger.query(LINK_FIELDS_PK, keys.LINK_FIELD_PREFIX)
    }


def link_in(value: Any, settings: Settings) -> links.Link | None:
    """The confirmation link a field value holds (ours, authentic, even expired), or None."""
    if not isinstance(value, str) or "/c/" not in value:
        return None
    token = value.strip().rsplit("/c/", 1)[1].split("?", 1)[0].split("#", 1)[0]
    try:
        return links.verify_signature(settings, "confirm", token)
    except (OptinProofError, BadData):
        return None
