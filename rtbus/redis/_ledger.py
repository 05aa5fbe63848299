"""The ledger: what this process wrote to Redis, kept so that what Redis loses is counted.

Redis acknowledges an ``XADD`` before it is durable: without persistence a restart loses every
stream; with AOF ``everysec`` up to about a second of writes; a failover to a replica what
had not replicated yet. None of that is an error anybody sees, so the writer keeps its own
account and compares it with Redis.

Invariants:

* Every entry this process wrote (the bridge's events, a consumer's dead letters) is in the
  ledger, as part of a batch (its first id, last id and count), until Redis trims it (its
  last id falls below the stream's first entry) or it is counted lost. The streams' own caps
  bound the ledger.
* A check is one pipeline: ``INFO server`` (``run_id``) and, per stream with batches, its
  first entry and the newest batch's last entry. Redis lost data when its ``run_id`` changed
  (a restart or a failover: ``restart``) or when the newest batch's last entry is gone while
  nothing newer replaced it (a ``DEL``, a ``FLUSHALL``: ``deleted``).
* Then the batches are checked by their last entry. Redis persists, replays and replicates
  a stream in order, so what survives of the batches that were there at a check is a
  prefix: those are walked back from the newest until one is whole. Batches recorded since
  the check before last may have gone to the new server after the loss: each is checked.
  Of a batch whose last entry is gone, the entries still there (by ``owner``, the ``node``
  field) are kept and the rest counted lost. Entries trimmed by the cap since the previous
  check are counted with them: an over-count of at most one interval's trims, never an
  under-count.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ._client import Client, RedisLink
from ._layout import NODE

__all__ = ["DELETED", "RESTART", "Ledger", "Loss"]

#: Why Redis no longer has an entry it acknowledged.
RESTART, DELETED = "restart", "deleted"

#: Batches checked per round trip while walking back through the older ones.
_PAGE = 256


@attrs.define
class _Batch:
    first: bytes
    last: bytes
    count: int
    generation: int  # the ledger's ``checks`` when it was recorded


@attrs.frozen
class Loss:
    """``count`` entries of ``stream`` that Redis acknowledged and no longer has, and why."""

    stream: str
    reason: str
    count: int


def _order(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


class Ledger:
    """The batches written to the streams ``names`` (key -> stream name) by ``owner``.

    ``owner`` is the ``node`` field the writer puts in every entry; a writer whose batches
    are single entries (dead letters) passes ``None``.
    """

    def __init__(self, names: Mapping[bytes, str], *, owner: bytes | None) -> None:
        self._names = names
        self._owner = owner
        self._batches: dict[bytes, deque[_Batch]] = {key: deque() for key in names}
        self._run_id: bytes | None = None
        self.checks = 0  # completed: statistics, and for tests to wait on

    @property
    def entries(self) -> int:
        """Entries written and not (yet) found trimmed or lost."""
        return sum(batch.count for batches in self._batches.values() for batch in batches)

    def record(self, key: bytes, ids: Sequence[bytes]) -> None:
        """Remember that ``ids`` (in the order written) went to ``key`` in one round trip."""
        if ids:
            self._batches[key].append(_Batch(ids[0], ids[-1], len(ids), self.checks))

    async def check(self, link: RedisLink) -> list[Loss]:
        """Compare the ledger with Redis; forget what was trimmed; return what was lost."""
        keys = [key for key, batches in self._batches.items() if batches]
        newest = {key: self._batches[key][-1] for key in keys}
        run_id, firsts, present = await link.call(
            "ledger", lambda client: self._probe(client, keys, newest)
        )
        known = self._run_id if self._run_id is not None else link.first_run_id
        restarted = known is not None and run_id != known
        self._run_id = run_id
        losses = []
        for key in keys:
            reason = self._reason(restarted, newest[key], firsts[key], present[key])
            if reason is None:
                self._forget_trimmed(key, firsts[key])
                continue
            lost = await link.call("ledger", functools.partial(self._settle, key))
            if lost:
                losses.append(Loss(self._names[key], reason, lost))
        self.checks += 1
        return losses

    def _reason(
        self, restarted: bool, newest: _Batch, first: bytes | None, present: bool
    ) -> str | None:
        if restarted:
            return RESTART
        if present or (first is not None and _order(first) > _order(newest.last)):
            return None  # all there, or trimmed away by the cap behind newer entries
        return DELETED

    def _forget_trimmed(self, key: bytes, first: bytes | None) -> None:
        batches = self._batches[key]
        while batches and first is not None and _order(batches[0].last) < _order(first):
            batches.popleft()

    async def _probe(
        self, client: Client, keys: Sequence[bytes], newest: Mapping[bytes, _Batch]
    ) -> tuple[bytes | None, dict[bytes, bytes | None], dict[bytes, bool]]:
        async with client.pipeline(transaction=False) as pipe:
            info = pipe.info("server")
            replies = [
                (
                    key,
                    pipe.xrange(key, count=1),
                    pipe.xrange(key, newest[key].last, newest[key].last),
                )
                for key in keys
            ]
        run_id = (await info).get("run_id")
        firsts: dict[bytes, bytes | None] = {}
        present: dict[bytes, bool] = {}
        for key, first, last in replies:
            entries = await first
            firsts[key] = _identifier(entries[0]) if entries else None
            present[key] = bool(await last)
        return _bytes(run_id), firsts, present

    async def _settle(self, key: bytes, client: Client) -> int:
        """Find the batches of ``key`` Redis lost; keep what is there, count the rest."""
        batches = list(self._batches[key])
        # Recorded since the check before last: maybe written after the loss, to the new
        # server, so each is checked. The older ones were all there at a check: what is
        # left of them is a prefix, so walk back from the newest until one is whole.
        since = self.checks - 1
        split = next((i for i, b in enumerate(batches) if b.generation >= since), len(batches))
        broken = await self._missing(client, key, batches[split:])
        end = split
        while end > 0:
            page = batches[max(0, end - _PAGE) : end]
            missing = await self._missing(client, key, page)
            broken[:0] = missing
            if len(missing) < len(page):
                break
            end -= len(page)
        if not broken:
            return 0
        async with client.pipeline(transaction=False) as pipe:
            ranges = [pipe.xrange(key, batch.first, batch.last) for batch in broken]
        lost = 0
        for batch, reply in zip(broken, ranges, strict=True):
            kept = [_identifier(entry) for entry in await reply if self._owns(entry)]
            lost += batch.count - len(kept)
            if kept:  # a batch cut by the loss: what is left is a batch of its own
                batch.first, batch.last, batch.count = kept[0], kept[-1], len(kept)
            else:
                batch.count = 0
        # Records made while this ran are newer than every batch checked: they stay.
        self._batches[key] = deque(batch for batch in self._batches[key] if batch.count)
        return lost

    async def _missing(self, client: Client, key: bytes, batches: list[_Batch]) -> list[_Batch]:
        """The ``batches`` whose last entry Redis no longer has."""
        async with client.pipeline(transaction=False) as pipe:
            lasts = [pipe.xrange(key, batch.last, batch.last) for batch in batches]
        return [batch for batch, last in zip(batches, lasts, strict=True) if not await last]

    def _owns(self, entry: Any) -> bool:
        return self._owner is None or entry.field_values.get(NODE) == self._owner


def _identifier(entry: Any) -> bytes:
    return _bytes(entry.identifier) or b"0-0"


def _bytes(value: object) -> bytes | None:
    if value is None:
        return None
    return value if isinstance(value, bytes) else str(value).encode()
