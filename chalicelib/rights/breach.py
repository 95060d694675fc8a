"""Personal-data breach notices (GDPR art. 34): tell every affected person, once, with proof.

When a breach is likely to put people at high risk, the controller must tell them
"without undue delay" (the supervisory authority hears within 72 hours, art. 33). The
controller writes the notice once per language (``notice.<locale>.txt``), chooses who
is affected (everyone, the holders of a purpose state, a list of addresses), and
:func:`notify` mails each person still reachable. Per person, one transaction appends
a ``breach_notified`` event to the person's chain and writes the person's progress
item (``BREACH#<id>`` / ``SUBJ#<key>``), so a run that stops anywhere resumes where it
stopped and never mails anyone twice; the only gap is the outbox's: a crash between
the transport's acceptance and our write means one more mail, never a missing one.

The notice is recorded once (``BREACH#<id>`` / ``NOTICE``: texts, their SHA-256, when,
by whom) and is what every run sends: the same id with other texts is refused, since
what people already read cannot change (a correction is a new notice). The mail holds
nothing personal, so its template version (kept as ``MAILTPL#<sha256>`` like every
mail's, and cited by the event) is byte for byte what each person received. A notice
is owed whatever the person's consent choices: it carries no unsubscribe header and
no tracking.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from chalicelib.mail import compose
from chalicelib.core.clock import iso, now_iso, parse_iso
from chalicelib.core.errors import BadInput, ConfigError, InvalidEmail, MailError, OptinProofError
from chalicelib.core.i18n import translations
from chalicelib.store.ledger import Draft, Ledger, Plan, Snapshot
from chalicelib.store.keys import subject_pk
from chalicelib.core.logs import log
from chalicelib.mail.compose import N_
from chalicelib.mail.outbox import redact
from chalicelib.web.render import environment
from chalicelib.proof.chain import new_event_id
from chalicelib.consent.catalogue import Catalogue, canonical_text
from chalicelib.core.settings import Settings
from chalicelib.consent.subjects import normalise_email, subject_key
from chalicelib.mail.transports import Transport
from chalicelib.store import keys

MAIL_KIND = "breach"
DEFAULT_SUBJECT = N_("Important information about your personal data")
#: A notice is read in a mail client: beyond this, put the details on a page it names.
MAX_NOTICE_BYTES = 20_000
MAX_SUBJECT_CHARS = 200
#: Purpose states a selection may ask for (the states decisions leave).
STATES = ("accepted", "refused", "withdrawn")
#: Statuses of a person's progress item. "failed" is tried again by the next run,
#: unless the transport refused the mail for good (``permanent``).
NOTIFIED, UNREACHABLE, FAILED = "notified", "unreachable", "failed"

_ID = re.compile(r"[a-z0-9][a-z0-9-]{2,47}")
_NOTICE_FILE = re.compile(r"notice\.(?P<locale>[^.]+)\.txt")
_LEASE_SECONDS = 120


breach_pk = keys.breach_pk


def person_sk(subject: str) -> str:
    return keys.breach_person("", subject)[1]


def check_breach_id(breach_id: str) -> str:
    """The id names the breach in every event: short, stable, readable in a URL or a log."""
    if not _ID.fullmatch(breach_id or ""):
        raise BadInput(f"Breach id {breach_id!r}: use 3-48 lower-case letters, digits or '-', "
                       "starting with a letter or digit (e.g. 2026-11-shop-db).")
    return breach_id


def parse_moment(text: str, what: str) -> str:
    """An operator's date or time (ISO 8601; no zone means UTC) in the table's form."""
    try:
        moment = datetime.fromisoformat((text or "").strip())
    except ValueError as exc:
        raise BadInput(f"{what} {text!r} is not an ISO 8601 date or time, e.g. 2026-11-29 or "
                       "2026-11-29T14:00:00Z.") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return iso(moment)


# -- the notice -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Notice:
    """What the controller tells the affected people, per language, as written."""

    breach_id: str
    #: locale -> text; covers the catalogue's default locale (others fall back to it).
    texts: dict[str, str]
    #: locale -> subject line, only where the controller wrote one (else our default).
    subjects: dict[str, str] = field(default_factory=dict)
    #: When the controller learned of the breach: the 72 hours of art. 33 run from here.
    aware_at: str | None = None
    created_at: str = ""


@dataclass(frozen=True)
class NoticeText:
    """One language of a recorded notice: exactly the words the mails in it carry."""

    locale: str
    subject: str
    text: str
    given_subject: bool = True

    @property
    def sha256(self) -> str:
        """SHA-256 of subject, blank line, text (NFC, ``\\n``): recomputable by anyone."""
        return hashlib.sha256(canonical_text(self.subject, self.text).encode("utf-8")).hexdigest()

    def record(self) -> dict[str, Any]:
        return {"subject": self.subject, "text": self.text, "sha256": self.sha256,
                "given_subject": self.given_subject}


@dataclass(frozen=True)
class Recorded:
    """The notice as first recorded: what every run of this breach sends."""

    breach_id: str
    default_locale: str
    texts: dict[str, NoticeText]
    created_at: str
    operator: str
    aware_at: str | None = None

    def for_locale(self, locale: str | None) -> NoticeText:
        """The person's language when the notice has it, else the default language."""
        return self.texts.get(locale or "", self.texts[self.default_locale])


