"""A batch of stream entries written by one Lua script call: the bridge's one way to write.

Why a script and not a pipeline of ``XADD``: coredis spends about 20 us of Python on each
command it sends (argument validation, a request object, the response bookkeeping), so a
pipelined batch costs that per entry. One ``EVALSHA`` carrying the whole batch costs it
once, plus about 4 us per entry to serialise the arguments: ``python -m bench bench_redis``
has the figures. Redis pays for it instead (about twice the CPU per entry of a plain
``XADD``: the arguments go through Lua), on its own core.

Invariants:

* The script adds every entry of the batch, in order, each ``XADD`` with the batch's trim
  arguments (``MAXLEN ~`` or ``MINID ~``), and returns their ids in the same order: each id
  is handed back with its key, for the ledger.
* The fields of every entry are ``ENTRY_FIELDS``, in that order, exactly as
  ``encode_entry`` makes them: the script takes the names once and the values per entry.
* Every key the script writes is passed in ``KEYS``; they share the prefix's hash tag, so
  a batch is one Redis Cluster slot.
* A script runs atomically, but one that fails part-way (a key of the wrong type, Redis out
  of memory) keeps the entries it added before the failure; so does one whose reply is lost
  with the connection. Either way the caller writes the batch again whole: at-least-once.
* The script is called by its SHA1 (``EVALSHA``). Redis's script cache is empty after a
  restart, a failover or ``SCRIPT FLUSH``: on ``NOSCRIPT`` the batch is sent again with the
  script's text (``EVAL``), which runs it and caches it, within the same command timeout.
  ``NOSCRIPT`` means nothing ran, so this writes nothing twice.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence

import coredis.exceptions

from ._client import Client
from ._config import RedisConfig, TrimStrategy
from ._layout import ENTRY_FIELDS

__all__ = ["SCRIPT", "BatchWriter", "Entry"]

#: A stream key and its field values, in ``ENTRY_FIELDS`` order.
Entry = tuple[bytes, Sequence[bytes]]

#: ARGV: the trim strategy, its threshold, the number of fields n, the n field names; then
#: per entry the index of its key in KEYS and its n values. Returns the ids, in order.
SCRIPT = b"""
local strategy, threshold, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local fields, ids = {}, {}
for i = 1, n do fields[2 * i - 1] = ARGV[3 + i] end
for at = 4 + n, #ARGV, n + 1 do
  for i = 1, n do fields[2 * i] = ARGV[at + i] end
  ids[#ids + 1] = redis.call(
    'XADD', KEYS[tonumber(ARGV[at])], strategy, '~', threshold, '*', unpack(fields))
end
return ids
"""
_SHA = hashlib.sha1(SCRIPT).hexdigest()


class BatchWriter:
    """Writes batches of entries to the streams ``keys`` with ``config``'s trimming."""

    def __init__(self, config: RedisConfig, keys: Sequence[bytes]) -> None:
        self._config = config
        self._keys = list(keys)
        self._index: Mapping[bytes, bytes] = {
            key: b"%d" % number for number, key in enumerate(self._keys, start=1)
        }
        self._strategy = config.trim.value.upper().encode()
        self._head = (b"%d" % len(ENTRY_FIELDS), *ENTRY_FIELDS)

    async def write(self, entries: Sequence[Entry], client: Client) -> list[tuple[bytes, bytes]]:
        """Add ``entries`` in one round trip; return ``(key, id)`` for each, in order."""
        args = [self._strategy, self._threshold(), *self._head]
        for key, values in entries:
            args.append(self._index[key])
            args.extend(values)
        reply = await _run(client, self._keys, args)
        if not isinstance(reply, list) or len(reply) != len(entries):
            raise coredis.exceptions.ResponseError(
                f"the batch script answered {type(reply).__name__}, not {len(entries)} ids"
            )
        return [(key, bytes(entry_id)) for (key, _), entry_id in zip(entries, reply, strict=True)]

    def _threshold(self) -> bytes:
        """``maxlen``, or the oldest id ``retention_seconds`` keeps (``MINID``)."""
        if self._config.trim is TrimStrategy.MINID:
            oldest_ms = int((time.time() - self._config.retention_seconds) * 1000)
            return b"%d-0" % max(oldest_ms, 0)
        return b"%d" % self._config.maxlen


async def _run(client: Client, keys: Sequence[bytes], args: Sequence[bytes]) -> object:
    """``EVALSHA``, or ``EVAL`` when Redis does not have the script (``NOSCRIPT``).

    Not coredis's ``Script``: its reload (``SCRIPT LOAD`` in a retry hook) swallows the
    hook's own errors, so after a Redis restart a load that met a stale connection ends in
    ``NOSCRIPT`` raised as if the setup were wrong; and it wraps the request twice more,
    each copy walking every argument again (~1.5 us per entry more, measured).
    """
    try:
        return await client.evalsha(_SHA, keys, args)
    except coredis.exceptions.NoScriptError:
        return await client.eval(SCRIPT, keys, args)
