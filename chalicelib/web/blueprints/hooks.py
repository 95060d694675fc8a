"""Webhooks we receive: Act! change notifications (hints, reconciled later) and SES
bounces and complaints through SNS (signature, topic and freshness checked first).
"""

from __future__ import annotations

import hmac
from typing import Any

from chalice import Blueprint, Response

from chalicelib.core.errors import OptinProofError
from chalicelib.core.logs import log
from chalicelib.core.services import get_catalogue, get_ledger, get_settings, get_sns_verifier
from chalicelib.web import forms, http

# Cold start: the routes are declared at import time, and each handler imports what
# it uses (the Act! reconciler, the SNS checks, the bounce rules) on its first call.

bp = Blueprint(__name__)


@bp.route(
    "/hooks/act/{secret}/{trigger}",
    methods=["POST"],
    content_types=["application/json", "text/plain", forms.FORM_TYPE],
)
def act_webhook(secret: str, trigger: str) -> Response:
    """An Act! webhook delivery: checked, queued as hints, answered at once."""
    from chalicelib.act import reconcile

    act = get_settings().act
    path_secret = (act.webhook_path_secret or "") if act else ""
    if (
        not act
        or not act.webhook_token
        or not path_secret
        or not hmac.compare_digest(secret.encode(), path_secret.encode())
    ):
        return http.json_answer(
            bp.current_request, {"error": "not_found", "message": "Nothing here."}, 404
        )
    if not reconcile.authorised(bp.current_request.headers.get("authorization"), act.webhook_token):
        log("act_webhook_refused", level="warning", reason="token")
        return http.json_answer(
            bp.current_request, {"error": "unauthorised", "message": "Wrong or missing token."}, 401
        )
    try:
        records = reconcile.parse_delivery(bp.current_request.raw_body)
        queued = reconcile.queue_hints(get_ledger(), records, trigger)
    except OptinProofError as exc:
        return http.json_error(bp.current_request, exc, None)
    log("act_webhook", trigger=trigger, records=queued)
    return http.json_answer(bp.current_request, {"queued": queued})


@bp.route("/hooks/ses/{secret}", methods=["POST"], content_types=["text/plain", "application/json"])
def ses_notification(secret: str) -> Response:
    """An SNS message about our mails: signature, topic and freshness checked first."""
    from chalicelib.mail import sns

    settings = get_settings()
    if not settings.ses_topics or not hmac.compare_digest(
        secret.encode(), (settings.ses_path_secret or "").encode()
    ):
        return http.json_answer(
            bp.current_request, {"error": "not_found", "message": "Nothing here."}, 404
        )
    try:
        message = sns.parse(bp.current_request.raw_body or b"")
    except sns.SnsRejected as exc:
        return http.json_answer(
            bp.current_request, {"error": "bad_request", "message": str(exc)}, 400
        )
    try:
        get_sns_verifier().verify(message)
        return http.json_answer(bp.current_request, _sns_message(message))
    except sns.SnsUnavailable as exc:  # a certificate we could not fetch: SNS retries
        log("sns_deferred", level="warning", reason=str(exc)[:300])
        return http.json_answer(
            bp.current_request, {"error": "unavailable", "message": str(exc)}, 503
        )
    except sns.SnsRejected as exc:
        log("sns_refused", level="warning", reason=str(exc)[:300])
        return http.json_answer(
            bp.current_request, {"error": "forbidden", "message": str(exc)}, 403
        )
    except OptinProofError as exc:  # a verified message that is no SES notice: 400
        return http.json_error(bp.current_request, exc, None)


def _sns_message(message: dict[str, Any]) -> dict[str, Any]:
    from chalicelib.mail import bounces, sns

    if message["Type"] == "SubscriptionConfirmation":
        sns.confirm_subscription(message, get_sns_verifier().fetch)
        log("sns_subscribed", topic=message["TopicArn"])
        return {"subscribed": message["TopicArn"]}
    if message["Type"] == "UnsubscribeConfirmation":
        log("sns_unsubscribed", level="warning", topic=message["TopicArn"])
        return {"unsubscribed": message["TopicArn"]}
    notice = bounces.parse(message["Message"])
    outcome = bounces.apply(
        get_ledger(), get_settings(), get_catalogue(), notice, message["MessageId"]
    )
    return {
        "kind": notice.kind,
        "recorded": outcome.recorded,
        "unknown": outcome.unknown,
        "duplicate": outcome.duplicate,
    }
