"""A small, real OData v4 query parser and evaluator: the subset Act!'s docs promise.

Act!'s OData page lists ``$filter`` with ``eq ne gt ge lt le``, ``and or``,
``contains startswith endswith``; ``$orderby`` (with ``desc``), ``$top``, ``$skip``,
``$select``, ``$expand``; and says anything not implemented throws. So here:

- ``$filter``: comparisons, ``and``/``or``, parentheses, the three string functions
  and nothing else (``not``, ``in``, ``has``, arithmetic are not in Act!'s list, so a
  client that relies on them fails here as it would there); literals: strings in
  single quotes (``''`` is a quote), unquoted ISO-8601 date-times *with* their zone
  (``edited gt 2026-06-01T00:00:00Z`` or ``...+02:00``; one without a zone is refused:
  Act! would read it in its own server's zone, which the client cannot know), bare
  dates (``2026-06-01``: an Edm.Date names a calendar day, no instant), unquoted GUIDs,
  numbers, ``true``/``false``/``null``; property paths with ``/``
  (``businessAddress/country``, ``customFields/user6``). String comparisons ignore
  case (both sides lower-cased; Act! runs on SQL Server's case-insensitive collation).
- Stored date-times without a zone are the server's wall time (``Query.zone``), so a
  literal with any offset compares as the instant it names.
- ``$expand``: the named properties must be objects or collections of the type (with
  an optional nested ``($select=a,b)``); since the simulator always answers them
  inline, expanding changes nothing but that nested projection. [I: Act!'s page gives
  ``$expand=address($select=city,postalCode)`` as its only example.]
- Paths and literal types are checked when the query is parsed, against a resolver
  built from the Swagger definition, so an unknown property, a quoted date or a
  function we do not know is an ``ODataError`` (the server answers 400), whether
  or not any row would have been compared.
- ``$orderby`` takes several keys, each ``asc`` (default) or ``desc``; nulls sort
  first ascending and last descending, as SQL Server does.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timezone, tzinfo
from typing import Any, Callable, Iterable

Resolver = Callable[[tuple[str, ...]], tuple[str, tuple[str, ...]]]

SUPPORTED = ("$filter", "$orderby", "$top", "$skip", "$select", "$expand")
KNOWN_UNSUPPORTED = ("$count", "$search", "$format", "$apply", "$levels",
                     "$skiptoken", "$deltatoken", "$compute", "$index", "$schemaversion", "$id")
FUNCTIONS = ("contains", "startswith", "endswith")
COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")


class ODataError(ValueError):
    """The query cannot be run; the message says why (the server answers 400 with it)."""


# -- tokens ---------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<guid>[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(?![\w-]))
  | (?P<datetime>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:\d{2})?)?(?![\w.:-]))
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMdDfFlL]?(?![\w.]))
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[(),/])
""", re.VERBOSE)


@dataclass
class _Token:
    kind: str
    text: str
    position: int


def _tokens(text: str) -> list[_Token]:
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            if text[position] == "'":
                raise ODataError(f"Unterminated string literal at position {position} "
                                 "(a quote inside a string is written '')")
            raise ODataError(f"Syntax error at position {position} in '{text}': "
                             f"unexpected {text[position]!r}")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Token(kind, match.group(), position))
        position = match.end()
    return tokens


# -- syntax tree ----------------------------------------------------------------------

@dataclass
class Literal:
    type: str  # string, number, boolean, datetime, guid, null
    value: Any


@dataclass
class Path:
    segments: tuple[str, ...]
    type: str = "any"


@dataclass
class Compare:
    op: str
    left: Any
    right: Any


@dataclass
class Logical:
    op: str  # and, or
    left: Any
    right: Any


@dataclass
class Call:
    name: str
    args: list[Any]


