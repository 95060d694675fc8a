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

The package's modules follow the work: :mod:`.notice` (what is said), :mod:`.audience`
(to whom), :mod:`.sending` (mailing it, resumably), :mod:`.report` (what was done);
this module is their public surface.
"""

from chalicelib.rights.breach.audience import (
    Selected,
    Selection,
    reachability,
    read_addresses,
    select,
    survey,
)
from chalicelib.rights.breach.notice import (
    DEFAULT_SUBJECT,
    FAILED,
    MAIL_KIND,
    MAX_NOTICE_BYTES,
    MAX_SUBJECT_CHARS,
    NOTIFIED,
    STATES,
    UNREACHABLE,
    Notice,
    NoticeText,
    Recorded,
    breach_pk,
    check_breach_id,
    load_notice,
    load_recorded,
    message,
    notice_from_texts,
    parse_moment,
    person_sk,
    preview,
    progress_items,
    record_notice,
    render,
    resolve,
)
from chalicelib.rights.breach.report import (
    Report,
    breaches,
    report,
)
from chalicelib.rights.breach.sending import (
    Notifier,
    Pace,
    Progress,
    notify,
)

__all__ = [
    "DEFAULT_SUBJECT",
    "FAILED",
    "NOTIFIED",
    "UNREACHABLE",
    "MAIL_KIND",
    "MAX_NOTICE_BYTES",
    "MAX_SUBJECT_CHARS",
    "Notice",
    "NoticeText",
    "Notifier",
    "Pace",
    "Progress",
    "Recorded",
    "Report",
    "STATES",
    "Selected",
    "Selection",
    "breach_pk",
    "breaches",
    "check_breach_id",
    "load_notice",
    "load_recorded",
    "message",
    "notice_from_texts",
    "notify",
    "parse_moment",
    "person_sk",
    "preview",
    "progress_items",
    "reachability",
    "read_addresses",
    "record_notice",
    "render",
    "report",
    "resolve",
    "select",
    "survey",
]
