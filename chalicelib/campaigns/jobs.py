"""Campaigns run in the background: started by the admin API, worked by a schedule.

A Lambda answers an API call in seconds, but a campaign of 10,000 contacts takes
minutes. So the admin API only records that a campaign should run (``CAMPAIGNS`` /
``CAMPAIGN#<id>``: one small partition listing every campaign and its run state), and the
scheduled ``campaign_sweep`` works through it in time-boxed passes: each pass
resumes where the last stopped (the runner never delivers twice), under a lease so
two overlapping passes never work on the same campaign.

The CLI builds its runner here too, so both paths deliver the same way.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.act import fields as actfields
from chalicelib.campaigns import define, report, runner
from chalicelib.consent.catalogue import Catalogue
from chalicelib.core.clock import now_iso
from chalicelib.core.errors import BadInput, ConfigError, OptinProofError
from chalicelib.core.logs import log
from chalicelib.core.settings import Settings
from chalicelib.store import keys
from chalicelib.store.ledger import Ledger

INDEX_PK = keys.CAMPAIGN_INDEX
RUNNING, PAUSED, FINISHED, ATTENTION = "running", "paused", "finished", "needs_attention"
#: A pass holds its campaign this long at most (longer than any Lambda runs).
_LEASE_SECONDS = 960
#: How often a pass looks whether someone paused its campaign.
PAUSE_CHECK_SECONDS = 2.0


@dataclass(frozen=True)
class Tools:
    """What delivering needs besides the table: Act!, the mail postman (either may be off)."""

    settings: Settings
    catalogue: Catalogue
    client: Any = None
    postman_factory: Callable[[], Any] | None = None


def runner_for(
    ledger: Ledger,
    tools: Tools,
    campaign: define.Campaign,
    round_no: int = 1,
    create_field: bool = False,
) -> runner.Runner:
    """A runner with what the campaign's delivery needs; ConfigError naming what is missing."""
    if tools.client is None and campaign.delivery == "act-field":
        raise ConfigError("Delivery act-field needs Act! (ACT_API_URL and friends).")
    key = (
        actfields.link_field_key(tools.client, campaign.link_field or "", create=create_field)
        if campaign.delivery == "act-field"
        else None
    )
    postman = (
        tools.postman_factory() if campaign.delivery == "mail" and tools.postman_factory else None
    )
    return runner.Runner(
        ledger, tools.settings, tools.catalogue, tools.client, campaign, postman, key, round_no
    )


def silent_contacts(ledger: Ledger, campaign: define.Campaign, round_no: int) -> set[str]:
    """Contacts a reminder round addresses: reached in an earlier round, no answer yet."""
    return {
        item["contact_id"]
        for item in report.report(ledger, campaign).no_answer
        if int(item.get("round", 1)) < round_no
    }


def index_entry(ledger: Ledger, campaign_id: str) -> dict[str, Any] | None:
    return ledger.get(INDEX_PK, _sk(campaign_id))


def _sk(campaign_id: str) -> str:
    return keys.campaign_listed(campaign_id)[1]


def public_entry(ledger: Ledger, campaign_id: str) -> dict[str, Any] | None:
    entry = index_entry(ledger, campaign_id)
    return _public(entry) if entry else None


def listing(ledger: Ledger) -> list[dict[str, Any]]:
    """Every campaign with its run state and last pass (one partition, no scan)."""
    return [_public(item) for item in ledger.query(INDEX_PK, keys.CAMPAIGN_PREFIX)]


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in ("pk", "sk")}


def schedule(
    ledger: Ledger, campaign: define.Campaign, requested_by: str, remind: bool = False
) -> dict[str, Any]:
    """Mark a campaign to run (again); ``remind`` starts the next reminder round."""
    round_no = define.current_round(ledger, campaign)
    if remind:
        if not silent_contacts(ledger, campaign, round_no + 1):
            raise BadInput(
                "Nobody is left to remind: every contact answered, bounced or was reminded already."
            )
        round_no += 1
        define.set_round(ledger, campaign, round_no)
    entry = {
        **(index_entry(ledger, campaign.id) or {}),
        "pk": INDEX_PK,
        "sk": _sk(campaign.id),
        "campaign_id": campaign.id,
        "delivery": campaign.delivery,
        "purposes": list(campaign.purposes),
        "state": RUNNING,
        "round": round_no,
        "requested_at": now_iso(),
        "requested_by": requested_by,
    }
    ledger.put(entry)
    log("campaign_scheduled", campaign=campaign.id, round=round_no, by=requested_by)
    return _public(entry)


def note_run(
    ledger: Ledger, campaign: define.Campaign, progress: runner.Progress, round_no: int, by: str
) -> dict[str, Any]:
    """List a run made elsewhere (the CLI) with the others; a scheduled state is kept."""
    entry = index_entry(ledger, campaign.id) or {
        "pk": INDEX_PK,
        "sk": _sk(campaign.id),
        "campaign_id": campaign.id,
        "delivery": campaign.delivery,
        "purposes": list(campaign.purposes),
        "requested_at": now_iso(),
        "requested_by": by,
    }
    if entry.get("state") not in (RUNNING, PAUSED):
        entry["state"] = ATTENTION if progress.failed or progress.stopped else FINISHED
    entry.update(round=round_no, last_pass=progress.as_dict(), last_pass_at=now_iso())
    ledger.put(entry)
    return _public(entry)


