"""Webhook deliveries signed as Standard Webhooks, as OpenAI signs them (sans-IO).

A delivery is three headers and a body: ``webhook-id``, ``webhook-timestamp`` (Unix seconds)
and ``webhook-signature`` (space-separated ``v1,<base64>`` entries; several while the sender
rotates keys). Each entry is ``base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))``, where the
key is the base64 part of a ``whsec_<base64>`` secret (a secret without the prefix is used as
its UTF-8 bytes, as the ``openai`` package does). This is the scheme
``openai.OpenAI(webhook_secret=...).webhooks.verify_signature`` checks; the tests hold the two
to each other in both directions.

Invariants:

* ``WebhookVerifier.verify`` accepts a delivery only if its timestamp is within ``tolerance``
  seconds of ``now`` in either direction (so a captured delivery cannot be replayed later)
  and one ``v1`` entry equals the HMAC under one of our secrets, compared in constant time.
  Anything else raises a ``WebhookError`` subclass that says whose fault it is.
* Key material is never in a ``repr``, a ``str`` or an exception message; the only way to
  see a secret's text is :meth:`WebhookSecret.reveal`, for handing it to another library.
* ``DeliveryLog`` lets each ``webhook-id`` be acted on once: a redelivery (same id, fresh
  timestamp and signature) is recognized for ``ttl`` seconds, which is never less than twice
  the verifier's tolerance (the whole window in which one signed timestamp verifies). It is
  bounded: when full it forgets the oldest id first, and counts it.

No clock is read here: every call that needs the time takes ``now``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Final

import attrs

from ._errors import ConfigError, RtbusError

__all__ = [
    "DeliveryLog",
    "DeliveryLogStatistics",
    "MalformedWebhookError",
    "VerifiedDelivery",
    "WebhookError",
    "WebhookSecret",
    "WebhookSignatureError",
    "WebhookTimestampError",
    "WebhookVerifier",
    "sign_webhook",
]

WEBHOOK_ID: Final = "webhook-id"
WEBHOOK_TIMESTAMP: Final = "webhook-timestamp"
WEBHOOK_SIGNATURE: Final = "webhook-signature"
SECRET_ENV: Final = "OPENAI_WEBHOOK_SECRET"

_PREFIX: Final = "whsec_"
_TIMESTAMP: Final = re.compile(r"[0-9]{1,12}")
# A header with more entries than this is not key rotation but an attempt to make us hash.
_MAX_SIGNATURES: Final = 16

HeaderSource = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]


class WebhookError(RtbusError):
    """A webhook delivery was refused; the subclass says why. ``webhook_id`` when known."""

    def __init__(self, message: str, webhook_id: str | None = None) -> None:
        super().__init__(message, webhook_id)
        self.message = message
        self.webhook_id = webhook_id

    def __str__(self) -> str:
        return self.message


class MalformedWebhookError(WebhookError, ValueError):
    """The sender's fault (or a proxy's): a header is missing or cannot be read."""


class WebhookSignatureError(WebhookError):
    """No signature matches: the delivery was not signed with our secret (forged, tampered
    with on the way, or our secret is not the one the endpoint was given)."""


class WebhookTimestampError(WebhookError):
    """The timestamp is outside the tolerance: a replay of an old delivery, or a clock that is
    wrong on one side. ``skew`` is ``now - timestamp`` in seconds (negative: from the future)."""

    def __init__(self, message: str, webhook_id: str | None, skew: float) -> None:
        super().__init__(message, webhook_id)
        self.skew = skew


def _hidden(_: bytes) -> str:
    return "'***'"


@attrs.frozen
class WebhookSecret:
    """The key a webhook endpoint shares with its sender. Its ``repr`` shows no key."""

    key: bytes = attrs.field(repr=_hidden)

    def __attrs_post_init__(self) -> None:
        if not self.key:
            raise ConfigError("webhook_secret", "must not be empty")

    @classmethod
    def parse(cls, text: str) -> WebhookSecret:
        """``whsec_<base64>`` (the form OpenAI shows), or any other text used as its bytes."""
        if not text.startswith(_PREFIX):
            return cls(text.encode())
        try:
            return cls(base64.b64decode(text[len(_PREFIX) :], validate=True))
        except binascii.Error:
            # Never quote the text: it is the secret.
            raise ConfigError("webhook_secret", "the part after whsec_ is not base64") from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookSecret | None:
        """The secret ``OPENAI_WEBHOOK_SECRET`` holds, or ``None`` when it is unset or empty."""
        text = (os.environ if environ is None else environ).get(SECRET_ENV, "")
        return cls.parse(text) if text else None

    @classmethod
    def generate(cls) -> WebhookSecret:
        """A fresh random 32-byte secret (for a simulator or a test)."""
        return cls(secrets.token_bytes(32))

    def reveal(self) -> str:
        """The ``whsec_`` text of this secret, to hand to another library. Never log it."""
        return _PREFIX + base64.b64encode(self.key).decode()

    def signature(self, webhook_id: str, timestamp: int | str, body: bytes) -> bytes:
        """The raw HMAC-SHA256 of ``{id}.{timestamp}.{body}``."""
        signed = f"{webhook_id}.{timestamp}.".encode() + body
        return hmac.new(self.key, signed, hashlib.sha256).digest()


def sign_webhook(
    signers: WebhookSecret | Iterable[WebhookSecret], webhook_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three headers of a delivery of ``body``, signed by each of ``signers`` in turn."""
    keys = [signers] if isinstance(signers, WebhookSecret) else list(signers)
    entries = (
        "v1," + base64.b64encode(k.signature(webhook_id, timestamp, body)).decode() for k in keys
    )
    return {
        WEBHOOK_ID: webhook_id,
        WEBHOOK_TIMESTAMP: str(timestamp),
        WEBHOOK_SIGNATURE: " ".join(entries),
    }


