"""The histograms, and the rate-limit gauges: observed by one worker subscribed to the bus.

A latency is measured between envelopes, not by sessions: the session hot path never
touches Prometheus. The service runs ``Observer.observe`` as a supervised worker whose
subscription drops its oldest envelopes when it falls behind (so it never stalls a session;
its drops show in ``rtbus_bus_dropped_total``). It does not take ``error`` envelopes: a
subscriber to a session's errors would count as someone handling them (the seed's rule).

Every duration is the difference of two envelopes' ``received_at`` (the frames' arrival), so
it does not depend on how far behind the worker is; only frame-to-subscriber is measured
against the worker's clock, because that lag is what it measures.

* ``rtbus_frame_to_subscriber_seconds``: now - ``received_at``, for every server event.
* ``rtbus_response_duration_seconds{status}``: ``response.created`` -> ``response.done``.
* ``rtbus_time_to_first_audio_seconds``: the end of the user's turn
  (``input_audio_buffer.speech_stopped``, else ``committed``, else ``response.created``) ->
  the next ``response.output_audio.delta``.
* ``rtbus_session_resume_wait_seconds``: from a connection being lost to the conversation
  restored into the next one (``rtbus.session.resumed``): how long the caller waited.
* ``rtbus_session_recycle_pause_seconds``: the pause at a recycle's switch
  (``rtbus.session.recycled``), from the old connection's close to the new one taking events.
* ``rtbus_rate_limit_remaining{name}``, ``rtbus_rate_limit_limit{name}``: the last
  ``rate_limits.updated`` of any session.

What is pending (a response's start, a turn's end) is kept per session, forgotten when the
session reconnects or ends, and capped, so a lost ``response.done`` cannot grow it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, TypeVar

from prometheus_client import CollectorRegistry, Gauge, Histogram

from rtbus.bus import Envelope
from rtbus.protocol import SERVER_EVENT_TYPES
from rtbus.session import (
    SessionClosed,
    SessionFailed,
    SessionReconnected,
    SessionRecycled,
    SessionResumed,
)

__all__ = ["OBSERVED_TYPES", "Observer"]

_ENDS: Final = frozenset({SessionReconnected.type, SessionFailed.type, SessionClosed.type})
_RESUMES: Final = frozenset({SessionResumed.type, SessionRecycled.type})
OBSERVED_TYPES: Final = tuple(sorted((SERVER_EVENT_TYPES - {"error"}) | _ENDS | _RESUMES))
"""What the metrics worker subscribes to: every server event but ``error``, the lifecycle
events after which a session's pending measurements are void, and the resumes it times."""

K = TypeVar("K")
_STATUSES: Final = frozenset({"completed", "cancelled", "failed", "incomplete"})
_RATE_LIMITS: Final = frozenset({"requests", "tokens"})
# Responses and turns pending at once, over all sessions, before the oldest is forgotten.
_PENDING_LIMIT: Final = 10_000

