"""The local mail sink: real SMTP in (smtplib), real HTTP out (urllib), nothing mocked."""
from __future__ import annotations

import json
import smtplib
import subprocess
import sys
import time
import urllib.error
import urllib.request
from email.message import EmailMessage
from pathlib import Path
from typing import Iterator

import pytest

from devstack.mailsink import MAIL_HTML_CSP, MailSink, StoredMail

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = '<script>alert("x")</script> & <b>"bold"</b>'


@pytest.fixture()
def sink() -> Iterator[MailSink]:
    with MailSink() as running:
        yield running


def make_mail(to: str = "alice@example.com", subject: str = "Please confirm",
              text: str | None = "Hello Alice,\nconfirm: https://app.example/c/1\n",
              html: str | None = '<p>Hello <a href="https://app.example/c/1">confirm</a></p>',
              ) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "OptinProof <no-reply@optinproof.example>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = "<m1@optinproof.example>"
    message["List-Unsubscribe"] = "<https://app.example/u/1>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if text is not None:
        message.set_content(text)
    if html is not None:
        if text is None:
            message.set_content(html, subtype="html")
        else:
            message.add_alternative(html, subtype="html")
    return message


def send(sink: MailSink, message: EmailMessage, rcpt: list[str] | None = None) -> None:
    # local_hostname: smtplib otherwise calls socket.getfqdn(), slow where DNS is not set up
    with smtplib.SMTP(sink.host, sink.smtp_port, local_hostname="localhost", timeout=5) as smtp:
        smtp.send_message(message, from_addr="bounces@optinproof.example",
                          to_addrs=rcpt or [str(message["To"])])