@attrs.frozen
class VerifiedDelivery:
    """A delivery whose signature and timestamp checked out."""

    webhook_id: str
    timestamp: int
    body: bytes = attrs.field(repr=lambda body: f"<{len(body)} bytes>")


def _secrets_tuple(value: WebhookSecret | Iterable[WebhookSecret]) -> tuple[WebhookSecret, ...]:
    return (value,) if isinstance(value, WebhookSecret) else tuple(value)


def _nonempty(
    instance: object,
    attribute: attrs.Attribute[tuple[WebhookSecret, ...]],
    value: tuple[WebhookSecret, ...],
) -> None:
    if not value:
        raise ConfigError("webhook_secret", "give at least one secret")


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ConfigError(attribute.name, f"must be positive, got {value!r}")


@attrs.frozen
class WebhookVerifier:
    """Checks deliveries against our secrets (several while we rotate ours).

    ``tolerance`` is how far, in seconds, a delivery's timestamp may be from ``now`` either
    way; 300 is the ``openai`` package's default.
    """

    secrets: tuple[WebhookSecret, ...] = attrs.field(converter=_secrets_tuple, validator=_nonempty)
    tolerance: float = attrs.field(default=300.0, validator=_positive)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, tolerance: float = 300.0
    ) -> WebhookVerifier:
        """A verifier for the secret in ``OPENAI_WEBHOOK_SECRET`` (a ``ConfigError`` if unset)."""
        secret = WebhookSecret.from_env(environ)
        if secret is None:
            raise ConfigError("webhook_secret", f"is required (set {SECRET_ENV})")
        return cls(secret, tolerance)

    def verify(self, headers: HeaderSource, body: bytes, *, now: float) -> VerifiedDelivery:
        """The delivery if ``headers`` sign ``body`` with one of our secrets, near ``now``."""
        found = _lower_case(headers)
        webhook_id = _required(found, WEBHOOK_ID, None)
        raw_timestamp = _required(found, WEBHOOK_TIMESTAMP, webhook_id)
        timestamp = _timestamp(raw_timestamp, webhook_id)
        self._check_window(timestamp, webhook_id, now)
        offered = _signatures(_required(found, WEBHOOK_SIGNATURE, webhook_id), webhook_id)
        if not self._signed_by_us(offered, webhook_id, raw_timestamp, body):
            raise WebhookSignatureError(
                "no webhook-signature entry matches our webhook secret "
                "(forged or altered delivery, or the wrong secret configured)",
                webhook_id,
            )
        return VerifiedDelivery(webhook_id, timestamp, body)

    def delivery_log(self, *, ttl: float | None = None, max_ids: int = 100_000) -> DeliveryLog:
        """A ``DeliveryLog`` whose ``ttl`` covers this verifier's window (at least twice the
        tolerance; by default 72 hours, the span over which OpenAI redelivers)."""
        chosen = 72 * 3600.0 if ttl is None else ttl
        if chosen < 2 * self.tolerance:
            raise ConfigError("ttl", f"must be at least twice the tolerance ({self.tolerance}s)")
        return DeliveryLog(ttl=chosen, max_ids=max_ids)

    def _check_window(self, timestamp: int, webhook_id: str, now: float) -> None:
        skew = now - timestamp
        if abs(skew) > self.tolerance:
            side = "old" if skew > 0 else "far in the future"
            message = (
                f"webhook-timestamp is {abs(skew):.0f}s {side} (tolerance {self.tolerance:.0f}s):"
                " a replayed delivery, or a clock that is wrong on one side"
            )
            raise WebhookTimestampError(message, webhook_id, skew)

    def _signed_by_us(
        self, offered: list[bytes], webhook_id: str, timestamp: str, body: bytes
    ) -> bool:
        expected = [s.signature(webhook_id, timestamp, body) for s in self.secrets]
        # Every pair is compared, so the time taken does not say which entry came close.
        matches = [hmac.compare_digest(e, o) for e in expected for o in offered]
        return any(matches)


