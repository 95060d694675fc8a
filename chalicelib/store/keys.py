"""Every key of the one table, built and read here and nowhere else.

The table is single-table design (DESIGN.md): each kind of item has its partition
key (``pk``) and sort key (``sk``) shape. A function per kind returns ``(pk, sk)``
(or one of them, where callers query a partition); the ``*_PREFIX`` constants are what
queries and scans match on, and the ``*_of`` functions read an id back out of a key.
Nothing else in the code spells ``"SUBJ#"`` or ``"LINK"``: a key that changes shape
changes here.

Sort order matters in two places: a subject's ``PROFILE`` and ``PURPOSE#...`` items
sort after its ``EVENT#...`` items (so one range query from ``"P"`` reads them without
the events), and event sort keys are zero-padded sequence numbers (chain order is
key order, whatever the clocks say).

Size: every item kind's key is here by rule (one place where a key's shape can
change); split by capability, each part would still need the others' prefixes to
keep the sort orders above apart.
"""

from __future__ import annotations

import uuid

Key = tuple[str, str]

# -- a subject: profile, states, events, chain head, locks, tombstone ------------------

SUBJECT_PREFIX = "SUBJ#"
PROFILE = "PROFILE"
CHAIN = "CHAIN"
TOMBSTONE = "TOMBSTONE"
SYNCLOCK = "SYNCLOCK"
EVENT_PREFIX = "EVENT#"
PURPOSE_PREFIX = "PURPOSE#"
#: A range query on a subject's partition from here reads profile and states, no event.
AFTER_EVENTS = "P"


def subject_pk(subject: str) -> str:
    return f"{SUBJECT_PREFIX}{subject}"


def subject_of(pk: str) -> str:
    return pk.removeprefix(SUBJECT_PREFIX)


def profile(subject: str) -> Key:
    return subject_pk(subject), PROFILE


def chain(subject: str) -> Key:
    return subject_pk(subject), CHAIN


def tombstone(subject: str) -> Key:
    return subject_pk(subject), TOMBSTONE


def sync_lock(subject: str) -> Key:
    return subject_pk(subject), SYNCLOCK


def event_sk(seq: int) -> str:
    """Zero-padded sequence: sort order is chain order, whatever the clocks say."""
    return f"{EVENT_PREFIX}{seq:010d}"


def event(subject: str, seq: int) -> Key:
    return subject_pk(subject), event_sk(seq)


def purpose_sk(purpose_id: str) -> str:
    return f"{PURPOSE_PREFIX}{purpose_id}"


def purpose(subject: str, purpose_id: str) -> Key:
    return subject_pk(subject), purpose_sk(purpose_id)


def purpose_of(sk: str) -> str:
    return sk.removeprefix(PURPOSE_PREFIX)


#: One imported row of existing consent evidence (``consent.imports``): its original
#: columns (erasable) and the event it became. Sorts before ``P``: snapshots skip it.
IMPORTED_PREFIX = "IMPORTED#"


def imported(subject: str, import_id: str) -> Key:
    """A row's import key: the same row of the same source is written once."""
    return subject_pk(subject), f"{IMPORTED_PREFIX}{import_id}"


# -- the pending-sync index: shards of work waiting, by kind ---------------------------

SYNC_SHARDS = 4
#: Syncs that need a person (no Act! contact, contact deleted): listed, never swept.
SYNC_HOLD = "SYNC#HOLD"
#: Act! contacts waiting to be reconciled.
HINT_SHARD = "ACTHINT#QUEUE"
#: Mails waiting for a retry.
OUTBOX_SHARD = "MAIL#OUTBOX"
#: Outbound webhook deliveries waiting for a retry.
HOOKOUT_SHARD = "HOOKOUT#QUEUE"
#: Tombstones whose Act! step must be tried again.
ERASE_ACT_SHARD = "ERASE#ACT"


