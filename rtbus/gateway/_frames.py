"""The bus gateway's server frames, version 1 (sans-IO): events, results, errors, batches.

What the service sends a client; ``_gateway_wire`` has what a client sends and the shared
codes. docs/gateway.md is the reference.

Invariants:

* An event frame is written with ``frame`` first and ``event`` last, and the event is spliced
  in as bytes: the upstream frame (``Envelope.raw``) reaches the client byte for byte, never
  decoded and re-encoded, and never copied here either. A frame is its parts (the header, the
  event, the closing brace), which the socket's write joins once with the rest of its
  message. Only events published without raw bytes (the ``rtbus.*`` lifecycle events) are
  encoded here.
* Because orjson escapes every ``"`` inside a string, the first ``,"event":`` in an event frame
  is the header's own; ``parse_server_frame`` slices the event out there without parsing it.
* A server message is one frame, or a batch of frames delimited by their byte sizes (what
  one read of a subscription took), so a burst costs one WebSocket message, not one each.
* Parsing raises nothing but ``WireError`` (``malformed_frame`` or ``not_json``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple, TypeAlias

import attrs
import orjson

from rtbus.bus import Envelope, event_json
from rtbus.protocol import ProtocolError

from ._wire import ErrorCode, ReqId, WireError

__all__ = [
    "Batch",
    "ErrorFrame",
    "EventFrame",
    "RefusedFrame",
    "ResultFrame",
    "ServerFrame",
    "encode_error",
    "encode_event",
    "encode_refused",
    "encode_result",
    "parse_server_frame",
    "parse_server_frames",
]

_EVENT_MARK: Final = b',"event":'
_EVENT_PREFIX: Final = b'{"frame":"event"'
_BATCH_PREFIX: Final = b'{"frame":"batch"'
_CLOSING_BRACE: Final = ord("}")


class EventFrame(NamedTuple):
    """One envelope of subscription ``sub``.

    ``received_at`` is the service's clock; ``age`` how long the envelope had been in the
    service when the frame was written (so a client can place it on its own clock); ``lag``
    how many envelopes the server-side subscription dropped just before this one; ``event``
    the event's JSON bytes.

    A named tuple, made once per event a client takes: a frozen class cost a third of the
    parsing (``bench_gateway``).
    """

    sub: str
    session_id: str
    seq: int
    type: str
    received_at: float
    age: float
    lag: int
    event: bytes


@attrs.frozen(kw_only=True)
class ResultFrame:
    """The answer to request ``req``."""

    req: ReqId
    result: Any


@attrs.frozen(kw_only=True)
class ErrorFrame:
    """A request failed (``req``), a subscription ended (``sub``), or a message could not be
    read (neither). ``dropped`` is set when a subscription was cut: a ``disconnect`` one
    overflowed (``subscriber_overflow``), a ``block`` one was too slow
    (``subscriber_too_slow``)."""

    code: str
    message: str
    req: ReqId | None = None
    sub: str | None = None
    dropped: int | None = None


@attrs.frozen(kw_only=True)
class RefusedFrame:
    """The upstream refused a client event this connection sent (request ``req``, answered
    already): ``event_id`` names it, ``error`` is the server's error object (``type``,
    ``code``, ``message``, ``param``, ``event_id``)."""

    req: ReqId
    session: str
    event_id: str
    error: Mapping[str, Any]


ServerFrame: TypeAlias = EventFrame | ResultFrame | ErrorFrame | RefusedFrame


def _event_json(envelope: Envelope) -> bytes:
    try:
        return event_json(envelope)
    except ProtocolError:
        # Not an event (an object published on the bus directly): its type is all there is.
        return orjson.dumps({"type": envelope.type})


def encode_event(sub: str, envelope: Envelope, *, lag: int, age: float) -> list[bytes]:
    """The event frame for ``envelope`` in subscription ``sub``, as its parts: the header up
    to ``"event":``, the event's bytes, and the closing brace."""
    header = {
        "frame": "event",
        "sub": sub,
        "session_id": envelope.session_id,
        "seq": envelope.seq,
        "type": envelope.type,
        "received_at": envelope.received_at,
        "age": age,
        "lag": lag,
    }
    return [orjson.dumps(header)[:-1] + _EVENT_MARK, _event_json(envelope), b"}"]


def encode_result(req: ReqId, result: object) -> bytes:
    """The result frame answering ``req``; ``result`` may be an ``orjson.Fragment``."""
    return orjson.dumps({"frame": "result", "req": req, "result": result})


def encode_error(
    code: ErrorCode | str,
    message: str,
    *,
    req: ReqId | None = None,
    sub: str | None = None,
    dropped: int | None = None,
) -> bytes:
    """An error frame; ``req``, ``sub`` and ``dropped`` only when they apply."""
    frame: dict[str, Any] = {"frame": "error", "code": str(code), "message": message}
    for name, value in (("req", req), ("sub", sub), ("dropped", dropped)):
        if value is not None:
            frame[name] = value
    return orjson.dumps(frame)


def encode_refused(req: ReqId, session: str, event_id: str, error: Mapping[str, Any]) -> bytes:
    """A refused frame: the upstream's error about an event a request sent."""
    frame = {"frame": "refused", "req": req, "session": session, "event_id": event_id}
    return orjson.dumps({**frame, "error": dict(error)})