_FRAME_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_RESPONSE_BUCKETS: Final = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
_AUDIO_BUCKETS: Final = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
_RESUME_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Observer:
    """The histograms and rate-limit gauges, registered on ``registry``, fed envelopes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.frame_to_subscriber = Histogram(
            "rtbus_frame_to_subscriber_seconds",
            "From a frame's arrival to the metrics subscriber taking its event.",
            buckets=_FRAME_BUCKETS,
            registry=registry,
        )
        self.response_duration = Histogram(
            "rtbus_response_duration_seconds",
            "From response.created to response.done, by final status.",
            ["status"],
            buckets=_RESPONSE_BUCKETS,
            registry=registry,
        )
        self.time_to_first_audio = Histogram(
            "rtbus_time_to_first_audio_seconds",
            "From the end of the user's turn to the first audio of the answer.",
            buckets=_AUDIO_BUCKETS,
            registry=registry,
        )
        self.resume_wait = Histogram(
            "rtbus_session_resume_wait_seconds",
            "From a lost connection to the conversation restored into the next one.",
            buckets=_RESUME_BUCKETS,
            registry=registry,
        )
        self.recycle_pause = Histogram(
            "rtbus_session_recycle_pause_seconds",
            "The pause at a recycle's switch to the prepared upstream session.",
            buckets=_FRAME_BUCKETS,
            registry=registry,
        )
        self.rate_limit_remaining = Gauge(
            "rtbus_rate_limit_remaining",
            "What the last rate_limits.updated left, by limit.",
            ["name"],
            registry=registry,
        )
        self.rate_limit_limit = Gauge(
            "rtbus_rate_limit_limit",
            "The limit the last rate_limits.updated gave, by limit.",
            ["name"],
            registry=registry,
        )
        self._responses: dict[tuple[str, str], float] = {}
        self._turns: dict[str, float] = {}

    def observe(self, envelope: Envelope, now: float) -> None:
        """Take one envelope the worker received at ``now``; never raises for odd events."""
        if envelope.type in SERVER_EVENT_TYPES:
            self.frame_to_subscriber.observe(max(0.0, now - envelope.received_at))
        react = _REACTIONS.get(envelope.type)
        if react is not None:
            react(self, envelope)

    # -- reactions (a table, see _REACTIONS) -----------------------------------------------

    def _turn_ended(self, envelope: Envelope) -> None:
        # The earliest sign counts: speech_stopped comes before committed and the response.
        if envelope.session_id not in self._turns:
            _put(self._turns, envelope.session_id, envelope.received_at)

    def _response_created(self, envelope: Envelope) -> None:
        self._turn_ended(envelope)
        key = (envelope.session_id, _response_field(envelope, "id"))
        _put(self._responses, key, envelope.received_at)

    def _audio(self, envelope: Envelope) -> None:
        started = self._turns.pop(envelope.session_id, None)
        if started is not None:
            self.time_to_first_audio.observe(max(0.0, envelope.received_at - started))

    def _response_done(self, envelope: Envelope) -> None:
        self._turns.pop(envelope.session_id, None)  # no audio came: the turn is over
        key = (envelope.session_id, _response_field(envelope, "id"))
        created = self._responses.pop(key, None)
        if created is None:
            return
        status = _response_field(envelope, "status")
        label = status if status in _STATUSES else "other"
        self.response_duration.labels(label).observe(max(0.0, envelope.received_at - created))

    def _rate_limits(self, envelope: Envelope) -> None:
        for limit in getattr(envelope.event, "rate_limits", None) or ():
            name = getattr(limit, "name", None)
            if name not in _RATE_LIMITS:
                continue
            _set(self.rate_limit_remaining, name, getattr(limit, "remaining", None))
            _set(self.rate_limit_limit, name, getattr(limit, "limit", None))

    def _resumed(self, envelope: Envelope) -> None:
        waited = getattr(envelope.event, "waited_seconds", None)
        if isinstance(waited, float | int):
            self.resume_wait.observe(max(0.0, waited))

    def _recycled(self, envelope: Envelope) -> None:
        paused = getattr(envelope.event, "switch_seconds", None)
        if isinstance(paused, float | int):
            self.recycle_pause.observe(max(0.0, paused))

    def _session_ended(self, envelope: Envelope) -> None:
        session = envelope.session_id
        self._turns.pop(session, None)
        for key in [key for key in self._responses if key[0] == session]:
            del self._responses[key]


def _response_field(envelope: Envelope, field: str) -> str:
    # Typed events have ``response``; an event that did not decode as one reads as "".
    response = getattr(envelope.event, "response", None)
    return str(getattr(response, field, None) or "")


def _put(pending: dict[K, float], key: K, at: float) -> None:
    if key not in pending and len(pending) >= _PENDING_LIMIT:
        del pending[next(iter(pending))]  # the oldest: dicts keep insertion order
    pending[key] = at


def _set(gauge: Gauge, name: str, value: object) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        gauge.labels(name).set(value)


_Reaction = Callable[[Observer, Envelope], None]
_REACTIONS: Final[Mapping[str, _Reaction]] = {
    "input_audio_buffer.speech_stopped": Observer._turn_ended,
    "input_audio_buffer.committed": Observer._turn_ended,
    "response.created": Observer._response_created,
    "response.output_audio.delta": Observer._audio,
    "response.done": Observer._response_done,
    "rate_limits.updated": Observer._rate_limits,
    **dict.fromkeys(_ENDS, Observer._session_ended),
    SessionResumed.type: Observer._resumed,
    SessionRecycled.type: Observer._recycled,
}
