"""The campaign form's side of the dashboard: what Act! offers it (groups, fields a
filter can name, fields that can hold a link) and what the operator filled in, turned
into the :class:`service.Spec` the admin API and the CLI also start from.

Every refusal is a :class:`BadInput` whose message is marked for translation, so the
form shows it in the operator's language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from chalicelib.act.client import ActClient
from chalicelib.act.fields import LINK_ROLE, LOCALE_ROLE, TEXT_TYPES
from chalicelib.campaigns import define, filters, service
from chalicelib.consent.catalogue import Catalogue
from chalicelib.core.errors import BadInput, OptinProofError
from chalicelib.core.logs import log


def N_(message: str) -> str:
    """Mark a string for translation where it is defined; translated where shown."""
    return message


_ID = re.compile(r"[a-z0-9][a-z0-9-]{2,47}")


# -- what Act! offers the form ---------------------------------------------------------------


@dataclass
class ActChoices:
    """Groups, fields a filter can name, fields that can hold a link, fields that can
    hold a contact's language; or why not."""

    groups: list[str] = field(default_factory=list)
    fields: list[filters.Field] = field(default_factory=list)
    link_fields: list[str] = field(default_factory=list)
    error: str | None = None
    language_fields: list[str] = field(default_factory=list)


def act_choices(client: ActClient | None) -> ActChoices:
    """Read the lists from Act!; Act! missing or down leaves them empty and says why."""
    if client is None:
        return ActChoices(
            fields=filters.fields([]),
            error=N_("Act! is not configured (ACT_API_URL and friends): campaigns need it."),
        )
    try:
        columns = client.contact_fields()
        groups = sorted(
            {str(g.get("name") or "") for g in client.groups() if g.get("name")}, key=str.casefold
        )
    except OptinProofError as exc:
        log("campaign_form_act_failed", level="warning", error=type(exc).__name__)
        return ActChoices(fields=filters.fields([]), error=str(exc)[:300])
    return ActChoices(
        groups,
        filters.fields(columns),
        _link_fields(columns),
        language_fields=_language_fields(columns),
    )


def _language_fields(columns: list[dict[str, Any]]) -> list[str]:
    """Custom text fields a contact's language can be read from (the language rule)."""
    names = [
        str(column.get("displayName") or column.get("name") or "")
        for column in columns
        if column.get("isCustom") and str(column.get("type") or "") in LOCALE_ROLE.accepted_types
    ]
    return sorted((n for n in names if n), key=str.casefold)


def _link_fields(columns: list[dict[str, Any]]) -> list[str]:
    """Custom fields long enough for a link (what ``fields.link_field_key`` accepts)."""
    names = []
    for column in columns:
        act_type, length = str(column.get("type") or ""), column.get("length")
        if not column.get("isCustom") or act_type not in LINK_ROLE.accepted_types:
            continue
        if act_type in TEXT_TYPES and isinstance(length, int) and 0 < length < 400:
            continue
        names.append(str(column.get("displayName") or column.get("name") or ""))
    return sorted((n for n in names if n), key=str.casefold)


# -- what the operator filled in --------------------------------------------------------------------------------


@dataclass
class Choice:
    """What the operator filled in, kept to show the form again as it was."""

    id: str = ""
    audience: str = "all"
    group: str = ""
    filter_field: str = ""
    filter_op: str = "eq"
    filter_value: str = ""
    purposes: list[str] = field(default_factory=list)
    locale: str = ""
    delivery: str = "act-field"
    link_field: str = ""
    #: ``fixed``: everyone in ``locale``; ``field``: each contact's from ``locale_field``.
    language_rule: str = "fixed"
    locale_field: str = ""
    #: Who is asked by the proof held (``campaigns.proof``): "" everyone, or a target.
    proof: str = ""

    @classmethod
    def of(cls, fields: dict[str, str], catalogue: Catalogue) -> Choice:
        return cls(
            fields.get("id", "").strip(),
            fields.get("audience", "all"),
            fields.get("group", ""),
            fields.get("filter_field", ""),
            fields.get("filter_op", "eq"),
            fields.get("filter_value", ""),
            [p for p in catalogue.purposes if fields.get(f"purpose-{p}")],
            fields.get("locale", ""),
            fields.get("delivery", ""),
            fields.get("link_field", ""),
            fields.get("language_rule", "fixed"),
            fields.get("locale_field", ""),
            fields.get("proof", ""),
        )


def audience(choice: Choice, act: ActChoices) -> tuple[str, str | None]:
    """The audience the form names: ``all``, a group's name, or the OData filter built."""
    if act.error:
        raise BadInput(N_("Act! could not be read; try again when Act! answers."))
    if choice.audience == "all":
        return "all", None
    if choice.audience == "group":
        if choice.group not in act.groups:
            raise BadInput(N_("Choose an Act! group from the list."))
        return "group", choice.group
    if choice.audience == "filter":
        return "filter", filters.build(
            act.fields, choice.filter_field, choice.filter_op, choice.filter_value
        )
    raise BadInput(N_("Choose the audience: every contact, a group, or a filter."))


def spec_of(choice: Choice, catalogue: Catalogue, act: ActChoices) -> service.Spec:
    """The campaign the form asks for; BadInput (translatable) naming the first problem."""
    if not _ID.fullmatch(choice.id):
        raise BadInput(
            N_("Name the campaign with 3-48 lower-case letters, digits or '-' (e.g. spring-2027).")
        )
    kind, value = audience(choice, act)
    if not choice.purposes:
        raise BadInput(N_("Tick at least one purpose to ask about."))
    if choice.locale not in catalogue.locales:
        raise BadInput(N_("Choose the language of the mail and the page."))
    if choice.language_rule not in ("fixed", "field"):
        raise BadInput(N_("Choose one language for everyone, or each contact's own."))
    by_contact = choice.language_rule == "field"
    if by_contact and choice.locale_field not in act.language_fields:
        raise BadInput(N_("Choose the Act! field that holds each contact's language."))
    if choice.delivery not in define.DELIVERIES:
        raise BadInput(N_("Choose how the links reach people."))
    if choice.delivery == "act-field" and choice.link_field not in act.link_fields:
        raise BadInput(N_("Choose the Act! field that will hold each contact's link."))
    return service.Spec(
        choice.id,
        choice.purposes,
        kind,
        value,
        choice.delivery,
        choice.locale,
        choice.link_field if choice.delivery == "act-field" else None,
        choice.locale_field if by_contact else None,
        _proof(choice),
    )


def _proof(choice: Choice) -> str | None:
    """The proof target the form names ("" asks everyone, as before)."""
    from chalicelib.campaigns.proof import TARGETS

    if choice.proof and choice.proof not in TARGETS:
        raise BadInput(N_("Choose whom to ask by the proof you hold."))
    return choice.proof or None


def count(client: ActClient | None, kind: str, value: str | None) -> int:
    """How many Act! contacts the audience holds now (read from Act!, page by page)."""
    if client is None:
        raise BadInput(N_("Act! is not configured (ACT_API_URL and friends): campaigns need it."))
    if kind == "group":
        groups = client.groups_named(value or "")
        if len(groups) != 1:
            raise BadInput(N_("Act! has no single group of that name."))
        return client.count_contacts(group_id=str(groups[0]["id"]))
    return client.count_contacts(odata_filter=value if kind == "filter" else None)