def pause(ledger: Ledger, campaign_id: str, requested_by: str) -> dict[str, Any]:
    """Stop scheduling passes; a pass under way finishes its current contacts."""
    define.load(ledger, campaign_id)  # an unknown id says so (404)
    entry = index_entry(ledger, campaign_id)
    if entry is None:
        raise BadInput(f"Campaign {campaign_id!r} has no run to pause.")
    entry.update(state=PAUSED, paused_at=now_iso(), paused_by=requested_by)
    ledger.put(entry)
    return _public(entry)


def work(
    ledger: Ledger, tools: Tools, budget_seconds: float, concurrency: int = 8
) -> list[dict[str, Any]]:
    """One scheduled pass over every running campaign, within ``budget_seconds``.

    The first running campaign always gets its pass (it stops cleanly at the deadline),
    so a short budget still moves things on; the others wait for time left over.
    """
    deadline = time.monotonic() + budget_seconds
    results: list[dict[str, Any]] = []
    for entry in ledger.query(INDEX_PK, keys.CAMPAIGN_PREFIX):
        if entry.get("state") != RUNNING or (results and time.monotonic() >= deadline):
            continue
        owner = uuid.uuid4().hex
        if not ledger.lease(*keys.campaign_run_lock(entry["campaign_id"]), owner, _LEASE_SECONDS):
            continue  # another pass is on it
        try:
            results.append(_pass(ledger, tools, entry, deadline, concurrency))
        finally:
            ledger.release(*keys.campaign_run_lock(entry["campaign_id"]), owner)
    return results


def _pass(
    ledger: Ledger, tools: Tools, entry: dict[str, Any], deadline: float, concurrency: int
) -> dict[str, Any]:
    campaign_id = entry["campaign_id"]
    try:
        campaign = define.load(ledger, campaign_id)
        round_no = int(entry.get("round", 1))
        runner = runner_for(ledger, tools, campaign, round_no)
        if tools.client is None:
            raise ConfigError("Reading the audience needs Act! (ACT_API_URL and friends).")
        contacts = define.audience(tools.client, campaign)
        if round_no > 1:
            unfinished = {
                i["contact_id"]
                for i in define.contact_items(ledger, campaign.id)
                if i.get("status") == "minted" and int(i.get("round", 1)) == round_no
            }
            wanted = silent_contacts(ledger, campaign, round_no) | runner.settled() | unfinished
            contacts = [c for c in contacts if c.id in wanted]
        # The size of this round's audience, for the progress bar while the pass works.
        ledger.set_fields(
            INDEX_PK,
            _sk(campaign_id),
            {"audience_total": len(contacts), "audience_round": round_no},
        )
        progress = runner.run(
            contacts,
            concurrency=concurrency,
            deadline=deadline,
            should_stop=_paused_check(ledger, campaign_id),
        )
    except OptinProofError as exc:  # Act! down, config missing: said on the entry, tried again
        log(
            "campaign_pass_failed",
            level="warning",
            campaign=campaign_id,
            error=type(exc).__name__,
            detail=str(exc)[:300],
        )
        return _record(ledger, campaign_id, {"last_error": str(exc)[:300]})
    state = RUNNING if progress.stopped else (ATTENTION if progress.failed else FINISHED)
    return _record(
        ledger,
        campaign_id,
        {"last_pass": progress.as_dict(), "last_error": None},
        state,
        (entry.get("requested_at"), entry.get("round")),
    )


def _paused_check(ledger: Ledger, campaign_id: str) -> Callable[[], bool]:
    """Whether someone paused the campaign (read at most every PAUSE_CHECK_SECONDS)."""
    last = {"at": -1e9, "stop": False}

    def check() -> bool:
        if time.monotonic() - last["at"] >= PAUSE_CHECK_SECONDS:
            last["at"] = time.monotonic()
            last["stop"] = (index_entry(ledger, campaign_id) or {}).get("state") != RUNNING
        return bool(last["stop"])

    return check


def _record(
    ledger: Ledger,
    campaign_id: str,
    fields: dict[str, Any],
    state: str | None = None,
    started: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    """Write a pass's outcome. The state changes only if nobody paused the campaign or
    asked for another run (a reminder) while the pass worked: that request stands."""
    entry = index_entry(ledger, campaign_id) or {}
    unchanged = started is None or (entry.get("requested_at"), entry.get("round")) == started
    if state and entry.get("state") == RUNNING and unchanged:
        entry["state"] = state
    entry.update({k: v for k, v in fields.items() if v is not None}, last_pass_at=now_iso())
    if fields.get("last_error") is None:
        entry.pop("last_error", None)
    ledger.put(entry)
    return _public(entry)
