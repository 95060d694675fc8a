"""SES bounces and complaints arriving through SNS, end to end through the route.

Messages are signed like SNS signs them (RSA over the canonical string, a certificate
made with ``cryptography``). The certificate URL is an https://sns.<region>.amazonaws.com
one, as the verifier demands; since tests never leave loopback, the certificate is
served by a fetch function put in ``resources.sns_fetch`` (the one seam: everything
else, from the signature check to DynamoDB Local and the Act! simulator, is real).
"""
from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from chalicelib.campaigns import define
from chalicelib.campaigns import report as campaign_report
from chalicelib.core import services
from chalicelib.mail import sns
from chalicelib.core.services import get_catalogue, get_ledger, get_postman
from chalicelib.core.settings import get_settings
from chalicelib.consent.subjects import subject_key
from tests.conftest import PEPPER, SHOP, new_secret

TOPIC = "arn:aws:sns:eu-west-1:123456789012:optinproof-ses"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem"
PATH_SECRET = new_secret()


def _certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = _certificate(KEY)


class FakeAws:
    """Serves the signing certificate and records subscription confirmations."""

    def __init__(self) -> None:
        self.fetched: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.fetched.append(url)
        if url == CERT_URL:
            return PEM
        if url.startswith("https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"):
            return b"<ConfirmSubscriptionResponse/>"
        raise sns.SnsUnavailable(f"cannot fetch {url}")


@pytest.fixture
def ses_env(mail_env: dict[str, str], act_env: dict[str, str],
            monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAws]:
    monkeypatch.setenv("SES_SNS_TOPIC_ARNS", TOPIC)
    monkeypatch.setenv("SES_SNS_PATH_SECRET", PATH_SECRET)
    aws = FakeAws()
    monkeypatch.setattr(services, "sns_fetch", aws)
    yield aws


def sign(message: dict[str, Any], key: rsa.RSAPrivateKey = KEY) -> dict[str, Any]:
    message = {"SignatureVersion": "2", "SigningCertURL": CERT_URL, **message}
    digest = hashes.SHA256() if message["SignatureVersion"] == "2" else hashes.SHA1()
    signature = key.sign(sns.string_to_sign(message), padding.PKCS1v15(), digest)
    return {**message, "Signature": base64.b64encode(signature).decode()}


