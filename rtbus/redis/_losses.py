"""What a consumer lost, found and reported: one place that counts, logs and calls ``on_lost``.

A consumer group can lose entries four ways, each found where it shows:

* ``trimmed`` -- ``XAUTOCLAIM`` names ids trimmed before the group acknowledged them;
  counted in ``rtbus_redis_trimmed_before_ack_total``.
* ``group_missing`` -- a command answers ``NOGROUP``: Redis lost the group (and the stream);
  counted in ``rtbus_redis_groups_recreated_total``.
* ``gap`` -- a session's ``seq`` jumped and the numbers between never came (``_gaps``);
  counted in ``rtbus_redis_consumer_lost_total``.
* ``restart``, ``deleted`` -- dead letters this consumer wrote are gone (``_ledger``);
  counted in ``rtbus_redis_lost_total``.

Invariants:

* Every loss is counted in a metric and reported once: to ``on_lost`` as a ``LostEntries``,
  or, without a callback, logged as a warning. None is passed over silently. (A ``seq_reset``
  -- a session's numbers starting again -- is reported too, with nothing counted: no entry
  was lost, but the numbers before it say nothing about what follows.)
* Gaps are counted only where they mean a loss: while the consumer reads every stream of a
  layout that routes every event type, and is the only live consumer of its group (checked at
  each full reclaim round, by ``XINFO CONSUMERS``). Otherwise the tracker is cleared: the
  missing numbers went to another stream, type filter or consumer.
* A hole is declared a gap only once every stream has been read to the end after it was
  found (a read that returned less than a full batch), at a reclaim round, and only if the
  consumer was alone at this round and the one before.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence

import attrs

from ._client import RedisLink
from ._errors import RedisCommandError
from ._gaps import Gap, SeqTracker
from ._layout import RedisEnvelope, StreamLayout
from ._ledger import Ledger
from ._metrics import GroupCounts, RedisMetrics

__all__ = ["ALL_STREAMS", "LossReporter", "LostEntries"]

_log = logging.getLogger("rtbus.redis")

#: The ``stream`` of a gap: a session's numbers run across every stream.
ALL_STREAMS = "*"
TRIMMED, GROUP_MISSING, GAP, SEQ_RESET = "trimmed", "group_missing", "gap", "seq_reset"


def _id_count(lost: LostEntries) -> int:
    return len(lost.entry_ids)


@attrs.frozen
class LostEntries:
    """Entries of ``stream`` that ``group`` will never get, and why (``reason``).

    * ``trimmed`` -- trimmed before the group acknowledged them; ``entry_ids`` names them.
    * ``group_missing`` -- Redis lost the group (a restart without persistence, a flush); it
      was made again. ``count`` is ``None``: what the group had not read is gone with it,
      and shows as gaps when the sessions publish again (and in the bridge's
      ``rtbus_redis_lost_total``).
    * ``gap`` -- ``count`` events of session ``session_id`` never came (``stream`` is
      ``"*"``); ``first_seq``/``last_seq`` bound them.
    * ``seq_reset`` -- session ``session_id``'s numbers started again (``count`` 0).
    * ``restart``/``deleted`` -- ``count`` dead letters this consumer wrote to ``stream``
      (the dead-letter stream) that Redis lost.
    """

    stream: str
    group: str
    entry_ids: tuple[str, ...] = ()
    reason: str = TRIMMED
    count: int | None = attrs.field(default=attrs.Factory(_id_count, takes_self=True))
    session_id: str | None = None
    first_seq: int | None = None
    last_seq: int | None = None


LostHandler = Callable[[LostEntries], object]


class LossReporter:
    """Finds and reports one consumer's losses (see the module's table)."""

    def __init__(
        self,
        layout: StreamLayout,
        keys: Sequence[bytes],
        *,
        group: str,
        consumer: str,
        on_lost: LostHandler | None,
        metrics: RedisMetrics,
    ) -> None:
        self._layout, self._keys = layout, tuple(keys)
        self._group, self._consumer = group, consumer
        self._on_lost, self._metrics = on_lost, metrics
        # Gaps mean something only if every event of a session can reach this consumer.
        self.tracking = layout.routes_everything and set(self._keys) == set(layout.names)
        self._seqs = SeqTracker()
        self._reads = 0
        self._caught_up = dict.fromkeys(self._keys, 0)  # key -> last read that emptied it
        self._was_alone = False
        dead_key = layout.dead_letter_key
        self.dead_letters = Ledger({dead_key: layout.dead_letter_name}, owner=None)
        self.counts = dict.fromkeys(("trimmed", "missed", "recreated", "dead_letters_lost"), 0)

    # -- what the consumer tells it ---------------------------------------------------------

    def read(self, counts: Mapping[bytes, int], batch: int) -> None:
        """A read (``XREADGROUP >``) returned ``counts`` entries per key."""
        self._reads += 1
        for key in self._keys:
            if counts.get(key, 0) < batch:
                self._caught_up[key] = self._reads

    def seen(self, entry: RedisEnvelope) -> Gap | None:
        """``entry`` is being handed out (or skipped by the filters); a ``seq_reset`` it
        shows is returned, for the caller to ``report_gap`` (a sync call: it runs per entry)."""
        if not self.tracking:
            return None
        # The current read, not the one that fetched it: later, so a hole waits longer.
        seqs, reads = self._seqs, self._reads
        return seqs.see(entry.node, entry.session_id, entry.seq, entry.published_at, reads)

    async def trimmed(self, key: bytes, ids: tuple[bytes, ...]) -> None:
        stream = self._layout.names[key]
        self.counts["trimmed"] += len(ids)
        self._group_counts(stream).trimmed_before_ack += len(ids)
        lost = LostEntries(stream, self._group, tuple(i.decode() for i in ids))
        await self._report(lost, f"{len(ids)} entries were trimmed before the group acked them")

    async def recreated(self, keys: Iterable[bytes]) -> None:
        """The group was gone from ``keys`` and has been made again."""
        for key in keys:
            stream = self._layout.names[key]
            self.counts["recreated"] += 1
            self._group_counts(stream).recreated += 1
            lost = LostEntries(stream, self._group, reason=GROUP_MISSING, count=None)
            await self._report(lost, "the group was gone (Redis lost it) and was made again")

    async def audit(self, alone: bool, link: RedisLink) -> None:
        """At a full reclaim round: settle gaps if this consumer was alone for a whole round,
        and report dead letters Redis lost."""
        if alone and self._was_alone:
            horizon = min(self._caught_up.values(), default=0)
            for gap in self._seqs.settle(horizon):
                await self.report_gap(gap)
        elif not alone:
            self._seqs.clear()  # the missing numbers went to the other consumers
        self._was_alone = alone
        if self.dead_letters.entries:
            try:
                losses = await self.dead_letters.check(link)
            except RedisCommandError as exc:  # refused (INFO renamed away): say so, go on
                _log.warning(
                    "redis consumer %s: cannot check dead letters: %s", self._consumer, exc
                )
                return
            for loss in losses:
                self.counts["dead_letters_lost"] += loss.count
                self._metrics.lost[loss.stream, loss.reason] += loss.count
                lost = LostEntries(loss.stream, self._group, reason=loss.reason, count=loss.count)
                await self._report(lost, f"{loss.count} dead letters it wrote are gone")

    # -- reporting --------------------------------------------------------------------------

    async def report_gap(self, gap: Gap) -> None:
        reason = SEQ_RESET if gap.reset else GAP
        if not gap.reset:
            self.counts["missed"] += gap.count
            self._group_counts(ALL_STREAMS).missed[GAP] += gap.count
        lost = LostEntries(
            ALL_STREAMS, self._group, reason=reason, count=gap.count, session_id=gap.session_id,
            first_seq=gap.first, last_seq=gap.last,
        )  # fmt: skip
        what = (
            f"session {gap.session_id}'s numbers started again at {gap.first}"
            if gap.reset
            else f"{gap.count} events of session {gap.session_id} never came "
            f"(seq {gap.first}..{gap.last})"
        )
        await self._report(lost, what)

    async def _report(self, lost: LostEntries, what: str) -> None:
        if self._on_lost is None:
            _log.warning(
                "redis consumer %s, group %s, stream %s: %s",
                self._consumer, self._group, lost.stream, what,
            )  # fmt: skip
            return
        result = self._on_lost(lost)
        if inspect.isawaitable(result):
            await result

    def _group_counts(self, stream: str) -> GroupCounts:
        return self._metrics.group_counts(stream, self._group)