def sync_shard(subject: str) -> str:
    """Spread pending syncs over a few index partitions instead of one hot key."""
    return f"SYNC#{int(subject[:8], 16) % SYNC_SHARDS}"


SWEEP_SHARDS = [f"SYNC#{n}" for n in range(SYNC_SHARDS)]

# -- links, stored wordings, mails --------------------------------------------------

LINK = "LINK"
LINK_PREFIX = "LINK#"


def link(link_id: str) -> Key:
    return f"{LINK_PREFIX}{link_id}", LINK


def content(kind: str, sha256: str) -> Key:
    """A content-addressed item: ``TEXT`` (a purpose wording), ``MAILTPL`` (a template)."""
    return f"{kind}#{sha256}", kind


TEXT = "TEXT"
MAIL_TEMPLATE = "MAILTPL"
MAIL = "MAIL"
MAIL_PREFIX = "MAIL#"


def mail(mail_id: str) -> Key:
    return f"{MAIL_PREFIX}{mail_id}", MAIL


def mail_of(pk: str) -> str:
    return pk.removeprefix(MAIL_PREFIX)


# -- throttles --------------------------------------------------------------------------

RATE = "RATE"


def rate(scope: str, key: str) -> Key:
    return f"RATE#{scope}#{key}", RATE


# -- campaigns ---------------------------------------------------------------------------

CAMPAIGN = "CAMPAIGN"
CAMPAIGN_PREFIX = "CAMPAIGN#"
CAMPAIGN_CONTACT_PREFIX = "CONTACT#"
#: What operators did to a campaign (started, paused, resumed, reminded), one item each.
CAMPAIGN_ACTION_PREFIX = "ACTION#"
#: One small partition listing every campaign and its run state.
CAMPAIGN_INDEX = "CAMPAIGNS"
#: The Act! contact fields campaigns wrote links into (``FIELD#<customFields key>``).
LINK_FIELDS = "ACTLINKFIELDS"
LINK_FIELD_PREFIX = "FIELD#"


def campaign_pk(campaign_id: str) -> str:
    return f"{CAMPAIGN_PREFIX}{campaign_id}"


def campaign(campaign_id: str) -> Key:
    return campaign_pk(campaign_id), CAMPAIGN


def campaign_of(pk_or_sk: str) -> str:
    return pk_or_sk.removeprefix(CAMPAIGN_PREFIX)


def campaign_contact_sk(contact_id: str) -> str:
    return f"{CAMPAIGN_CONTACT_PREFIX}{contact_id}"


def campaign_contact(campaign_id: str, contact_id: str) -> Key:
    """One contact's progress in a campaign (link minted, delivered, skipped...)."""
    return campaign_pk(campaign_id), campaign_contact_sk(contact_id)


def campaign_subject(campaign_id: str, subject: str) -> Key:
    """Which contact a person is reached through in a campaign (one address, one link)."""
    return campaign_pk(campaign_id), f"SUBJECT#{subject}"


def campaign_contact_lock(campaign_id: str, contact_id: str) -> Key:
    return campaign_pk(campaign_id), f"LOCK#{contact_id}"


def campaign_run_lock(campaign_id: str) -> Key:
    return campaign_pk(campaign_id), "RUNLOCK"


def campaign_action(campaign_id: str, at: str, action_id: str) -> Key:
    """One operator action on a campaign, written once, in time order."""
    return campaign_pk(campaign_id), f"{CAMPAIGN_ACTION_PREFIX}{at}#{action_id}"


def campaign_listed(campaign_id: str) -> Key:
    return CAMPAIGN_INDEX, f"{CAMPAIGN_PREFIX}{campaign_id}"


def link_field(key: str) -> Key:
    return LINK_FIELDS, f"{LINK_FIELD_PREFIX}{key}"


# -- Act! contacts: what we saw of them, what they told us ---------------------------------

SEEN = "SEEN"
HINT = "HINT"
HINT_PREFIX = "ACTHINT#"
DRIFT = "DRIFT"
DRIFT_PREFIX = "DRIFT#"


