"""Which Act! contact fields each purpose is written to, and checking they exist.

Marketing names fields by their Act! display name in the catalogue (``[purposes.act]``).
Act! keys ``customFields`` by the lower-cased column name, which differs from the
display name (``CUST_ConsentNewsletter_041512345``), so names are always resolved
through the metadata API, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.act.client import ActAuthError, ActClient
from chalicelib.consent.catalogue import Catalogue
from chalicelib.core.errors import ConfigError

TEXT_TYPES = ("Character", "InitialCaps", "Uppercase", "Lowercase")


@dataclass(frozen=True)
class Role:
    """What a field holds, which Act! types can hold it, and what ``act setup`` creates."""

    name: str
    accepted_types: tuple[str, ...]
    create_type: str
    length: int | None
    required: bool


ROLES = {
    "status_field": Role("status", TEXT_TYPES, "Character", 20, True),
    "date_field": Role("date", ("DateTime", "Date"), "DateTime", None, True),
    "utc_field": Role("exact UTC time", TEXT_TYPES, "Character", 30, False),
    "proof_field": Role("proof event", TEXT_TYPES + ("Memo", "Url"), "Character", 64, False),
    # The purpose's legal basis (consent, soft_opt_in, legitimate_interest), written in
    # the same PATCH as the status: an Act! list can tell an objection from a withdrawal.
    "basis_field": Role("legal basis", TEXT_TYPES, "Character", 24, False),
}


@dataclass(frozen=True)
class WantedField:
    purpose: str
    role: str  # key of ROLES
    display_name: str


@dataclass(frozen=True)
class FieldCheck:
    """One line of ``act check``: a mapped field and whether Act! has it, suitably typed."""

    wanted: WantedField
    ok: bool
    problem: str
    key: str | None
    act_type: str | None


def wanted_fields(catalogue: Catalogue) -> list[WantedField]:
    """Every field the catalogue maps, in catalogue order; a mapping without status is refused."""
    wanted = []
    for purpose in catalogue.purposes.values():
        mapping = purpose.act or {}
        unknown = set(mapping) - set(ROLES)
        if unknown:
            raise ConfigError(
                f"{catalogue.source}: purpose {purpose.id!r}: unknown [purposes.act] "
                f"key(s) {', '.join(sorted(unknown))}; known: {', '.join(ROLES)}"
            )
        if not mapping:
            continue
        for role, spec in ROLES.items():
            name = mapping.get(role)
            if spec.required and not (isinstance(name, str) and name.strip()):
                raise ConfigError(
                    f"{catalogue.source}: purpose {purpose.id!r}: [purposes.act] "
                    f"needs {role} (the Act! field's display name)"
                )
            if isinstance(name, str) and name.strip():
                wanted.append(WantedField(purpose.id, role, name.strip()))
    return wanted


def _by_name(columns: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    index: dict[str, dict[str, Any]] = {}
    for column in columns:
        for label in (column.get("displayName"), column.get("name"), column.get("aliasName")):
            if isinstance(label, str) and label.strip():
                index.setdefault(label.strip().casefold(), column)
    return index


def check(columns: list[dict[str, Any]], wanted: list[WantedField]) -> list[FieldCheck]:
    """Compare the wanted fields with Act!'s contact field metadata."""
    index, results = _by_name(columns), []
    for item in wanted:
        column = index.get(item.display_name.casefold())
        role = ROLES[item.role]
        if column is None:
            results.append(FieldCheck(item, False, "missing (run `act setup`)", None, None))
            continue
        act_type = str(column.get("type") or column.get("dataType") or "")
        key = str(column.get("columnName") or column.get("name") or "").lower()
        if act_type not in role.accepted_types:
            results.append(
                FieldCheck(
                    item,
                    False,
                    f"type {act_type or 'unknown'} cannot hold the "
                    f"{role.name}; use one of {', '.join(role.accepted_types)}",
                    key,
                    act_type,
                )
            )
            continue
        length = column.get("length")
        if role.length and isinstance(length, int) and 0 < length < role.length:
            results.append(
                FieldCheck(
                    item,
                    False,
                    f"length {length} is too short for the {role.name} (needs {role.length})",
                    key,
                    act_type,
                )
            )
            continue
        results.append(FieldCheck(item, True, "", key, act_type))
    return results


def resolve(client: ActClient, catalogue: Catalogue) -> dict[tuple[str, str], str]:
    """``(purpose, role) -> customFields key``; raises ConfigError naming what is wrong."""
    results = check(client.contact_fields(), wanted_fields(catalogue))
    problems = [
        f"{r.wanted.purpose}.{r.wanted.role} {r.wanted.display_name!r}: {r.problem}"
        for r in results
        if not r.ok
    ]
    if problems:
        raise ConfigError("Act! contact fields do not match the catalogue: " + "; ".join(problems))
    return {(r.wanted.purpose, r.wanted.role): r.key for r in results if r.key}


