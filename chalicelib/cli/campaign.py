"""``campaign``: re-permission campaigns for Act! contacts, one signed link each."""

from __future__ import annotations

import sys
import time

import click

from chalicelib.campaigns import define, jobs, service
from chalicelib.campaigns import report as campaign_reports
from chalicelib.campaigns import runner as campaign_runner
from chalicelib.cli.common import (
    Bar,
    exactly_one,
    group,
    operator,
    print_data,
    progress_printer,
)
from chalicelib.core.errors import OptinProofError
from chalicelib.core.services import get_act_client, get_catalogue, get_ledger, get_postman
from chalicelib.core.settings import get_settings

campaign = group(
    "campaign",
    "re-permission campaigns for Act! contacts",
    "campaign report --id repermission-2026-12 --json",
)

CONCURRENCY_HELP = "contacts at once (default 8)"


def tools() -> jobs.Tools:
    """What a campaign runner needs, built from the settings (Act! only if configured)."""
    settings = get_settings()
    return jobs.Tools(
        settings,
        get_catalogue(settings),
        get_act_client(settings) if settings.act else None,
        lambda: get_postman(settings),
    )


def runner(
    plan: define.Campaign, round_no: int = 1, create_field: bool = False
) -> campaign_runner.Runner:
    """The runner of one round of a campaign."""
    return jobs.runner_for(get_ledger(), tools(), plan, round_no, create_field)


def run_campaign(
    run: campaign_runner.Runner, concurrency: int, csv: str | None, only: set[str] | None = None
) -> int:
    """Read the audience, deliver, and say what happened; exit 1 if any failed, since
    running the same command again retries exactly those (nothing is sent twice)."""
    if run.client is None:
        raise OptinProofError("Reading the audience needs Act! (ACT_API_URL and friends).")
    print(f"reading the audience of {run.campaign.id} from Act!…", file=sys.stderr)
    contacts = define.audience(run.client, run.campaign)
    if only is not None:
        contacts = [c for c in contacts if c.id in only]
    verb = {"act-field": "written", "mail": "mailed", "csv": "exported"}[run.campaign.delivery]
    with Bar(len(contacts), f"contacts {verb}") as bar:
        progress = run.run(
            contacts, concurrency=concurrency, on_progress=progress_printer(verb, bar)
        )
    jobs.note_run(run.ledger, run.campaign, progress, run.round, operator())
    if run.campaign.delivery == "csv" and csv:
        with open(csv, "w", newline="", encoding="utf-8") as out:
            rows = campaign_runner.export_csv(run, out)
        print(f"{rows} link(s) written to {csv}")
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(progress.skipped.items())) or "none"
    print(
        f"{progress.total} contacts: {progress.delivered} {verb} now, {progress.already} "
        f"done before, skipped {skipped}, {progress.failed} failed"
    )
    for error in progress.errors[:10]:
        print(f"  {error}")
    if progress.failed:
        print("run the same command again to retry the failed ones (nothing is sent twice)")
    return 1 if progress.failed else 0


@campaign.command(
    "start",
    short_help="define a campaign and run it: one confirmation link per contact",
    help="Record a campaign (id, purposes, audience, delivery) and run it: read the "
    "contacts from Act!, mint one signed link each, and deliver it by writing "
    "it into an Act! contact field (for an Act! emarketing merge), by mail, or "
    "to a CSV file. Contacts without an address, a second contact with the "
    "same address, erased addresses and people who already accepted every "
    "purpose are skipped and counted. Interrupted or failed, run `campaign "
    "run` to finish: nothing is delivered twice. The language is --locale for "
    "everyone or, with --locale-field, each contact's own from that Act! field "
    "(else --locale).",
    example="campaign start --id repermission-2026-12 --purpose newsletter "
    "--all --delivery csv --csv links.csv --locale fr --locale-field Language",
)
@click.option("--id", "campaign_id", required=True, help="campaign id, e.g. repermission-2026-12")
@click.option(
    "--purpose",
    multiple=True,
    required=True,
    help="a purpose id from the catalogue; repeat for several",
)
@click.option("--all", "all_", is_flag=True, help="every contact of the Act! database")
@click.option("--group", "group_name", help="the contacts of this Act! group (its name)")
@click.option(
    "--filter",
    "odata_filter",
    help="an OData $filter, e.g. \"businessAddress/country eq 'France'\"",
)
@click.option(
    "--delivery",
    type=click.Choice(list(define.DELIVERIES)),
    required=True,
    help="act-field: write the link into --link-field; mail: we send it; csv: export to --csv",
)
@click.option("--link-field", help="Act! contact field (display name) for the link")
@click.option(
    "--create-link-field",
    is_flag=True,
    help="create --link-field in Act! if missing (needs 'Define Fields')",
)
@click.option(
    "--locale",
    type=click.Choice(["en", "fr"]),
    help="language of pages and mails (with --locale-field: for contacts without one)",
)
@click.option(
    "--locale-field",
    metavar="NAME",
    help="each contact's language from this Act! field (display name, e.g. Language); "
    "its value (fr, fr-FR, Français, English...) picks the language, else --locale",
)
@click.option(
    "--proof",
    type=click.Choice(["weak", "none", "weak_or_none"]),
    help="ask only the contacts whose proof is weak (imported grade B or C), missing "
    "(none), or either (weak_or_none), per purpose of the campaign",
)
@click.option("--csv", help="file for the links (csv delivery)")
@click.option(
    "--concurrency",
    type=int,
    default=8,
    help="contacts handled at once (default 8); Act! 429s slow it down",
)
def campaign_start(
    campaign_id: str,
    purpose: tuple[str, ...],
    all_: bool,
    group_name: str | None,
    odata_filter: str | None,
    delivery: str,
    link_field: str | None,
    create_link_field: bool,
    locale: str | None,
    locale_field: str | None,
    proof: str | None,
    csv: str | None,
    concurrency: int,
) -> int:
    """Recording the campaign first makes every later run resumable."""
    exactly_one(
        {"all": all_, "group": group_name, "filter": odata_filter}, "all", "group", "filter"
    )
    settings = get_settings()
    audience, value = (
        ("group", group_name)
        if group_name
        else (("filter", odata_filter) if odata_filter else ("all", None))
    )
    ledger = get_ledger(settings)
    plan = service.define_campaign(
        ledger,
        settings,
        get_catalogue(settings),
        service.Spec(
            campaign_id,
            list(purpose),
            audience,
            value,
            delivery,
            locale,
            link_field,
            locale_field,
            proof,
        ),
        get_act_client(settings) if settings.act else None,
    )
    service.record(ledger, plan.id, "started", operator())
    return run_campaign(runner(plan, create_field=create_link_field), concurrency, csv)