def act_contact(contact_id: str) -> Key:
    """The person an Act! contact was last seen with, and which edit of it was ours."""
    return f"ACTCONTACT#{contact_id}", SEEN


def act_hint(contact_id: str) -> Key:
    return f"{HINT_PREFIX}{contact_id}", HINT


def hint_of(pk: str) -> str:
    return pk.removeprefix(HINT_PREFIX)


def act_drift(contact_id: str) -> Key:
    return f"{DRIFT_PREFIX}{contact_id}", DRIFT


ACT_POLL: Key = ("ACTPOLL", "ACTPOLL")
#: The scheduled ``act_poll``'s lease: two invocations never run at once.
ACT_POLL_LEASE: Key = ("ACTPOLL", "LEASE")

ACT_ASK_PREFIX = "ACTASK#"
ACT_ASK_TRIGGER = "TRIGGER#"


def act_ask(contact_id: str, trigger: str) -> Key:
    """What we did about one "ask from Act!" trigger (group, field) of a contact."""
    return f"{ACT_ASK_PREFIX}{contact_id}", f"{ACT_ASK_TRIGGER}{trigger}"


def act_ask_lock(contact_id: str) -> Key:
    """A contact's triggers are handled by one worker at a time (webhook, poll, CLI)."""
    return f"{ACT_ASK_PREFIX}{contact_id}", "LOCK"


# -- outbound webhooks ------------------------------------------------------------------

HOOKOUT_PREFIX = "HOOKOUT#"


def hookout(event_id: str, index: int) -> Key:
    """One decision's delivery to one subscriber."""
    return f"{HOOKOUT_PREFIX}{event_id}", f"TO#{index}"


def hookout_of(pk: str) -> str:
    return pk.removeprefix(HOOKOUT_PREFIX)


# -- breach notices ------------------------------------------------------------------------

BREACH_PREFIX = "BREACH#"
NOTICE = "NOTICE"


def breach_pk(breach_id: str) -> str:
    return f"{BREACH_PREFIX}{breach_id}"


def breach_notice(breach_id: str) -> Key:
    return breach_pk(breach_id), NOTICE


def breach_person(breach_id: str, subject: str) -> Key:
    """One person's notification in a breach (resumable, never twice)."""
    return breach_pk(breach_id), subject_pk(subject)


def breach_lock(breach_id: str, subject: str) -> Key:
    return breach_pk(breach_id), f"LOCK#{subject}"


# -- dashboard counters and logs -----------------------------------------------------------

STATS_PURPOSES = "STATS#PURPOSES"
STATS_ERASURES = "STATS#ERASURES"
#: Withdrawals per purpose and the reason given (``<purpose>.<reason>``).
STATS_REASONS = "STATS#REASONS"
#: People per purpose whose state rests on imported evidence, per grade (``<purpose>.<A|B|C>``).
STATS_GRADES = "STATS#GRADES"


def stats_days(month: str) -> str:
    """``STATS#DAYS#<yyyy-mm>``: decisions per day (sort keys ``<yyyy-mm-dd>#<shard>``)."""
    return f"STATS#DAYS#{month}"


def stats_scope(channel: str | None) -> str | None:
    """``campaign:x`` → ``CAMPAIGN#x``; ``form:x`` → ``FORM#x``; others are not tracked."""
    kind, _, name = (channel or "").partition(":")
    if not name:
        return None
    return {"campaign": f"CAMPAIGN#{name}", "form": f"FORM#{name}"}.get(kind)


def stats(scope: str) -> str:
    """A funnel's counters: ``STATS#CAMPAIGN#<id>`` or ``STATS#FORM#<id>``."""
    return f"STATS#{scope}"


def stats_campaign(campaign_id: str) -> str:
    return stats(f"CAMPAIGN#{campaign_id}")


def stats_form(form_id: str) -> str:
    return stats(f"FORM#{form_id}")


