"""``subscribe``: a consumer of a group, with its arguments checked where they are given."""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Iterable

from rtbus.bus import BusArgumentError

from ._config import RedisConfig
from ._consumer import RedisSubscription
from ._losses import LostHandler
from ._metrics import RedisMetrics

__all__ = ["subscribe"]

_consumer_numbers = itertools.count(1)
_STARTS = ("0", "$")


def subscribe(
    config: RedisConfig,
    *,
    group: str,
    consumer: str | None = None,
    types: str | Iterable[str] = "*",
    sessions: str | Iterable[str] = "*",
    streams: Iterable[str] | None = None,
    raw: bool = False,
    start: str = "0",
    on_lost: LostHandler | None = None,
    metrics: RedisMetrics | None = None,
) -> RedisSubscription:
    """A consumer of ``group`` on the bridged streams; use it as an async context manager.

    ``consumer`` names this member (default: host, process and a counter). ``types`` and
    ``sessions`` filter as ``Bus.subscribe`` does; ``streams`` picks stream names (default:
    those the types can be in). With ``raw=True`` envelopes carry ``event=None`` and the JSON
    in ``raw``, never decoded. ``start`` is where a new group begins: ``"0"`` (everything
    retained) or ``"$"`` (only what comes next). Raises ``BusArgumentError`` naming a bad
    argument.
    """
    return RedisSubscription(
        config,
        group=_name("group", group),
        consumer=_name("consumer", consumer or _default_consumer()),
        types=types,
        sessions=sessions,
        streams=_known_streams(config, streams),
        raw=raw,
        start=_start(start),
        on_lost=on_lost,
        metrics=metrics,
    )


def _name(argument: str, value: object) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise BusArgumentError(argument, f"must be a non-empty str without spaces, got {value!r}")
    return value


def _start(value: object) -> str:
    if value not in _STARTS:
        raise BusArgumentError(
            "start", f"must be '0' (all retained) or '$' (new only), got {value!r}"
        )
    return str(value)


def _known_streams(config: RedisConfig, streams: Iterable[str] | None) -> tuple[str, ...] | None:
    if streams is None:
        return None
    names = (streams,) if isinstance(streams, str) else tuple(streams)
    unknown = [name for name in names if name not in config.streams]
    if unknown or not names:
        known = ", ".join(config.streams)
        raise BusArgumentError("streams", f"must name configured streams ({known}), got {names!r}")
    return names


def _default_consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{next(_consumer_numbers)}"
