"""The stream monitor: stream lengths and consumer-group backlog, polled for metrics.

A scrape must never wait on Redis, so a periodic task reads everything a scrape reports into
a frozen ``MonitorSnapshot`` and the collector reads the last one. A poll is two round trips
(one pipeline of ``TIME``, ``XLEN`` and ``XINFO GROUPS`` per stream; one of ``XPENDING``
summaries for the groups with a backlog). The oldest pending entry's age is taken from its id
against the server's own clock, so clock skew between machines does not enter into it. A
failed poll keeps the last snapshot: ``rtbus_redis_up`` says it is stale.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import attrs
import coredis.exceptions
import trio

from ._client import Client, RedisLink
from ._errors import RedisError
from ._layout import StreamLayout, entry_time

__all__ = ["GroupSnapshot", "MonitorSnapshot", "StreamMonitor", "StreamSnapshot"]

_log = logging.getLogger("rtbus.redis")


@attrs.frozen
class GroupSnapshot:
    """One consumer group of one stream: entries delivered and not acknowledged, and the age in
    seconds of the oldest of them (0 with none)."""

    pending: int
    oldest_pending_seconds: float


@attrs.frozen
class StreamSnapshot:
    """One stream: its length and its groups by name (a stream not made yet is empty)."""

    length: int
    groups: Mapping[str, GroupSnapshot]


@attrs.frozen
class MonitorSnapshot:
    """Every configured stream and the dead-letter stream, by name, as of ``taken_at``
    (the server's wall-clock seconds)."""

    streams: Mapping[str, StreamSnapshot]
    taken_at: float


class StreamMonitor:
    """Polls the streams of a layout every ``interval`` seconds; ``snapshot`` is the latest."""

    def __init__(self, link: RedisLink, layout: StreamLayout) -> None:
        self._link = link
        self._keys = {**layout.names, layout.dead_letter_key: link.config.dead_letter_stream}
        self._interval = link.config.monitor_interval
        self.snapshot: MonitorSnapshot | None = None

    async def run(self) -> None:
        """Poll until cancelled; a failed poll is logged and retried at the next tick."""
        while True:
            try:
                self.snapshot = await self.poll()
            except RedisError as exc:
                _log.debug("redis stream monitor: %s", exc)
            await trio.sleep(self._interval)

    async def poll(self) -> MonitorSnapshot:
        """Read a fresh snapshot now."""
        now, lengths, groups = await self._link.call("xinfo", self._read_streams)
        pending = {(k, g) for k, infos in groups.items() for g, n in infos.items() if n}
        oldest = await self._link.call("xpending", lambda c: self._read_oldest(c, pending))
        streams = {
            self._keys[key]: StreamSnapshot(
                lengths[key],
                MappingProxyType(
                    {
                        group: GroupSnapshot(count, _age(now, oldest.get((key, group))))
                        for group, count in groups[key].items()
                    }
                ),
            )
            for key in self._keys
        }
        return MonitorSnapshot(MappingProxyType(streams), now)

    async def _read_streams(
        self, client: Client
    ) -> tuple[float, dict[bytes, int], dict[bytes, dict[str, int]]]:
        async with client.pipeline(transaction=False, raise_on_error=False) as pipe:
            clock = pipe.time()
            replies = [(key, pipe.xlen(key), pipe.xinfo_groups(key)) for key in self._keys]
        lengths, groups = {}, {}
        for key, length, infos in replies:
            lengths[key] = await length
            groups[key] = await _groups(infos)
        return (await clock).timestamp(), lengths, groups

    async def _read_oldest(
        self, client: Client, pending: set[tuple[bytes, str]]
    ) -> dict[tuple[bytes, str], bytes | None]:
        if not pending:
            return {}
        async with client.pipeline(transaction=False) as pipe:
            replies = [(key, group, pipe.xpending(key, group)) for key, group in sorted(pending)]
        return {(key, group): _first_id(await reply) for key, group, reply in replies}


async def _groups(reply: Any) -> dict[str, int]:
    try:
        infos: Sequence[Mapping[bytes, Any]] = await reply
    except coredis.exceptions.ResponseError:
        return {}  # no such key: the stream has not been made yet
    return {bytes(info[b"name"]).decode(): int(info[b"pending"]) for info in infos}


def _first_id(summary: Any) -> bytes | None:
    identifier = getattr(summary, "minimum_identifier", None)
    return identifier if isinstance(identifier, bytes) else None


def _age(now: float, oldest_id: bytes | None) -> float:
    return 0.0 if oldest_id is None else max(0.0, now - entry_time(oldest_id))