def erasure_log(at: str) -> Key:
    """The dashboard's log of erasures: when, by month; nobody named."""
    return f"ERASURES#{at[:7]}", f"{at}#{uuid.uuid4().hex[:8]}"


def erasures_month(month: str) -> str:
    return f"ERASURES#{month}"


def item(key: Key, **fields: object) -> dict[str, object]:
    """An item's attributes with its key: ``item(link(id), kind="confirm", ...)``."""
    return {"pk": key[0], "sk": key[1], **fields}


# -- consent over time: validity index and counters (consent/validity.py) ------------------

VALIDITY_PREFIX = "VALIDITY#"
#: Where the validity sweep stands: the first day it has not finished yet.
VALIDITY_CURSOR: Key = ("VALIDITY", "CURSOR")
#: The validity sweep's lease: two runs never work the same days at once.
VALIDITY_LEASE: Key = ("VALIDITY", "LEASE")
#: The sort key of a person's retention item in a day's bucket (after every purpose's).
RETENTION_SK = "~retention"


def validity_day(day: str) -> str:
    """``VALIDITY#<yyyy-mm-dd>``: the things due that day (a renewal mail, an expiry,
    the end of retention), one partition per day, so the sweep reads a day, not the table."""
    return f"{VALIDITY_PREFIX}{day}"


def validity_due(day: str, subject: str, what: str) -> Key:
    """One person's purpose (``what`` = its id) or retention (``RETENTION_SK``) due on ``day``."""
    return validity_day(day), f"{subject}#{what}"


def stats_expiries(month: str) -> str:
    """``STATS#CONSENTEXPIRY#<yyyy-mm>``: acceptances that expire per day (sort keys
    ``<yyyy-mm-dd>#<shard>``, attributes ``<purpose>.due``). Not the ``expired`` of
    ``STATS#PURPOSES`` (asked, never decided): this is consent that ran out."""
    return f"STATS#CONSENTEXPIRY#{month}"


# -- anchoring chain heads in trusted time (RFC 3161) -------------------------------------

#: Chain heads waiting for the next anchor: ``ANCHORQ#<shard>`` / ``<subject>#<seq>``.
#: The shard is the subject's first hex digit (16 partitions, no hot key); the seq in
#: the sort key lets the anchor job delete exactly what it read, unconditionally,
#: while a newer head of the same subject waits in its own item.
ANCHOR_QUEUE_PREFIX = "ANCHORQ#"
ANCHOR_QUEUE_SHARDS = [f"{ANCHOR_QUEUE_PREFIX}{digit}" for digit in "0123456789abcdef"]
#: One anchor: ``ANCHOR#<anchor id>`` / ``ROOT`` holds the Merkle root and the TSA token;
#: under a subject, ``ANCHOR#<anchor id>`` holds that subject's leaf and inclusion path.
ANCHOR_PREFIX = "ANCHOR#"
ANCHOR_ROOT = "ROOT"
#: The anchor job's lease: the schedule and the CLI never anchor at the same time.
ANCHOR_LEASE: Key = ("ANCHOR#JOB", "LEASE")


def anchor_queue(subject: str, seq: int) -> Key:
    """A chain head (subject at ``seq``) that changed since the last anchor."""
    return f"{ANCHOR_QUEUE_PREFIX}{subject[:1].lower() or '0'}", f"{subject}#{seq:010d}"


def anchor_queue_subject(sk: str) -> str:
    return sk.rpartition("#")[0]


def anchor(anchor_id: str) -> Key:
    """The anchor's root, token and TSA (no personal data: hashes only)."""
    return f"{ANCHOR_PREFIX}{anchor_id}", ANCHOR_ROOT


def subject_anchor(subject: str, anchor_id: str) -> Key:
    """The ``anchored`` reference of one subject: leaf, head anchored, inclusion path."""
    return subject_pk(subject), f"{ANCHOR_PREFIX}{anchor_id}"


def anchor_id_of(sk: str) -> str:
    return sk.removeprefix(ANCHOR_PREFIX)