def get(sink: MailSink, path: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(sink.http_url + path, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


def test_receives_a_multipart_mail(sink: MailSink) -> None:
    send(sink, make_mail(), rcpt=["alice@example.com", "bcc@example.com"])
    [mail] = sink.wait_for(to="ALICE@example.com")
    assert isinstance(mail, StoredMail)
    assert mail.id == "000001" and sink.messages == [mail]
    assert mail.mail_from == "bounces@optinproof.example"
    assert mail.rcpt_tos == ("alice@example.com", "bcc@example.com")
    assert mail.received_at.endswith("Z") and mail.received_at[:2] == "20"
    assert mail.subject == "Please confirm"
    assert mail.text() == "Hello Alice,\nconfirm: https://app.example/c/1\n"
    assert mail.html() == '<p>Hello <a href="https://app.example/c/1">confirm</a></p>\n'
    assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert b"Subject: Please confirm" in mail.raw
    assert sink.wait_for(to="bcc@example.com") == [mail]


def test_text_only_and_html_only_mails(sink: MailSink) -> None:
    send(sink, make_mail(to="t@example.com", html=None))
    send(sink, make_mail(to="h@example.com", text=None))
    text_only, html_only = sink.wait_for(count=2)
    assert text_only.html() == "" and "confirm" in text_only.text()
    assert html_only.text() == "" and "<a href" in html_only.html()
    assert [m.id for m in sink.messages] == ["000001", "000002"]
    status, _, body = get(sink, f"/mail/{text_only.id}/html")
    assert status == 404 and b"no text/html part" in body


def test_viewer_pages(sink: MailSink) -> None:
    send(sink, make_mail(subject="First"))
    send(sink, make_mail(subject="Second", to="bob@example.com"))
    first, second = sink.wait_for(count=2)

    status, headers, body = get(sink, "/")
    page = body.decode()
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert headers["Content-Type"].startswith("text/html")
    assert page.index("Second") < page.index("First")  # newest first
    assert f'href="/mail/{first.id}"' in page and "bob@example.com" in page

    status, headers, body = get(sink, f"/mail/{first.id}")
    page = body.decode()
    assert status == 200 and headers["Cache-Control"] == "no-store"
    for value in ("First", "&lt;m1@optinproof.example&gt;", "List-Unsubscribe=One-Click",
                  "&lt;https://app.example/u/1&gt;", "OptinProof &lt;no-reply@optinproof.example&gt;"):
        assert value in page
    assert "<pre>Hello Alice,\nconfirm: https://app.example/c/1\n</pre>" in page
    assert (f'<iframe sandbox="allow-popups allow-popups-to-escape-sandbox '
            f'allow-top-navigation-by-user-activation" src="/mail/{first.id}/html"') in page
    assert "<script" not in page

    status, headers, body = get(sink, f"/mail/{first.id}/html")
    assert status == 200 and body.decode() == first.html()
    assert headers["Content-Security-Policy"] == MAIL_HTML_CSP
    assert MAIL_HTML_CSP.startswith("sandbox ")
    assert "default-src 'none'; style-src 'unsafe-inline'; img-src data:" in MAIL_HTML_CSP
    assert headers["Cache-Control"] == "no-store"

    status, headers, body = get(sink, f"/mail/{first.id}.eml")
    assert status == 200 and body == first.raw
    assert headers["Content-Type"] == "message/rfc822"

    status, _, body = get(sink, "/api/mails")
    assert status == 200
    assert json.loads(body) == [
        {"id": first.id, "from": "bounces@optinproof.example", "to": ["alice@example.com"],
         "subject": "First", "received_at": first.received_at},
        {"id": second.id, "from": "bounces@optinproof.example", "to": ["bob@example.com"],
         "subject": "Second", "received_at": second.received_at}]

    for path in ("/nope", "/mail/999999", "/mail/999999/html", "/mail/abc", "/api/nope"):
        status, headers, _ = get(sink, path)
        assert (path, status, headers["Cache-Control"]) == (path, 404, "no-store")


def test_hostile_subject_is_escaped(sink: MailSink) -> None:
    send(sink, make_mail(subject=HOSTILE, to="eve@example.com"))
    [mail] = sink.wait_for()
    assert mail.subject == HOSTILE
    for path in ("/", f"/mail/{mail.id}"):
        page = get(sink, path)[2].decode()
        assert "<script" not in page and "<b>" not in page
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;" in page


def test_clear_over_http_and_in_code(sink: MailSink) -> None:
    send(sink, make_mail())
    sink.wait_for()
    request = urllib.request.Request(sink.http_url + "/clear", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:  # follows the 303 to /
        assert response.status == 200 and response.url == sink.http_url + "/"
        assert b"No mail yet" in response.read()
    assert sink.messages == []
    send(sink, make_mail())
    assert sink.wait_for()[0].id == "000002"  # ids are never reused
    sink.clear()
    assert sink.messages == [] and json.loads(get(sink, "/api/mails")[2]) == []
    send(sink, make_mail())
    [kept] = sink.wait_for()
    cross_site = urllib.request.Request(sink.http_url + "/clear", data=b"", method="POST",
                                        headers={"Origin": "http://evil.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(cross_site, timeout=5)
    refused.value.close()
    assert refused.value.code == 403 and sink.messages == [kept]


def test_folder_keeps_mails_across_restarts(tmp_path: Path) -> None:
    folder = tmp_path / "mails"
    with MailSink(folder=folder) as sink:
        send(sink, make_mail(subject="Kept"), rcpt=["alice@example.com", "bcc@example.com"])
        [kept] = sink.wait_for()
    (folder / "notes.txt").write_text("not a mail")
    assert sorted(p.name for p in folder.iterdir()) == ["000001.eml", "000001.json", "notes.txt"]
    assert (folder / "000001.eml").read_bytes() == kept.raw
    with MailSink(folder=folder) as sink:
        assert sink.messages == [kept]  # envelope (Bcc) and arrival time too
        send(sink, make_mail(subject="Next"))
        assert [m.id for m in sink.wait_for(count=2)] == ["000001", "000002"]
        assert get(sink, "/mail/000001")[0] == 200
        sink.clear()
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_failure_modes(sink: MailSink) -> None:
    sink.set_failure("tempfail")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as temp:
        send(sink, make_mail())
    code, reply = temp.value.recipients["alice@example.com"]
    assert code == 451 and reply.startswith(b"4.3.0")
    sink.set_failure("permfail")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as perm:
        send(sink, make_mail())
    code, reply = perm.value.recipients["alice@example.com"]
    assert code == 550 and reply.startswith(b"5.1.1")
    assert sink.messages == []
    sink.set_failure(None)
    send(sink, make_mail())
    assert len(sink.wait_for()) == 1
    with pytest.raises(ValueError):
        sink.set_failure("bounce")


def test_wait_for_timeout_says_what_arrived(sink: MailSink) -> None:
    send(sink, make_mail(to="alice@example.com"))
    started = time.monotonic()
    with pytest.raises(TimeoutError) as waited:
        sink.wait_for(to="bob@example.com", timeout=0.3)
    assert 0.25 < time.monotonic() - started < 2
    message = str(waited.value)
    assert "bob@example.com" in message and "got 0" in message and "alice@example.com" in message
    with pytest.raises(TimeoutError, match="for 2 mail"):
        sink.wait_for(count=2, timeout=0.1)


def test_wait_for_wakes_when_the_mail_arrives(sink: MailSink) -> None:
    import threading
    sender = threading.Timer(0.2, send, args=(sink, make_mail(to="late@example.com")))
    sender.start()
    started = time.monotonic()
    [mail] = sink.wait_for(to="late@example.com", timeout=5)
    sender.join()
    assert mail.rcpt_tos == ("late@example.com",) and time.monotonic() - started < 2


def test_add_page(sink: MailSink) -> None:
    demo = '<!doctype html><title>Embed demo</title><iframe src="http://127.0.0.1:1/embed"></iframe>'
    sink.add_page("/embed-demo.html", demo)
    status, headers, body = get(sink, "/embed-demo.html")
    assert status == 200 and body.decode() == demo
    assert headers["Content-Type"].startswith("text/html")
    assert "Content-Security-Policy" not in headers
    for reserved in ("/", "/api/mails", "/mail/1", "no-slash"):
        with pytest.raises(ValueError):
            sink.add_page(reserved, demo)


def test_only_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        MailSink(host="0.0.0.0")


def test_command_line_help() -> None:
    result = subprocess.run([sys.executable, "-m", "devstack.mailsink", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "--smtp-port" in result.stdout and "--http-port" in result.stdout
    assert "--folder" in result.stdout
