"""Who runs which session, and which nodes are alive: the claims and leases in Redis.

Invariants:

* A session id is claimed in ``{rtbus}:sessions`` (id -> node) and
  ``{rtbus}:sessions:requests`` (id -> the request that claimed it) together, by one script:
  a claim changes hands only from the owner the caller expected (nobody, or a dead node), so
  two nodes can never both believe they won it.
* A claim is released only by its owner (compare-and-delete), so a node that lost a claim to
  a takeover cannot release the new owner's.
* A node's lease (``{rtbus}:node:<node>``) holds a token unique to the process: a second
  process started with the same node id cannot renew it, and learns so instead of sharing
  the id. A lease that lapses (the node died, or lost Redis for longer than the lease) lets
  other nodes take its claims over.

Every command goes through the link (``RedisLink.call``), so errors come out mapped.
"""

from __future__ import annotations

from typing import cast

import attrs
import coredis
from coredis.commands.script import Script

from rtbus.redis import RedisLink

from ._placement_wire import ControlKeys

__all__ = ["Claim", "Claims"]

_Client = coredis.Redis[bytes]

# KEYS: sessions, requests. ARGV: id, node, request, the owner expected now ('' = nobody).
_CLAIM = """
local owner = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if owner == ARGV[4] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  return {ARGV[2], ARGV[3]}
end
return {owner, redis.call('HGET', KEYS[2], ARGV[1]) or ''}
"""

# KEYS: sessions, requests. ARGV: id, node.
_RELEASE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0
"""

# KEYS: lease. ARGV: token, ttl in milliseconds.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS: lease. ARGV: token.
_DROP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_SCRIPTS = {
    name: Script[bytes](None, text)
    for name, text in [("claim", _CLAIM), ("release", _RELEASE), ("renew", _RENEW), ("drop", _DROP)]
}


@attrs.frozen
class Claim:
    """Who holds a session id after a claim attempt, and for which request."""

    owner: str
    request: str


class Claims:
    """The claim and lease scripts, bound to one link and one key layout."""

    def __init__(self, link: RedisLink, keys: ControlKeys) -> None:
        self._link = link
        self._keys = keys

    async def claim(self, id: str, node: str, request: str, *, expected: str = "") -> Claim:
        """Make ``node`` the owner of ``id`` if ``expected`` owns it now ('' for nobody);
        return whoever owns it afterwards."""
        found = await self._run("claim", _hashes(self._keys), [id, node, request, expected])
        owner, held_for = cast(list[bytes], found)
        return Claim(_text(owner), _text(held_for))

    async def release(self, id: str, node: str) -> bool:
        """Drop ``node``'s claim on ``id``; ``False`` if ``node`` does not hold it."""
        return bool(await self._run("release", _hashes(self._keys), [id, node]))

    async def alive(self, node: str) -> bool:
        """Whether ``node`` holds a lease now."""
        key = self._keys.lease(node)
        return bool(await self._link.call("exists", lambda client: client.exists([key])))

    async def renew_lease(self, node: str, token: str, seconds: float) -> bool:
        """Take or extend ``node``'s lease; ``False`` if another process holds it."""
        args = [token, str(max(1, round(seconds * 1000)))]
        return bool(await self._run("renew", [self._keys.lease(node)], args))

    async def drop_lease(self, node: str, token: str) -> None:
        await self._run("drop", [self._keys.lease(node)], [token])

    async def _run(self, name: str, keys: list[str], args: list[str]) -> object:
        script = _SCRIPTS[name]

        async def run(client: _Client) -> object:
            return await script(keys=keys, args=args, client=client)

        return await self._link.call(f"placement.{name}", run)


def _hashes(keys: ControlKeys) -> list[str]:
    return [keys.sessions, keys.requests]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