def notification(body: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    message = {"Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": TOPIC,
               "Message": json.dumps(body),
               "Timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"}
    message.update(overrides)
    return message


def bounce(address: str, kind: str = "Permanent", ses_id: str = "ses-1") -> dict[str, Any]:
    return {"notificationType": "Bounce", "mail": {"messageId": ses_id},
            "bounce": {"bounceType": kind, "bounceSubType": "General", "feedbackId": "f-1",
                       "bouncedRecipients": [{"emailAddress": address}]}}


def complaint(address: str, ses_id: str = "ses-2") -> dict[str, Any]:
    return {"eventType": "Complaint", "mail": {"messageId": ses_id},
            "complaint": {"complaintFeedbackType": "abuse", "feedbackId": "f-2",
                          "complainedRecipients": [{"emailAddress": address}]}}


def post(client: Any, message: dict[str, Any] | bytes, secret: str = PATH_SECRET) -> Any:
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return client.http.post(f"/hooks/ses/{secret}", body=body,
                            headers={"Content-Type": "text/plain; charset=UTF-8",
                                     "x-amz-sns-message-type": "Notification"})


def subject_of(address: str) -> str:
    return subject_key(PEPPER, address.lower())


def signed_up(client: Any, address: str, purposes: tuple[str, ...] = ("newsletter",)) -> str:
    """A person who signed up through the form and accepted through the mailed link."""
    from chalicelib.consent import submissions
    from chalicelib.consent.rules import RequestContext

    outcome = services.get_signups().submit(
        get_catalogue().forms["website"],
        submissions.Submission(address, tuple(purposes), page_url=SHOP),
        "en", RequestContext(ip="192.0.2.1"))
    get_postman().deliver(outcome.mail_id)
    return outcome.subject


def accept(client: Any, subject: str, purposes: tuple[str, ...]) -> None:
    from chalicelib.consent import rules
    from chalicelib.consent import links

    issued = [i for i in get_ledger().events(subject)
              if i.get("kind") == "link_issued" and i.get("link_kind") == "confirm"][-1]
    token, _ = links.mint(get_settings(), "confirm", subject, issued["purposes"],
                          issued["link_id"])
    link, record = rules.open_link(get_ledger(), get_settings(), "confirm", token)
    rules.decide(get_ledger(), get_catalogue(), link, record,
                   {p: "accept" for p in purposes}, "en",
                   {p: get_catalogue().get(p).text("en").sha256 for p in purposes},
                   rules.RequestContext())


def kinds(subject: str) -> list[str]:
    return [e["kind"] for e in get_ledger().events(subject)]


def test_permanent_bounce_is_recorded_and_stops_further_mail(client, ses_env, mail_sink):
    subject = signed_up(client, "Bob@Example.eu")
    answer = post(client, sign(notification(bounce("bob@example.eu"))))
    assert answer.status_code == 200, answer.body
    assert json.loads(answer.body) == {"kind": "bounce", "recorded": 1, "unknown": 0,
                                       "duplicate": 0}
    event = [e for e in get_ledger().events(subject) if e["kind"] == "bounced"][0]
    assert event["bounce_type"] == "Permanent" and event["channel"] == "ses"
    assert "bob@example.eu" not in json.dumps(event).lower()
    profile, _ = get_ledger().current(subject)
    assert profile["undeliverable"]["reason"] == "permanent bounce"
    # A campaign mail to that address is not sent any more…
    mails_before = len(mail_sink.messages)
    from chalicelib.consent.requests import draft_request, plan_request
    from chalicelib.consent.rules import RequestContext
    from chalicelib.core.clock import now_iso
    at = now_iso()
    request = draft_request(get_settings(), subject, ["events"], True, "campaign:x", "en",
                            RequestContext(), at)
    get_ledger().commit(subject, lambda snap: plan_request(request, snap, "Bob@Example.eu",
                                                           None, "en", at))
    assert get_postman().deliver(request.order.mail_id).detail == "address undeliverable"
    assert len(mail_sink.messages) == mails_before
    # …until the person types the address into a form again.
    signed_up(client, "bob@example.eu", ("events",))
    assert "undeliverable" not in get_ledger().current(subject)[0]
    assert len(mail_sink.messages) == mails_before + 1


def test_transient_bounce_is_recorded_only(client, ses_env):
    subject = signed_up(client, "carol@example.eu")
    answer = post(client, sign(notification(bounce("carol@example.eu", "Transient"))))
    assert answer.status_code == 200
    assert kinds(subject)[-1] == "bounced"
    assert "undeliverable" not in get_ledger().current(subject)[0]


def test_complaint_withdraws_every_purpose_and_syncs_to_act(client, ses_env, act_sim, pusher):
    act_sim.add_contact(firstName="Dave", lastName="Test", emailAddress="dave@example.eu")
    subject = signed_up(client, "dave@example.eu", ("newsletter", "events"))
    accept(client, subject, ("newsletter",))
    answer = post(client, sign(notification(complaint("dave@example.eu"))))
    assert answer.status_code == 200, answer.body
    _, states = get_ledger().current(subject)
    assert states["newsletter"]["state"] == "withdrawn"
    assert states["events"]["state"] == "refused"  # asked, never accepted: now refused
    assert states["newsletter"]["channel"] == "ses"
    assert kinds(subject)[-3:] == ["complained", "refused", "withdrawn"]  # purposes by id
    withdrawn = [e for e in get_ledger().events(subject) if e["kind"] == "withdrawn"][0]
    assert withdrawn["method"] == "complaint"
    # Synced to Act! like any withdrawal.
    from chalicelib.act import sync
    sync.drain(pusher, sync.due_keys(get_ledger()))
    assert get_ledger().current(subject)[1]["newsletter"]["sync_status"] == "synced"


def test_redelivered_message_changes_nothing(client, ses_env):
    subject = signed_up(client, "erin@example.eu")
    message = sign(notification(complaint("erin@example.eu")))
    assert post(client, message).status_code == 200
    before = kinds(subject)
    again = post(client, message)
    assert again.status_code == 200 and json.loads(again.body)["duplicate"] == 1
    assert kinds(subject) == before


def test_unknown_address_is_ignored(client, ses_env, table_items):
    before = len(table_items())
    answer = post(client, sign(notification(bounce("nobody@example.eu"))))
    assert answer.status_code == 200 and json.loads(answer.body)["unknown"] == 1
    assert len(table_items()) == before


@pytest.mark.parametrize("tamper", ["message", "topic", "other_key", "stale", "cert_url"])
def test_forged_or_replayed_messages_are_refused(client, ses_env, tamper, table_items):
    subject = signed_up(client, "frank@example.eu")
    before = kinds(subject)
    message = sign(notification(complaint("frank@example.eu")),
                   OTHER_KEY if tamper == "other_key" else KEY)
    if tamper == "message":
        message["Message"] = json.dumps(complaint("frank@example.eu", "ses-forged"))
    elif tamper == "topic":
        message = sign(notification(complaint("frank@example.eu"),
                                    TopicArn="arn:aws:sns:eu-west-1:999999999999:theirs"))
    elif tamper == "stale":
        message = sign(notification(complaint("frank@example.eu"),
                                    Timestamp="2020-01-01T00:00:00.000Z"))
    elif tamper == "cert_url":
        message = sign({**notification(complaint("frank@example.eu")),
                        "SigningCertURL": "https://sns.eu-west-1.amazonaws.com.evil.eu/c.pem"})
    answer = post(client, message)
    assert answer.status_code == 403, answer.body
    assert json.loads(answer.body)["error"] == "forbidden"
    assert kinds(subject) == before


def test_malformed_bodies_get_400_and_wrong_path_404(client, ses_env):
    assert post(client, b"not json").status_code == 400
    assert post(client, json.dumps({"Type": "Notification"}).encode()).status_code == 400
    not_ses = post(client, sign(notification({"hello": "world"})))
    assert not_ses.status_code == 400 and "SES" in json.loads(not_ses.body)["message"]
    no_recipients = post(client, sign(notification({"notificationType": "Bounce",
                                                    "bounce": {"bouncedRecipients": []}})))
    assert no_recipients.status_code == 400
    assert post(client, sign(notification(bounce("a@example.eu"))), "wrong" * 10).status_code \
        == 404


def test_not_configured_is_404(client, mail_env):
    assert post(client, b"{}", PATH_SECRET).status_code == 404


def test_subscription_is_confirmed_after_verification(client, ses_env):
    url = ("https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn="
           f"{TOPIC}&Token=abc")
    message = sign({"Type": "SubscriptionConfirmation", "MessageId": str(uuid.uuid4()),
                    "TopicArn": TOPIC, "Token": "abc", "SubscribeURL": url,
                    "Message": "You have chosen to subscribe…",
                    "Timestamp": notification({})["Timestamp"]})
    answer = post(client, message)
    assert answer.status_code == 200, answer.body
    assert url in ses_env.fetched
    forged = {**message, "SubscribeURL": "https://evil.example/?Action=ConfirmSubscription"}
    assert post(client, forged).status_code == 403  # the signature covers the URL
    assert "https://evil.example/?Action=ConfirmSubscription" not in ses_env.fetched


def test_campaign_report_counts_bounces(client, ses_env, act_sim):
    from tests.support.campaigns import make_runner

    act_sim.add_contact(firstName="Gil", lastName="Test", emailAddress="gil@example.eu")
    act_sim.add_contact(firstName="Hal", lastName="Test", emailAddress="hal@example.eu")
    runner = make_runner("bounce-test", delivery="mail", purposes=("newsletter",),
                         audience="filter", value="emailAddress eq 'gil@example.eu' or "
                                                  "emailAddress eq 'hal@example.eu'")
    progress = runner.run(define.audience(runner.client, runner.campaign))
    assert progress.delivered == 2, progress.errors
    gil = subject_of("gil@example.eu")
    sent = [e for e in get_ledger().events(gil) if e["kind"] == "mail_sent"][-1]
    answer = post(client, sign(notification(bounce("gil@example.eu",
                                                   ses_id=sent["provider_message_id"]))))
    assert answer.status_code == 200
    bounced = [e for e in get_ledger().events(gil) if e["kind"] == "bounced"][0]
    assert bounced["mail_channel"] == "campaign:bounce-test"
    result = campaign_report.report(get_ledger(), runner.campaign)
    assert result.purposes["newsletter"]["bounced"] == 1
    assert result.purposes["newsletter"]["no_answer"] == 1
    assert len(result.no_answer) == 1  # the bounced one is not reminded


def test_one_notice_through_two_topics_counts_once(client, ses_env, monkeypatch):
    second = "arn:aws:sns:eu-west-1:123456789012:optinproof-ses-2"
    monkeypatch.setenv("SES_SNS_TOPIC_ARNS", f"{TOPIC},{second}")
    subject = signed_up(client, "ivy@example.eu")
    body = complaint("ivy@example.eu")  # same SES feedback id, two SNS messages
    assert json.loads(post(client, sign(notification(body))).body)["recorded"] == 1
    again = post(client, sign(notification(body, TopicArn=second)))
    assert json.loads(again.body)["duplicate"] == 1
    assert kinds(subject).count("complained") == 1
