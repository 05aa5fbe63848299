"""The stream layout: key names, which stream an event goes to, and the entry format.

Keys (``{rtbus}`` is the configured prefix, hash tag included):

* ``{rtbus}:events:<stream>`` -- one stream per event family (``audio``, ``events``), shared
  by every service; a service publishes all of a session, so a session's events keep their
  order within each stream.
* ``{rtbus}:<dead_letter_stream>`` -- entries that failed past the delivery cap.
* ``{rtbus}:failures:<group>`` -- a hash of entry id -> why its last handling failed, so the
  consumer that finally dead-letters an entry can say why, whichever consumer saw it fail.

An entry's fields: ``session``, ``seq``, ``type``, ``node`` (the publishing service),
``time`` (wall-clock seconds at publish) and ``event``: the upstream's JSON bytes exactly as
they arrived (``Envelope.raw``). Only an event that has no raw frame -- a lifecycle event --
is encoded here; audio is never decoded and encoded again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

import attrs

from rtbus.bus import Envelope, TypeFilter, event_json, parse_types
from rtbus.protocol import ProtocolError

from ._config import RedisConfig

__all__ = [
    "ENTRY_FIELDS",
    "RedisEnvelope",
    "StreamLayout",
    "decode_entry",
    "encode_entry",
    "entry_mapping",
    "entry_time",
    "entry_values",
]

# Types whose streams are cached, at most: a peer inventing event types cannot grow it.
_MAX_CACHED_TYPES = 4096

SESSION, SEQ, TYPE, NODE, TIME, EVENT = b"session", b"seq", b"type", b"node", b"time", b"event"
ENTRY_FIELDS = (SESSION, SEQ, TYPE, NODE, TIME, EVENT)
# A list, as the names sliced out of a reply are: the bridge's entries compare equal.
_ENTRY_NAMES = list(ENTRY_FIELDS)

#: An entry's fields as Redis answers them: names and values alternating.
Fields = Sequence[bytes]


@attrs.frozen(kw_only=True)
class RedisEnvelope(Envelope):
    """An envelope read from a Redis stream: the bus's fields, and where it came from.

    ``received_at`` is the trio time this process read it; ``raw`` is always the event's JSON.
    ``stream`` is the stream name (``"audio"``), ``entry_id`` the Redis id (``"1712...-0"``),
    ``node`` the service that published it, ``published_at`` its wall-clock publish time, and
    ``deliveries`` how many times the group has handed it out, this time included.
    """

    stream: str
    entry_id: str
    node: str
    published_at: float
    deliveries: int


class DecodedEntry(NamedTuple):
    """An entry's fields, checked and converted; the event itself is still bytes.

    A named tuple: one is made per delivery, and a frozen attrs class made with keywords
    cost ~0.4 us more each (a consumer spends ~20 us per event).
    """

    session_id: str
    seq: int
    type: str
    node: str
    published_at: float
    raw: bytes


class StreamLayout:
    """Names and routes for one ``RedisConfig``: which key an event type is written to."""

    def __init__(self, config: RedisConfig) -> None:
        self.prefix = config.prefix
        self.keys: Mapping[str, bytes] = MappingProxyType(
            {name: f"{config.prefix}:events:{name}".encode() for name in config.streams}
        )
        self.names: Mapping[bytes, str] = MappingProxyType({k: n for n, k in self.keys.items()})
        self.dead_letter_key = f"{config.prefix}:{config.dead_letter_stream}".encode()
        self.dead_letter_name = config.dead_letter_stream
        # Whether every event type is bridged: only then is a gap in a session's ``seq``,
        # across all the streams, a loss.
        self.routes_everything = any("*" in globs for globs in config.streams.values())
        self._routes = tuple(
            (self.keys[name], parse_types(globs)) for name, globs in config.streams.items()
        )
        self._cache: dict[str, bytes | None] = {}
        # What the bridge subscribes to: every glob of every stream.
        self.types: tuple[str, ...] = tuple(
            dict.fromkeys(glob for globs in config.streams.values() for glob in globs)
        )

    def key_for(self, type: str) -> bytes | None:
        """The key an event of ``type`` is written to (first matching stream), or ``None``."""
        try:
            return self._cache[type]
        except KeyError:
            pass
        key = next((key for key, types in self._routes if types.matches(type)), None)
        if len(self._cache) >= _MAX_CACHED_TYPES:
            self._cache.clear()  # a peer inventing endless types cannot grow it without bound
        self._cache[type] = key
        return key

    def keys_for(self, types: TypeFilter, streams: Iterable[str] | None) -> tuple[bytes, ...]:
        """The keys a consumer of ``types`` reads: the named ``streams``, or else those its
        exact types route to (every stream when it has globs)."""
        if streams is not None:
            return tuple(self.keys[name] for name in streams)
        if types.everything or types.globs:
            return tuple(self.keys.values())
        routed = {self.key_for(type) for type in types.exact}
        return tuple(key for key in self.keys.values() if key in routed)

    def failures_key(self, group: str) -> bytes:
        return f"{self.prefix}:failures:{group}".encode()


def encode_entry(envelope: Envelope, node: bytes, now: float) -> dict[bytes, bytes]:
    """The fields of the stream entry for ``envelope``, published by ``node`` at ``now``."""
    return dict(zip(ENTRY_FIELDS, entry_values(envelope, node, now), strict=True))


def entry_values(envelope: Envelope, node: bytes, now: float) -> tuple[bytes, ...]:
    """The values of ``encode_entry``'s fields, in ``ENTRY_FIELDS`` order (as the bridge
    writes them: the names go once per batch)."""
    return (
        envelope.session_id.encode(),
        b"%d" % envelope.seq,
        envelope.type.encode(),
        node,
        b"%.6f" % now,
        event_json(envelope),
    )


def decode_entry(fields: Fields) -> DecodedEntry:
    """The checked fields of an entry; ``ProtocolError`` naming the field that is wrong."""
    values = fields[1::2]
    # The bridge writes ENTRY_FIELDS in order: its entries take no lookup by name. Anyone
    # else's entry (another order, fields added or missing) goes by name.
    if fields[::2] != _ENTRY_NAMES:
        values = _by_name(fields)
    try:
        session_id, seq, event_type, node, published_at, raw = values
        return DecodedEntry(
            session_id.decode(), int(seq), event_type.decode(), node.decode(),
            float(published_at), raw,
        )  # fmt: skip
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(
            f"a stream entry has a malformed field ({type(exc).__name__})"
        ) from None


def _by_name(fields: Fields) -> list[bytes]:
    """The values of ``ENTRY_FIELDS`` in ``fields``, in that order."""
    mapping = entry_mapping(fields)
    try:
        return [mapping[name] for name in ENTRY_FIELDS]
    except KeyError as exc:
        missing: bytes = exc.args[0]
        raise ProtocolError(f"a stream entry has no {missing.decode()!r} field") from None


def entry_mapping(fields: Fields) -> dict[bytes, bytes]:
    """``fields`` by name; a name given twice keeps its last value."""
    return dict(zip(fields[::2], fields[1::2], strict=False))  # Redis answers whole pairs


def entry_time(entry_id: bytes) -> float:
    """The wall-clock second Redis stamped into an entry id (``<ms>-<seq>``)."""
    return int(entry_id.split(b"-", 1)[0]) / 1000


#: What a dead-letter entry adds to the original entry's fields: where it was, which group
#: gave up on it, after how many deliveries, and the last failure seen (when one was seen).
DL_STREAM, DL_ID, DL_GROUP = b"origin_stream", b"origin_id", b"group"
DL_CONSUMER, DL_DELIVERIES = b"consumer", b"deliveries"
DL_ERROR_TYPE, DL_ERROR = b"error_type", b"error"
