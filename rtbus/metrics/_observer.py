"""The histograms and the rate-limit gauges, measured inline: the bus's tap.

The bus calls ``published`` for every envelope as it is stamped and ``taken`` for every one a
subscriber takes for good (``rtbus.bus.BusTap``): a dict lookup, and for the few events that
end a measurement a bucket in a cheap histogram (``_histogram``), a few hundred nanoseconds.
No subscriber wakes per event to count, so metrics never lag, never drop, and are not a
subscriber to anyone's ``error`` events (which would count as handling them).

Every duration is the difference of two envelopes' ``received_at`` (the frames' arrival);
only frame-to-subscriber is measured against the clock, when a subscriber takes the event.

* ``rtbus_frame_to_subscriber_seconds``: now - ``received_at``, for every server event each
  subscriber takes (one observation per delivery).
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

from collections.abc import Callable, Iterator, Mapping
from typing import Final, TypeVar

from prometheus_client.core import GaugeMetricFamily, Metric

from rtbus.bus import Envelope
from rtbus.protocol import SERVER_EVENT_TYPES
from rtbus.session import (
    SessionClosed,
    SessionFailed,
    SessionReconnected,
    SessionRecycled,
    SessionResumed,
)

from ._histogram import Histogram, LabelledHistogram, family

__all__ = ["Observer"]

_ENDS: Final = frozenset({SessionReconnected.type, SessionFailed.type, SessionClosed.type})

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
    """The histograms and rate-limit gauges, fed envelopes inline, exported at scrape time
    (a prometheus_client collector: register it on the service's registry)."""

    def __init__(self) -> None:
        self.frame_to_subscriber = Histogram(_FRAME_BUCKETS)
        self.response_duration = LabelledHistogram(_RESPONSE_BUCKETS)
        self.time_to_first_audio = Histogram(_AUDIO_BUCKETS)
        self.resume_wait = Histogram(_RESUME_BUCKETS)
        self.recycle_pause = Histogram(_FRAME_BUCKETS)
        self.rate_limit_remaining: dict[str, float] = {}
        self.rate_limit_limit: dict[str, float] = {}
        self._responses: dict[tuple[str, str], float] = {}
        self._turns: dict[str, float] = {}

    # -- the bus's tap (rtbus.bus.BusTap) ---------------------------------------------------

    def published(self, envelope: Envelope) -> None:
        """One envelope, as it is published; never raises for odd events."""
        react = _REACTIONS.get(envelope.type)
        if react is not None:
            react(self, envelope)

    def taken(self, envelope: Envelope, now: float) -> None:
        """A subscriber took ``envelope`` at ``now``: frame to subscriber, for server events."""
        if envelope.raw is not None or envelope.type in SERVER_EVENT_TYPES:
            self.frame_to_subscriber.observe(max(0.0, now - envelope.received_at))

    def observe(self, envelope: Envelope, now: float) -> None:
        """Both at once: published, and taken at ``now``."""
        self.taken(envelope, now)
        self.published(envelope)

    # -- the collector ----------------------------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        for name, (doc, attribute, label) in _HISTOGRAMS.items():
            yield family(name, doc, getattr(self, attribute), label)
        for name, (doc, attribute) in _GAUGES.items():
            gauge = GaugeMetricFamily(name, doc, labels=["name"])
            for limit, value in sorted(getattr(self, attribute).items()):
                gauge.add_metric([limit], value)
            yield gauge

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


def _set(gauge: dict[str, float], name: str, value: object) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        gauge[name] = float(value)


# name -> (help, the Observer attribute holding it, its label if any)
_HISTOGRAMS: Final[Mapping[str, tuple[str, str, str]]] = {
    "rtbus_frame_to_subscriber_seconds": (
        "From a frame's arrival to a subscriber taking its event, per delivery.",
        "frame_to_subscriber",
        "",
    ),
    "rtbus_response_duration_seconds": (
        "From response.created to response.done, by final status.",
        "response_duration",
        "status",
    ),
    "rtbus_time_to_first_audio_seconds": (
        "From the end of the user's turn to the first audio of the answer.",
        "time_to_first_audio",
        "",
    ),
    "rtbus_session_resume_wait_seconds": (
        "From a lost connection to the conversation restored into the next one.",
        "resume_wait",
        "",
    ),
    "rtbus_session_recycle_pause_seconds": (
        "The pause at a recycle's switch to the prepared upstream session.",
        "recycle_pause",
        "",
    ),
}
_GAUGES: Final[Mapping[str, tuple[str, str]]] = {
    "rtbus_rate_limit_remaining": (
        "What the last rate_limits.updated left, by limit.",
        "rate_limit_remaining",
    ),
    "rtbus_rate_limit_limit": (
        "The limit the last rate_limits.updated gave, by limit.",
        "rate_limit_limit",
    ),
}

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