def setup(client: ActClient, catalogue: Catalogue) -> list[str]:
    """Create the missing fields with suitable types; never touches existing ones."""
    done = []
    for result in check(client.contact_fields(), wanted_fields(catalogue)):
        if result.ok:
            done.append(f"ok       {result.wanted.display_name}")
        elif result.key is None:
            role = ROLES[result.wanted.role]
            try:
                client.create_contact_field(
                    result.wanted.display_name, role.create_type, role.length
                )
            except ActAuthError as exc:
                raise ActAuthError(
                    f"{exc} Creating fields needs the Act! 'Define Fields' "
                    "permission: run `act setup` once as an Act! administrator."
                ) from exc
            done.append(f"created  {result.wanted.display_name} ({role.create_type})")
        else:
            done.append(f"CONFLICT {result.wanted.display_name}: {result.problem} — fix it in Act!")
    return done


#: The contact field that carries a campaign's personal link for Act! emarketing merges.
LINK_ROLE = Role("confirmation link", TEXT_TYPES + ("Memo", "Url"), "Memo", None, True)
_LINK_MIN_LENGTH = 400  # a signed link with several purposes, plus the base URL


def link_field_key(client: ActClient, display_name: str, create: bool = False) -> str:
    """The ``customFields`` key of the campaign link field; created when asked and missing."""
    columns = _by_name(client.contact_fields())
    column = columns.get(display_name.strip().casefold())
    if column is None and create:
        try:
            client.create_contact_field(display_name.strip(), LINK_ROLE.create_type)
        except ActAuthError as exc:
            raise ActAuthError(
                f"{exc} Creating fields needs the Act! 'Define Fields' "
                "permission: create it once as an Act! administrator."
            ) from exc
        column = _by_name(client.contact_fields()).get(display_name.strip().casefold())
    if column is None:
        raise ConfigError(
            f"Act! has no contact field {display_name!r} for the links: create it "
            "(a Memo or URL field), or pass --create-link-field."
        )
    act_type = str(column.get("type") or column.get("dataType") or "")
    length = column.get("length")
    if act_type not in LINK_ROLE.accepted_types or (
        act_type in TEXT_TYPES and isinstance(length, int) and 0 < length < _LINK_MIN_LENGTH
    ):
        raise ConfigError(
            f"Act! field {display_name!r} ({act_type}, length {length}) cannot hold "
            f"a link: use a Memo or URL field, or text of {_LINK_MIN_LENGTH}+ characters."
        )
    return str(column.get("columnName") or column.get("name") or "").lower()


#: The contact field an Act! user sets to ``ACT_ASK_VALUE`` to ask for consent.
ASK_ROLE = Role("ask trigger", TEXT_TYPES, "Character", 20, True)
#: A contact field naming the person's language (``ACT_ASK_LOCALE_FIELD``): any text.
LOCALE_ROLE = Role("language", TEXT_TYPES + ("Memo",), "Character", 20, False)


def check_named(columns: list[dict[str, Any]], display_name: str, role: Role) -> FieldCheck:
    """One named field (not a purpose's) against the metadata: exists, suitably typed."""
    wanted = WantedField("-", role.name, display_name)
    column = _by_name(columns).get(display_name.strip().casefold())
    if column is None:
        return FieldCheck(wanted, False, "missing (run `act setup`)", None, None)
    act_type = str(column.get("type") or column.get("dataType") or "")
    key = str(column.get("columnName") or column.get("name") or "").lower()
    if act_type not in role.accepted_types:
        problem = f"type {act_type or 'unknown'}: use one of {', '.join(role.accepted_types)}"
        return FieldCheck(wanted, False, problem, key, act_type)
    return FieldCheck(wanted, True, "", key, act_type)


def named_key(client: ActClient, display_name: str, role: Role, setting: str) -> str:
    """The ``customFields`` key of a configured field; ConfigError naming the setting."""
    result = check_named(client.contact_fields(), display_name, role)
    if not result.ok or not result.key:
        raise ConfigError(f"{setting}={display_name!r}: Act! contact field {result.problem}.")
    return result.key


def setup_named(client: ActClient, display_name: str, role: Role) -> str:
    """``act setup`` for one named field: create it when missing, never change it."""
    result = check_named(client.contact_fields(), display_name, role)
    if result.ok:
        return f"ok       {display_name}"
    if result.key is not None:
        return f"CONFLICT {display_name}: {result.problem} — fix it in Act!"
    try:
        client.create_contact_field(display_name, role.create_type, role.length)
    except ActAuthError as exc:
        raise ActAuthError(
            f"{exc} Creating fields needs the Act! 'Define Fields' "
            "permission: run `act setup` once as an Act! administrator."
        ) from exc
    return f"created  {display_name} ({role.create_type})"