@campaign.command(
    "run",
    short_help="resume a campaign: deliver what is left or failed, nothing twice",
    help="Run a recorded campaign again: contacts already done are skipped, failed "
    "and new contacts of the audience are handled.",
    example="campaign run --id repermission-2026-12",
)
@click.option("--id", "campaign_id", required=True, help="campaign id")
@click.option("--csv", help="file for the links (csv delivery)")
@click.option("--concurrency", type=int, default=8, help=CONCURRENCY_HELP)
def campaign_run(campaign_id: str, csv: str | None, concurrency: int) -> int:
    """Finishing an interrupted or partly failed run is running it again."""
    plan = define.load(get_ledger(), campaign_id)
    service.record(get_ledger(), plan.id, "resumed", operator())
    return run_campaign(runner(plan), concurrency, csv)


@campaign.command(
    "remind",
    short_help="send a new link to the contacts who did not answer",
    help="A reminder round of the same campaign: every contact that answered "
    "nothing (and did not bounce) gets a new link, which replaces the old "
    "one; events carry the campaign id and the round. Run again, it finishes "
    "the same round (failed ones) and reminds nobody twice; --new-round "
    "starts the next round.",
    example="campaign remind --id repermission-2026-12",
)
@click.option("--id", "campaign_id", required=True, help="campaign id")
@click.option("--csv", help="file for the links (csv delivery)")
@click.option("--concurrency", type=int, default=8, help=CONCURRENCY_HELP)
@click.option(
    "--new-round", is_flag=True, help="start another round (default: finish the current one)"
)
def campaign_remind(campaign_id: str, csv: str | None, concurrency: int, new_round: bool) -> int:
    """Round 2 the first time; afterwards the same round again (finishing what failed),
    unless --new-round asks for another reminder to whoever still has not answered."""
    ledger = get_ledger()
    plan = define.load(ledger, campaign_id)
    current = define.current_round(ledger, plan)
    round_no = current + 1 if current == 1 or new_round else current
    silent = [
        i
        for i in campaign_reports.report(ledger, plan).no_answer
        if int(i.get("round", 1)) < round_no
    ]
    if not silent:
        print(
            f"nobody left to remind in round {round_no} (everybody answered, bounced or was "
            "reminded); --new-round starts another round"
        )
        return 0
    define.set_round(ledger, plan, round_no)
    service.record(ledger, plan.id, "reminded", operator(), round=round_no)
    print(f"reminding {len(silent)} contact(s) (round {round_no})", file=sys.stderr)
    return run_campaign(runner(plan, round_no), concurrency, csv, {i["contact_id"] for i in silent})


