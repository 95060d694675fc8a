"""A campaign's saved filter, built from one Act! contact field, an operator and a value.

Marketing picks a field from the list Act! reports and an operator Act! supports; the
result is the OData ``$filter`` a campaign keeps (``audience_value``), exactly what
the CLI's ``--filter`` and the admin API's ``{"filter": ...}`` take. Act!'s OData
page lists ``eq ne gt ge lt le``, ``and or`` and ``contains startswith endswith``
[D]; nothing else is offered, so a filter built here is one Act! runs.

Fields: the Contact properties of Act!'s Swagger that marketing filters on (Act! does
not publish which built-in column maps to which property, so these are named here),
and every custom field of ``GET /api/metadata/contact/fields``, addressed as
``customFields/<lower-cased columnName>`` like the sync does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from chalicelib.act.client import odata_string
from chalicelib.core.errors import BadInput


def N_(message: str) -> str:
    """Mark a label for translation; translated where shown."""
    return message


TEXT, NUMBER, DATE, BOOLEAN = "text", "number", "date", "boolean"

#: Operator → its label; which kinds of field take it.
OPERATORS: dict[str, tuple[str, tuple[str, ...]]] = {
    "eq": (N_("is"), (TEXT, NUMBER, DATE, BOOLEAN)),
    "ne": (N_("is not"), (TEXT, NUMBER, DATE, BOOLEAN)),
    "contains": (N_("contains"), (TEXT,)),
    "startswith": (N_("starts with"), (TEXT,)),
    "endswith": (N_("ends with"), (TEXT,)),
    "gt": (N_("is after / more than"), (NUMBER, DATE)),
    "lt": (N_("is before / less than"), (NUMBER, DATE)),
}

#: Contact properties of Act!'s Swagger (``Contacts.Contact``): path, label, kind.
CONTACT_PROPERTIES: tuple[tuple[str, str, str], ...] = (
    ("company", N_("Company"), TEXT),
    ("firstName", N_("First name"), TEXT),
    ("lastName", N_("Last name"), TEXT),
    ("emailAddress", N_("E-mail address"), TEXT),
    ("jobTitle", N_("Job title"), TEXT),
    ("department", N_("Department"), TEXT),
    ("idStatus", N_("ID/Status"), TEXT),
    ("referredBy", N_("Referred by"), TEXT),
    ("businessAddress/city", N_("City"), TEXT),
    ("businessAddress/postalCode", N_("Postal code"), TEXT),
    ("businessAddress/country", N_("Country"), TEXT),
    ("created", N_("Created on"), DATE),
    ("edited", N_("Last edited on"), DATE),
)

_KINDS = {
    "YesNo": BOOLEAN,
    "Number": NUMBER,
    "Currency": NUMBER,
    "Decimal": NUMBER,
    "Date": DATE,
    "DateTime": DATE,
}
#: Act! field types a filter cannot compare (pictures, formulas, times of day, yearly dates).
_SKIPPED = ("Picture", "Calculated", "Time", "AnnualEvent")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


@dataclass(frozen=True)
class Field:
    """A field a filter can name: its OData path, its label, what its values are."""

    path: str
    label: str
    kind: str
    custom: bool


def fields(columns: list[dict[str, Any]]) -> list[Field]:
    """The Contact properties, then Act!'s custom contact fields (by display name)."""
    found = [Field(path, label, kind, False) for path, label, kind in CONTACT_PROPERTIES]
    custom = []
    for column in columns:
        act_type = str(column.get("type") or "")
        key = str(column.get("columnName") or "").lower()
        if not column.get("isCustom") or not key or act_type in _SKIPPED:
            continue
        label = str(column.get("displayName") or column.get("name") or key)
        custom.append(Field(f"customFields/{key}", label, _KINDS.get(act_type, TEXT), True))
    return found + sorted(custom, key=lambda f: f.label.casefold())


def build(available: list[Field], path: str, operator: str, value: str) -> str:
    """The OData ``$filter`` for ``<field> <operator> <value>``; BadInput saying what is wrong."""
    field = next((f for f in available if f.path == path), None)
    if field is None:
        raise BadInput(N_("Choose a field from the list Act! gave."))
    if operator not in OPERATORS or field.kind not in OPERATORS[operator][1]:
        raise BadInput(N_("This comparison does not apply to this field."))
    value = value.strip()
    if not value:
        raise BadInput(N_("Write the value to compare with."))
    if field.kind == TEXT:
        literal = odata_string(value)
    elif field.kind == NUMBER:
        if not _NUMBER.fullmatch(value):
            raise BadInput(N_("Write a number, e.g. 12 or 12.5."))
        literal = value
    elif field.kind == BOOLEAN:
        if value.lower() not in ("true", "false", "yes", "no", "oui", "non"):
            raise BadInput(N_("Write yes or no."))
        literal = "true" if value.lower() in ("true", "yes", "oui") else "false"
    else:
        try:
            day = date.fromisoformat(value)
        except ValueError as exc:
            raise BadInput(N_("Write a date as YYYY-MM-DD.")) from exc
        literal = f"{day.isoformat()}T00:00:00Z"
    if operator in ("contains", "startswith", "endswith"):
        return f"{operator}({field.path},{literal})"
    return f"{field.path} {operator} {literal}"
