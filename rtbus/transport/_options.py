"""How a Realtime connection is opened, kept alive and closed: one frozen, validated value."""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable

import attrs

from rtbus.protocol import ConfigError

__all__ = ["ConnectOptions"]

_MIB = 1024 * 1024


def _seconds(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(attribute.name, f"must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(attribute.name, f"must be a positive number of seconds, got {value!r}")


def _optional_seconds(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value is not None:
        _seconds(instance, attribute, value)


def _count(minimum: int) -> Callable[[object, attrs.Attribute[int], int], None]:
    def check(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(attribute.name, f"must be an integer >= {minimum}, got {value!r}")

    return check


@attrs.frozen(kw_only=True)
class ConnectOptions:
    """Timeouts, sizes and keepalive of one connection; the defaults fit the real API.

    * ``connect_timeout``: seconds for TCP, TLS and the WebSocket handshake together.
    * ``close_timeout``: seconds :meth:`RealtimeWebSocket.aclose` waits for the server's close
      frame before it aborts the stream (the real server does not always send one).
    * ``max_message_size``: the largest message accepted, in bytes (fragments joined). An item
      with audio is over 3 MB and an audio append up to 15 MiB, hence 16 MiB; a larger one
      fails the connection with close code 1009.
    * ``receive_buffer_size``: bytes per socket read; every frame one read brings is handled
      in one pass. 64 KiB takes a whole burst of 6.4 KB audio deltas in one read.
    * ``message_queue_size``: messages the keepalive may read ahead of the consumer while it
      waits for a pong (the consumer reads in its own task; nothing else reads ahead). Pongs
      are only seen while that queue is not full, so a consumer that stops reading for longer
      than ``pong_timeout`` while the server streams fails the keepalive.
    * ``keepalive_interval``: seconds of silence from the server before a ping (``None``: no
      keepalive); ``pong_timeout``: seconds a ping may wait for its pong before the
      connection fails.
    * ``ssl_context``: for ``wss`` URLs; ``None`` uses the system's default trust store.
    """

    connect_timeout: float = attrs.field(default=10.0, validator=_seconds)
    close_timeout: float = attrs.field(default=5.0, validator=_seconds)
    max_message_size: int = attrs.field(default=16 * _MIB, validator=_count(1))
    receive_buffer_size: int = attrs.field(default=64 * 1024, validator=_count(1))
    message_queue_size: int = attrs.field(default=64, validator=_count(0))
    keepalive_interval: float | None = attrs.field(default=20.0, validator=_optional_seconds)
    pong_timeout: float = attrs.field(default=20.0, validator=_seconds)
    ssl_context: ssl.SSLContext | None = attrs.field(default=None, eq=False, repr=False)
