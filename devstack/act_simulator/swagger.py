"""Act!'s own Swagger definitions, as the simulator's contract for bodies and OData paths.

Reads ``act_swagger_subset.json`` (made by ``extract_swagger.py`` from Act!'s Swagger
2.0 document; its sha256 is in ``x-source``). Three uses:

- ``coerce(name, value)``: check a request body against a definition the way ASP.NET
  Web API's Json.NET binder would, and return it with canonical property names;
- ``blank(name)``: an object with every declared property, as the server fills them;
- ``resolver(name, dynamic)``: the OData type of a property path (``businessAddress/city``,
  ``customFields/user6``), for ``odata.parse_query``.
"""
from __future__ import annotations

import json
from datetime import datetime, time as dtime
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from devstack.act_simulator.odata import ODataError

DATA_FILE = Path(__file__).resolve().with_name("act_swagger_subset.json")

CONTACT = "act.web.api.models.Contacts.Contact"
ADDRESS = "act.web.api.models.Address"
HISTORY = "act.web.api.models.Histories.History"
HISTORY_TYPE_EMBEDDED = "act.web.api.models.Histories.HistoryType"
HISTORY_TYPE = "act.web.api.models.MetaData.TypeCodes.HistoryType"
COLUMN = "act.web.api.models.MetaData.Schema.Column"
NEW_COLUMN = "act.web.api.models.MetaData.Schema.NewColumn"
WEBHOOK_REQUEST = "act.web.api.models.WebHooks.WebhookRequest"
REGISTRATION = "act.web.api.models.WebHooks.RegistrationViewModel"
GROUP = "act.web.api.models.Groups.Group"
SYSTEM_INFO = "act.web.api.models.Utilities.SystemInfo"
CONTACT_LIST_REQUEST = "act.web.api.models.Contacts.ContactListRequest"


class SchemaError(ValueError):
    """A body does not fit its Swagger definition; the message names the property."""


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    """The trimmed Swagger document kept in this package."""
    return json.loads(DATA_FILE.read_text(encoding="utf-8"))


def definition(name: str) -> dict[str, Any]:
    return spec()["definitions"][name]


def properties(name: str) -> dict[str, Any]:
    return definition(name).get("properties", {})


def operations() -> set[tuple[str, str]]:
    """``(METHOD, path template)`` of every operation in the kept paths."""
    return {(method.upper(), path) for path, ops in spec()["paths"].items() for method in ops}


def _target(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return definition(ref.rsplit("/", 1)[-1]) if ref else schema


def parse_datetime(value: str) -> datetime:
    """An ISO-8601 date or date-time (``Z`` or offset or none); raises ValueError."""
    text = value.strip()
    if not text:
        raise ValueError("empty date")
    return datetime.fromisoformat(text[:-1] + "+00:00" if text[-1] in "zZ" else text)


def parse_time(value: str) -> None:
    try:
        dtime.fromisoformat(value.strip())
    except ValueError:
        parse_datetime(value)


# -- body checking --------------------------------------------------------------------

def coerce(name: str, value: Any) -> Any:
    """``value`` checked against definition ``name``; raises SchemaError.

    What it does is what ASP.NET Web API's Json.NET binder does with Act!'s models:
    property names match case-insensitively and come back in their declared spelling;
    a value of the wrong JSON type is an error (400); ``null`` is accepted anywhere;
    enum strings match case-insensitively; ``required`` properties must be present.
    Unknown properties are dropped silently, as Json.NET's default
    ``MissingMemberHandling.Ignore`` does: Act! answers 2xx and ignores them.
    """
    return _coerce({"$ref": f"#/definitions/{name}"}, value, "")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _coerce(schema: dict[str, Any], value: Any, where: str) -> Any:
    if value is None:
        return None
    schema = _target(schema)
    expected = schema.get("type", "object")
    label = where or "the body"
    if expected == "object":
        if not isinstance(value, dict):
            raise SchemaError(f"{label}: expected a JSON object, got {_kind(value)}")
        declared = schema.get("properties", {})
        by_lower = {key.lower(): key for key in declared}
        result: dict[str, Any] = {}
        for key, item in value.items():
            canonical = by_lower.get(str(key).lower())
            if canonical is None:
                if "additionalProperties" in schema:
                    result[key] = item  # a map (customFields): keys are checked by the caller
                continue  # unknown property: ignored, like Json.NET's MissingMemberHandling.Ignore
            result[canonical] = _coerce(declared[canonical], item,
                                        f"{where}.{canonical}" if where else canonical)
        for key in schema.get("required", []):
            if result.get(key) is None:
                raise SchemaError(f"{f'{where}.{key}' if where else key} is required")
        return result
    if expected == "array":
        if not isinstance(value, list):
            raise SchemaError(f"{label}: expected a JSON array, got {_kind(value)}")
        items = schema.get("items", {})
        return [_coerce(items, item, f"{where}[{i}]") for i, item in enumerate(value)]
    if expected == "string":
        if not isinstance(value, str):
            raise SchemaError(f"{label}: expected a string, got {_kind(value)}")
        if "enum" in schema:
            match = next((e for e in schema["enum"] if e.lower() == value.lower()), None)
            if match is None:
                raise SchemaError(f"{label}: {value!r} is not one of {', '.join(schema['enum'])}")
            return match
        if schema.get("format") == "date-time":
            try:
                parse_datetime(value)
            except ValueError:
                raise SchemaError(f"{label}: {value!r} is not an ISO-8601 date-time") from None
        return value
    if expected == "integer":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                isinstance(value, float) and not value.is_integer()):
            raise SchemaError(f"{label}: expected an integer, got {_kind(value)} {value!r}")
        return int(value)
    if expected == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SchemaError(f"{label}: expected a number, got {_kind(value)}")
        return value
    if expected == "boolean":
        if not isinstance(value, bool):
            raise SchemaError(f"{label}: expected true or false, got {_kind(value)} {value!r}")
        return value
    return value


