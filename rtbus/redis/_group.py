"""One consumer's commands on its group: join, read, reclaim, acknowledge, fail, dead-letter.

Everything here is one Redis round trip (or one pipeline) through ``RedisLink.call``; the
decisions -- when to reclaim, what is poison, what to hand out -- are the subscription's.

Invariants:

* New entries are read with ``>``: each goes to exactly one consumer of the group, delivered
  once; a read hands out the entries of all its streams in entry-id order. Entries another
  consumer held past the reclaim idle time come back through ``XAUTOCLAIM``, which also bumps
  their delivery count; the count is then read from ``XPENDING``, so the cap holds whichever
  consumer a delivery went to.
* ``XAUTOCLAIM`` scans each stream's pending list from a cursor kept per stream, a page of
  ``batch_size`` at a time, and names the ids it found deleted -- entries trimmed before the
  group acknowledged them. Those are returned, never dropped here.
* A failure is written to the group's failures hash before the entry is left pending, so the
  consumer that dead-letters it later (maybe another process) can say why. Acknowledging an
  entry that had failed before, and dead-lettering, remove its record.
* Dead-lettering is one transaction: the dead-letter entry is added and the original
  acknowledged together, so an entry is never both gone and not dead-lettered.
* ``XREADGROUP`` and ``XAUTOCLAIM`` replies are taken as Redis gives them (RESP3 lists), not
  through coredis's stream types, which build a mapping and an object per entry: ~2 us of a
  consumer's ~23 us per event (``python -m bench bench_redis``). An entry's fields stay the
  flat list of names and values Redis answered (``Pending.fields``) until ``decode_entry``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, NamedTuple

import attrs
import coredis
import coredis.commands
import coredis.exceptions
import coredis.patterns.pipeline
import orjson
from coredis.commands.constants import CommandName
from coredis.response._callbacks import NoopCallback
from coredis.typing import Key

from ._client import Client, RedisLink
from ._layout import (
    DL_CONSUMER,
    DL_DELIVERIES,
    DL_ERROR,
    DL_ERROR_TYPE,
    DL_GROUP,
    DL_ID,
    DL_STREAM,
    Fields,
    StreamLayout,
    entry_mapping,
)

__all__ = ["Failure", "GroupMember", "Pending", "Read", "Reclaimed"]

Pipeline = coredis.patterns.pipeline.Pipeline[bytes]
#: Stream entries as Redis answers them: ``[id, [name, value, name, value, ...]]`` each.
RawEntries = list[list[Any]]

_START = b"0-0"
_MAX_ERROR_CHARS = 1000


class Pending(NamedTuple):
    """An entry handed to this consumer and not acknowledged yet.

    A named tuple: one is made per entry read, and a frozen attrs class cost ~0.15 us more.
    """

    key: bytes
    entry_id: bytes
    fields: Fields
    deliveries: int


@attrs.frozen
class Read:
    """What one read found: the entries in entry-id order, and how many each stream gave."""

    entries: list[Pending]
    counts: Mapping[bytes, int]


@attrs.frozen
class Reclaimed:
    """What one reclaim round took over, and the ids it found trimmed, by stream key.

    ``done`` is whether the scan reached the end of every stream's pending list.
    """

    entries: list[Pending]
    trimmed: dict[bytes, tuple[bytes, ...]]
    done: bool


@attrs.frozen
class Failure:
    """Why handling an entry failed: the exception's type and message, and where."""

    error_type: str
    error: str
    consumer: str

    @classmethod
    def of(cls, exc: BaseException, consumer: str) -> Failure:
        return cls(type(exc).__name__, str(exc)[:_MAX_ERROR_CHARS], consumer)

    def dumps(self) -> bytes:
        return orjson.dumps(attrs.asdict(self))

    @classmethod
    def loads(cls, data: bytes | None) -> Failure | None:
        try:
            return cls(**orjson.loads(data)) if data else None
        except (orjson.JSONDecodeError, TypeError):
            return None  # a record rtbus did not write: dead-letter without it


def _order(pending: Pending) -> tuple[int, int]:
    ms, _, seq = pending.entry_id.partition(b"-")
    return int(ms), int(seq or 0)


def _read_of(reply: Mapping[bytes, RawEntries]) -> Read:
    """An ``XREADGROUP`` reply (stream key -> entries) as one list in entry-id order."""
    entries = [
        Pending(key, entry_id, fields, 1)
        for key, found in reply.items()
        for entry_id, fields in found
    ]
    if len(reply) > 1:  # streams come back one after the other: interleave them
        entries.sort(key=_order)
    return Read(entries, {key: len(found) for key, found in reply.items()})


def _as_answered(
    target: Client | Pipeline, name: CommandName, *args: Any
) -> coredis.commands.CommandRequest[Any]:
    """The command ``name``, its reply left as Redis gave it (see the module's invariants)."""
    return target.create_request(name, *args, callback=NoopCallback[Any]())


