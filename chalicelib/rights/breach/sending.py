"""Mailing the recorded notice, person by person, resumably: per person one
transaction appends ``breach_notified`` and writes their progress, under a lease so
two runs never mail the same person; a pace keeps within the transport's limits.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.consent.catalogue import Catalogue
from chalicelib.core.clock import now_iso
from chalicelib.core.errors import BadInput, ConfigError, MailError, OptinProofError
from chalicelib.core.logs import log
from chalicelib.core.settings import Settings
from chalicelib.mail import compose
from chalicelib.mail.outbox import redact
from chalicelib.mail.transports import Transport
from chalicelib.proof.chain import new_event_id
from chalicelib.rights.breach.audience import reachability
from chalicelib.rights.breach.notice import (
    FAILED,
    MAIL_KIND,
    NOTIFIED,
    UNREACHABLE,
    Notice,
    NoticeText,
    Recorded,
    breach_pk,
    message,
    person_sk,
    progress_items,
    record_notice,
    render,
)
from chalicelib.store import keys
from chalicelib.store.ledger import Draft, Ledger, Plan, Snapshot

_LEASE_SECONDS = 120


class Pace:
    """At most ``per_second`` sends a second, evenly spaced (a token bucket of one token).

    SES and relays throttle per second: a burst would only earn refusals.
    """

    def __init__(
        self,
        per_second: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not per_second > 0:
            raise BadInput(
                f"Rate {per_second!r}: give a positive number of mails per second "
                "(e.g. 10; your SES account's maximum send rate at most)."
            )
        self.interval = 1.0 / per_second
        self.sleep, self.clock = sleep, clock
        self.next_at: float | None = None

    def wait(self) -> None:
        now = self.clock()
        if self.next_at is not None and now < self.next_at:
            self.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = now + self.interval


@dataclass
class Progress:
    """Counters of one run; ``line`` is what the CLI shows while it goes."""

    total: int = 0
    processed: int = 0
    #: Mailed by this run.
    notified: int = 0
    #: Mailed by an earlier run (never again).
    before: int = 0
    #: Why people could not be mailed: erased, no_address, undeliverable.
    unreachable: dict[str, int] = field(default_factory=dict)
    #: The transport failed for now: the next run tries again.
    failed: int = 0
    #: The transport refused for good (this run or an earlier one): never retried.
    permanent: int = 0
    #: Another run was on the person at that moment: the next run looks again.
    busy: int = 0
    errors: list[str] = field(default_factory=list)
    #: The deadline came before everyone was handled.
    stopped: bool = False
    started: float = field(default_factory=time.monotonic)
    #: People settled before this run started (not part of its rate).
    settled_at_start: int = 0

    def count(self, outcome: str, reason: str = "") -> None:
        self.processed += 1
        if outcome == NOTIFIED:
            self.notified += 1
        elif outcome == "before":
            self.before += 1
        elif outcome == UNREACHABLE:
            self.unreachable[reason] = self.unreachable.get(reason, 0) + 1
        elif outcome == "busy":
            self.busy += 1
        else:
            if outcome == "permanent":
                self.permanent += 1
            else:
                self.failed += 1
            if reason and len(self.errors) < 20:
                self.errors.append(reason)

    def rate(self) -> float:
        """People handled per second by this run."""
        elapsed = max(time.monotonic() - self.started, 1e-6)
        return (self.processed - self.settled_at_start) / elapsed

    def seconds_left(self) -> float:
        rate = self.rate()
        return (self.total - self.processed) / rate if rate > 0 else 0.0

    def line(self, verb: str = "notified") -> str:
        left = int(self.seconds_left())
        return (
            f"{self.processed}/{self.total} people | {verb} {self.notified} | before "
            f"{self.before} | unreachable {sum(self.unreachable.values())} | failed "
            f"{self.failed + self.permanent} | {self.rate():.1f}/s | "
            f"{left // 60}:{left % 60:02d} left"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "processed": self.processed,
            "notified": self.notified,
            "before": self.before,
            "unreachable": dict(self.unreachable),
            "failed": self.failed,
            "permanent": self.permanent,
            "busy": self.busy,
            "errors": self.errors[:10],
            "stopped": self.stopped,
        }


def _settled(item: dict[str, Any] | None) -> str:
    """``before`` / ``permanent`` for a person no run should mail again, else ``""``."""
    if not item:
        return ""
    if item.get("status") == NOTIFIED:
        return "before"
    if item.get("status") == FAILED and item.get("permanent"):
        return "permanent"
    return ""


class Notifier:
    """Mails one recorded notice, person by person, resumably (see :func:`notify`)."""

    def __init__(
        self,
        ledger: Ledger,
        settings: Settings,
        catalogue: Catalogue,
        transport: Transport,
        recorded: Recorded,
        pace: Pace,
    ) -> None:
        self.ledger, self.settings, self.catalogue = ledger, settings, catalogue
        self.transport, self.recorded, self.pace = transport, recorded, pace
        self.pk = breach_pk(recorded.breach_id)
        self.run_id = secrets.token_hex(8)
        self._templates: dict[str, compose.Template] = {}

    def template(self, text: NoticeText) -> compose.Template:
        """Rendered once per language and run, and kept as evidence before the first send."""
        if text.locale not in self._templates:
            template = render(self.catalogue, text)
            self.ledger.put_content(
                keys.MAIL_TEMPLATE, template.sha256, compose.template_record(template)
            )
            self._templates[text.locale] = template
        return self._templates[text.locale]

    def reach(self, subject: str) -> tuple[str, str]:
        """One person, under a lease so two runs never mail the same person at once."""
        lock = keys.breach_lock(self.recorded.breach_id, subject)[1]
        if not self.ledger.lease(self.pk, lock, self.run_id, _LEASE_SECONDS):
            return "busy", ""
        try:
            return self._reach(subject)
        finally:
            self.ledger.release(self.pk, lock, self.run_id)

    def _reach(self, subject: str) -> tuple[str, str]:
        item = self.ledger.get(self.pk, person_sk(subject))
        settled = _settled(item)
        if settled:
            return settled, ""
        reason, profile = reachability(self.ledger, subject)
        if reason or profile is None:
            self.ledger.put(
                {
                    "pk": self.pk,
                    "sk": person_sk(subject),
                    "subject": subject,
                    "status": UNREACHABLE,
                    "reason": reason,
                    "at": now_iso(),
                    "attempts": int((item or {}).get("attempts", 0)),
                }
            )
            return UNREACHABLE, reason
        text = self.recorded.for_locale(profile.get("locale"))
        template = self.template(text)
        attempts = int((item or {}).get("attempts", 0)) + 1
        mail_id = secrets.token_hex(10)
        try:
            msg, message_id = message(
                self.settings, self.catalogue, template, profile["email"], mail_id
            )
        except ValueError as exc:  # email_validator's errors: an address no relay takes
            return self._failed(
                subject, attempts, True, f"the stored address is not usable ({type(exc).__name__})"
            )
        self.pace.wait()
        try:
            provider_id = self.transport.send(msg)
        except MailError as exc:
            return self._failed(subject, attempts, exc.permanent, str(exc))
        self._record(subject, text, template, mail_id, message_id, provider_id, attempts)
        return NOTIFIED, ""

    def _record(
        self,
        subject: str,
        text: NoticeText,
        template: compose.Template,
        mail_id: str,
        message_id: str,
        provider_id: str,
        attempts: int,
    ) -> None:
        """The event and the progress item in one transaction: proof and resume agree."""
        breach_id, transport = self.recorded.breach_id, self.transport.name

        def build(snap: Snapshot) -> Plan:
            at, event_id = now_iso(), new_event_id()
            return Plan(
                events=[
                    Draft(
                        {
                            "event_id": event_id,
                            "kind": "breach_notified",
                            "at": at,
                            "breach_id": breach_id,
                            "notice_sha256": text.sha256,
                            "locale": text.locale,
                            "mail_kind": MAIL_KIND,
                            "mail_id": mail_id,
                            "message_id": message_id,
                            "provider_message_id": provider_id,
                            "transport": transport,
                            "template_version": template.sha256,
                            "channel": f"breach:{breach_id}",
                            "attempts": attempts,
                        }
                    )
                ],
                puts=[
                    {
                        "pk": self.pk,
                        "sk": person_sk(subject),
                        "subject": subject,
                        "status": NOTIFIED,
                        "at": at,
                        "event_id": event_id,
                        "locale": text.locale,
                        "notice_sha256": text.sha256,
                        "message_id": message_id,
                        "attempts": attempts,
                    }
                ],
            )

        self.ledger.commit(subject, build)
        log(
            "breach_notified",
            breach=breach_id,
            subject=subject,
            locale=text.locale,
            transport=transport,
            attempts=attempts,
        )

    def _failed(self, subject: str, attempts: int, permanent: bool, error: str) -> tuple[str, str]:
        error = redact(error)[:300]  # providers quote the address; this item outlives it
        self.ledger.put(
            {
                "pk": self.pk,
                "sk": person_sk(subject),
                "subject": subject,
                "status": FAILED,
                "permanent": permanent,
                "error": error,
                "attempts": attempts,
                "at": now_iso(),
            }
        )
        log(
            "breach_notice_failed",
            level="warning",
            breach=self.recorded.breach_id,
            subject=subject,
            error=error,
            permanent=permanent,
            attempts=attempts,
        )
        return ("permanent" if permanent else FAILED), f"{subject[:12]}: {error}"


def notify(
    ledger: Ledger,
    settings: Settings,
    catalogue: Catalogue,
    transport: Transport,
    notice: Notice,
    subjects: Sequence[str],
    rate_per_second: float = 10.0,
    on_progress: Callable[[Progress], None] | None = None,
    deadline: float | None = None,
    operator: str = "cli",
    sleep: Callable[[float], None] = time.sleep,
) -> Progress:
    """Mail the notice to every selected person still reachable; record each one.

    Safe to run again and again (after a failure, an interruption, or with a wider
    selection): whoever was notified is skipped, failures are tried again, permanent
    refusals are not. With a ``deadline`` (a ``time.monotonic()`` value) nobody is
    started after it and ``progress.stopped`` says the next run has more to do.
    """
    if transport.name == "none":
        raise ConfigError(
            "Breach notices are mailed by OptinProof: set MAIL_TRANSPORT (ses or "
            "smtp) and MAIL_FROM."
        )
    pace = Pace(rate_per_second, sleep)
    recorded = record_notice(ledger, catalogue, notice, operator)
    notifier = Notifier(ledger, settings, catalogue, transport, recorded, pace)
    subjects = list(dict.fromkeys(subjects))
    settled = {item["subject"]: _settled(item) for item in progress_items(ledger, notice.breach_id)}
    progress = Progress(total=len(subjects))
    todo = []
    for subject in subjects:
        if settled.get(subject):
            progress.count(settled[subject])
        else:
            todo.append(subject)
    progress.settled_at_start = progress.processed
    for subject in todo:
        if deadline is not None and time.monotonic() > deadline:
            progress.stopped = True
            break
        try:
            outcome, reason = notifier.reach(subject)
        except OptinProofError as exc:  # e.g. the store failed for this person: next run
            outcome, reason = FAILED, f"{subject[:12]}: {redact(str(exc))[:300]}"
        progress.count(outcome, reason)
        if on_progress:
            on_progress(progress)
    log(
        "breach_notify_run",
        breach=notice.breach_id,
        operator=operator,
        **{k: v for k, v in progress.as_dict().items() if k != "errors"},
    )
    return progress