def _lower_case(headers: HeaderSource) -> dict[str, str]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found: dict[str, str] = {}
    for name, value in pairs:
        key = name.decode("latin-1") if isinstance(name, bytes) else name
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        found.setdefault(key.lower(), text)
    return found


def _required(found: Mapping[str, str], name: str, webhook_id: str | None) -> str:
    value = found.get(name, "").strip()
    if not value:
        raise MalformedWebhookError(f"the {name} header is missing or empty", webhook_id)
    return value


def _timestamp(text: str, webhook_id: str) -> int:
    if not _TIMESTAMP.fullmatch(text):
        raise MalformedWebhookError("webhook-timestamp is not Unix seconds", webhook_id)
    return int(text)


def _signatures(header: str, webhook_id: str) -> list[bytes]:
    entries = header.split()
    if len(entries) > _MAX_SIGNATURES:
        raise MalformedWebhookError(
            f"webhook-signature has {len(entries)} entries (at most {_MAX_SIGNATURES})", webhook_id
        )
    # Other versions (v1a, asymmetric) are for other verifiers: skipped, as the standard says.
    decoded = [_decode(entry[3:]) for entry in entries if entry.startswith("v1,")]
    usable = [d for d in decoded if d is not None]
    if not usable:
        raise MalformedWebhookError("webhook-signature has no readable v1 entry", webhook_id)
    return usable


def _decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        return None


@attrs.frozen
class DeliveryLogStatistics:
    """A snapshot of a ``DeliveryLog``: ids held, redeliveries recognized, ids forgotten early."""

    ids: int
    duplicates: int
    evicted: int


class DeliveryLog:
    """Which webhook ids were already acted on, so that each is acted on once.

    ``claim(id, now)`` is true the first time and false for every redelivery within ``ttl``.
    An action that fails after its claim calls ``release(id)`` so that the next redelivery may
    try again. Memory is bounded by ``max_ids``; past it the oldest claim is forgotten first.
    """

    def __init__(self, *, ttl: float, max_ids: int = 100_000) -> None:
        if not ttl > 0:
            raise ConfigError("ttl", f"must be positive, got {ttl!r}")
        if max_ids < 1:
            raise ConfigError("max_ids", f"must be at least 1, got {max_ids!r}")
        self.ttl = ttl
        self.max_ids = max_ids
        # id -> when its claim lapses; insertion order is claim order, so oldest first.
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self._duplicates = 0
        self._evicted = 0

    def __repr__(self) -> str:
        return f"<DeliveryLog {len(self._expiry)} ids, ttl={self.ttl:.0f}s>"

    def claim(self, webhook_id: str, now: float) -> bool:
        """Whether ``webhook_id`` is new (and now claimed); false for a redelivery."""
        self._forget_lapsed(now)
        if webhook_id in self._expiry:
            self._duplicates += 1
            return False
        if len(self._expiry) >= self.max_ids:
            self._expiry.popitem(last=False)
            self._evicted += 1
        self._expiry[webhook_id] = now + self.ttl
        return True

    def release(self, webhook_id: str) -> None:
        """Forget a claim whose action failed, so a redelivery is acted on."""
        self._expiry.pop(webhook_id, None)

    def statistics(self) -> DeliveryLogStatistics:
        """A frozen snapshot of the counters."""
        return DeliveryLogStatistics(len(self._expiry), self._duplicates, self._evicted)

    def _forget_lapsed(self, now: float) -> None:
        while self._expiry:
            oldest, lapses = next(iter(self._expiry.items()))
            if lapses > now:
                return
            del self._expiry[oldest]
