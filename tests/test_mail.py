"""OptinProof's own mails (chalicelib/mail.py) and their transports (chalicelib/transports.py).

A confirmation mail is evidence: the template version recorded in ``mail_sent`` must
identify exactly the words sent (and nothing personal), and the stored template must
reproduce the mail. It must also be a mail that clients and relays accept: both parts,
the headers for one-click unsubscribe, IDN and internationalised addresses. Transports
must tell a temporary failure (retry later) from a permanent one (never retry).

Real parts only: Jinja2 templates, the aiosmtpd sink over SMTP, and a stub of the
SES v2 HTTP API on loopback that botocore really talks to.
"""
from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import html
import json
import threading
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import parseaddr, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from chalicelib.mail import compose as mail
from chalicelib.core.errors import ConfigError, MailPermanentFailure, MailTemporaryFailure
from chalicelib.mail.compose import compose, render_template, template_record
from chalicelib.consent.catalogue import Catalogue, parse_catalogue
from chalicelib.core.services import get_catalogue
from chalicelib.core.settings import Settings, get_settings, load_settings
from chalicelib.mail.transports import NoTransport, SesTransport, SmtpTransport, get_transport
from devstack.dynamodb_local import free_port
from tests.conftest import KEY_NEW, PEPPER, ROOT

CONFIRM_URL = "http://testserver/c/confirm-token?x=1&y=2"
WITHDRAW_URL = "http://testserver/u/withdraw-token"
URLS = {"confirm_url": CONFIRM_URL, "withdraw_url": WITHDRAW_URL}
HOSTILE_NAME = 'Ann <b>&"'
PURPOSES = ("newsletter", "events")


def configured() -> tuple[Settings, Catalogue]:
    """Settings and catalogue for the current (monkeypatched) environment."""
    return get_settings(), get_catalogue()


def parts(message: EmailMessage) -> tuple[str, str]:
    """The decoded text/plain and text/html bodies, as a mail client shows them."""
    text = message.get_body(preferencelist=("plain",))
    body = message.get_body(preferencelist=("html",))
    assert text is not None and body is not None
    return text.get_content(), body.get_content()


def fill(template: str, values: dict[str, str], escape: bool) -> str:
    """Fill the ⟦markers⟧ of a stored template, as an auditor would, independently of mail.py."""
    for name, value in values.items():
        template = template.replace(f"\u27e6{name}\u27e7", html.escape(value) if escape else value)
    return template


def version(settings: Settings, catalogue: Catalogue, kind: str = "confirm", locale: str = "en",
            purposes: tuple[str, ...] = PURPOSES, has_name: bool = False) -> str:
    return render_template(settings, catalogue, kind, locale, purposes, has_name).sha256


# --- the message --------------------------------------------------------------------------


def test_compose_builds_text_and_html_with_the_headers_clients_need(mail_env: dict[str, str]) -> None:
    """Both parts, sender, reply path, one-click unsubscribe (RFC 8058) and auto-reply guard."""
    settings, catalogue = configured()
    before = datetime.now(timezone.utc).replace(microsecond=0)
    composed = compose(settings, catalogue, "confirm", "en", "ann@example.eu", PURPOSES, URLS,
                       mail_id="m1")
    message = composed.message
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["From"] == "Example Outdoor <consent@example-outdoor.eu>"
    assert message["To"] == "ann@example.eu"
    assert message["Reply-To"] == catalogue.controller.contact_email == "privacy@example-outdoor.eu"
    assert message["Subject"] == "Please confirm your choices for Example Outdoor SAS"
    sent_at = parsedate_to_datetime(message["Date"])
    assert sent_at.tzinfo is not None and before <= sent_at <= before + timedelta(minutes=1)
    assert message["Message-ID"] == composed.message_id
    assert composed.message_id.startswith("<") and composed.message_id.endswith(
        "@example-outdoor.eu>")
    assert "m1" in composed.message_id
    assert message["Content-Language"] == "en"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["List-Unsubscribe"] == f"<{WITHDRAW_URL}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    for name in ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe"):
        assert len(message.get_all(name)) == 1, name


