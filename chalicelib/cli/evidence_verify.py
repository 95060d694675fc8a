"""``evidence verify FILE``: check an evidence pack or export offline, as a third party.

Needs the file only (and, for the chain of trust, the TSA's root certificate): not our
table, not AWS. ``--write-token DIR`` writes each anchor's token as a ``.tsr`` file,
its root and the token's certificates, for ``openssl ts -verify`` alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from chalicelib.cli.common import ExampleCommand
from chalicelib.cli.evidence import evidence
from chalicelib.core.errors import BadInput


@evidence.command(
    "verify",
    cls=ExampleCommand,
    short_help="check a pack offline: chain, inclusion proofs, TSA tokens; exit 1 if one fails",
    help="Recompute the chain of FILE (an evidence pack or export.json), each anchor's "
    "leaf and Merkle path to its root, and check each RFC 3161 token: it stamps that "
    "root, its CMS signature verifies with the TSA certificate it carries, the "
    "certificate is for time stamping and was valid then, and with --ca it was issued "
    "under one of those trusted roots. One line per check; exit 1 if any fails.",
    example="evidence verify evidence-3f1a2b4c5d6e.json --ca tsa-root.pem",
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--ca",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM file of trusted TSA root certificates (e.g. from the EU trusted list)",
)
@click.option(
    "--write-token",
    type=click.Path(file_okay=False, path_type=Path),
    help="directory for each anchor's <id>.tsr, <id>.root and <id>-certs.pem",
)
@click.option("--json", "as_json", is_flag=True, help="print the checks as one JSON document")
def evidence_verify(file: Path, ca: Path | None, write_token: Path | None, as_json: bool) -> int:
    """Exit 1 when any check fails: a script (or a court's expert) need not read lines."""
    from chalicelib.proof import anchor_verify

    data = _read(file)
    checks = anchor_verify.verify_pack(data, ca.read_bytes() if ca else None)
    if write_token is not None:
        _write_tokens(data, write_token)
    if as_json:
        print(
            json.dumps(
                [{"check": c.check, "ok": c.ok, "detail": c.detail} for c in checks],
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        for check in checks:
            print(f"{'ok  ' if check.ok else 'FAIL'}  {check.check}: {check.detail}")
    failed = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(failed)} checks passed, {len(failed)} failed", file=sys.stderr)
    return 1 if failed else 0


def _read(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"{file} is not a JSON evidence pack or export: {exc}") from exc
    if not isinstance(data, dict) or "events" not in data:
        raise BadInput(f"{file} has no events: not an evidence pack or export.")
    return data


def _write_tokens(data: dict[str, Any], folder: Path) -> None:
    """Per anchor: the token as a granted TimeStampResp, the root, the certificates."""
    from chalicelib.proof import anchor_verify

    folder.mkdir(parents=True, exist_ok=True)
    for item in data.get("anchors") or []:
        name = str(item.get("anchor_id"))
        response, certs = anchor_verify.token_files(item)
        (folder / f"{name}.tsr").write_bytes(response)
        (folder / f"{name}.root").write_text(f"{item.get('root')}\n", encoding="ascii")
        (folder / f"{name}-certs.pem").write_bytes(certs)
        print(
            f"openssl ts -verify -digest {item.get('root')} -in {folder / name}.tsr "
            f"-CAfile TSA-ROOT.pem",
            file=sys.stderr,
        )