def parse_server_frame(data: bytes | str) -> ServerFrame:
    """The frame in one server message (the client's side); raises ``WireError``."""
    if isinstance(data, str):
        data = data.encode()
    return _frame_at(data, 0, len(data))


def _frame_at(data: bytes, start: int, stop: int) -> ServerFrame:
    """The frame in ``data[start:stop]``: an event frame read in place (its event is the
    one copy made), any other parsed whole."""
    if data.startswith(_EVENT_PREFIX, start, stop):
        return _event_frame(data, start, stop)
    try:
        obj = orjson.loads(data[start:stop] if start or stop < len(data) else data)
    except orjson.JSONDecodeError as exc:
        raise WireError(ErrorCode.NOT_JSON, f"the frame is not valid JSON ({exc.msg})") from None
    parse = _FRAMES.get(obj.get("frame")) if isinstance(obj, dict) else None
    if parse is None:
        raise WireError(ErrorCode.MALFORMED_FRAME, "not a result, error, refused or event frame")
    return parse(obj)


class Batch:
    """Frames gathered into one message, each given as its parts (``encode_event``'s): what
    the forwarder builds as it goes, so each frame's size is taken once (``size`` so far)."""

    __slots__ = ("_parts", "_sizes", "size")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._sizes: list[int] = []
        self.size = 0

    def __len__(self) -> int:
        return len(self._sizes)

    def add(self, frame: list[bytes]) -> None:
        size = sum(map(len, frame))
        self._parts += frame
        self._sizes.append(size)
        self.size += size

    def message(self) -> list[bytes]:
        """The message, as its parts: the frame alone if there is one, else a batch line
        ``{"frame":"batch","sizes":[...]}``, a newline, and the frames back to back. The
        sizes delimit them, so a spliced upstream frame may hold any bytes, newlines
        included."""
        if len(self._sizes) == 1:
            return self._parts
        line = orjson.dumps({"frame": "batch", "sizes": self._sizes}) + b"\n"
        return [line, *self._parts]


def parse_server_frames(data: bytes | str) -> list[ServerFrame]:
    """The frames in one server message, a batch or a single frame; raises ``WireError``.
    Read in place: of each frame only its event is copied out."""
    if isinstance(data, str):
        data = data.encode()
    if not data.startswith(_BATCH_PREFIX):
        return [parse_server_frame(data)]
    newline = data.find(b"\n")
    at = len(data) if newline < 0 else newline + 1
    frames = []
    for size in _batch_sizes(data[:newline] if newline >= 0 else data, len(data) - at):
        frames.append(_frame_at(data, at, at + size))
        at += size
    return frames


def _batch_sizes(head: bytes, length: int) -> list[int]:
    try:
        sizes = orjson.loads(head).get("sizes")
    except orjson.JSONDecodeError:
        sizes = None
    valid = isinstance(sizes, list) and all(type(n) is int and n > 0 for n in sizes)
    if not valid or sum(sizes) != length:
        raise WireError(ErrorCode.MALFORMED_FRAME, "a batch whose sizes do not fit its frames")
    return sizes  # type: ignore[no-any-return]


def _event_frame(data: bytes, start: int, stop: int) -> EventFrame:
    mark = data.find(_EVENT_MARK, start, stop)
    if mark < 0 or data[stop - 1] != _CLOSING_BRACE:
        raise WireError(ErrorCode.MALFORMED_FRAME, "an event frame without its event")
    try:
        header = orjson.loads(data[start:mark] + b"}")
        # By name: a field a later version adds is read past, not refused.
        return EventFrame(
            header["sub"],
            header["session_id"],
            header["seq"],
            header["type"],
            header["received_at"],
            header["age"],
            header["lag"],
            data[mark + len(_EVENT_MARK) : stop - 1],
        )
    except orjson.JSONDecodeError as exc:
        raise WireError(ErrorCode.MALFORMED_FRAME, f"a malformed event frame ({exc})") from None
    except KeyError as exc:
        message = f"an event frame without its field {exc}"
        raise WireError(ErrorCode.MALFORMED_FRAME, message) from None


def _result_frame(obj: dict[str, Any]) -> ResultFrame:
    try:
        return ResultFrame(req=obj["req"], result=obj.get("result"))
    except KeyError:
        raise WireError(ErrorCode.MALFORMED_FRAME, "a result frame without 'req'") from None


def _refused_frame(obj: dict[str, Any]) -> RefusedFrame:
    obj.pop("frame")
    try:
        frame = RefusedFrame(**obj)
    except TypeError as exc:
        raise WireError(ErrorCode.MALFORMED_FRAME, f"a malformed refused frame ({exc})") from None
    if not isinstance(frame.error, Mapping):
        raise WireError(ErrorCode.MALFORMED_FRAME, "a refused frame whose error is no object")
    return frame


def _error_frame(obj: dict[str, Any]) -> ErrorFrame:
    obj.pop("frame")
    try:
        return ErrorFrame(**obj)
    except TypeError as exc:
        raise WireError(ErrorCode.MALFORMED_FRAME, f"a malformed error frame ({exc})") from None


_FRAMES: Final[Mapping[object, Callable[[dict[str, Any]], ServerFrame]]] = {
    "result": _result_frame,
    "refused": _refused_frame,
    "error": _error_frame,
}