def _clean(text: str) -> str:
    """NFC, ``\\n`` line ends, no trailing blanks: what is hashed is what is sent."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.strip().split("\n"))


def _control_line(text: str) -> int:
    """1-based line of the first control character (tabs and line ends allowed), or 0."""
    for number, line in enumerate(text.split("\n"), start=1):
        if any(unicodedata.category(c) == "Cc" and c != "\t" for c in line):
            return number
    return 0


def _check_text(text: str, where: str) -> str:
    cleaned = _clean(text or "")
    if not cleaned:
        raise BadInput(f"{where}: the notice text is empty: write what happened, what it "
                       "means for the person, what you do about it and whom to contact.")
    size = len(cleaned.encode("utf-8"))
    if size > MAX_NOTICE_BYTES:
        raise BadInput(f"{where}: the notice has {size} bytes; at most {MAX_NOTICE_BYTES} fit in "
                       "a mail people read: shorten it and link to a page with the details.")
    line = _control_line(cleaned)
    if line:
        raise BadInput(f"{where}: line {line} holds a control character: save the notice as "
                       "plain text.")
    return cleaned


def _check_subject(subject: str, where: str) -> str:
    cleaned = _clean(subject or "")
    if not cleaned:
        raise BadInput(f"{where}: the Subject: line is empty: write the subject after it, or "
                       "remove the line to use the standard one.")
    if "\n" in cleaned or _control_line(cleaned):
        raise BadInput(f"{where}: the subject must be one line of plain text.")
    if len(cleaned) > MAX_SUBJECT_CHARS:
        raise BadInput(f"{where}: the subject has {len(cleaned)} characters; keep it under "
                       f"{MAX_SUBJECT_CHARS}.")
    return cleaned


def notice_from_texts(breach_id: str, texts: dict[str, str], catalogue: Catalogue,
                      subjects: dict[str, str] | None = None, aware_at: str | None = None,
                      where: Callable[[str], str] = lambda locale: f"notice ({locale})") -> Notice:
    """A validated notice from strings (the files' content, or an admin API body)."""
    check_breach_id(breach_id)
    stray = sorted(set(texts) - set(catalogue.locales))
    if stray:
        raise BadInput(f"{where(stray[0])}: {stray[0]!r} is not a language of the catalogue "
                       f"({', '.join(catalogue.locales)}).")
    if catalogue.default_locale not in texts:
        raise BadInput(f"The notice must exist in the catalogue's default language "
                       f"({catalogue.default_locale}): people whose language has no text get "
                       "that one.")
    checked = {locale: _check_text(text, where(locale)) for locale, text in sorted(texts.items())}
    given = {locale: _check_subject(subject, where(locale))
             for locale, subject in sorted((subjects or {}).items()) if locale in checked}
    aware = parse_moment(aware_at, "The moment you learned of the breach") if aware_at else None
    if aware and aware > now_iso():
        raise BadInput(f"The moment you learned of the breach ({aware}) is in the future: give "
                       "it in UTC (e.g. 2026-11-27T08:00:00Z).")
    return Notice(breach_id, checked, given, aware)


def _read_notice_file(path: Path) -> tuple[str | None, str]:
    """``(subject or None, text)`` of one file: an optional ``Subject:`` first line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from exc
    if len(raw) > MAX_NOTICE_BYTES + 1000:
        raise BadInput(f"{path}: {len(raw)} bytes; a notice may have at most {MAX_NOTICE_BYTES}: "
                       "shorten it and link to a page with the details.")
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 (byte {exc.start}): save the file as UTF-8 "
                       "text.") from exc
    content = content.replace("\r\n", "\n").replace("\r", "\n").lstrip("\n")
    first, _, rest = content.partition("\n")
    if first.lower().startswith("subject:"):
        return first[len("subject:"):], rest
    return None, content


def load_notice(breach_id: str, directory: Path, catalogue: Catalogue,
                aware_at: str | None = None) -> Notice:
    """The notice written as ``notice.<locale>.txt`` files in ``directory``, validated.

    Every error names the file, so the controller fixes the right one before anything
    is sent.
    """
    if not directory.is_dir():
        raise BadInput(f"{directory} is not a directory: put the notice there as "
                       f"notice.{catalogue.default_locale}.txt (and notice.<language>.txt for "
                       "other languages).")
    texts: dict[str, str] = {}
    subjects: dict[str, str] = {}
    paths: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        if path.name == "notice.txt":
            raise BadInput(f"{path}: name the file after its language, e.g. "
                           f"notice.{catalogue.default_locale}.txt.")
        match = _NOTICE_FILE.fullmatch(path.name)
        if not match:
            continue
        locale = match["locale"]
        if locale not in catalogue.locales:
            raise BadInput(f"{path}: {locale!r} is not a language of the catalogue "
                           f"({', '.join(catalogue.locales)}).")
        subject, texts[locale] = _read_notice_file(path)
        paths[locale] = path
        if subject is not None:
            subjects[locale] = subject
    if catalogue.default_locale not in texts:
        raise BadInput(f"{directory}: no notice.{catalogue.default_locale}.txt. The notice must "
                       f"exist in the catalogue's default language ({catalogue.default_locale}); "
                       "people whose language has no file get that one.")
    return notice_from_texts(breach_id, texts, catalogue, subjects, aware_at,
                             where=lambda locale: str(paths.get(locale, directory)))


def resolve(notice: Notice, catalogue: Catalogue) -> dict[str, NoticeText]:
    """Each language's subject and text; a language without a subject gets ours."""
    resolved = {}
    for locale, text in notice.texts.items():
        given = notice.subjects.get(locale)
        subject = given or translations(locale).gettext(DEFAULT_SUBJECT)
        resolved[locale] = NoticeText(locale, subject, text, given is not None)
    return resolved


def _recorded(item: dict[str, Any]) -> Recorded:
    texts = {locale: NoticeText(locale, t["subject"], t["text"], bool(t.get("given_subject")))
             for locale, t in item["texts"].items()}
    return Recorded(item["breach_id"], item["default_locale"], texts, item["created_at"],
                    item.get("operator", ""), item.get("aware_at"))


def _difference(stored: Recorded, notice: Notice) -> str:
    """What differs between a recorded notice and the one given again ('' if nothing)."""
    if set(stored.texts) != set(notice.texts):
        return (f"it was recorded in {', '.join(sorted(stored.texts))}, now given in "
                f"{', '.join(sorted(notice.texts))}")
    for locale, text in sorted(stored.texts.items()):
        if text.text != notice.texts[locale]:
            return f"the {locale} text differs"
        given = notice.subjects.get(locale)
        if (given is not None or text.given_subject) and given != text.subject:
            return f"the {locale} subject differs"
    if notice.aware_at and notice.aware_at != stored.aware_at:
        return f"it was recorded as learned of at {stored.aware_at or 'an unstated time'}"
    return ""


def record_notice(ledger: Ledger, catalogue: Catalogue, notice: Notice,
                  operator: str) -> Recorded:
    """Record the notice once; the same id again must carry the same words.

    People may already have read the first version, so it can never be replaced:
    a correction is a new notice, under a new id.
    """
    resolved = resolve(notice, catalogue)
    item = {"pk": breach_pk(notice.breach_id), "sk": keys.NOTICE, "breach_id": notice.breach_id,
            "default_locale": catalogue.default_locale,
            "texts": {locale: text.record() for locale, text in resolved.items()},
            "created_at": notice.created_at or now_iso(), "operator": operator,
            "aware_at": notice.aware_at}
    if ledger.put(item, only_new=True):
        log("breach_notice_recorded", breach=notice.breach_id, operator=operator,
            locales=sorted(resolved), sha256={k: v.sha256 for k, v in resolved.items()})
        return _recorded(item)
    stored = load_recorded(ledger, notice.breach_id)
    difference = _difference(stored, notice)
    if difference:
        raise BadInput(
            f"Breach {notice.breach_id!r} already has a notice (recorded {stored.created_at} by "
            f"{stored.operator or 'someone'}), and {difference}. What people were sent cannot "
            f"change: send the same files again to finish, or a correction under a new id "
            f"(e.g. {notice.breach_id[:40]}-update).")
    return stored


def load_recorded(ledger: Ledger, breach_id: str) -> Recorded:
    item = ledger.get(*keys.breach_notice(check_breach_id(breach_id)))
    if item is None:
        raise BadInput(f"There is no notice for breach {breach_id!r} (send one with "
                       "breach notify).")
    return _recorded(item)


# -- the mail ---------------------------------------------------------------------------------

def render(catalogue: Catalogue, text: NoticeText) -> compose.Template:
    """The mail of one language: our frame around the notice, nothing personal in it."""
    env = environment(text.locale)
    context = {"locale": text.locale, "controller": catalogue.controller,
               "subject": text.subject, "notice": text.text}
    plain = env.get_template(f"mail/{MAIL_KIND}.txt").render(**context)
    body = env.get_template(f"mail/{MAIL_KIND}.html").render(**context)
    # One final newline per part, as MIME encoding leaves it: stored == sent.
    return compose.Template(MAIL_KIND, text.locale, text.subject, plain.strip() + "\n",
                         body.strip() + "\n")


def preview(catalogue: Catalogue, notice: Notice, locale: str) -> compose.Template:
    """The mail a person in ``locale`` would get, before anything is recorded or sent."""
    resolved = resolve(notice, catalogue)
    return render(catalogue, resolved.get(locale, resolved[catalogue.default_locale]))


def message(settings: Settings, catalogue: Catalogue, template: compose.Template, to: str,
            mail_id: str) -> tuple[EmailMessage, str]:
    """The message and its Message-ID, headers as :func:`mail.compose` sets them.

    No ``List-Unsubscribe``: the notice is owed whatever the person's consent, and an
    unsubscribe button would suggest otherwise.
    """
    msg, message_id = compose.envelope(settings, catalogue, to, template.subject, mail_id)
    msg.set_content(template.text)
    msg.add_alternative(template.html, subtype="html")
    msg["Content-Language"] = template.locale  # after the body: set_content resets Content-*
    return msg, message_id


# -- who is affected --------------------------------------------------------------------------

@dataclass(frozen=True)
class Selection:
    """Who is affected: everyone, or listed addresses; optionally only the holders of a
    purpose state, and only people whose record was created or changed since a moment."""

    purpose: str | None = None
    states: tuple[str, ...] = ("accepted",)
    #: Lines of an address file (one address a line; blank lines and ``#`` comments skipped).
    addresses: tuple[str, ...] | None = None
    #: Table form (:func:`parse_moment`): profile ``created_at`` or ``updated_at`` at or after.
    since: str | None = None


@dataclass
class Selected:
    """The subjects selected, and what an address file held that we cannot use."""

    subjects: list[str]
    #: Listed addresses we hold nothing about: counted, never stored.
    unknown: int = 0
    #: Line numbers of listed lines that are no e-mail address.
    invalid_lines: list[int] = field(default_factory=list)


def read_addresses(path: Path) -> tuple[str, ...]:
    """The lines of an address file, with errors naming the file."""
    try:
        return tuple(path.read_text(encoding="utf-8-sig").splitlines())
    except OSError as exc:
        raise BadInput(f"cannot read the address file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 (byte {exc.start}): save it as UTF-8, one address "
                       "a line.") from exc


def _check_selection(catalogue: Catalogue, selection: Selection) -> None:
    if selection.purpose is not None and selection.purpose not in catalogue.purposes:
        raise BadInput(f"Purpose {selection.purpose!r} is not in the catalogue "
                       f"({', '.join(catalogue.purposes)}).")
    wrong = [s for s in selection.states if s not in STATES]
    if not selection.states or wrong:
        raise BadInput(f"Purpose states are {', '.join(STATES)}"
                       + (f"; not {', '.join(wrong)}" if wrong else "") + ".")


def _known(ledger: Ledger, subject: str) -> bool:
    """Whether we hold anything about the subject (a profile, a chain, or a tombstone)."""
    pk = subject_pk(subject)
    return any(ledger.get(pk, sk) for sk in (keys.PROFILE, keys.CHAIN, keys.TOMBSTONE))


def _listed(ledger: Ledger, settings: Settings, lines: Iterable[str]) -> Selected:
    found = Selected([])
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            subject = subject_key(settings.subject_pepper, normalise_email(line))
        except InvalidEmail:
            found.invalid_lines.append(number)
            continue
        if subject in seen:
            continue
        seen.add(subject)
        if _known(ledger, subject):
            found.subjects.append(subject)
        else:
            found.unknown += 1
    return found


def _matches(ledger: Ledger, subject: str, selection: Selection) -> bool:
    profile, states = ledger.current(subject)
    if selection.purpose and (states.get(selection.purpose) or {}).get("state") \
            not in selection.states:
        return False
    if selection.since:
        profile = profile or {}
        changed = max(profile.get("created_at") or "", profile.get("updated_at") or "")
        return changed >= selection.since
    return True


def select(ledger: Ledger, settings: Settings, catalogue: Catalogue,
           selection: Selection) -> Selected:
    """The subjects a notice concerns (reachable or not: :func:`notify` counts who is not)."""
    _check_selection(catalogue, selection)
    if selection.addresses is not None:
        found = _listed(ledger, settings, selection.addresses)
    else:
        found = Selected(list(ledger.subjects()))
    if selection.purpose or selection.since:
        found.subjects = [s for s in found.subjects if _matches(ledger, s, selection)]
    log("breach_selection", subjects=len(found.subjects), unknown=found.unknown,
        invalid=len(found.invalid_lines), purpose=selection.purpose,
        states=list(selection.states) if selection.purpose else None, since=selection.since)
    return found


def reachability(ledger: Ledger, subject: str) -> tuple[str, dict[str, Any] | None]:
    """``("", profile)`` when the person can be mailed, else why not and ``None``:
    ``erased`` (a tombstone), ``no_address`` (no address on record), ``undeliverable``
    (a permanent bounce)."""
    profile, _ = ledger.current(subject)
    if not profile or not profile.get("email"):
        erased = ledger.get(*keys.tombstone(subject)) is not None
        return ("erased" if erased else "no_address"), None
    if profile.get("undeliverable"):
        return "undeliverable", None
    return "", profile


def survey(ledger: Ledger, breach_id: str, subjects: Sequence[str]) -> dict[str, int]:
    """What a run would do, without sending or writing anything (a dry run)."""
    done = {item["subject"]: item for item in progress_items(ledger, breach_id)}
    counts = {"total": len(subjects), "reachable": 0, "notified_before": 0}
    for subject in subjects:
        if (done.get(subject) or {}).get("status") == NOTIFIED:
            counts["notified_before"] += 1
            continue
        reason, _ = reachability(ledger, subject)
        key = reason or "reachable"
        counts[key] = counts.get(key, 0) + 1
    return counts


# -- sending ----------------------------------------------------------------------------------

class Pace:
    """At most ``per_second`` sends a second, evenly spaced (a token bucket of one token).

    SES and relays throttle per second: a burst would only earn refusals.
    """

    def __init__(self, per_second: float, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not per_second > 0:
            raise BadInput(f"Rate {per_second!r}: give a positive number of mails per second "
                           "(e.g. 10; your SES account's maximum send rate at most).")
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
        return (f"{self.processed}/{self.total} people | {verb} {self.notified} | before "
                f"{self.before} | unreachable {sum(self.unreachable.values())} | failed "
                f"{self.failed + self.permanent} | {self.rate():.1f}/s | "
                f"{left // 60}:{left % 60:02d} left")

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "processed": self.processed, "notified": self.notified,
                "before": self.before, "unreachable": dict(self.unreachable),
                "failed": self.failed, "permanent": self.permanent, "busy": self.busy,
                "errors": self.errors[:10], "stopped": self.stopped}


def progress_items(ledger: Ledger, breach_id: str) -> Iterable[dict[str, Any]]:
    return ledger.query(breach_pk(breach_id), keys.SUBJECT_PREFIX)


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

    def __init__(self, ledger: Ledger, settings: Settings, catalogue: Catalogue,
                 transport: Transport, recorded: Recorded, pace: Pace) -> None:
        self.ledger, self.settings, self.catalogue = ledger, settings, catalogue
        self.transport, self.recorded, self.pace = transport, recorded, pace
        self.pk = breach_pk(recorded.breach_id)
        self.run_id = secrets.token_hex(8)
        self._templates: dict[str, compose.Template] = {}

    def template(self, text: NoticeText) -> compose.Template:
        """Rendered once per language and run, and kept as evidence before the first send."""
        if text.locale not in self._templates:
            template = render(self.catalogue, text)
            self.ledger.put_content(keys.MAIL_TEMPLATE, template.sha256, compose.template_record(template))
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
            self.ledger.put({"pk": self.pk, "sk": person_sk(subject), "subject": subject,
                             "status": UNREACHABLE, "reason": reason, "at": now_iso(),
                             "attempts": int((item or {}).get("attempts", 0))})
            return UNREACHABLE, reason
        text = self.recorded.for_locale(profile.get("locale"))
        template = self.template(text)
        attempts = int((item or {}).get("attempts", 0)) + 1
        mail_id = secrets.token_hex(10)
        try:
            msg, message_id = message(self.settings, self.catalogue, template, profile["email"],
                                      mail_id)
        except ValueError as exc:  # email_validator's errors: an address no relay takes
            return self._failed(subject, attempts, True, f"the stored address is not usable "
                                f"({type(exc).__name__})")
        self.pace.wait()
        try:
            provider_id = self.transport.send(msg)
        except MailError as exc:
            return self._failed(subject, attempts, exc.permanent, str(exc))
        self._record(subject, text, template, mail_id, message_id, provider_id, attempts)
        return NOTIFIED, ""

    def _record(self, subject: str, text: NoticeText, template: compose.Template, mail_id: str,
                message_id: str, provider_id: str, attempts: int) -> None:
        """The event and the progress item in one transaction: proof and resume agree."""
        breach_id, transport = self.recorded.breach_id, self.transport.name

        def build(snap: Snapshot) -> Plan:
            at, event_id = now_iso(), new_event_id()
            return Plan(events=[Draft({
                "event_id": event_id, "kind": "breach_notified", "at": at,
                "breach_id": breach_id, "notice_sha256": text.sha256, "locale": text.locale,
                "mail_kind": MAIL_KIND, "mail_id": mail_id, "message_id": message_id,
                "provider_message_id": provider_id, "transport": transport,
                "template_version": template.sha256, "channel": f"breach:{breach_id}",
                "attempts": attempts,
            })], puts=[{
                "pk": self.pk, "sk": person_sk(subject), "subject": subject, "status": NOTIFIED,
                "at": at, "event_id": event_id, "locale": text.locale,
                "notice_sha256": text.sha256, "message_id": message_id, "attempts": attempts,
            }])

        self.ledger.commit(subject, build)
        log("breach_notified", breach=breach_id, subject=subject, locale=text.locale,
            transport=transport, attempts=attempts)

    def _failed(self, subject: str, attempts: int, permanent: bool, error: str) -> tuple[str, str]:
        error = redact(error)[:300]  # providers quote the address; this item outlives it
        self.ledger.put({"pk": self.pk, "sk": person_sk(subject), "subject": subject,
                         "status": FAILED, "permanent": permanent, "error": error,
                         "attempts": attempts, "at": now_iso()})
        log("breach_notice_failed", level="warning", breach=self.recorded.breach_id,
            subject=subject, error=error, permanent=permanent, attempts=attempts)
        return ("permanent" if permanent else FAILED), f"{subject[:12]}: {error}"


def notify(ledger: Ledger, settings: Settings, catalogue: Catalogue, transport: Transport,
           notice: Notice, subjects: Sequence[str], rate_per_second: float = 10.0,
           on_progress: Callable[[Progress], None] | None = None, deadline: float | None = None,
           operator: str = "cli", sleep: Callable[[float], None] = time.sleep) -> Progress:
    """Mail the notice to every selected person still reachable; record each one.

    Safe to run again and again (after a failure, an interruption, or with a wider
    selection): whoever was notified is skipped, failures are tried again, permanent
    refusals are not. With a ``deadline`` (a ``time.monotonic()`` value) nobody is
    started after it and ``progress.stopped`` says the next run has more to do.
    """
    if transport.name == "none":
        raise ConfigError("Breach notices are mailed by OptinProof: set MAIL_TRANSPORT (ses or "
                          "smtp) and MAIL_FROM.")
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
    log("breach_notify_run", breach=notice.breach_id, operator=operator, **{
        k: v for k, v in progress.as_dict().items() if k != "errors"})
    return progress


# -- showing what was done ----------------------------------------------------------------------

@dataclass
class Report:
    """Who was told, who could not be, and when: what the controller shows a regulator."""

    breach_id: str
    created_at: str
    operator: str
    aware_at: str | None
    locales: list[str]
    notified: int = 0
    unreachable: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    permanent: int = 0
    first_at: str | None = None
    last_at: str | None = None

    @property
    def hours_after_awareness(self) -> float | None:
        """From learning of the breach to the last person notified."""
        if not (self.aware_at and self.last_at):
            return None
        return round((parse_iso(self.last_at) - parse_iso(self.aware_at)).total_seconds() / 3600, 1)

    def as_dict(self) -> dict[str, Any]:
        return {"breach": self.breach_id, "notice_recorded_at": self.created_at,
                "operator": self.operator, "aware_at": self.aware_at, "locales": self.locales,
                "notified": self.notified, "unreachable": dict(self.unreachable),
                "failed": self.failed, "permanent": self.permanent,
                "first_notified_at": self.first_at, "last_notified_at": self.last_at,
                "hours_after_awareness": self.hours_after_awareness}


def report(ledger: Ledger, breach_id: str) -> Report:
    """Counts by outcome and the first and last notification times (one query)."""
    recorded = load_recorded(ledger, breach_id)
    result = Report(breach_id, recorded.created_at, recorded.operator, recorded.aware_at,
                    sorted(recorded.texts))
    for item in progress_items(ledger, breach_id):
        status = item.get("status")
        if status == NOTIFIED:
            result.notified += 1
            result.first_at = min(filter(None, (result.first_at, item["at"])))
            result.last_at = max(filter(None, (result.last_at, item["at"])))
        elif status == UNREACHABLE:
            reason = item.get("reason") or "?"
            result.unreachable[reason] = result.unreachable.get(reason, 0) + 1
        elif item.get("permanent"):
            result.permanent += 1
        else:
            result.failed += 1
    return result


def breaches(ledger: Ledger) -> list[dict[str, Any]]:
    """Every recorded notice (id, when, by whom, languages): a scan, for operators."""
    rows = [{"breach": item["breach_id"], "recorded_at": item.get("created_at"),
             "operator": item.get("operator"), "aware_at": item.get("aware_at"),
             "locales": sorted(item.get("texts") or {})}
            for item in ledger.scan_items(keys.BREACH_PREFIX, keys.NOTICE)]
    return sorted(rows, key=lambda row: row.get("recorded_at") or "")
