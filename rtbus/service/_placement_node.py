"""The node's side of placement: take requests from the control stream while there is room.

A node reads the control stream as consumer ``<node>`` of group ``nodes``, one entry at a
time and only while it runs fewer than ``max_sessions`` sessions (those being opened count),
so a full node leaves requests to the others. It claims the session id, opens the session
locally, then answers and acknowledges in one transaction, so a request is answered once
and acknowledged only with its answer.

What a claim attempt finds decides what happens (``_decide``); a request is idempotent by
session id:

* the claim is ours, for this request: already running here -> answer ``opened`` again (a
  re-delivery); else open it;
* ours, for another request: running (or opening) here -> ``duplicate_id``; else our claim
  is stale (the session ended) -> take it over and open;
* another live node's, for this request: that node is opening it and will answer -> just
  acknowledge; for another request -> ``duplicate_id``;
* a dead node's (its lease lapsed): the session died with it -> take over and open.

While a session opens, the node keeps its entry fresh (``XCLAIM`` to itself resets the idle
time), so only a silent node's requests are reclaimed (``XAUTOCLAIM``) by another.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Final, cast

import coredis
import trio
from coredis.response.types import StreamEntry

from rtbus.actors import ChildStartFailed, DuplicateChild, UnknownChild
from rtbus.protocol import ConfigError, ProtocolError, redact
from rtbus.redis import RedisError, RedisLink

from ._placement_claims import Claim, Claims
from ._placement_wire import (
    NODE_ID,
    ControlKeys,
    MalformedEntry,
    Outcome,
    PlacementReply,
    PlacementRequest,
    malformed_reply,
)

if TYPE_CHECKING:
    from ._placement_config import PlacementConfig
    from ._service import Service

__all__ = ["RequestTaker"]

_Client = coredis.Redis[bytes]
_MAX_MESSAGE = 300
# A reply stream outlives its requester's last request by this many request timeouts.
_REPLY_TTL_TIMEOUTS = 10
_REPLY_MAXLEN = 1000

#: Why an open failed -> the outcome to answer; the first class in the exception's MRO wins.
_REFUSALS: Final[Mapping[type[BaseException], Outcome]] = {
    DuplicateChild: Outcome.DUPLICATE,
    ChildStartFailed: Outcome.START_FAILED,
    ConfigError: Outcome.INVALID,
    ProtocolError: Outcome.INVALID,
    trio.ClosedResourceError: Outcome.NOT_RUNNING,
}


class _LeavePending(Exception):
    """Handling stopped without an answer: the entry stays pending for another node."""


class RequestTaker:
    """Reads the control stream for one node and opens the sessions it takes."""

    def __init__(
        self,
        service: Service,
        link: RedisLink,
        keys: ControlKeys,
        config: PlacementConfig,
        counts: Counter[str],
    ) -> None:
        self._service = service
        self._link = link
        self._keys = keys
        self._config = config
        self._node = config.node
        self._claims = Claims(link, keys)
        self._counts = counts
        self._in_flight: dict[str, str | None] = {}  # entry id -> session id it opens
        self._placed: dict[str, str] = {}  # session id -> the request that placed it here
        self._cursor = "0-0"
        self.lease_held = False
        self.lease_conflict = False  # another live process holds our node id

    # -- room ----------------------------------------------------------------------------

    def room(self) -> int:
        """How many more sessions this node takes now (0 while draining or without a lease)."""
        live = self._live()
        if not self.lease_held or self._service.draining or live is None:
            return 0  # (a tree that is down is readiness's to report)
        busy = live | {id for id in self._in_flight.values() if id is not None}
        unnamed = sum(1 for id in self._in_flight.values() if id is None)
        return max(0, self._config.max_sessions - len(busy) - unnamed)

    @property
    def opening(self) -> int:
        return len(self._in_flight)

    # -- loops (each raises RedisError for the caller's backoff) -----------------------------

    async def ensure_group(self) -> None:
        """Create the control stream and group if Redis has neither (a fresh or wiped Redis).

        From id 0: a request made before any node started is still served (its deadline
        guards against serving a stale one).
        """

        async def create(client: _Client) -> None:
            with contextlib.suppress(coredis.exceptions.StreamDuplicateConsumerGroupError):
                await client.xgroup_create(
                    self._keys.control, self._keys.group, identifier="0", mkstream=True
                )

        await self._link.call("xgroup_create", create)

    async def take(self, nursery: trio.Nursery) -> None:
        """Read one new request whenever there is room, and start handling it."""
        await self.ensure_group()
        poll = self._config.poll_seconds
        read = functools.partial(_read_new, self._keys, self._node, round(poll * 1000))
        while True:
            if self.room() <= 0:
                await trio.sleep(poll)
                continue
            for entry in await self._link.call("xreadgroup", read, wait=poll):
                self._start(nursery, entry)

    async def reclaim(self, nursery: trio.Nursery) -> None:
        """Take over requests left pending by silent nodes, as many as there is room for."""
        await self.ensure_group()
        idle = self._config.reclaim_idle
        while True:
            await trio.sleep(idle / 2)
            room = self.room()
            if room > 0:
                for entry in await self._reclaim_some(room, round(idle * 1000)):
                    self._start(nursery, entry)

    async def keep_lease(self, token: str) -> None:
        """Hold this node's lease for as long as the node runs."""
        while True:
            held = await self._claims.renew_lease(self._node, token, self._config.lease_seconds)
            if self.lease_held and not held:
                self._counts["lease_lost"] += 1
            self.lease_held, self.lease_conflict = held, not held
            await trio.sleep(self._config.lease_seconds / 3)

    async def keep_claims(self) -> None:
        """Free the ids of sessions that ended here, and claim again the ones still running
        (after Redis lost its data, the registry must learn them anew)."""
        while True:
            await trio.sleep(self._config.lease_seconds / 3)
            await self.release_claims(only_ended=True)
            for id, request in list(self._placed.items()):
                await self._claims.claim(id, self._node, request)

    async def release_claims(self, *, only_ended: bool) -> None:
        live = self._live() or set()
        opening = {id for id in self._in_flight.values() if id is not None}
        for id in list(self._placed):
            if only_ended and (id in live or id in opening):
                continue
            await self._claims.release(id, self._node)
            self._placed.pop(id, None)

    async def drop_lease(self, token: str) -> None:
        self.lease_held = False
        await self._claims.drop_lease(self._node, token)

    # -- one request ---------------------------------------------------------------------

    def _start(self, nursery: trio.Nursery, entry: StreamEntry) -> None:
        entry_id, fields = entry_parts(entry)
        if entry_id in self._in_flight:
            return  # already being handled here (a reclaim of our own slow entry)
        try:
            request: PlacementRequest | MalformedEntry = PlacementRequest.from_fields(fields)
        except MalformedEntry as exc:
            request = exc
        named = request.session_id if isinstance(request, PlacementRequest) else None
        self._in_flight[entry_id] = named
        nursery.start_soon(self._handle, entry_id, request, fields)

    async def _handle(
        self,
        entry_id: str,
        request: PlacementRequest | MalformedEntry,
        fields: Mapping[bytes, bytes],
    ) -> None:
        try:
            if isinstance(request, MalformedEntry):
                self._counts["malformed"] += 1
                await self._refuse_malformed(entry_id, request, fields)
                return
            async with self._kept_fresh(entry_id):
                reply = await self._serve(request)
            await self._answer(entry_id, request.reply_to, reply)
        except (_LeavePending, RedisError):
            pass  # still pending: handled again by whichever node reclaims it
        finally:
            del self._in_flight[entry_id]

    async def _refuse_malformed(
        self, entry_id: str, problem: MalformedEntry, fields: Mapping[bytes, bytes]
    ) -> None:
        """Answer ``invalid_request`` when the entry says whom to answer; else just ack it."""
        reply = malformed_reply(fields, self._node, str(problem))
        reply_to = fields.get(b"reply_to", b"").decode(errors="replace")
        await self._answer(entry_id, reply_to, reply if NODE_ID.fullmatch(reply_to) else None)

    async def _serve(self, request: PlacementRequest) -> PlacementReply | None:
        if _past(request):
            return _reply(
                request, self._node, Outcome.EXPIRED, "the request timed out before a node took it"
            )
        if self._service.draining:
            raise _LeavePending  # another node will reclaim it
        claim = await self._claims.claim(request.session_id, self._node, request.request)
        return await self._decide(request, claim)

    async def _decide(self, request: PlacementRequest, claim: Claim) -> PlacementReply | None:
        id, mine = request.session_id, claim.owner == self._node
        same = claim.request == request.request
        running, opening = id in (self._live() or ()), self._opening_elsewhere(id)
        if mine and same:
            if running:
                return _reply(request, self._node, Outcome.OPENED)  # a re-delivery
            return None if opening else await self._open(request)
        if mine:
            running_here = running or opening
            return (
                self._duplicate(request) if running_here else await self._take_over(request, claim)
            )
        if await self._claims.alive(claim.owner):
            return None if same else self._duplicate(request)
        return await self._take_over(request, claim)

    async def _take_over(self, request: PlacementRequest, claim: Claim) -> PlacementReply | None:
        id = request.session_id
        now = await self._claims.claim(id, self._node, request.request, expected=claim.owner)
        if now.owner != self._node:
            return self._duplicate(request)  # another node took it over first
        self._counts["taken_over"] += 1
        return await self._open(request)

    async def _open(self, request: PlacementRequest) -> PlacementReply:
        id = request.session_id
        try:
            await self._service.open_session(model=request.model, session=request.session, id=id)
        except Exception as exc:
            outcome = _refusal(exc)
            if outcome is Outcome.DUPLICATE:
                self._placed[id] = request.request  # it runs here: the claim is right, for now
            else:
                await self._claims.release(id, self._node)
            return _reply(request, self._node, outcome, self._why(exc))
        self._placed[id] = request.request
        if _past(request):
            # Nobody waits for it any more: a session nobody knows of must not run.
            await self._service.close_session(id)
            return _reply(
                request,
                self._node,
                Outcome.EXPIRED,
                "the session was ready after the request timed out",
            )
        self._counts["opened"] += 1
        return _reply(request, self._node, Outcome.OPENED)

    def _duplicate(self, request: PlacementRequest) -> PlacementReply:
        message = f"a session with id {request.session_id!r} exists"
        return _reply(request, self._node, Outcome.DUPLICATE, message)

    async def _answer(self, entry_id: str, reply_to: str, reply: PlacementReply | None) -> None:
        """Answer (unless ``reply`` is ``None``) and retire the request, all or nothing.

        A retired request is deleted as well as acknowledged: the control stream then holds
        exactly the requests nobody has answered yet.
        """
        if reply is not None and reply.outcome is not Outcome.OPENED:
            self._counts[f"refused.{reply.outcome.value}"] += 1
        key, keys = self._keys.replies(reply_to), self._keys
        ttl = max(1, round(self._config.request_timeout * _REPLY_TTL_TIMEOUTS))

        async def answer(client: _Client) -> None:
            async with client.pipeline(transaction=True) as pipe:
                if reply is not None:
                    pipe.xadd(
                        key,
                        reply.fields(),
                        trim_strategy=coredis.PureToken.MAXLEN,
                        trim_operator=coredis.PureToken.APPROXIMATELY,
                        threshold=_REPLY_MAXLEN,
                    )
                    pipe.expire(key, ttl)
                pipe.xack(keys.control, keys.group, [entry_id])
                pipe.xdel(keys.control, [entry_id])

        await self._link.call("placement.answer", answer)

    @contextlib.asynccontextmanager
    async def _kept_fresh(self, entry_id: str) -> AsyncIterator[None]:
        """Keep ``entry_id`` from looking abandoned while this node works on it."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._touch, entry_id)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()

    async def _touch(self, entry_id: str) -> None:
        keys, node = self._keys, self._node
        while True:
            await trio.sleep(self._config.reclaim_idle / 3)
            with contextlib.suppress(RedisError):  # a missed touch only risks a reclaim
                await self._link.call(
                    "xclaim",
                    lambda client: client.xclaim(
                        keys.control, keys.group, node, 0, [entry_id], justid=True
                    ),
                )

    async def _reclaim_some(self, room: int, idle_ms: int) -> list[StreamEntry]:
        keys, node, cursor = self._keys, self._node, self._cursor
        result: Any = await self._link.call(
            "xautoclaim",
            lambda client: client.xautoclaim(
                keys.control, keys.group, node, idle_ms, cursor, count=room
            ),
        )
        self._cursor = result[0].decode()
        entries = [entry for entry in result[1] if entry.field_values]
        # Gone before anyone handled them: withdrawn by a caller that stopped waiting.
        # Redis 7 lists (and un-pends) them; 6.2 hands them back without fields.
        gone = [entry.identifier for entry in result[1] if not entry.field_values]
        if gone:
            await self._link.call(
                "xack", lambda client: client.xack(keys.control, keys.group, gone)
            )
        self._counts["withdrawn"] += len(gone) + (len(result[2]) if len(result) > 2 else 0)
        self._counts["reclaimed"] += len(entries)
        return entries

    def _live(self) -> set[str] | None:
        """The sessions running here, or ``None`` when the service's tree is down."""
        try:
            return set(self._service.sessions)
        except (trio.ClosedResourceError, UnknownChild):
            return None

    def _opening_elsewhere(self, id: str) -> bool:
        # Another of this node's handlers opens the same id (this one is counted too).
        return sum(1 for opening in self._in_flight.values() if opening == id) > 1

    def _why(self, exc: BaseException) -> str:
        """What went wrong, for the caller: the root cause's text, the upstream's secrets out."""
        if not isinstance(exc, tuple(_REFUSALS)):
            return f"the session could not start ({type(exc).__name__})"
        cause = exc.__cause__ if isinstance(exc, ChildStartFailed) and exc.__cause__ else exc
        upstream = self._service.config.upstream
        secrets = [s for name in ("api_key", "ad_token") if (s := getattr(upstream, name, None))]
        return redact(str(cause), secrets)[:_MAX_MESSAGE]


async def _read_new(
    keys: ControlKeys, node: str, block_ms: int, client: _Client
) -> tuple[StreamEntry, ...]:
    found = await client.xreadgroup(keys.group, node, {keys.control: ">"}, count=1, block=block_ms)
    return () if not found else next(iter(found.values()))


def entry_parts(entry: StreamEntry) -> tuple[str, Mapping[bytes, bytes]]:
    """An entry's id as text and its fields as bytes (the client never decodes responses)."""
    return _text(entry.identifier), cast(Mapping[bytes, bytes], entry.field_values)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _refusal(exc: BaseException) -> Outcome:
    for kind in type(exc).__mro__:
        if kind in _REFUSALS:
            return _REFUSALS[kind]
    return Outcome.START_FAILED


def _past(request: PlacementRequest) -> bool:
    return time.time() * 1000 > request.deadline_ms


def _reply(
    request: PlacementRequest, node: str, outcome: Outcome, message: str = ""
) -> PlacementReply:
    return PlacementReply(
        request=request.request,
        session_id=request.session_id,
        node=node,
        outcome=outcome,
        message=message,
    )