# -- shapes -------------------------------------------------------------------------

def blank(name: str) -> dict[str, Any]:
    """Every declared property of ``name``: booleans false, nested objects blank, else null."""
    result: dict[str, Any] = {}
    for key, schema in properties(name).items():
        if "$ref" in schema and schema["$ref"].endswith(ADDRESS):
            result[key] = blank(ADDRESS)
        elif schema.get("type") == "boolean":
            result[key] = False
        elif schema.get("type") == "object" and "additionalProperties" in schema:
            result[key] = {}
        elif schema.get("type") == "array":
            result[key] = []
        else:
            result[key] = None
    return result


# -- OData typing -----------------------------------------------------------------------

def odata_type(schema: dict[str, Any]) -> str:
    """The OData type family of a property schema: string, number, boolean, datetime..."""
    if "$ref" in schema:
        return "object"
    kind = schema.get("type")
    if kind == "string":
        return "datetime" if schema.get("format") == "date-time" else "string"
    if kind in ("integer", "number"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "array":
        return "array"
    return "object"


Resolver = Callable[[tuple[str, ...]], tuple[str, tuple[str, ...]]]


def resolver(name: str, dynamic: dict[str, dict[str, str]] | None = None) -> Resolver:
    """Resolve an OData property path on definition ``name`` to ``(type, canonical path)``.

    ``dynamic`` gives the keys of map properties (``customFields``): key (lower-case)
    -> type. Property names are matched as declared (OData is case-sensitive); map keys
    case-insensitively, because Act! keys them by lower-cased column name.
    """
    dynamic = dynamic or {}

    def resolve(path: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
        schema: dict[str, Any] = {"$ref": f"#/definitions/{name}"}
        canonical: list[str] = []
        for position, segment in enumerate(path):
            target = _target(schema)
            if canonical and canonical[-1] in dynamic and "additionalProperties" in target:
                keys, key = dynamic[canonical[-1]], segment.lower()
                if key not in keys:
                    raise ODataError(f"'{segment}' is not a key of {canonical[-1]}; its keys are the "
                                     "lower-cased column names from GET /api/metadata/contact/fields")
                if position != len(path) - 1:
                    raise ODataError(f"{'/'.join(path)}: {canonical[-1]}/{key} has no properties")
                return keys[key], (*canonical, key)
            declared = target.get("properties") or {}
            if not declared:
                raise ODataError(f"{'/'.join(path)}: '{'/'.join(canonical)}' has no properties")
            if segment not in declared:
                raise ODataError(f"Could not find a property named '{segment}' on type "
                                 f"'{'/'.join(canonical) if canonical else name}'.")
            canonical.append(segment)
            schema = declared[segment]
        kind = odata_type(schema)
        if kind == "object" and "additionalProperties" in _target(schema):
            kind = "map"
        return kind, tuple(canonical)

    return resolve


# -- operations: what each route declares -----------------------------------------------

def operation(method: str, template: str) -> dict[str, Any]:
    """The Swagger operation for ``METHOD path template`` (path compared case-insensitively)."""
    for path, ops in spec()["paths"].items():
        if path.lower() == template.lower():
            return ops.get(method.lower(), {})
    return {}


def takes_odata(op: dict[str, Any]) -> bool:
    """Whether an operation takes OData options. The Swagger lists none as parameters; a
    route that takes them says so in its summary ("... matching an (optional) OData
    query"), the same routes Act!'s OData page lists (NOTES §2)."""
    return "odata query" in f"{op.get('summary', '')} {op.get('description', '')}".lower()


def body_definition(op: dict[str, Any]) -> str | None:
    """The definition name of an operation's body parameter, if it has one."""
    for parameter in op.get("parameters", []):
        if parameter.get("in") == "body":
            ref = (parameter.get("schema") or {}).get("$ref", "")
            return ref.rsplit("/", 1)[-1] or None
    return None


def from_form(name: str, value: Any) -> Any:
    """A form-encoded body (already nested, values strings) typed as definition ``name``.

    ASP.NET's form binder turns text into the declared types: ``true``/``false`` for
    booleans, digits for integers and numbers; an empty value is null for any type
    but a string. Text that does not parse is left as it is, so :func:`coerce` then
    answers 400 naming the property, as Act! would.
    """
    return _from_form({"$ref": f"#/definitions/{name}"}, value)


def _from_form(schema: dict[str, Any], value: Any) -> Any:
    schema = _target(schema)
    kind = schema.get("type", "object")
    if isinstance(value, dict) and kind == "object":
        declared = {k.lower(): v for k, v in (schema.get("properties") or {}).items()}
        return {key: _from_form(declared[key.lower()], item) if key.lower() in declared else item
                for key, item in value.items()}
    if isinstance(value, list) and kind == "array":
        return [_from_form(schema.get("items", {}), item) for item in value]
    if not isinstance(value, str) or kind == "string":
        return value
    text = value.strip()
    if text == "":
        return None
    if kind == "boolean" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if kind in ("integer", "number"):
        try:
            return int(text) if kind == "integer" or text.lstrip("-").isdigit() else float(text)
        except ValueError:
            return value
    return value