def _to_datetime(value: Any, zone: tzinfo = timezone.utc) -> datetime | None:
    """A stored date(-time) string (or a literal) as an aware datetime; naive: ``zone``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        if text[-1:] in ("z", "Z"):
            text = text[:-1] + "+00:00"
        # Python 3.11+ reads up to 6 fractional digits; .NET writes 7
        text = re.sub(r"(\.\d{6})\d+", r"\1", text)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


class _Parser:
    def __init__(self, text: str, resolve: Resolver) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.index = 0
        self.resolve = resolve

    # helpers
    def peek(self, offset: int = 0) -> _Token | None:
        position = self.index + offset
        return self.tokens[position] if position < len(self.tokens) else None

    def keyword(self, *words: str) -> str | None:
        token = self.peek()
        if token and token.kind == "name" and token.text in words:
            self.index += 1
            return token.text
        return None

    def expect(self, text: str) -> None:
        token = self.peek()
        if not token or token.text != text:
            found = f"'{token.text}' at position {token.position}" if token else "the end"
            raise ODataError(f"Syntax error in '{self.text}': expected '{text}', found {found}")
        self.index += 1

    def parse(self) -> Any:
        if not self.tokens:
            raise ODataError("The $filter expression is empty.")
        node = self.or_expr()
        token = self.peek()
        if token is not None:
            raise ODataError(f"Syntax error at position {token.position} in '{self.text}': "
                             f"unexpected '{token.text}'")
        self.require_boolean(node, "the $filter expression")
        return node

    # grammar: or > and > not > comparison > operand
    def or_expr(self) -> Any:
        node = self.and_expr()
        while self.keyword("or"):
            right = self.and_expr()
            self.require_boolean(node, "'or'")
            self.require_boolean(right, "'or'")
            node = Logical("or", node, right)
        return node

    def and_expr(self) -> Any:
        node = self.not_expr()
        while self.keyword("and"):
            right = self.not_expr()
            self.require_boolean(node, "'and'")
            self.require_boolean(right, "'and'")
            node = Logical("and", node, right)
        return node

    def not_expr(self) -> Any:
        token, following = self.peek(), self.peek(1)
        if token and token.kind == "name" and token.text == "not" and not (
                following and following.text in ("/",) + COMPARISONS):
            raise ODataError(f"The operator 'not' at position {token.position} is not supported "
                             "(Act! documents eq, ne, gt, ge, lt, le, and, or, contains, "
                             "startswith, endswith)")
        return self.comparison()

    def comparison(self) -> Any:
        left = self.operand()
        op = self.keyword(*COMPARISONS)
        if op is None:
            token = self.peek()
            if token and token.kind == "name" and token.text not in ("and", "or"):
                raise ODataError(f"Unknown operator '{token.text}' at position {token.position}; "
                                 f"supported: {', '.join(COMPARISONS)}, and, or")
            return left
        right = self.operand()
        self.check_comparable(op, left, right)
        return Compare(op, left, right)

    def operand(self) -> Any:
        token = self.peek()
        if token is None:
            raise ODataError(f"Syntax error in '{self.text}': the expression ends too early")
        self.index += 1
        if token.text == "(":
            node = self.or_expr()
            self.expect(")")
            return node
        if token.kind == "string":
            return Literal("string", token.text[1:-1].replace("''", "'"))
        if token.kind == "guid":
            return Literal("guid", token.text.lower())
        if token.kind == "datetime":
            if "T" in token.text and not re.search(r"(Z|[+-]\d{2}:\d{2})$", token.text):
                raise ODataError(f"The date-time literal '{token.text}' names no time zone: "
                                 "write it with Z or an offset (2026-06-01T00:00:00Z, "
                                 "2026-06-01T02:00:00+02:00)")
            value = _to_datetime(token.text)
            if value is None:
                raise ODataError(f"'{token.text}' is not a valid date-time literal")
            return Literal("datetime", value)
        if token.kind == "number":
            digits = token.text.rstrip("mMdDfFlL")
            return Literal("number", float(digits) if re.search(r"[.eE]", digits) else int(digits))
        if token.kind == "name":
            if token.text in ("true", "false"):
                return Literal("boolean", token.text == "true")
            if token.text == "null":
                return Literal("null", None)
            following = self.peek()
            if following is not None and following.text == "(":
                return self.call(token)
            segments = [token.text]
            while self.peek() is not None and self.peek().text == "/":
                self.index += 1
                nxt = self.peek()
                if nxt is None or nxt.kind != "name":
                    raise ODataError(f"Syntax error in '{self.text}': a property name must follow '/'")
                self.index += 1
                if self.peek() is not None and self.peek().text == "(":
                    raise ODataError(f"'{nxt.text}' on a path (lambda operators such as any/all) is "
                                     "not supported")
                segments.append(nxt.text)
            kind, canonical = self.resolve(tuple(segments))
            return Path(canonical, kind)
        raise ODataError(f"Syntax error at position {token.position} in '{self.text}': "
                         f"unexpected '{token.text}'")

    def call(self, token: _Token) -> Call:
        name = token.text
        if name not in FUNCTIONS:
            raise ODataError(f"Unknown function '{name}'; supported: {', '.join(FUNCTIONS)}")
        self.expect("(")
        args = [self.or_expr()]
        while self.peek() is not None and self.peek().text == ",":
            self.index += 1
            args.append(self.or_expr())
        self.expect(")")
        if len(args) != 2:
            raise ODataError(f"{name}() takes 2 arguments, got {len(args)}")
        for arg in args:
            if _type(arg) not in ("string", "any", "guid"):
                raise ODataError(f"{name}() works on strings; got {_type(arg)}")
        return Call(name, args)

    # typing
    def require_boolean(self, node: Any, where: str) -> None:
        if _type(node) not in ("boolean", "any"):
            raise ODataError(f"{where} needs a boolean expression, got {_type(node)}")

    def check_comparable(self, op: str, left: Any, right: Any) -> None:
        lt, rt = _type(left), _type(right)
        for kind in (lt, rt):
            if kind in ("object", "array", "map"):
                raise ODataError(f"cannot compare a {kind} with '{op}'; name a property inside it")
        if "null" in (lt, rt) or "any" in (lt, rt) or lt == rt:
            if lt == rt == "boolean" and op not in ("eq", "ne"):
                raise ODataError(f"'{op}' does not apply to booleans")
            return
        if {lt, rt} == {"string", "guid"}:
            return
        if {lt, rt} == {"datetime", "string"}:
            raise ODataError("A date-time compares with an unquoted ISO-8601 literal "
                             "(edited gt 2026-06-01T00:00:00Z), not with a quoted string")
        raise ODataError(f"A binary operator with incompatible types was detected: "
                         f"'{lt}' {op} '{rt}'")


def _type(node: Any) -> str:
    if isinstance(node, Literal):
        return node.type
    if isinstance(node, Path):
        return node.type
    return "boolean"


# -- evaluation -------------------------------------------------------------------------

def lookup(row: Any, segments: Iterable[str]) -> Any:
    value = row
    for segment in segments:
        value = value.get(segment) if isinstance(value, dict) else None
    return value


def _value(node: Any, row: dict[str, Any], zone: tzinfo) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Path):
        return lookup(row, node.segments)
    return evaluate(node, row, zone)


def _comparable(value: Any, kind: str, zone: tzinfo = timezone.utc) -> Any:
    if value is None:
        return None
    if kind == "datetime":
        return _to_datetime(value, zone)
    if isinstance(value, str):
        return value.lower()
    return value


def evaluate(node: Any, row: dict[str, Any], zone: tzinfo = timezone.utc) -> bool:
    """Whether ``row`` matches the parsed filter ``node`` (zoneless dates are in ``zone``)."""
    if isinstance(node, Logical):
        if node.op == "and":
            return evaluate(node.left, row, zone) and evaluate(node.right, row, zone)
        return evaluate(node.left, row, zone) or evaluate(node.right, row, zone)
    if isinstance(node, Call):
        haystack, needle = (_value(arg, row, zone) for arg in node.args)
        if not isinstance(haystack, str) or not isinstance(needle, str):
            return False
        haystack, needle = haystack.lower(), needle.lower()
        if node.name == "contains":
            return needle in haystack
        if node.name == "startswith":
            return haystack.startswith(needle)
        return haystack.endswith(needle)
    if isinstance(node, Compare):
        kind = "datetime" if "datetime" in (_type(node.left), _type(node.right)) else "plain"
        left = _comparable(_value(node.left, row, zone), kind, zone)
        right = _comparable(_value(node.right, row, zone), kind, zone)
        if node.op == "eq":
            return left == right
        if node.op == "ne":
            return left != right
        if left is None or right is None:
            return False
        try:
            return {"gt": left > right, "ge": left >= right,
                    "lt": left < right, "le": left <= right}[node.op]
        except TypeError:
            return False
    return bool(_value(node, row, zone))


# -- the whole query -----------------------------------------------------------------------

@dataclass
class Query:
    filter: Any = None
    orderby: list[tuple[Path, bool]] = field(default_factory=list)  # (path, descending)
    top: int | None = None
    skip: int = 0
    select: list[str] | None = None
    count: bool = False
    #: ``$expand``: property -> the nested ``$select`` names (None: every property).
    expand: dict[str, list[str] | None] = field(default_factory=dict)
    #: The zone of stored date-times that carry none (the server's wall time).
    zone: tzinfo = timezone.utc


def parse_filter(text: str, resolve: Resolver) -> Any:
    return _Parser(text, resolve).parse()


def parse_orderby(text: str, resolve: Resolver) -> list[tuple[Path, bool]]:
    keys = []
    for item in text.split(","):
        words = item.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise ODataError(f"Syntax error in $orderby '{text}': use 'property [asc|desc], ...'")
        segments = tuple(words[0].split("/"))
        if not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", s) for s in segments):
            raise ODataError(f"$orderby: '{words[0]}' is not a property path")
        kind, canonical = resolve(segments)
        if kind in ("object", "array", "map"):
            raise ODataError(f"$orderby: cannot sort on '{words[0]}' ({kind})")
        keys.append((Path(canonical, kind), len(words) == 2 and words[1].lower() == "desc"))
    return keys


def parse_query(params: list[tuple[str, str]], resolve: Resolver,
                allowed: tuple[str, ...] = SUPPORTED, zone: tzinfo = timezone.utc) -> Query:
    """The OData options among ``params`` (other parameters are left to the caller)."""
    seen: dict[str, str] = {}
    for name, value in params:
        if not name.startswith("$"):
            continue
        key = name.lower()
        if key in seen:
            raise ODataError(f"The query parameter '{key}' is given more than once.")
        if key not in allowed:
            if key in SUPPORTED or key in KNOWN_UNSUPPORTED:
                raise ODataError(f"The query option '{key}' is not supported here "
                                 f"(supported: {', '.join(allowed)}).")
            raise ODataError(f"The query parameter '{name}' is not supported.")
        seen[key] = value
    query = Query(zone=zone)
    if "$expand" in seen:
        query.expand = parse_expand(seen["$expand"], resolve)
    if "$filter" in seen:
        query.filter = parse_filter(seen["$filter"], resolve)
    if "$orderby" in seen:
        query.orderby = parse_orderby(seen["$orderby"], resolve)
    for option in ("$top", "$skip"):
        if option in seen:
            text = seen[option].strip()
            if not re.fullmatch(r"\d{1,9}", text):
                raise ODataError(f"Invalid value '{seen[option]}' for {option}: "
                                 "a non-negative integer is required.")
            setattr(query, option[1:], int(text))
    if "$count" in seen:
        if seen["$count"].strip().lower() not in ("true", "false"):
            raise ODataError("$count takes true or false")
        query.count = seen["$count"].strip().lower() == "true"
    if "$select" in seen:
        names = [n.strip() for n in seen["$select"].split(",")]
        if "*" in names:
            query.select = None
        else:
            query.select = []
            for name in names:
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                    raise ODataError(f"$select: '{name}' is not a property name "
                                     "(paths inside a property are not supported)")
                query.select.append(resolve((name,))[1][0])
    return query


def _top_level(text: str) -> list[str]:
    """``a,b(x,y),c`` split on the commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char == "(") - (char == ")")
        if depth < 0:
            raise ODataError(f"Unbalanced parentheses in '{text}'")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if depth:
        raise ODataError(f"Unbalanced parentheses in '{text}'")
    return [*parts, current]


