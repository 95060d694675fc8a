"""The notice itself: its id, its texts per language (checked, as files or given), how
it is recorded once and never changed, and the mail it becomes.

Size: the notice's texts, their checks and the one mail they become are
recorded and compared together (a notice never changes once sent).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from chalicelib.consent.catalogue import Catalogue, canonical_text
from chalicelib.core.clock import iso, now_iso
from chalicelib.core.errors import BadInput
from chalicelib.core.i18n import translations
from chalicelib.core.logs import log
from chalicelib.core.settings import Settings
from chalicelib.core.templates import environment
from chalicelib.mail import compose
from chalicelib.mail.compose import N_
from chalicelib.store import keys
from chalicelib.store.ledger import Ledger

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


breach_pk = keys.breach_pk


def person_sk(subject: str) -> str:
    return keys.breach_person("", subject)[1]


def check_breach_id(breach_id: str) -> str:
    """The id names the breach in every event: short, stable, readable in a URL or a log."""
    if not _ID.fullmatch(breach_id or ""):
        raise BadInput(
            f"Breach id {breach_id!r}: use 3-48 lower-case letters, digits or '-', "
            "starting with a letter or digit (e.g. 2026-11-shop-db)."
        )
    return breach_id


def parse_moment(text: str, what: str) -> str:
    """An operator's date or time (ISO 8601; no zone means UTC) in the table's form."""
    try:
        moment = datetime.fromisoformat((text or "").strip())
    except ValueError as exc:
        raise BadInput(
            f"{what} {text!r} is not an ISO 8601 date or time, e.g. 2026-11-29 or "
            "2026-11-29T14:00:00Z."
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return iso(moment)


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
        return {
            "subject": self.subject,
            "text": self.text,
            "sha256": self.sha256,
            "given_subject": self.given_subject,
        }


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
        raise BadInput(
            f"{where}: the notice text is empty: write what happened, what it "
            "means for the person, what you do about it and whom to contact."
        )
    size = len(cleaned.encode("utf-8"))
    if size > MAX_NOTICE_BYTES:
        raise BadInput(
            f"{where}: the notice has {size} bytes; at most {MAX_NOTICE_BYTES} fit in "
            "a mail people read: shorten it and link to a page with the details."
        )
    line = _control_line(cleaned)
    if line:
        raise BadInput(
            f"{where}: line {line} holds a control character: save the notice as plain text."
        )
    return cleaned


def _check_subject(subject: str, where: str) -> str:
    cleaned = _clean(subject or "")
    if not cleaned:
        raise BadInput(
            f"{where}: the Subject: line is empty: write the subject after it, or "
            "remove the line to use the standard one."
        )
    if "\n" in cleaned or _control_line(cleaned):
        raise BadInput(f"{where}: the subject must be one line of plain text.")
    if len(cleaned) > MAX_SUBJECT_CHARS:
        raise BadInput(
            f"{where}: the subject has {len(cleaned)} characters; keep it under "
            f"{MAX_SUBJECT_CHARS}."
        )
    return cleaned


def notice_from_texts(
    breach_id: str,
    texts: dict[str, str],
    catalogue: Catalogue,
    subjects: dict[str, str] | None = None,
    aware_at: str | None = None,
    where: Callable[[str], str] = lambda locale: f"notice ({locale})",
) -> Notice:
    """A validated notice from strings (the files' content, or an admin API body)."""
    check_breach_id(breach_id)
    stray = sorted(set(texts) - set(catalogue.locales))
    if stray:
        raise BadInput(
            f"{where(stray[0])}: {stray[0]!r} is not a language of the catalogue "
            f"({', '.join(catalogue.locales)})."
        )
    if catalogue.default_locale not in texts:
        raise BadInput(
            f"The notice must exist in the catalogue's default language "
            f"({catalogue.default_locale}): people whose language has no text get "
            "that one."
        )
    checked = {locale: _check_text(text, where(locale)) for locale, text in sorted(texts.items())}
    given = {
        locale: _check_subject(subject, where(locale))
        for locale, subject in sorted((subjects or {}).items())
        if locale in checked
    }
    aware = parse_moment(aware_at, "The moment you learned of the breach") if aware_at else None
    if aware and aware > now_iso():
        raise BadInput(
            f"The moment you learned of the breach ({aware}) is in the future: give "
            "it in UTC (e.g. 2026-11-27T08:00:00Z)."
        )
    return Notice(breach_id, checked, given, aware)


def _read_notice_file(path: Path) -> tuple[str | None, str]:
    """``(subject or None, text)`` of one file: an optional ``Subject:`` first line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from exc
    if len(raw) > MAX_NOTICE_BYTES + 1000:
        raise BadInput(
            f"{path}: {len(raw)} bytes; a notice may have at most {MAX_NOTICE_BYTES}: "
            "shorten it and link to a page with the details."
        )
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput(
            f"{path}: not UTF-8 (byte {exc.start}): save the file as UTF-8 text."
        ) from exc
    content = content.replace("\r\n", "\n").replace("\r", "\n").lstrip("\n")
    first, _, rest = content.partition("\n")
    if first.lower().startswith("subject:"):
        return first[len("subject:") :], rest
    return None, content


def load_notice(
    breach_id: str, directory: Path, catalogue: Catalogue, aware_at: str | None = None
) -> Notice:
    """The notice written as ``notice.<locale>.txt`` files in ``directory``, validated.

    Every error names the file, so the controller fixes the right one before anything
    is sent.
    """
    if not directory.is_dir():
        raise BadInput(
            f"{directory} is not a directory: put the notice there as "
            f"notice.{catalogue.default_locale}.txt (and notice.<language>.txt for "
            "other languages)."
        )
    texts: dict[str, str] = {}
    subjects: dict[str, str] = {}
    paths: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        if path.name == "notice.txt":
            raise BadInput(
                f"{path}: name the file after its language, e.g. "
                f"notice.{catalogue.default_locale}.txt."
            )
        match = _NOTICE_FILE.fullmatch(path.name)
        if not match:
            continue
        locale = match["locale"]
        if locale not in catalogue.locales:
            raise BadInput(
                f"{path}: {locale!r} is not a language of the catalogue "
                f"({', '.join(catalogue.locales)})."
            )
        subject, texts[locale] = _read_notice_file(path)
        paths[locale] = path
        if subject is not None:
            subjects[locale] = subject
    if catalogue.default_locale not in texts:
        raise BadInput(
            f"{directory}: no notice.{catalogue.default_locale}.txt. The notice must "
            f"exist in the catalogue's default language ({catalogue.default_locale}); "
            "people whose language has no file get that one."
        )
    return notice_from_texts(
        breach_id,
        texts,
        catalogue,
        subjects,
        aware_at,
        where=lambda locale: str(paths.get(locale, directory)),
    )


def resolve(notice: Notice, catalogue: Catalogue) -> dict[str, NoticeText]:
    """Each language's subject and text; a language without a subject gets ours."""
    resolved = {}
    for locale, text in notice.texts.items():
        given = notice.subjects.get(locale)
        subject = given or translations(locale).gettext(DEFAULT_SUBJECT)
        resolved[locale] = NoticeText(locale, subject, text, given is not None)
    return resolved


def _recorded(item: dict[str, Any]) -> Recorded:
    texts = {
        locale: NoticeText(locale, t["subject"], t["text"], bool(t.get("given_subject")))
        for locale, t in item["texts"].items()
    }
    return Recorded(
        item["breach_id"],
        item["default_locale"],
        texts,
        item["created_at"],
        item.get("operator", ""),
        item.get("aware_at"),
    )


def _difference(stored: Recorded, notice: Notice) -> str:
    """What differs between a recorded notice and the one given again ('' if nothing)."""
    if set(stored.texts) != set(notice.texts):
        return (
            f"it was recorded in {', '.join(sorted(stored.texts))}, now given in "
            f"{', '.join(sorted(notice.texts))}"
        )
    for locale, text in sorted(stored.texts.items()):
        if text.text != notice.texts[locale]:
            return f"the {locale} text differs"
        given = notice.subjects.get(locale)
        if (given is not None or text.given_subject) and given != text.subject:
            return f"the {locale} subject differs"
    if notice.aware_at and notice.aware_at != stored.aware_at:
        return f"it was recorded as learned of at {stored.aware_at or 'an unstated time'}"
    return ""


def record_notice(ledger: Ledger, catalogue: Catalogue, notice: Notice, operator: str) -> Recorded:
    """Record the notice once; the same id again must carry the same words.

    People may already have read the first version, so it can never be replaced:
    a correction is a new notice, under a new id.
    """
    resolved = resolve(notice, catalogue)
    item = {
        "pk": breach_pk(notice.breach_id),
        "sk": keys.NOTICE,
        "breach_id": notice.breach_id,
        "default_locale": catalogue.default_locale,
        "texts": {locale: text.record() for locale, text in resolved.items()},
        "created_at": notice.created_at or now_iso(),
        "operator": operator,
        "aware_at": notice.aware_at,
    }
    if ledger.put(item, only_new=True):
        log(
            "breach_notice_recorded",
            breach=notice.breach_id,
            operator=operator,
            locales=sorted(resolved),
            sha256={k: v.sha256 for k, v in resolved.items()},
        )
        return _recorded(item)
    stored = load_recorded(ledger, notice.breach_id)
    difference = _difference(stored, notice)
    if difference:
        raise BadInput(
            f"Breach {notice.breach_id!r} already has a notice (recorded {stored.created_at} by "
            f"{stored.operator or 'someone'}), and {difference}. What people were sent cannot "
            f"change: send the same files again to finish, or a correction under a new id "
            f"(e.g. {notice.breach_id[:40]}-update)."
        )
    return stored


def load_recorded(ledger: Ledger, breach_id: str) -> Recorded:
    item = ledger.get(*keys.breach_notice(check_breach_id(breach_id)))
    if item is None:
        raise BadInput(
            f"There is no notice for breach {breach_id!r} (send one with breach notify)."
        )
    return _recorded(item)


def render(catalogue: Catalogue, text: NoticeText) -> compose.Template:
    """The mail of one language: our frame around the notice, nothing personal in it."""
    env = environment(text.locale)
    context = {
        "locale": text.locale,
        "controller": catalogue.controller,
        "subject": text.subject,
        "notice": text.text,
    }
    plain = env.get_template(f"mail/{MAIL_KIND}.txt").render(**context)
    body = env.get_template(f"mail/{MAIL_KIND}.html").render(**context)
    # One final newline per part, as MIME encoding leaves it: stored == sent.
    return compose.Template(
        MAIL_KIND, text.locale, text.subject, plain.strip() + "\n", body.strip() + "\n"
    )


def preview(catalogue: Catalogue, notice: Notice, locale: str) -> compose.Template:
    """The mail a person in ``locale`` would get, before anything is recorded or sent."""
    resolved = resolve(notice, catalogue)
    return render(catalogue, resolved.get(locale, resolved[catalogue.default_locale]))


def message(
    settings: Settings, catalogue: Catalogue, template: compose.Template, to: str, mail_id: str
) -> tuple[EmailMessage, str]:
    """The message and its Message-ID, headers as :func:`mail.compose` sets them.

    No ``List-Unsubscribe``: the notice is owed whatever the person's consent, and an
    unsubscribe button would suggest otherwise.
    """
    msg, message_id = compose.envelope(settings, catalogue, to, template.subject, mail_id)
    msg.set_content(template.text)
    msg.add_alternative(template.html, subtype="html")
    msg["Content-Language"] = template.locale  # after the body: set_content resets Content-*
    return msg, message_id


def progress_items(ledger: Ledger, breach_id: str) -> Iterable[dict[str, Any]]:
    """Each person's progress item of a notice (notified, unreachable, failed)."""
    return ledger.query(breach_pk(breach_id), keys.SUBJECT_PREFIX)
