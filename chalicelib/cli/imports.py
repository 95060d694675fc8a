"""``import``: bring the consent evidence a company already has (Act!, Mailchimp, Brevo,
our generic CSV), graded A, B or C, each row an ``imported`` event on the person's chain."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

import click

from chalicelib.cli.common import Bar, ExampleCommand, print_data
from chalicelib.consent.imports.sources import SOURCES, Options
from chalicelib.core.errors import BadInput
from chalicelib.core.services import get_act_client, get_catalogue, get_ledger
from chalicelib.core.settings import get_settings


def read_text(path: Path) -> str:
    """A file as exported: UTF-8 (with or without BOM), else Windows-1252 (Brevo and
    Excel on Windows write it)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252")


@click.command(
    "import",
    cls=ExampleCommand,
    short_help="import existing consent evidence (Act!, Mailchimp, Brevo, generic CSV)",
    help="Read a CSV of consent evidence you already have and record each row as an "
    "'imported' event on the person's proof chain, graded A (double opt-in with times, "
    "IP and wording), B (a dated opt-in) or C (a flag only). A person with no decision "
    "for the purpose gets the imported one as their state (marked imported, with its "
    "grade); a decision taken through OptinProof is never replaced. Running the same "
    "file again imports nothing twice. Bad rows go to --rejects with their line and "
    "reason. Exit 0 when every row was imported (or already was), 1 when some were "
    "rejected, 2 when the file cannot be read.",
    example="import mailchimp-subscribed.csv --source mailchimp --purpose newsletter "
    "--rejects rejects.csv",
)
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--source",
    type=click.Choice(list(SOURCES)),
    help="which tool exported the file (generic: our format, see docs/reference.md)",
)
@click.option("--purpose", help="the purpose the rows are evidence for (generic: or a column)")
@click.option(
    "--rejects",
    "rejects_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write the rejected rows here (CSV: line, reason, columns)",
)
@click.option("--dry-run", is_flag=True, help="grade and check the rows, write nothing")
@click.option("--wording", help="the wording people agreed to when they opted in")
@click.option(
    "--wording-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="the same, read from a text file",
)
@click.option("--act-flag", help="Act!: the contact field (display name) holding the opt-in")
@click.option("--act-date", help="Act!: the contact field (display name) holding its date")
@click.option(
    "--act-history",
    help="--from-act: date an undated opt-in by the earliest Act! history whose "
    "details contain these words",
)
@click.option(
    "--from-act",
    is_flag=True,
    help="read the contacts from the Act! Web API (ACT_API_URL ...) instead of a file",
)
@click.option("--workers", type=click.IntRange(1, 16), default=4, help="pages written at once")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
def import_(
    file: Path | None,
    source: str | None,
    purpose: str | None,
    rejects_path: Path | None,
    dry_run: bool,
    wording: str | None,
    wording_file: Path | None,
    act_flag: str | None,
    act_date: str | None,
    act_history: str | None,
    from_act: bool,
    workers: int,
    as_json: bool,
) -> int:
    """The summary on stdout (counts by grade), the bar and logs on stderr."""
    from chalicelib.consent import imports
    from chalicelib.consent.imports import act_api
    from chalicelib.consent.imports.writer import Importer

    if from_act == (file is not None):
        raise click.UsageError("give a FILE or --from-act (one of them)")
    source = "act" if from_act else source
    if source is None:
        raise click.UsageError("name the --source of the file: " + ", ".join(SOURCES))
    if wording_file is not None:
        wording = read_text(wording_file)
    settings = get_settings()
    options = Options(
        wording=wording,
        act_flag=act_flag,
        act_date=act_date,
        act_zone=_act_zone(settings) if source == "act" else None,
    )
    importer = Importer(
        get_ledger(settings),
        settings,
        get_catalogue(settings),
        source,
        purpose,
        options,
        dry_run=dry_run,
        workers=workers,
    )
    out: TextIO | None = None
    try:
        if rejects_path is not None:
            out = rejects_path.open("w", encoding="utf-8", newline="")
        rejects = imports.RejectsFile(out)  # type: ignore[arg-type]
        if from_act:
            if not act_flag:
                raise BadInput("--from-act needs --act-flag, the field holding the opt-in.")
            rows: Any = act_api.contact_rows(
                get_act_client(settings), act_flag, act_date, act_history
            )
            with Bar(None, "importing") as bar:
                summary = importer.run(rows, rejects, bar.advance)
        else:
            assert file is not None
            text = read_text(file)
            with Bar(max(0, text.count("\n") - 1), "importing") as bar:
                summary = imports.import_text(importer, text, rejects, bar.advance)
    finally:
        if out is not None:
            out.close()
    result = {"source": source, "purpose": purpose, "dry_run": dry_run, **summary.as_dict()}
    print_data(result, as_json)
    if summary.rejected and rejects_path is None:
        print(
            f"{summary.rejected} row(s) rejected: run again with --rejects FILE to see why",
            file=sys.stderr,
        )
    return 1 if summary.rejected else 0


def _act_zone(settings: Any) -> Any:
    """Act!'s clock, for Act! times written without a zone (UTC without Act!)."""
    from chalicelib.act import dates

    return dates.zone(settings.act.timezone) if settings.act else None