class GroupMember:
    """``consumer`` in ``group`` on the stream ``keys`` of a layout."""

    def __init__(
        self,
        link: RedisLink,
        layout: StreamLayout,
        keys: Sequence[bytes],
        *,
        group: str,
        consumer: str,
        start: str,
    ) -> None:
        config = link.config
        self._link = link
        self._layout = layout
        self.keys = tuple(keys)
        self.group = group
        self.consumer = consumer
        self._start = start
        self._batch = config.batch_size
        self._idle_ms = max(1, int(config.reclaim_idle_seconds * 1000))
        self._failures = layout.failures_key(group)
        self._cursors = dict.fromkeys(self.keys, _START)
        streams = [Key(key) for key in self.keys]
        self._read_args = (b"GROUP", group, consumer, b"COUNT", self._batch)
        self._read_streams = (b"STREAMS", *streams, *(b">" for _ in streams))
        self._dead_trim: dict[str, Any] = {
            "trim_strategy": coredis.PureToken.MAXLEN,
            "trim_operator": coredis.PureToken.APPROXIMATELY,
            "threshold": config.maxlen,
        }

    def _call(
        self, operation: str, command: Callable[[Client], Awaitable[Any]], wait: float = 0.0
    ) -> Awaitable[Any]:
        return self._link.call(operation, command, wait=wait)

    async def join(self) -> tuple[bytes, ...]:
        """Make the group on every stream (and the streams) unless it is there already;
        return the keys where this call made it."""
        made = []
        for key in self.keys:
            if await self._call("xgroup_create", functools.partial(self._create, key)):
                made.append(key)
        self._cursors = dict.fromkeys(self.keys, _START)
        return tuple(made)

    async def _create(self, key: bytes, client: Client) -> bool:
        try:
            await client.xgroup_create(key, self.group, identifier=self._start, mkstream=True)
        except coredis.exceptions.StreamDuplicateConsumerGroupError:
            return False  # BUSYGROUP: made already (by another consumer, an earlier run)
        return True

    async def alone(self, idle_seconds: float) -> bool:
        """Whether no other consumer of the group has touched any of its streams within
        ``idle_seconds`` (a dead consumer stays listed until deleted: its idle time grows)."""

        async def command(client: Client) -> list[Any]:
            async with client.pipeline(transaction=False, raise_on_error=False) as pipe:
                replies = [pipe.xinfo_consumers(key, self.group) for key in self.keys]
            infos: list[Any] = []
            for reply in replies:
                try:
                    infos.extend(await reply)
                except coredis.exceptions.ResponseError as exc:
                    # "no such key": the stream is gone (Redis lost its data), and the group
                    # with it. Said as NOGROUP, so the consumer makes the group again.
                    raise coredis.exceptions.StreamConsumerGroupError(str(exc)) from None
            return infos

        limit_ms = idle_seconds * 1000
        me = self.consumer.encode()
        return not any(
            info[b"name"] != me and int(info[b"idle"]) < limit_ms
            for info in await self._call("xinfo_consumers", command)
        )

    async def read(self, block: float, acks: Sequence[Pending] = ()) -> Read:
        """New entries, up to a batch per stream, waiting up to ``block`` seconds for any;
        ``acks`` (handled entries) are acknowledged first, in the same round trip."""
        block_ms = max(1, int(block * 1000))  # BLOCK 0 would wait forever

        async def command(client: Client) -> Any:
            if not acks:
                return await self._read_request(client, block_ms)
            async with client.pipeline(transaction=False) as pipe:
                self._acknowledge(pipe, acks)
                reply = self._read_request(pipe, block_ms)
            return await reply

        return _read_of(await self._call("xreadgroup", command, wait=block) or {})

    def _read_request(
        self, target: Client | Pipeline, block_ms: int
    ) -> coredis.commands.CommandRequest[Any]:
        return _as_answered(
            target, CommandName.XREADGROUP, *self._read_args, b"BLOCK", block_ms,
            *self._read_streams,
        )  # fmt: skip

    async def reclaim(self) -> Reclaimed:
        """Take over entries idle past the reclaim time, one page per stream."""
        entries: list[Pending] = []
        trimmed: dict[bytes, tuple[bytes, ...]] = {}
        done = True
        for key in self.keys:
            page, gone, cursor = await self._claim_page(key)
            entries.extend(page)
            if gone:
                trimmed[key] = gone
            self._cursors[key] = cursor
            done = done and cursor == _START
        return Reclaimed(sorted(entries, key=_order), trimmed, done)

    async def _claim_page(self, key: bytes) -> tuple[list[Pending], tuple[bytes, ...], bytes]:
        args = (Key(key), self.group, self.consumer, self._idle_ms, self._cursors[key])

        async def command(client: Client) -> Any:
            request = _as_answered(client, CommandName.XAUTOCLAIM, *args, b"COUNT", self._batch)
            return await request

        cursor, claimed, deleted = await self._call("xautoclaim", command)
        ids = [entry_id for entry_id, _ in claimed]
        counts = await self._delivery_counts(key, ids) if ids else {}
        page = [
            Pending(key, entry_id, fields, counts.get(entry_id, 1)) for entry_id, fields in claimed
        ]
        return page, tuple(deleted), cursor

    async def _delivery_counts(self, key: bytes, ids: Sequence[bytes]) -> dict[bytes, int]:
        # One exact XPENDING per entry: a range could be crowded by other entries we hold.
        async def command(client: Client) -> list[Any]:
            async with client.pipeline(transaction=False) as pipe:
                replies = [
                    pipe.xpending(key, self.group, start=i, end=i, count=1, consumer=self.consumer)
                    for i in ids
                ]
            return [info for reply in replies for info in await reply]

        return {info.identifier: info.delivered for info in await self._call("xpending", command)}

    async def ack(self, handled: Sequence[Pending]) -> None:
        """Acknowledge ``handled`` in one round trip; forget the failure records of those that
        had failed before."""

        async def command(client: Client) -> None:
            async with client.pipeline(transaction=False) as pipe:
                self._acknowledge(pipe, handled)

        await self._call("xack", command)

    def _acknowledge(self, pipe: Pipeline, handled: Sequence[Pending]) -> None:
        """Queue on ``pipe`` the ``XACK`` of ``handled`` (one per stream), and the ``HDEL`` of
        the failure records of those that had failed before."""
        ids: dict[bytes, list[bytes]] = {}
        for pending in handled:
            ids.setdefault(pending.key, []).append(pending.entry_id)
        for key, entry_ids in ids.items():
            pipe.xack(key, self.group, entry_ids)
        retried = [self._failure_field(pending) for pending in handled if pending.deliveries > 1]
        if retried:
            pipe.hdel(self._failures, retried)

    async def record_failure(self, pending: Pending, failure: Failure) -> None:
        """Remember why ``pending`` failed, for whoever dead-letters it."""
        field, value = self._failure_field(pending), failure.dumps()
        await self._call("hset", lambda client: client.hset(self._failures, {field: value}))

    async def last_failure(self, pending: Pending) -> Failure | None:
        """The failure recorded for ``pending``, if any."""
        field = self._failure_field(pending)
        return Failure.loads(await self._call("hget", lambda c: c.hget(self._failures, field)))

    async def dead_letter(self, pending: Pending, failure: Failure) -> bytes:
        """Move ``pending`` to the dead-letter stream with ``failure``, and acknowledge it;
        return the dead-letter entry's id."""
        fields = {**entry_mapping(pending.fields), **self._dead_fields(pending, failure)}
        field = self._failure_field(pending)

        async def command(client: Client) -> bytes:
            async with client.pipeline(transaction=True) as tx:
                added = tx.xadd(self._layout.dead_letter_key, fields, **self._dead_trim)
                tx.xack(pending.key, self.group, [pending.entry_id])
                tx.hdel(self._failures, [field])
            return bytes(await added or b"")

        result: bytes = await self._call("dead_letter", command)
        return result

    async def forget_failures(self, key: bytes, ids: Sequence[bytes]) -> None:
        """Drop the failure records of entries that are gone (trimmed)."""
        fields = [key + b"/" + entry_id for entry_id in ids]
        await self._call("hdel", lambda client: client.hdel(self._failures, fields))

    async def leave(self) -> None:
        """Remove this consumer from the group on each stream where it holds nothing."""
        for key in self.keys:
            await self._call("xgroup_delconsumer", functools.partial(self._leave, key))

    async def _leave(self, key: bytes, client: Client) -> None:
        summary = await client.xpending(key, self.group)
        held = getattr(summary, "consumers", {}).get(self.consumer.encode())
        if not held:  # deleting a consumer drops what it holds: only when it holds nothing
            await client.xgroup_delconsumer(key, self.group, self.consumer)

    def _failure_field(self, pending: Pending) -> bytes:
        return pending.key + b"/" + pending.entry_id

    def _dead_fields(self, pending: Pending, failure: Failure) -> dict[bytes, bytes]:
        return {
            DL_STREAM: self._layout.names[pending.key].encode(),
            DL_ID: pending.entry_id,
            DL_GROUP: self.group.encode(),
            DL_CONSUMER: failure.consumer.encode(),
            DL_DELIVERIES: b"%d" % (pending.deliveries - 1),  # handed out, not this time
            DL_ERROR_TYPE: failure.error_type.encode(),
            DL_ERROR: failure.error.encode(),
        }
