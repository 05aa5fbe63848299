"""What to do with one webhook delivery, decided in one place (sans-IO).

``WebhookInbox.receive(headers, body, now=...)`` verifies, decodes and deduplicates a delivery
and returns a verdict an HTTP route only has to carry out:

* ``ActOnWebhook(event)`` -- a first delivery: act on it, answer 200. If acting fails, call
  ``release(verdict.webhook_id)`` so the sender's redelivery is acted on.
* ``WebhookRedelivery`` -- this ``webhook-id`` was already acted on: answer 200, do nothing.
* ``WebhookRefusal`` -- answer ``status`` (400, whatever the reason: as OpenAI's own examples
  answer a delivery that does not verify; a 401 would invite an auth challenge the sender
  cannot meet); ``error`` says why and whose fault it is, and holds no secret.

Invariants: a delivery is claimed only after it verified and decoded, so a refused one never
blocks a later good one with the same id; ``ActOnWebhook`` is returned at most once per id
within the delivery log's ``ttl``.
"""

from __future__ import annotations

from typing import Final

import attrs

from ._errors import ProtocolError
from ._webhook_events import WebhookEvent, decode_webhook_event
from ._webhooks import (
    DeliveryLog,
    HeaderSource,
    MalformedWebhookError,
    WebhookError,
    WebhookSignatureError,
    WebhookTimestampError,
    WebhookVerifier,
)

__all__ = ["ActOnWebhook", "WebhookRedelivery", "WebhookRefusal", "WebhookInbox", "WebhookVerdict"]

#: The HTTP status each refusal is answered with.
REFUSAL_STATUS: Final[dict[type[Exception], int]] = {
    MalformedWebhookError: 400,
    ProtocolError: 400,
    WebhookSignatureError: 400,
    WebhookTimestampError: 400,
}


@attrs.frozen
class ActOnWebhook:
    """A first delivery of ``event``: act on it and answer 200."""

    webhook_id: str
    event: WebhookEvent
    status: int = 200


@attrs.frozen
class WebhookRedelivery:
    """A delivery already acted on: answer 200 and do nothing."""

    webhook_id: str
    status: int = 200


@attrs.frozen
class WebhookRefusal:
    """A delivery to refuse with ``status``; ``error`` says why."""

    status: int
    error: WebhookError | ProtocolError


WebhookVerdict = ActOnWebhook | WebhookRedelivery | WebhookRefusal


class WebhookInbox:
    """One webhook endpoint's judgement: a verifier and the log of ids acted on."""

    def __init__(self, verifier: WebhookVerifier, log: DeliveryLog | None = None) -> None:
        self.verifier = verifier
        self.log = log or verifier.delivery_log()

    def __repr__(self) -> str:
        return f"<WebhookInbox {self.log!r}>"

    def receive(self, headers: HeaderSource, body: bytes, *, now: float) -> WebhookVerdict:
        """The verdict on one delivery received at ``now``."""
        try:
            delivery = self.verifier.verify(headers, body, now=now)
            event = decode_webhook_event(delivery.body)
        except (WebhookError, ProtocolError) as exc:
            return WebhookRefusal(REFUSAL_STATUS[type(exc)], exc)
        if not self.log.claim(delivery.webhook_id, now):
            return WebhookRedelivery(delivery.webhook_id)
        return ActOnWebhook(delivery.webhook_id, event)

    def release(self, webhook_id: str) -> None:
        """Acting on ``webhook_id`` failed: let its redelivery be acted on."""
        self.log.release(webhook_id)