@campaign.command(
    "report",
    short_help="per purpose: sent, accepted, refused, withdrawn, no answer, bounced",
    help="Count what the campaign's contacts answered through its links.",
    example="campaign report --id repermission-2026-12 --json",
)
@click.option("--id", "campaign_id", required=True, help="campaign id")
@click.option("--no-answer-csv", help="also write the contacts without an answer")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def campaign_report(campaign_id: str, no_answer_csv: str | None, as_json: bool) -> int:
    """What the campaign achieved, counted from the proof trail, not from Act!."""
    ledger = get_ledger()
    plan = define.load(ledger, campaign_id)
    result = campaign_reports.report(ledger, plan)
    if no_answer_csv:
        run = (
            runner(plan)
            if plan.delivery == "act-field" and get_settings().act
            else campaign_runner.Runner(ledger, get_settings(), get_catalogue(), None, plan)
        )
        wanted = {i["contact_id"] for i in result.no_answer}
        with open(no_answer_csv, "w", newline="", encoding="utf-8") as out:
            rows = campaign_runner.export_csv(run, out, only=lambda i: i["contact_id"] in wanted)
        print(f"{rows} contact(s) without an answer written to {no_answer_csv}", file=sys.stderr)
    if as_json:
        print_data(result.as_dict(), True)
        return 0
    print(f"campaign {plan.id}: {', '.join(plan.purposes)} by {plan.delivery}")
    print(
        f"  {'purpose':<16}{'sent':>7}{'accepted':>10}{'refused':>9}{'withdrawn':>11}"
        f"{'no answer':>11}{'bounced':>9}"
    )
    for purpose, row in result.purposes.items():
        print(
            f"  {purpose:<16}{row['sent']:>7}{row['accepted']:>10}{row['refused']:>9}"
            f"{row['withdrawn']:>11}{row['no_answer']:>11}{row['bounced']:>9}"
        )
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(result.skipped.items())) or "none"
    print(
        f"  skipped: {skipped}; failed: {result.failed}; minted, not delivered yet: "
        f"{result.undelivered}"
    )
    return 0


@campaign.command(
    "export",
    short_help="write contact id, address, first name and link of every delivered contact",
    help="CSV of the campaign's links (re-signed from their recorded link ids).",
    example="campaign export --id repermission-2026-12 --csv links.csv",
)
@click.option("--id", "campaign_id", required=True, help="campaign id")
@click.option("--csv", required=True, help="output file")
def campaign_export(campaign_id: str, csv: str) -> int:
    """For mailing the links with another tool; links are re-signed, not stored."""
    plan = define.load(get_ledger(), campaign_id)
    run = campaign_runner.Runner(get_ledger(), get_settings(), get_catalogue(), None, plan)
    with open(csv, "w", newline="", encoding="utf-8") as out:
        rows = campaign_runner.export_csv(run, out)
    print(f"{rows} link(s) written to {csv}")
    return 0


@campaign.command(
    "list",
    short_help="every campaign with its run state (CLI runs and admin API runs)",
    help="The campaigns and their last run: state (running, paused, finished, "
    "needs_attention), round, counts of the last pass.",
    example="campaign list --json",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def campaign_list(as_json: bool) -> int:
    """One view of campaigns however they were started."""
    entries = jobs.listing(get_ledger())
    if as_json:
        print_data(entries, True)
        return 0
    if not entries:
        print("no campaign yet (campaign start, or POST /admin/campaigns)")
    for entry in entries:
        last = entry.get("last_pass") or {}
        print(
            f"{entry['campaign_id']:<32} {entry.get('state', '?'):<16} round "
            f"{entry.get('round', 1)}  {last.get('processed', 0)}/{last.get('total', 0)} "
            f"handled, {last.get('failed', 0)} failed  {entry.get('last_error', '')}"
        )
    return 0


@campaign.command(
    "work",
    short_help="work on campaigns started through the admin API (what the schedule does)",
    help="One pass over every campaign in state running (POST /admin/campaigns): "
    "each resumes where it stopped and stops cleanly after --budget seconds. "
    "In AWS the campaign_sweep function does this every minute; locally, or "
    "to push a campaign on by hand, run this. Exit 1 if a campaign needs "
    "attention.",
    example="campaign work --interval 60",
)
@click.option("--budget", type=float, default=240.0, help="seconds one pass may take (default 240)")
@click.option("--concurrency", type=int, default=8, help=CONCURRENCY_HELP)
@click.option(
    "--interval",
    type=float,
    default=0,
    help="repeat every N seconds until interrupted (default: once)",
)
def campaign_work(budget: float, concurrency: int, interval: float) -> int:
    """The scheduled campaign sweep by hand; with --interval the local stand-in for it."""
    while True:
        try:
            results = jobs.work(get_ledger(), tools(), budget, concurrency)
        except OptinProofError as exc:
            if not interval:
                raise
            print(f"error: {exc}; trying again in {interval:g}s", file=sys.stderr)
            results = []
        for entry in results:
            last = entry.get("last_pass") or {}
            print(
                f"{entry['campaign_id']}: {entry.get('state')} — {last.get('processed', 0)}/"
                f"{last.get('total', 0)} handled, {last.get('delivered', 0)} delivered now, "
                f"{last.get('failed', 0)} failed {entry.get('last_error', '')}",
                flush=True,
            )
        if not interval:
            return (
                1
                if any(e.get("state") == jobs.ATTENTION or e.get("last_error") for e in results)
                else 0
            )
        time.sleep(interval)