def test_links_and_purposes_appear_in_both_parts(mail_env: dict[str, str]) -> None:
    """The person can confirm or withdraw from either part; the HTML keeps the & escaped."""
    settings, catalogue = configured()
    text, body = parts(compose(settings, catalogue, "confirm", "en", "ann@example.eu", PURPOSES,
                               URLS).message)
    assert CONFIRM_URL in text and WITHDRAW_URL in text
    assert f'href="{html.escape(CONFIRM_URL)}"' in body
    assert f'href="{WITHDRAW_URL}"' in body
    for title in ("Monthly newsletter", "Invitations to events"):
        assert title in text and title in body
    assert "Offers and promotions" not in text  # only the purposes asked for
    assert "30 days" in text  # LINK_MAX_AGE_CONFIRM's default
    assert "\u27e6" not in text + body  # no marker left unfilled


def test_reply_to_can_be_configured(mail_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAIL_REPLY_TO", "help@example-outdoor.eu")
    settings, catalogue = configured()
    message = compose(settings, catalogue, "confirm", "en", "ann@example.eu", PURPOSES, URLS).message
    assert message["Reply-To"] == "help@example-outdoor.eu"


def test_already_mail_offers_withdrawal_not_confirmation(mail_env: dict[str, str]) -> None:
    """The "already subscribed" notice carries the withdraw link and one-click headers."""
    settings, catalogue = configured()
    message = compose(settings, catalogue, "already", "en", "ann@example.eu", PURPOSES,
                      {"withdraw_url": WITHDRAW_URL}).message
    text, body = parts(message)
    assert message["Subject"] == "You are already subscribed to Example Outdoor SAS"
    assert WITHDRAW_URL in text and WITHDRAW_URL in body
    assert "/c/" not in text + body
    assert message["List-Unsubscribe"] == f"<{WITHDRAW_URL}>"


def test_name_is_escaped_in_html_verbatim_in_text(mail_env: dict[str, str]) -> None:
    """A name typed into a public form must not inject markup into the HTML part."""
    settings, catalogue = configured()
    text, body = parts(compose(settings, catalogue, "confirm", "en", "ann@example.eu", PURPOSES,
                               URLS, name=f"  {HOSTILE_NAME} ").message)
    assert f"Hello {HOSTILE_NAME}," in text
    assert "Hello Ann &lt;b&gt;&amp;&quot;," in body
    assert "<b>" not in body and HOSTILE_NAME not in body


def test_name_does_not_change_the_template_version(mail_env: dict[str, str]) -> None:
    """The version identifies the wording, not the person: no name ends up in it."""
    settings, catalogue = configured()
    ann = compose(settings, catalogue, "confirm", "en", "ann@example.eu", PURPOSES, URLS, name="Ann")
    hostile = compose(settings, catalogue, "confirm", "en", "ann@example.eu", PURPOSES, URLS,
                      name=HOSTILE_NAME)
    assert ann.template == hostile.template
    assert ann.template.sha256 == hostile.template.sha256
    # a greeting by name is other wording than "Hello," and gets its own version
    nameless = compose(settings, catalogue, "confirm", "en", "ann@example.eu", PURPOSES, URLS)
    assert nameless.template.sha256 != ann.template.sha256


# --- template versions ---------------------------------------------------------------------


def test_template_version_is_stable_and_impersonal(mail_env: dict[str, str]) -> None:
    """Same wording → same version, whoever receives it and whatever their links are."""
    settings, catalogue = configured()
    first = compose(settings, catalogue, "confirm", "en", "ann@example.eu", PURPOSES, URLS,
                    mail_id="a")
    second = compose(settings, catalogue, "confirm", "en", "bob@example.org", PURPOSES,
                     {"confirm_url": "http://testserver/c/other", "withdraw_url":
                      "http://testserver/u/other"}, mail_id="b")
    assert first.template.sha256 == second.template.sha256 == version(settings, catalogue)
    assert version(settings, catalogue) == version(settings, catalogue)
    assert len(first.template.sha256) == 64
    assert first.message_id != second.message_id


def test_template_version_changes_with_the_wording(mail_env: dict[str, str]) -> None:
    """Locale, kind and purpose list each change what is read, so each changes the version."""
    settings, catalogue = configured()
    versions = {
        "en": version(settings, catalogue),
        "fr": version(settings, catalogue, locale="fr"),
        "already": version(settings, catalogue, kind="already"),
        "one-purpose": version(settings, catalogue, purposes=("newsletter",)),
        "other-purposes": version(settings, catalogue, purposes=("newsletter", "promotions")),
        "reordered": version(settings, catalogue, purposes=("events", "newsletter")),
    }
    assert len(set(versions.values())) == len(versions), versions


def test_template_version_changes_when_a_purpose_title_changes(mail_env: dict[str, str]) -> None:
    """Marketing retitling a purpose makes a new mail version, without touching templates."""
    settings, catalogue = configured()
    raw = Path(mail_env["CONSENT_CATALOGUE"]).read_text(encoding="utf-8")
    old = 'title.en = "Monthly newsletter"'
    assert old in raw
    retitled = parse_catalogue(raw.replace(old, 'title.en = "Weekly newsletter"'), "catalogue.toml")
    same = parse_catalogue(raw, "catalogue.toml")
    assert version(settings, same) == version(settings, catalogue)
    assert version(settings, retitled) != version(settings, catalogue)
    # the French mail does not show the English title: its version stays
    assert version(settings, retitled, locale="fr") == version(settings, catalogue, locale="fr")
    assert "Weekly newsletter" in render_template(settings, retitled, "confirm", "en", PURPOSES,
                                                  False).text


def test_link_lifetime_under_a_day_is_not_overstated(mail_env: dict[str, str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The mail must not promise a longer lifetime than the link has."""
    monkeypatch.setenv("LINK_MAX_AGE_CONFIRM", "12h")
    settings, catalogue = configured()
    assert settings.link_max_age["confirm"] == 12 * 3600
    text = render_template(settings, catalogue, "confirm", "en", PURPOSES, False).text
    assert "This link works for 1 day." not in text
    assert "This link works for 12 hours." in text


def test_unknown_kind_is_refused(mail_env: dict[str, str]) -> None:
    settings, catalogue = configured()
    with pytest.raises(ValueError, match="unknown mail kind 'reminder'"):
        render_template(settings, catalogue, "reminder", "en", PURPOSES, False)


def test_stored_record_holds_no_personal_data_and_proves_its_version(mail_env: dict[str, str]) -> None:
    """The table keeps the template forever: no address, name or link may be in it, and
    anyone can recompute the recorded version from it with hashlib alone."""
    settings, catalogue = configured()
    composed = compose(settings, catalogue, "confirm", "en", "ann@example.eu", PURPOSES, URLS,
                       name="Ann Smith")
    record = template_record(composed.template)
    assert set(record) == {"mail_kind", "locale", "subject", "text", "html"}
    dumped = json.dumps(record, ensure_ascii=False)
    for personal in ("ann@example.eu", "Ann Smith", "confirm-token", "withdraw-token"):
        assert personal not in dumped
    for marker in ("\u27e6confirm_url\u27e7", "\u27e6withdraw_url\u27e7", "\u27e6name\u27e7"):
        assert marker in record["text"] and marker in record["html"]
    canonical = json.dumps({"kind": record["mail_kind"], "locale": record["locale"],
                            "subject": record["subject"], "text": record["text"],
                            "html": record["html"]},
                           sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert hashlib.sha256(canonical.encode("utf-8")).hexdigest() == composed.template.sha256


def test_stored_record_filled_in_reproduces_what_was_received(mail_env: dict[str, str],
                                                              mail_sink: Any) -> None:
    """The evidence claim: the stored template plus the personal parts *is* the mail the
    person got, byte for byte, after a real SMTP hop."""
    settings, catalogue = configured()
    values = {**URLS, "name": HOSTILE_NAME}
    composed = compose(settings, catalogue, "confirm", "en", "ann@example.eu", PURPOSES, URLS,
                       name=HOSTILE_NAME)
    record = template_record(composed.template)
    SmtpTransport(settings.mail).send(composed.message)
    (received,) = mail_sink.wait_for(to="ann@example.eu", timeout=5)
    assert received.text() == fill(record["text"], values, escape=False)
    assert received.subject == record["subject"]
    assert received.html() == fill(record["html"], values, escape=True)
    # and as composed, before any transport touched it
    text, _ = parts(composed.message)
    assert text == fill(record["text"], values, escape=False)


def test_stored_html_filled_in_is_byte_exact(mail_env: dict[str, str], mail_sink: Any) -> None:
    """The same evidence claim for the HTML part, byte for byte."""
    settings, catalogue = configured()
    values = {**URLS, "name": HOSTILE_NAME}
    composed = compose(settings, catalogue, "confirm", "en", "ann@example.eu", PURPOSES, URLS,
                       name=HOSTILE_NAME)
    SmtpTransport(settings.mail).send(composed.message)
    (received,) = mail_sink.wait_for(to="ann@example.eu", timeout=5)
    assert received.html() == fill(template_record(composed.template)["html"], values, escape=True)


# --- addresses ----------------------------------------------------------------------------


def test_idn_domain_goes_out_as_punycode(mail_env: dict[str, str], mail_sink: Any) -> None:
    """Relays without SMTPUTF8 still deliver to an internationalised domain."""
    settings, catalogue = configured()
    composed = compose(settings, catalogue, "confirm", "en", "ann@exämple.com", PURPOSES, URLS)
    assert composed.message["To"] == "ann@xn--exmple-cua.com"
    assert composed.message.as_bytes().isascii()
    SmtpTransport(settings.mail).send(composed.message)
    (received,) = mail_sink.wait_for(timeout=5)
    assert received.rcpt_tos == ("ann@xn--exmple-cua.com",)


def test_non_ascii_local_part_is_accepted_by_a_real_smtp_server(mail_env: dict[str, str],
                                                                mail_sink: Any) -> None:
    """An address like jösé@… needs SMTPUTF8; the message must survive a real send."""
    settings, catalogue = configured()
    composed = compose(settings, catalogue, "confirm", "en", "jösé@example.com", PURPOSES, URLS,
                       name="José")
    assert parseaddr(str(composed.message["To"]))[1] == "jösé@example.com"
    sent = SmtpTransport(settings.mail).send(composed.message)
    assert sent == composed.message_id
    (received,) = mail_sink.wait_for(to="jösé@example.com", timeout=5)
    assert received.rcpt_tos == ("jösé@example.com",)
    assert received.message["To"] == "jösé@example.com"
    assert received.message["Message-ID"] == composed.message_id
    assert CONFIRM_URL in received.text() and "Hello José," in received.text()


# --- French -------------------------------------------------------------------------------


def _po_translation(msgid: str) -> str:
    """The French msgstr of ``msgid`` in the .po file ("" when missing or untranslated)."""
    from babel.messages.pofile import read_po

    with open(ROOT / "locales" / "fr" / "LC_MESSAGES" / "messages.po", "rb") as handle:
        catalog = read_po(handle)
    message = catalog.get(msgid)
    return str(message.string or "") if message is not None and not message.fuzzy else ""


def test_french_mail_is_in_french(mail_env: dict[str, str]) -> None:
    """A French signup gets a mail declared French, with the French purpose titles."""
    settings, catalogue = configured()
    message = compose(settings, catalogue, "confirm", "fr", "ann@example.eu", PURPOSES, URLS).message
    text, body = parts(message)
    assert message["Content-Language"] == "fr"
    assert '<html lang="fr">' in body
    for purpose in PURPOSES:
        title = catalogue.get(purpose).text("fr").title
        assert title in text and title in html.unescape(body)
    assert "Monthly newsletter" not in text + body
    footer = _po_translation("Data controller: %(name)s, %(address)s.")
    assert footer, "the page footer translation is expected in messages.po"
    assert footer % {"name": catalogue.controller.name,
                     "address": catalogue.controller.address} in text


MAIL_MSGIDS = ("Please confirm your choices for %(controller)s", "Confirm my choices", "Hello,",
               "Nothing counts as agreed until you confirm. Open the page below to read what each "
               "purpose means, and accept or refuse each one separately.",
               "Privacy policy: %(url)s")


def test_french_mail_wording_is_translated(mail_env: dict[str, str]) -> None:
    """Once the mail strings are translated, the subject and body must use them (a stale
    .mo would send English)."""
    missing = [msgid for msgid in MAIL_MSGIDS if not _po_translation(msgid)]
    if missing:
        pytest.skip(f"messages.po has no French for the mail strings yet: {missing}")
    settings, catalogue = configured()
    message = compose(settings, catalogue, "confirm", "fr", "ann@example.eu", PURPOSES, URLS).message
    text, body = parts(message)
    assert message["Subject"] == _po_translation(MAIL_MSGIDS[0]) % {
        "controller": catalogue.controller.name}
    assert html.unescape(body).count(_po_translation("Confirm my choices")) == 1
    assert _po_translation(MAIL_MSGIDS[3]) in text
    assert _po_translation(MAIL_MSGIDS[4]) % {"url": catalogue.controller.privacy_policy_url} in text


# --- SMTP transport -----------------------------------------------------------------------


def _message(settings: Settings, catalogue: Catalogue, to: str = "ann@example.eu") -> EmailMessage:
    return compose(settings, catalogue, "confirm", "en", to, PURPOSES, URLS).message


def test_smtp_send_returns_the_message_id(mail_env: dict[str, str], mail_sink: Any) -> None:
    """The sink really receives the mail, envelope and headers as composed."""
    settings, catalogue = configured()
    message = _message(settings, catalogue)
    assert SmtpTransport(settings.mail).send(message) == message["Message-ID"]
    (received,) = mail_sink.wait_for(to="ann@example.eu", timeout=5)
    assert received.mail_from == "consent@example-outdoor.eu"
    assert received.message["Message-ID"] == message["Message-ID"]
    assert received.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_smtp_4xx_is_temporary(mail_env: dict[str, str], mail_sink: Any) -> None:
    """451: the outbox must keep the mail and try again later."""
    settings, catalogue = configured()
    mail_sink.set_failure("tempfail")
    with pytest.raises(MailTemporaryFailure, match="451") as caught:
        SmtpTransport(settings.mail).send(_message(settings, catalogue))
    assert caught.value.permanent is False
    assert mail_sink.messages == []


def test_smtp_5xx_is_permanent(mail_env: dict[str, str], mail_sink: Any) -> None:
    """550: retrying a refused mailbox only hurts the sender's reputation."""
    settings, catalogue = configured()
    mail_sink.set_failure("permfail")
    with pytest.raises(MailPermanentFailure, match="550") as caught:
        SmtpTransport(settings.mail).send(_message(settings, catalogue))
    assert caught.value.permanent is True
    assert mail_sink.messages == []


def test_smtp_server_down_is_temporary(mail_env: dict[str, str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listening: a relay outage, not a reason to give up on the mail."""
    port = free_port()
    monkeypatch.setenv("MAIL_SMTP_PORT", str(port))
    settings, catalogue = configured()
    with pytest.raises(MailTemporaryFailure, match=f"127.0.0.1:{port}"):
        SmtpTransport(settings.mail).send(_message(settings, catalogue))


def test_no_transport_refuses_to_send(mail_env: dict[str, str]) -> None:
    settings, catalogue = configured()
    with pytest.raises(ConfigError, match="MAIL_TRANSPORT is none"):
        NoTransport().send(_message(settings, catalogue))


@pytest.mark.parametrize("transport, kind", [
    ("smtp", SmtpTransport), ("ses", SesTransport), ("none", NoTransport), ("", NoTransport),
    ("SMTP", SmtpTransport),
])
def test_get_transport_follows_mail_transport(mail_env: dict[str, str],
                                              monkeypatch: pytest.MonkeyPatch,
                                              transport: str, kind: type) -> None:
    monkeypatch.setenv("MAIL_TRANSPORT", transport)
    settings = get_settings()
    made = get_transport(settings.mail, settings.aws_region)
    assert isinstance(made, kind)
    assert made.name == (transport.lower() or "none")


# --- settings -----------------------------------------------------------------------------


BASE_ENV = {"LINK_SECRET_KEYS": KEY_NEW, "SUBJECT_PEPPER": PEPPER,
            "PUBLIC_BASE_URL": "https://consent.example-outdoor.eu",
            "MAIL_FROM": "Example Outdoor <consent@example-outdoor.eu>",
            "MAIL_TRANSPORT": "smtp", "MAIL_SMTP_HOST": "smtp.example-outdoor.eu"}


def test_complete_mail_settings_load() -> None:
    mail_settings = load_settings(BASE_ENV).mail
    assert (mail_settings.transport, mail_settings.smtp_host, mail_settings.smtp_security) == \
        ("smtp", "smtp.example-outdoor.eu", "starttls")


@pytest.mark.parametrize("change, named", [
    ({"MAIL_SMTP_HOST": ""}, "MAIL_SMTP_HOST"),
    ({"MAIL_FROM": ""}, "MAIL_FROM"),
    ({"MAIL_FROM": "consent"}, "MAIL_FROM"),
    ({"PUBLIC_BASE_URL": ""}, "PUBLIC_BASE_URL"),
    ({"MAIL_TRANSPORT": "carrier-pigeon"}, "MAIL_TRANSPORT"),
    ({"MAIL_TRANSPORT": "ses", "MAIL_FROM": ""}, "MAIL_FROM"),
    ({"MAIL_TRANSPORT": "ses", "PUBLIC_BASE_URL": " "}, "PUBLIC_BASE_URL"),
    ({"MAIL_SMTP_SECURITY": "tls1.0"}, "MAIL_SMTP_SECURITY"),
], ids=["no-host", "no-from", "from-without-at", "no-base-url", "carrier-pigeon", "ses-no-from",
        "ses-no-base-url", "bad-security"])
def test_incomplete_mail_settings_name_the_variable(change: dict[str, str], named: str) -> None:
    """A half-configured transport must fail at start-up, saying which variable to set."""
    env = {k: v for k, v in {**BASE_ENV, **change}.items() if v != ""}
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert named in str(caught.value)


def test_transport_none_needs_nothing() -> None:
    """Without a mail transport (Act! mails the links), no mail variable is required."""
    env = {"LINK_SECRET_KEYS": KEY_NEW, "SUBJECT_PEPPER": PEPPER}
    assert load_settings(env).mail.transport == "none"


# --- SES ----------------------------------------------------------------------------------


class SesStub:
    """A minimal SES v2 endpoint on loopback: records each request, answers as told."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.body: dict[str, Any] = {"MessageId": "ses-123"}
        self.headers: dict[str, str] = {}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                stub.requests.append({"path": self.path, "headers": dict(self.headers),
                                      "json": json.loads(raw or b"{}")})
                payload = json.dumps(stub.body).encode()
                self.send_response(stub.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("x-amzn-RequestId", f"req-{len(stub.requests)}")
                for name, value in stub.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    def fail(self, status: int, error_type: str, message: str) -> None:
        self.status = status
        self.headers = {"x-amzn-ErrorType": error_type}
        self.body = {"message": message}


@pytest.fixture
def ses_stub(mail_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[SesStub]:
    """The app configured for SES, pointed at a stub of its API."""
    stub = SesStub()
    stub.thread.start()
    monkeypatch.setenv("MAIL_TRANSPORT", "ses")
    monkeypatch.setenv("MAIL_SES_ENDPOINT", stub.url)
    yield stub
    stub.server.shutdown()
    stub.server.server_close()
    stub.thread.join(timeout=5)


def _ses_send() -> tuple[str, EmailMessage]:
    settings, catalogue = configured()
    transport = get_transport(settings.mail, settings.aws_region)
    assert isinstance(transport, SesTransport)
    message = _message(settings, catalogue)
    return transport.send(message), message


def test_ses_sends_our_raw_mime(ses_stub: SesStub) -> None:
    """SES gets the message as composed (List-Unsubscribe included) and its id comes back."""
    provider_id, message = _ses_send()
    assert provider_id == "ses-123"
    (request,) = ses_stub.requests
    assert request["path"] == "/v2/email/outbound-emails"
    assert "ConfigurationSetName" not in request["json"]
    assert "AWS4-HMAC-SHA256" in request["headers"].get("Authorization", "")
    raw = base64.b64decode(request["json"]["Content"]["Raw"]["Data"])
    sent = email.message_from_bytes(raw, policy=email.policy.default)
    assert sent["List-Unsubscribe"] == f"<{WITHDRAW_URL}>"
    assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert sent["Message-ID"] == message["Message-ID"]
    assert sent["To"] == "ann@example.eu"
    assert CONFIRM_URL in sent.get_body(preferencelist=("plain",)).get_content()


def test_ses_configuration_set_is_passed(ses_stub: SesStub, monkeypatch: pytest.MonkeyPatch) -> None:
    """The configuration set carries bounce/complaint event publishing in production."""
    monkeypatch.setenv("MAIL_SES_CONFIGURATION_SET", "optinproof-events")
    _ses_send()
    (request,) = ses_stub.requests
    assert request["json"]["ConfigurationSetName"] == "optinproof-events"


def test_ses_message_rejected_is_permanent(ses_stub: SesStub) -> None:
    """An unverified sender or rejected message will never pass by retrying."""
    ses_stub.fail(400, "MessageRejected", "Email address is not verified.")
    with pytest.raises(MailPermanentFailure, match="MessageRejected") as caught:
        _ses_send()
    assert "Email address is not verified." in str(caught.value)
    assert len(ses_stub.requests) == 1  # not retried


def test_ses_throttling_is_temporary(ses_stub: SesStub) -> None:
    """429: SES is throttling us; botocore's own retries are bounded, then the outbox retries."""
    ses_stub.fail(429, "TooManyRequestsException", "Maximum sending rate exceeded.")
    with pytest.raises(MailTemporaryFailure, match="TooManyRequestsException"):
        _ses_send()
    # botocore counts retries after the first try (retries.max_attempts=2 → 3 requests)
    assert 1 <= len(ses_stub.requests) <= 3  # tried, and gave up
    assert {r["path"] for r in ses_stub.requests} == {"/v2/email/outbound-emails"}


def test_ses_unreachable_is_temporary(mail_env: dict[str, str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """An endpoint nobody answers on is an outage, not a refusal."""
    monkeypatch.setenv("MAIL_TRANSPORT", "ses")
    monkeypatch.setenv("MAIL_SES_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MAIL_TIMEOUT", "1")
    settings, catalogue = configured()
    with pytest.raises(MailTemporaryFailure, match="Cannot reach SES"):
        get_transport(settings.mail, settings.aws_region).send(_message(settings, catalogue))


def test_mail_module_kinds() -> None:
    """The kinds the outbox may order; each has both templates on disk."""
    assert mail.MAIL_KINDS == ("confirm", "already", "rights", "receipt", "renew")
    for kind in mail.MAIL_KINDS:
        for ext in ("txt", "html"):
            assert (ROOT / "templates" / "mail" / f"{kind}.{ext}").is_file()
