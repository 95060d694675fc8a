"""Importing a file of existing consent evidence: each good row one ``imported`` event.

Every row goes through the ledger like every other event (sealed on the person's
chain, conditioned on their chain head), many people per transaction
(``Ledger.commit_many``, as a campaign page does): a page of rows is read in
BatchGetItem rounds (chain heads, the purpose's states, the rows' import keys, the
tombstones), planned, and written in transactions of up to 100 items. Whatever a page
cannot settle (a person listed twice in it, a transaction refused because someone
moved meanwhile) goes the one-person way, which reads again.

Idempotent: a row's import key (``SUBJ#<key>`` / ``IMPORTED#<id>``, the id a hash of
the source, the person, the purpose, the decision and the source's time) is created
in the same transaction as its event, only if absent; a re-run of the same file finds
every key and writes nothing.

What an import changes (the rules, in :func:`applies`): a person with no state for the
purpose gets the imported decision as their state, marked ``source: imported`` with
its grade; an imported state is replaced by a newer (or, undated, a better graded)
imported one; a decision taken through OptinProof is never replaced. The event is
recorded either way (``applied`` says whether it moved the state): it is evidence.
An imported state is not pushed to Act! (the evidence came from the company's own
tools); nothing imported is ever called a double opt-in recorded by OptinProof.

Size: the page's read, its plans, the batched write and the one-person fallback share
the idempotency rule and the summary's counters; split, each would re-derive them.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from chalicelib.consent import validity
from chalicelib.consent.catalogue import Catalogue, text_sha256
from chalicelib.consent.imports.grade import GRADES, better, grade
from chalicelib.consent.imports.rows import Columns, Reject, Row, problem
from chalicelib.consent.imports.sources import PARSERS, SOURCES, Options
from chalicelib.consent.subjects import mail_address, normalise_email, subject_key
from chalicelib.core.clock import now_iso
from chalicelib.core.errors import BadInput, InvalidEmail, OptinProofError, RequiredItemMissing
from chalicelib.core.logs import log
from chalicelib.core.settings import Settings
from chalicelib.proof.chain import canonical, new_event_id
from chalicelib.store import keys
from chalicelib.store.ledger import Draft, Ledger, Plan, Reads, Snapshot

#: Rows read and planned together (BatchGetItem rounds, then ``commit_many``).
PAGE = 100


@dataclass
class Summary:
    """What an import did, for the CLI's summary, the admin API's answer and the logs."""

    rows: int = 0
    imported: int = 0
    already: int = 0
    rejected: int = 0
    #: Imported rows that became the purpose's state (the others kept a newer decision).
    applied: int = 0
    kept: int = 0
    grades: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GRADES, 0))

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "imported": self.imported,
            "already_imported": self.already,
            "rejected": self.rejected,
            "applied": self.applied,
            "kept_newer_decision": self.kept,
            "grades": dict(self.grades),
        }


@dataclass(frozen=True)
class Prepared:
    """A good row with everything its write needs, computed once."""

    row: Row
    subject: str
    address: str
    purpose: str
    grade: str
    import_id: str

    @property
    def import_key(self) -> keys.Key:
        return keys.imported(self.subject, self.import_id)


def import_id(source: str, subject: str, purpose: str, row: Row) -> str:
    """The row's identity: the same person, purpose, decision and source time from the
    same source is the same row, whatever line it is on or how often it is imported."""
    basis = "|".join((source, subject, purpose, row.decision, row.source_at or ""))
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:40]


def applies(current: dict[str, Any], prepared: Prepared) -> bool:
    """Whether the imported row becomes the purpose's state (see the module docstring)."""
    if not current.get("state"):
        return True
    if current.get("source") != "imported":
        return False  # a decision taken through OptinProof always wins
    mine, theirs = prepared.row.source_at, current.get("source_at")
    if mine and theirs:
        return bool(mine > theirs)
    return better(prepared.grade, current.get("grade"))


