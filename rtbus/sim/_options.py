"""The simulator's options and statistics, as frozen values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict

import attrs

from rtbus.protocol import ConfigError

from ._faults import Fault

__all__ = ["SimOptionFields", "SimOptions", "SimStatistics"]


def _to_tuple(faults: Iterable[Fault]) -> tuple[Fault, ...]:
    return tuple(faults)


def _require(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError(key, problem)


@attrs.frozen(kw_only=True)
class SimOptions:
    """How a simulated server behaves.

    ``speed`` paces audio: 1.0 is real time, 10.0 ten times faster, ``None`` unpaced (as fast as
    the client reads; the load mode). ``response_audio_seconds`` and ``response_text`` are what
    every response says; ``audio_chunk_seconds`` is the audio per delta (0.1 s = 4,800 bytes of
    PCM16). ``response_text`` may name what the conversation holds: ``{items}`` becomes the
    number of items in it, ``{last_user_text}`` the newest user message's text (a resumed
    conversation answers differently from an empty one). ``input_transcript`` is what every user
    audio item "said" when the session turns input transcription on (name a tool in it to get
    function calls from audio). ``api_key`` set means handshakes must carry it. ``faults`` apply
    to every connection; ``fault_rate`` gives each connection that chance of one random fault,
    drawn from a ``random.Random(seed)`` (``seed`` also fixes every id the server makes).
    ``max_session_seconds`` expires sessions as the real service does at 60 minutes.

    The phone network (see ``rtbus.sim``): ``webhook_url`` is where ``realtime.call.incoming``
    webhooks go, signed with ``webhook_secret`` (``whsec_...``; ``None``: a fresh one, read it
    from ``SimServer.webhook_secret``); ``call_rate`` places that many calls a second on its own
    (0: only on demand); a call rings for ``ring_seconds`` before the caller gives up; the
    caller speaks ``caller_turns`` times, ``caller_pause_seconds`` apart, then hangs up.
    """

    api_key: str | None = attrs.field(default=None, repr=False)
    speed: float | None = 1.0
    response_audio_seconds: float = 2.0
    audio_chunk_seconds: float = 0.1
    response_text: str = "Hello! This is the rtbus simulator. How can I help you today?"
    input_transcript: str = "Hello there."
    voice: str = "marin"
    faults: tuple[Fault, ...] = attrs.field(default=(), converter=_to_tuple)
    fault_rate: float = 0.0
    seed: int | None = None
    max_session_seconds: float | None = None
    max_message_size: int = 16 * 1024 * 1024
    handshake_timeout: float = 10.0
    webhook_url: str | None = None
    webhook_secret: str | None = attrs.field(default=None, repr=False)
    call_rate: float = 0.0
    ring_seconds: float = 30.0
    caller_turns: int = 3
    caller_pause_seconds: float = 4.0

    def __attrs_post_init__(self) -> None:
        speed, expiry = self.speed, self.max_session_seconds
        _require(speed is None or speed > 0, "speed", "must be positive, or None for unpaced")
        _require(self.response_audio_seconds >= 0, "response_audio_seconds", "must be >= 0")
        _require(self.audio_chunk_seconds > 0, "audio_chunk_seconds", "must be positive")
        _require(0 <= self.fault_rate <= 1, "fault_rate", "must be between 0 and 1")
        _require(expiry is None or expiry > 0, "max_session_seconds", "must be positive or None")
        _require(self.max_message_size > 0, "max_message_size", "must be positive")
        _require(self.handshake_timeout > 0, "handshake_timeout", "must be positive")
        _require(self.call_rate >= 0, "call_rate", "must be >= 0")
        _require(self.ring_seconds > 0, "ring_seconds", "must be positive")
        _require(self.caller_turns >= 0, "caller_turns", "must be >= 0")
        _require(self.caller_pause_seconds >= 0, "caller_pause_seconds", "must be >= 0")


class SimOptionFields(TypedDict, total=False):
    """``SimOptions`` as keyword arguments (``serve_sim(host, port, speed=None)``)."""

    api_key: str | None
    speed: float | None
    response_audio_seconds: float
    audio_chunk_seconds: float
    response_text: str
    input_transcript: str
    voice: str
    faults: tuple[Fault, ...]
    fault_rate: float
    seed: int | None
    max_session_seconds: float | None
    max_message_size: int
    handshake_timeout: float
    webhook_url: str | None
    webhook_secret: str | None
    call_rate: float
    ring_seconds: float
    caller_turns: int
    caller_pause_seconds: float


@attrs.frozen
class SimStatistics:
    """A snapshot of a simulated server's counters (read at scrape time, never pushed).

    ``events_sent`` counts protocol events; ``bytes_sent`` also counts the frames faults
    inject (malformed, no type, oversized, error). ``connections_open`` includes
    connections still in their handshake.
    """

    connections_total: int
    connections_open: int
    handshakes_rejected: int
    frames_received: int
    events_sent: int
    bytes_sent: int
    faults_injected: int