def parse_expand(text: str, resolve: Resolver) -> dict[str, list[str] | None]:
    """``a,b($select=x,y)``: objects or collections of the type, each with its own $select."""
    expand: dict[str, list[str] | None] = {}
    for part in _top_level(text):
        match = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*", part)
        if not match:
            raise ODataError(f"Syntax error in $expand '{text}': '{part.strip()}' is not a "
                             "property name, optionally with ($select=...)")
        name, nested = match.group(1), match.group(2)
        kind, canonical = resolve((name,))
        if kind not in ("object", "array", "map"):
            raise ODataError(f"$expand: '{name}' is a {kind}, not a related entity or collection")
        select = None
        if nested is not None:
            option, _, value = nested.partition("=")
            if option.strip().lower() != "$select" or not value.strip():
                raise ODataError(f"$expand: only a nested $select is supported, not '{nested}'")
            select = [item.strip() for item in value.split(",")]
            if kind == "object":  # [I] names inside collections and maps are not checked
                for item in select:
                    resolve((canonical[0], item))
        expand[canonical[0]] = select
    return expand


def _collate(text: str) -> tuple[str, str]:
    """Case- and accent-insensitive first (Å next to A, as SQL Server sorts), then exact."""
    folded = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    return folded.casefold(), text


def _sort_key(value: Any, kind: str, zone: tzinfo = timezone.utc) -> tuple:
    if isinstance(value, str) and kind != "datetime":
        return (2, *_collate(value))
    value = _comparable(value, "datetime" if kind == "datetime" else "plain", zone)
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, datetime):
        return (1, value.timestamp())
    return (2, str(value))


def apply(query: Query, rows: list[dict[str, Any]], *, page: bool = True,
          project: bool = True) -> list[dict[str, Any]]:
    """Filter, order, page (``$skip`` then ``$top``) and project ``rows``."""
    result = [row for row in rows
              if query.filter is None or evaluate(query.filter, row, query.zone)]
    for path, descending in reversed(query.orderby):
        result.sort(key=lambda row: _sort_key(lookup(row, path.segments), path.type, query.zone),
                    reverse=descending)
    if page:
        result = result[query.skip:]
        if query.top is not None:
            result = result[:query.top]
    for name, nested in query.expand.items():
        if nested is not None:
            result = [{**row, name: _project(row.get(name), nested)} for row in result]
    if project and query.select is not None:
        result = [{name: row.get(name) for name in query.select} for row in result]
    return result


def _project(value: Any, names: list[str]) -> Any:
    if isinstance(value, list):
        return [_project(item, names) for item in value]
    if isinstance(value, dict):
        return {name: value.get(name) for name in names}
    return value