class Importer:
    """Reads rows of one source into the ledger (or only grades them: ``dry_run``)."""

    def __init__(
        self,
        ledger: Ledger,
        settings: Settings,
        catalogue: Catalogue,
        source: str,
        purpose: str | None,
        options: Options | None = None,
        dry_run: bool = False,
        workers: int = 4,
    ) -> None:
        if source not in SOURCES:
            raise BadInput(f"Source {source!r}: choose one of {', '.join(SOURCES)}.")
        if purpose is not None and purpose not in catalogue.purposes:
            raise BadInput(f"Unknown purpose {purpose!r}. Known: {', '.join(catalogue.purposes)}.")
        if purpose is None and source != "generic":
            raise BadInput("Name the purpose these rows are evidence for (--purpose).")
        self.ledger, self.settings, self.catalogue = ledger, settings, catalogue
        self.source, self.purpose = source, purpose
        self.options = options or Options()
        self.dry_run, self.workers = dry_run, max(1, workers)
        self.summary = Summary()
        self._parse = PARSERS[source]
        self._stored_texts: set[str] = set()
        self._lock = threading.Lock()

    # -- reading ------------------------------------------------------------------

    def prepare(self, line: int, raw: dict[str, Any]) -> Prepared | Reject:
        """One CSV row parsed, checked and graded (no table read)."""
        cols = Columns(raw)
        if problem(raw):
            return Reject(line, problem(raw), cols.raw)
        try:
            parsed = self._parse(line, cols, self.options)
        except ValueError as exc:
            return Reject(line, str(exc), cols.raw)
        if isinstance(parsed, Reject):
            return parsed
        purpose = parsed.purpose or self.purpose
        if purpose is None:
            return Reject(line, "no purpose: give a purpose column or --purpose", cols.raw)
        if purpose not in self.catalogue.purposes:
            return Reject(line, f"unknown purpose {purpose!r}", cols.raw)
        if not parsed.email.strip():
            return Reject(line, "no e-mail address", cols.raw)
        try:
            address = mail_address(parsed.email)
            subject = subject_key(self.settings.subject_pepper, normalise_email(address))
        except InvalidEmail as exc:
            return Reject(line, f"invalid e-mail address ({exc})", cols.raw)
        return Prepared(
            parsed,
            subject,
            address,
            purpose,
            grade(parsed),
            import_id(self.source, subject, purpose, parsed),
        )

    def run(
        self,
        rows: Iterable[tuple[int, dict[str, Any]]],
        reject: Callable[[Reject], None],
        progress: Callable[[int], None] | None = None,
    ) -> Summary:
        """Import every row: rejects reported through ``reject`` as they come,
        ``progress(n)`` after each page of ``n`` rows. Pages are written by
        ``workers`` threads at once (DynamoDB answers one page while we plan another)."""
        pages = _pages(rows, PAGE)
        if self.dry_run or self.workers == 1:
            for page in pages:
                self._page(page, reject, progress)
        else:
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                # A bounded window of pages in flight: a 100,000-row file is never
                # held in memory as futures.
                window: list[Any] = []
                for page in pages:
                    window.append(pool.submit(self._page, page, reject, progress))
                    if len(window) >= self.workers * 2:
                        window.pop(0).result()
                for future in window:
                    future.result()
        log("import_done", source=self.source, purpose=self.purpose, **self.summary.as_dict())
        return self.summary

    def _page(
        self,
        page: list[tuple[int, dict[str, Any]]],
        reject: Callable[[Reject], None],
        progress: Callable[[int], None] | None,
    ) -> None:
        good: list[Prepared] = []
        bad: list[Reject] = []
        for line, raw in page:
            prepared = self.prepare(line, raw)
            (bad if isinstance(prepared, Reject) else good).append(prepared)  # type: ignore[arg-type]
        if not self.dry_run:
            bad.extend(self._write(good))
        else:
            for prepared in good:
                self._count(prepared, "imported", True)
        with self._lock:
            self.summary.rows += len(page)
            self.summary.rejected += len(bad)
            for item in bad:
                reject(item)
            if progress is not None:
                progress(len(page))

    # -- writing ------------------------------------------------------------------

    def _write(self, good: list[Prepared]) -> list[Reject]:
        """Write a page; the rejects found only now (an erased person)."""
        for prepared in good:
            self._keep_wording(prepared)
        first: list[Prepared] = []
        alone: list[Prepared] = []
        seen: set[str] = set()
        for prepared in good:  # one person twice in a page: the second on its own
            (alone if prepared.subject in seen else first).append(prepared)
            seen.add(prepared.subject)
        extra = [k for p in first for k in (p.import_key, keys.tombstone(p.subject))]
        purposes = tuple(sorted({p.purpose for p in first}))  # what the plans read
        snaps, found = self.ledger.snapshots(
            sorted({p.subject for p in first}), Reads(purposes), extra
        )
        rejects: list[Reject] = []
        plans: list[tuple[Prepared, Snapshot, Plan]] = []
        at = now_iso()
        for prepared in first:
            if prepared.import_key in found:
                self._count(prepared, "already")
            elif keys.tombstone(prepared.subject) in found:
                rejects.append(_erased(prepared))
            else:
                snap = snaps[prepared.subject]
                plans.append((prepared, snap, self._plan(prepared, snap, at)))
        written = self.ledger.commit_many([(snap, plan) for _, snap, plan in plans])
        for (prepared, _, plan), sealed in zip(plans, written, strict=True):
            if sealed is None:
                alone.append(prepared)  # refused, nothing written: read again, alone
            else:
                self._count(prepared, "imported", bool(plan.puts))
        for prepared in alone:
            rejects.extend(self._alone(prepared))
        return rejects

    def _alone(self, prepared: Prepared) -> list[Reject]:
        """One row the one-person way: a consistent read of what it depends on."""
        at, outcome = now_iso(), dict[str, Any]()
        reads = Reads((prepared.purpose,), (prepared.import_key, keys.tombstone(prepared.subject)))

        def build(snap: Snapshot) -> Plan:
            if prepared.import_key in snap.items:
                outcome["kind"] = "already"
                return Plan()
            if keys.tombstone(prepared.subject) in snap.items:
                outcome["kind"] = "erased"
                return Plan()
            plan = self._plan(prepared, snap, at)
            outcome["kind"], outcome["applied"] = "imported", bool(plan.puts)
            return plan

        try:
            self.ledger.commit(prepared.subject, build, reads)
        except RequiredItemMissing:  # another run wrote the same row meanwhile
            outcome["kind"] = "already"
        except OptinProofError as exc:
            return [Reject(prepared.row.line, f"not written: {exc}", prepared.row.columns)]
        if outcome["kind"] == "erased":
            return [_erased(prepared)]
        self._count(prepared, outcome["kind"], bool(outcome.get("applied")))
        return []

    def _plan(self, prepared: Prepared, snap: Snapshot, at: str) -> Plan:
        """The row's event, its import key, the profile and (when it applies) the state."""
        row, purpose = prepared.row, prepared.purpose
        current = snap.states.get(purpose, {})
        applied = applies(current, prepared)
        state = row.decision
        if state == "refused" and current.get("state") == "accepted" and applied:
            state = "withdrawn"
        salt = secrets.token_hex(16)
        event_id = new_event_id()
        seq = snap.seq + 1
        body = {
            "event_id": event_id,
            "kind": "imported",
            "at": at,
            "purpose": purpose,
            "channel": f"import:{self.source}",
            "source": self.source,
            "grade": prepared.grade,
            "decision": row.decision,
            "state": state if applied else None,
            "applied": applied,
            "previous_state": current.get("state") if applied else None,
            "previous_grade": _grade_of(current) if applied else None,
            "source_at": row.source_at,
            "opted_in_at": row.opted_in_at,
            "confirmed_at": row.confirmed_at,
            "refused_at": row.refused_at,
            "double_opt_in": row.double_opt_in,
            "text_sha256": _wording_sha(row.wording),
            "import_id": prepared.import_id,
            "line": row.line,
            "columns": sorted(row.columns),
            "columns_sha256": _columns_sha(row.columns, salt),
        }
        record = {
            **keys.item(prepared.import_key),
            "subject": prepared.subject,
            "source": self.source,
            "purpose": purpose,
            "event_id": event_id,
            "event_seq": seq,
            "line": row.line,
            "grade": prepared.grade,
            "imported_at": at,
            "columns": dict(row.columns),
            "columns_salt": salt,
        }
        plan = Plan(
            events=[Draft(body, {"ip": row.ip})],
            create=[record],
            absent=[keys.tombstone(prepared.subject)],
            # the address as the person last gave it to us stays; a new person gets one
            profile={
                "email": None if (snap.profile or {}).get("email") else prepared.address,
                "updated_at": at,
            },
        )
        if applied:
            item = {
                **keys.item(keys.purpose(snap.subject, purpose)),
                "purpose": purpose,
                "subject": snap.subject,
                "state": state,
                "decided_at": row.source_at or at,
                "event_id": event_id,
                "event_seq": seq,
                "channel": f"import:{self.source}",
                "source": "imported",
                "import_source": self.source,
                "grade": prepared.grade,
                "source_at": row.source_at,
            }
            # an imported acceptance holds for the purpose's validity from the last
            # contact the row proves (its confirmation, else its opt-in), like ours
            contact = row.confirmed_at or row.opted_in_at or row.source_at
            validity.stamp(
                plan, snap.subject, self.catalogue.get(purpose), current, body, item, contact
            )
            plan.puts.append(item)
            plan.profile_remove = ("expires_at",)  # decided: the profile stays
        return plan

    def _keep_wording(self, prepared: Prepared) -> None:
        """Store a row's wording once (``TEXT#<sha>``) before any event cites it."""
        wording = (prepared.row.wording or "").strip()
        sha = _wording_sha(wording)
        if self.dry_run or sha is None or sha in self._stored_texts:
            return
        self.ledger.put_text(
            sha,
            {
                "purpose": prepared.purpose,
                "locale": None,
                "title": "",
                "text": wording,
                "source": f"import:{self.source}",
            },
        )
        self._stored_texts.add(sha)

    def _count(self, prepared: Prepared, kind: str, applied: bool = False) -> None:
        with self._lock:
            if kind == "already":
                self.summary.already += 1
                return
            self.summary.imported += 1
            self.summary.grades[prepared.grade] += 1
            if applied:
                self.summary.applied += 1
            else:
                self.summary.kept += 1


def _grade_of(state: dict[str, Any]) -> str | None:
    """The grade an imported acceptance holds (what the grade counters count)."""
    if state.get("source") == "imported" and state.get("state") == "accepted":
        return state.get("grade")
    return None


def _wording_sha(wording: str | None) -> str | None:
    text = (wording or "").strip()
    return text_sha256("", text) if text else None


def _columns_sha(columns: dict[str, str], salt: str) -> str:
    """Commitment to the original columns, kept erasable beside the event (salted, so
    nobody can confirm a guessed address from the hash)."""
    return hashlib.sha256(canonical({"columns": columns, "salt": salt})).hexdigest()


def verify_columns(record: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether an import record's columns are the ones its event committed to."""
    if "columns" not in record:
        return True  # erased: the commitment stays, the data is gone
    return _columns_sha(record["columns"], record.get("columns_salt", "")) == event.get(
        "columns_sha256"
    )


def _erased(prepared: Prepared) -> Reject:
    return Reject(
        prepared.row.line,
        "this person asked for erasure: never re-imported",
        prepared.row.columns,
    )


def _pages(
    rows: Iterable[tuple[int, dict[str, Any]]], size: int
) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    it = iter(rows)
    while page := list(islice(it, size)):
        yield page
