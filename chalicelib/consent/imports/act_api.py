"""Import rows straight from the Act! Web API (``optinproof import --from-act``).

The same rows an Act! CSV export gives (``E-mail``, the opt-in flag field, its date
field), read page by page with the contacts' ``customFields`` (``GET /api/contacts``
with ``$select``, as campaigns read their audience). With ``history``, a contact whose
flag says yes but has no date is looked up in its Act! histories
(``GET /api/contacts/{id}/history``, ``contains(details, ...)``): the earliest history
naming the opt-in dates it, and its regarding and details travel as evidence. One
history call per such contact: Act! has no way to ask for many contacts' at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chalicelib.act import fields as actfields
from chalicelib.act.client import ActClient
from chalicelib.consent.imports.rows import flag
from chalicelib.core.errors import BadInput

HISTORY_DATE = "History date"
HISTORY_REGARDING = "History regarding"
HISTORY_DETAILS = "History details"


def field_key(columns: list[dict[str, Any]], display_name: str) -> str:
    """The ``customFields`` key of an Act! contact field named by its display name."""
    found = actfields.check_named(columns, display_name, actfields.LOCALE_ROLE)
    if found.key is None:
        raise BadInput(f"Act! has no contact field named {display_name!r}.")
    return found.key


def contact_rows(
    client: ActClient, act_flag: str, act_date: str | None = None, history: str | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(n, columns)`` per Act! contact, ``n`` counting from 1 (the rejects' "line")."""
    columns = client.contact_fields()
    flag_key = field_key(columns, act_flag)
    date_key = field_key(columns, act_date) if act_date else None
    for n, contact in enumerate(client.iter_contacts(custom_fields=True), start=1):
        custom = contact.get("customFields") or {}
        row = {
            "Contact ID": str(contact.get("id") or ""),
            "E-mail": str(contact.get("emailAddress") or ""),
            "First Name": str(contact.get("firstName") or ""),
            "Last Name": str(contact.get("lastName") or ""),
            "Edit Date": str(contact.get("edited") or ""),
            act_flag: _text(custom.get(flag_key)),
        }
        if act_date and date_key:
            row[act_date] = _text(custom.get(date_key))
        if history and flag(row[act_flag]) and not (act_date and row.get(act_date)):
            row.update(_history(client, row["Contact ID"], history))
        yield n, row


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _history(client: ActClient, contact_id: str, words: str) -> dict[str, str]:
    """The earliest history of the contact whose details contain ``words``."""
    found = [h for h in client.contact_history(contact_id, words) if h.get("startTime")]
    if not found:
        return {}
    first = min(found, key=lambda h: str(h["startTime"]))
    return {
        HISTORY_DATE: str(first["startTime"]),
        HISTORY_REGARDING: _text(first.get("regarding")),
        HISTORY_DETAILS: _text(first.get("details")),
    }
