"""Mail transports: Amazon SES (production), SMTP (local sink, any relay), or none.

A transport hands one message over and says how it failed: temporarily (down,
busy, throttled: the outbox tries again later) or permanently (recipient refused,
sender not verified: trying again cannot help). The choice is configuration
(``MAIL_TRANSPORT``), so the same code runs against the local sink and SES.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import parseaddr
from functools import lru_cache
from typing import Any, Protocol

from chalicelib.core.errors import ConfigError, MailPermanentFailure, MailTemporaryFailure
from chalicelib.core.settings import MailSettings


class Transport(Protocol):
    """Sends one message; returns the provider's id for it (or our Message-ID)."""

    name: str

    def send(self, message: EmailMessage) -> str: ...


class SmtpTransport:
    """SMTP with STARTTLS, implicit TLS or (loopback sinks only) plain text."""

    name = "smtp"

    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        # Our HELO name is the sender's domain: without one, smtplib asks DNS for this
        # machine's FQDN on every connection, which can take seconds.
        helo = parseaddr(s.sender)[1].rpartition("@")[2] or "localhost"
        if s.smtp_security == "ssl":
            return smtplib.SMTP_SSL(
                s.smtp_host,
                s.smtp_port,
                local_hostname=helo,
                timeout=s.timeout,
                context=ssl.create_default_context(),
            )
        client = smtplib.SMTP(s.smtp_host, s.smtp_port, local_hostname=helo, timeout=s.timeout)
        if s.smtp_security == "starttls":
            client.starttls(context=ssl.create_default_context())
        return client

    def send(self, message: EmailMessage) -> str:
        try:
            with self._connect() as client:
                if self.settings.smtp_username:
                    client.login(self.settings.smtp_username, self.settings.smtp_password or "")
                client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise _by_code(min(codes) if codes else 550, "recipient refused") from exc
        except smtplib.SMTPResponseException as exc:
            raise _by_code(
                exc.smtp_code,
                exc.smtp_error.decode("utf-8", "replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error),
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise MailPermanentFailure(f"The SMTP server lacks a feature we need: {exc}") from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise MailTemporaryFailure(
                f"Cannot reach the SMTP server {self.settings.smtp_host}:"
                f"{self.settings.smtp_port} ({type(exc).__name__}: {exc})."
            ) from exc
        return str(message["Message-ID"])


def _by_code(code: int, detail: str) -> MailTemporaryFailure | MailPermanentFailure:
    """SMTP reply classes: 4xx try again later, 5xx never."""
    text = f"SMTP server answered {code}: {detail}"[:300]
    return MailTemporaryFailure(text) if 400 <= code < 500 else MailPermanentFailure(text)


#: SES error codes after which the same mail can never be sent as it is.
_SES_PERMANENT = {
    "MessageRejected",
    "BadRequestException",
    "MailFromDomainNotVerifiedException",
    "NotFoundException",
    "AccountSuspendedException",
    "AccessDeniedException",
}


class SesTransport:
    """Amazon SES v2, raw MIME (so our headers, List-Unsubscribe included, go as they are)."""

    name = "ses"

    def __init__(self, settings: MailSettings, default_region: str) -> None:
        self.settings = settings
        self.client = _ses_client(
            settings.ses_region or default_region, settings.ses_endpoint, settings.timeout
        )

    def send(self, message: EmailMessage) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs: dict[str, Any] = {"Content": {"Raw": {"Data": message.as_bytes()}}}
        if self.settings.ses_configuration_set:
            kwargs["ConfigurationSetName"] = self.settings.ses_configuration_set
        try:
            response = self.client.send_email(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            detail = (
                f"SES refused the mail ({code}: {exc.response.get('Error', {}).get('Message', '')})"
            )
            if code in _SES_PERMANENT:
                raise MailPermanentFailure(detail[:300]) from exc
            raise MailTemporaryFailure(detail[:300]) from exc
        except BotoCoreError as exc:
            raise MailTemporaryFailure(f"Cannot reach SES ({type(exc).__name__}).") from exc
        return str(response["MessageId"])


@lru_cache(maxsize=4)
def _ses_client(region: str, endpoint: str | None, timeout: float) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"total_max_attempts": 2, "mode": "standard"},
    )
    return boto3.session.Session().client(
        "sesv2", region_name=region, endpoint_url=endpoint, config=config
    )


class NoTransport:
    """``MAIL_TRANSPORT=none``: we send nothing (Act! emarketing mails the links)."""

    name = "none"

    def send(self, message: EmailMessage) -> str:
        raise ConfigError("MAIL_TRANSPORT is none: OptinProof sends no mail.")


def get_transport(settings: MailSettings, default_region: str) -> Transport:
    """The configured transport."""
    if settings.transport == "smtp":
        return SmtpTransport(settings)
    if settings.transport == "ses":
        return SesTransport(settings, default_region)
    return NoTransport()
