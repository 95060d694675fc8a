"""Regenerate ``act_swagger_subset.json``: the part of Act!'s Swagger the simulator serves.

The simulator must run where ``../shared`` is absent, so it reads a trimmed copy kept
in this package. This script makes that copy from Act!'s own Swagger 2.0 document
(``act-web-api-swagger.json``, fetched from apimta.act.com) and records the source's
sha256, so a reader can check which version the simulator follows::

    .venv/bin/python -m devstack.act_simulator.extract_swagger [SOURCE] [--check]

``--check`` exits 1 when the committed copy differs from what SOURCE would give.
The copy keeps, unchanged, the operations of the routes the simulator serves and
every definition they (and the extra roots below) reference, transitively.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "act_swagger_subset.json"
DEFAULT_SOURCE = HERE.parent.parent.parent / "shared" / "act-web-api" / "act-web-api-swagger.json"
SOURCE_URL = "https://apimta.act.com/act.web.api/swagger/docs/v1"

#: Swagger paths (spelled as in the document) of the routes the simulator serves.
PATHS = [
    "/api/system",
    "/api/contacts",
    "/api/contacts/by-ids",
    "/api/contacts/{contactId}",
    "/api/sync-data/search-contacts-by-business-email",
    "/api/metadata/{recordType}/fields",
    "/api/History",
    "/api/History/{id}",
    "/api/history/{id}/contacts/{contactId}",
    "/api/contacts/{id}/history",
    "/api/history-types",
    "/api/groups",
    "/api/groups/{groupId}",
    "/api/groups/{groupId}/associated-contacts",
    "/api/groups/{groupId}/associated-contacts/{contactId}",
    "/api/contacts/{contactId}/associated-groups",
    "/api/webhooks",
    "/api/webhooks/reset-token",
    "/api/webhooks/{id}",
    "/api/webhooks/{id}/suspend",
    "/api/webhooks/{id}/continue",
]

#: Definitions the simulator validates or serves even where no kept path names them.
ROOT_DEFINITIONS = [
    "act.web.api.models.Contacts.Contact",
    "act.web.api.models.Histories.History",
    "act.web.api.models.Histories.HistoryType",
    "act.web.api.models.MetaData.Schema.Column",
    "act.web.api.models.MetaData.Schema.NewColumn",
    "act.web.api.models.MetaData.TypeCodes.HistoryType",
    "act.web.api.models.WebHooks.WebhookRequest",
    "act.web.api.models.WebHooks.RegistrationViewModel",
    "act.web.api.models.Groups.Group",
    "act.web.api.models.Utilities.SystemInfo",
]


def _refs(node: Any) -> set[str]:
    """Names of every definition ``node`` references through ``$ref``."""
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            found.add(ref[len("#/definitions/"):])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def extract(source: Path) -> dict[str, Any]:
    """The trimmed document for ``source`` (raises KeyError naming a missing path)."""
    raw = source.read_bytes()
    spec = json.loads(raw)
    paths = {path: spec["paths"][path] for path in PATHS}
    wanted = set(ROOT_DEFINITIONS) | _refs(paths)
    definitions: dict[str, Any] = {}
    while wanted:
        name = wanted.pop()
        if name in definitions:
            continue
        definitions[name] = spec["definitions"][name]
        wanted |= _refs(definitions[name]) - set(definitions)
    return {
        "x-source": {
            "file": source.name,
            "url": SOURCE_URL,
            "sha256": hashlib.sha256(raw).hexdigest(),
            "operations": sum(len(v) for v in spec["paths"].values()),
            "paths": len(spec["paths"]),
            "definitions": len(spec["definitions"]),
            "generatedBy": "devstack/act_simulator/extract_swagger.py",
        },
        "swagger": spec["swagger"],
        "info": spec["info"],
        "host": spec["host"],
        "basePath": spec["basePath"],
        "schemes": spec["schemes"],
        "paths": paths,
        "definitions": dict(sorted(definitions.items())),
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE,
                        help=f"Act!'s Swagger document (default: {DEFAULT_SOURCE})")
    parser.add_argument("--check", action="store_true",
                        help="only compare with the committed copy; exit 1 if it differs")
    args = parser.parse_args(argv)
    if not args.source.is_file():
        print(f"{args.source} not found: pass the path of act-web-api-swagger.json", file=sys.stderr)
        return 2
    text = render(extract(args.source))
    if args.check:
        same = OUTPUT.is_file() and OUTPUT.read_text(encoding="utf-8") == text
        print(f"{OUTPUT.name} {'matches' if same else 'DIFFERS from'} {args.source}")
        return 0 if same else 1
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT} ({len(text)} characters) from {args.source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
