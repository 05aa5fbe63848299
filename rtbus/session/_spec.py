"""What a session is: its model, the config it applies, and how it behaves when things break."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from rtbus.protocol import (
    ConfigError,
    ProtocolError,
    RealtimeConfig,
    RealtimeTarget,
    TargetKind,
    client_event_from_dict,
    is_azure,
)
from rtbus.transport import ConnectOptions, ReconnectPolicy

from ._record import RecordBound, Summarize

__all__ = ["SessionSpec"]

# The upstream closes a session at 60 minutes (Azure: 30); a recycle replaces it before that.
_AZURE_RECYCLE_AFTER = 25 * 60.0


def _seconds(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not (value > 0 and not math.isnan(value)):
        raise ConfigError(attribute.name, f"must be a positive number of seconds, got {value!r}")


def _session_mapping(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError("session", f"must be a mapping (the session.update body), got {value!r}")


def _check_session(session: Mapping[str, Any], kind: str) -> None:
    """Check the session config now, so a bad one fails ``open_session``, not a reconnect.

    Raises ``ConfigError`` naming the key (``session.audio.output.voice``): the protocol checks
    it as strictly as the upstream would, so a typo never costs a connection.
    """
    typed = _with_type(session, kind)
    if typed["type"] != kind:
        # The upstream refuses an update of the other kind; say so before connecting.
        raise ConfigError(
            "session.type", f"must be {kind!r} for this target, got {typed['type']!r}"
        )
    try:
        client_event_from_dict({"type": "session.update", "session": typed})
    except ProtocolError as exc:
        # The event's path is the key's: both start at ``session``.
        raise ConfigError(exc.path or "session", exc.reason) from None


def _with_type(session: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    # The GA API wants the session's kind: its target's (a conversation unless it is a
    # transcription session).
    return session if "type" in session else {"type": kind, **session}


@attrs.frozen(kw_only=True)
class SessionSpec:
    """How to run one Realtime session.

    * ``session`` -- the ``session`` object of the ``session.update`` sent on every connect
      (``{"instructions": ..., "audio": {...}, "tools": [...]}``); its ``type`` is added when
      missing (``transcription`` for a transcription target, else ``realtime``). Checked when
      the spec is made, against the target's kind too.
    * ``extra_headers`` and ``extra_query`` -- added to every connect (the reconnect policy's
      ``before_attempt`` hook may choose another target for a reconnect).
    * ``sequence_responses`` -- hold an in-band ``response.create`` while a response runs.
    * ``ready_timeout`` -- seconds for ``session.created`` and ``session.updated`` to arrive.
    * ``recycle_after`` -- replace the upstream session after this many seconds (before the
      upstream's 60-minute limit; on Azure, whose limit is 30 minutes, at most 25 minutes),
      at the first moment no response runs, or once ``recycle_grace`` passed. The next
      upstream session is opened and given the conversation first (make before break).
    * ``record`` -- how much of the conversation the session keeps to restore into a new
      upstream session (items and bytes of text); ``summarize`` folds each item the bound
      drops into one summary that a restore puts in their place.
    * ``resume`` -- restore the conversation into every upstream session after the first.
    * ``target`` -- what every connection attaches to (a call: ``RealtimeTarget.call(id)``;
      a transcription session: ``RealtimeTarget.transcription()``, whose transcription model
      is set in ``session``); ``None``, the default, is a transcription session when
      ``session`` says ``"type": "transcription"`` and a conversation with ``model`` otherwise
      (``connects_to`` says which).
    """

    model: str = attrs.field(default="gpt-realtime", validator=attrs.validators.min_len(1))
    session: Mapping[str, Any] = attrs.field(factory=dict, validator=_session_mapping)
    extra_headers: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=tuple)
    extra_query: Mapping[str, str] = attrs.field(factory=dict)
    reconnect: ReconnectPolicy = attrs.field(factory=ReconnectPolicy)
    connect: ConnectOptions = attrs.field(factory=ConnectOptions)
    send_queue_size: int = 256
    sequence_responses: bool = True
    ready_timeout: float = attrs.field(default=30.0, validator=_seconds)
    recycle_after: float | None = attrs.field(default=55 * 60.0, validator=_seconds)
    recycle_grace: float = attrs.field(default=60.0, validator=_seconds)
    record: RecordBound = attrs.field(factory=RecordBound)
    summarize: Summarize | None = attrs.field(default=None, eq=False)
    resume: bool = True
    target: RealtimeTarget | None = None

    def __attrs_post_init__(self) -> None:
        _check_session(self.session, self._kind)

    @property
    def connects_to(self) -> RealtimeTarget:
        """What every connection attaches to: ``target``; else a transcription session when
        the config's ``type`` says so; else a conversation with ``model``."""
        if self.target is not None:
            return self.target
        if self.session.get("type") == "transcription":
            return RealtimeTarget.transcription()
        return RealtimeTarget.model(self.model)

    @property
    def _kind(self) -> str:
        transcribing = self.connects_to.kind is TargetKind.TRANSCRIPTION
        return "transcription" if transcribing else "realtime"

    def recycle_after_for(self, upstream: RealtimeConfig) -> float | None:
        """``recycle_after``, within the upstream's own session limit."""
        if self.recycle_after is None or not is_azure(upstream):
            return self.recycle_after
        return min(self.recycle_after, _AZURE_RECYCLE_AFTER)

    def update_event(self, event_id: str) -> Mapping[str, Any]:
        """The ``session.update`` that applies this spec's config."""
        return {
            "type": "session.update",
            "event_id": event_id,
            "session": _with_type(self.session, self._kind),
        }
