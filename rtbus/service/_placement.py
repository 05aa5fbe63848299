"""Sessions opened on whichever service has room: a control stream in Redis shared by nodes.

    caller (any node)                      Redis                        nodes (group "nodes")
    open_session(...) -- XADD request -->  {rtbus}:control  -- XREADGROUP COUNT 1, only with room
                                                                   claim id, open locally,
    <-- XREAD its reply stream --------- {rtbus}:control:replies:<caller>  <-- answer, XACK, XDEL

Every service that runs a ``Placement`` is both: it sends requests and takes them. A request
no node answers within ``request_timeout`` is a ``PlacementTimeout`` for the caller (the
request is withdrawn, and carries its deadline, so a node never opens it late); a refusal is
``DuplicateChild`` (the id runs somewhere already) or ``PlacementRefused`` (the node could not
open it, and says why, without secrets); Redis unreachable is the link's
``RedisUnavailableError``. Redis going away never stops the service: the loops back off and
retry, the node's sessions keep running, and readiness says ``redis`` is down meanwhile.

Requests left pending by a node that died are reclaimed by another (see ``_placement_node``);
a session id is placed at most once at a time (see ``_placement_claims``).
"""

from __future__ import annotations

import functools
import math
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import anyio
import coredis
import trio

from rtbus.actors import DuplicateChild, UnknownChild
from rtbus.redis import GroupMissingError, RedisConfig, RedisError, RedisLink, open_link

from ._placement_config import (
    COUNTS,
    PlacementConfig,
    PlacementError,
    PlacementRefused,
    PlacementStatistics,
    PlacementTimeout,
)
from ._placement_node import RequestTaker
from ._placement_wire import (
    ControlKeys,
    MalformedEntry,
    Outcome,
    PlacedSession,
    PlacementReply,
    PlacementRequest,
    check_options,
    check_session_id,
)
from ._service import _new_id

if TYPE_CHECKING:
    from rtbus.session import Session

    from ._service import Service

__all__ = [
    "Placement",
    "PlacementConfig",
    "PlacementError",
    "PlacementRefused",
    "PlacementStatistics",
    "PlacementTimeout",
    "open_placement",
    "run_placement",
]

_Client = coredis.Redis[bytes]
_CONTROL_MAXLEN = 10_000
# What a command raises when Redis, or the client's own connection tasks, are gone.
_GONE: Final = (RedisError, anyio.ClosedResourceError)
_READ_COUNT = 100


class _Answers:
    """Callers waiting for their answers, by request id."""

    def __init__(self) -> None:
        self._waiting: dict[str, trio.MemorySendChannel[PlacementReply]] = {}

    def expect(self, request: str) -> trio.MemoryReceiveChannel[PlacementReply]:
        send, receive = trio.open_memory_channel[PlacementReply](1)
        self._waiting[request] = send
        return receive

    def forget(self, request: str) -> None:
        self._waiting.pop(request, None)

    def deliver(self, reply: PlacementReply) -> None:
        waiter = self._waiting.pop(reply.request, None)
        if waiter is not None:  # else: an answer to a caller that gave up, or a repeat
            waiter.send_nowait(reply)


class Placement:
    """One node's placement: open sessions wherever there is room, and take requests here.

    Made and run by ``open_placement``; a service that runs one offers it as
    ``service.placement`` and ``service.place_session`` uses it.
    """

    def __init__(self, service: Service, link: RedisLink, config: PlacementConfig) -> None:
        self._service = service
        self._link = link
        self._config = config
        self._keys = ControlKeys(link.config.prefix)
        self._counts: Counter[str] = Counter(dict.fromkeys(COUNTS, 0))
        self._taker = RequestTaker(service, link, self._keys, config, self._counts)
        self._answers = _Answers()
        self._last_answer = "0-0"
        self._running = False
        self._problem: str | None = None

    def __repr__(self) -> str:
        return f"<Placement node={self._config.node!r} running={self._running}>"

    @property
    def node(self) -> str:
        return self._config.node

    async def open_session(
        self,
        *,
        model: str | None = None,
        session: Mapping[str, Any] | None = None,
        id: str | None = None,
    ) -> PlacedSession:
        """Open a session on whichever node has room (maybe this one); returns where.

        Raises ``ValueError``/``TypeError`` for a bad argument (nothing is sent),
        ``DuplicateChild`` if ``id`` runs on a live node, ``PlacementRefused`` if the node
        could not open it, ``PlacementTimeout`` if no node did in time,
        ``RedisUnavailableError`` if Redis cannot be reached, and ``trio.ClosedResourceError``
        when placement is not running.
        """
        check_options(model, session)
        session_id = check_session_id(id) if id is not None else _new_id("sess")
        if not self._running:
            raise trio.ClosedResourceError("placement is not running")
        request = PlacementRequest(
            request=secrets.token_hex(8),
            reply_to=self.node,
            session_id=session_id,
            deadline_ms=math.ceil((time.time() + self._config.request_timeout) * 1000),
            model=model,
            session=None if session is None else dict(session),
        )
        return self._outcome(await self._request(request))

    def statistics(self) -> PlacementStatistics:
        return PlacementStatistics(
            node=self.node,
            max_sessions=self._config.max_sessions,
            room=self._taker.room(),
            opening=self._taker.opening,
            lease_held=self._taker.lease_held,
            redis_up=self._link.up,
            counts=MappingProxyType(dict(self._counts)),
        )

    def readiness_problem(self) -> str | None:
        """``None`` while this node takes part in placement; else why not (for ``/readyz``)."""
        if not self._running:
            return "placement is not running"
        if not self._link.up:
            return f"redis at {self._link.config.location} is unreachable"
        if self._taker.lease_conflict:
            return f"node id {self.node!r} is in use by another live process"
        if self._problem is not None:
            return self._problem
        return None

    # -- the caller's side -----------------------------------------------------------------

    async def _request(self, request: PlacementRequest) -> PlacementReply:
        timeout = self._config.request_timeout
        answer = self._answers.expect(request.request)
        entry_id: str | None = None
        try:
            with trio.move_on_after(timeout):
                entry_id = await self._send(request)
                self._counts["requested"] += 1
                return await answer.receive()
        finally:
            self._answers.forget(request.request)
        await self._withdraw(entry_id)
        self._counts["timeouts"] += 1
        raise PlacementTimeout(request.session_id, timeout)

    async def _send(self, request: PlacementRequest) -> str:
        key, fields = self._keys.control, request.fields()

        async def add(client: _Client) -> str:
            entry_id = await client.xadd(
                key,
                fields,
                trim_strategy=coredis.PureToken.MAXLEN,
                trim_operator=coredis.PureToken.APPROXIMATELY,
                threshold=_CONTROL_MAXLEN,
            )
            return _text(entry_id)

        return await self._link.call("xadd", add)

    async def _withdraw(self, entry_id: str | None) -> None:
        """Take back a request nobody answered: a node reading it later finds it gone."""
        if entry_id is None:
            return
        key = self._keys.control
        with suppress(RedisError), trio.CancelScope(shield=True):
            await self._link.call("xdel", lambda client: client.xdel(key, [entry_id]))

    def _outcome(self, reply: PlacementReply) -> PlacedSession:
        if reply.outcome is Outcome.OPENED:
            local = self._local(reply.session_id) if reply.node == self.node else None
            return PlacedSession(reply.session_id, reply.node, local)
        refusal = _REFUSALS.get(reply.outcome, _refused)
        raise refusal(reply, self._config.request_timeout)

    def _local(self, id: str) -> Session | None:
        with suppress(trio.ClosedResourceError, UnknownChild):
            return self._service.sessions.get(id)
        return None  # the tree went down since it opened

    async def _read_answers(self) -> None:
        key, poll = self._keys.replies(self.node), self._config.poll_seconds
        while True:
            read = functools.partial(_read_after, key, round(poll * 1000))
            for entry in await self._link.call("xread", read(self._last_answer), wait=poll):
                self._last_answer = _text(entry.identifier)
                with suppress(MalformedEntry):  # not ours to judge: a stranger wrote it
                    self._answers.deliver(PlacementReply.from_fields(entry.field_values))

    # -- running ---------------------------------------------------------------------------

    async def _run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        token = secrets.token_hex(8)
        taker = self._taker
        loops: list[Callable[[trio.Nursery], Awaitable[None]]] = [
            lambda _: taker.keep_lease(token),
            lambda _: self._read_answers(),
            taker.take,
            taker.reclaim,
            lambda _: taker.keep_claims(),
        ]
        try:
            async with trio.open_nursery() as nursery:
                for loop in loops:
                    nursery.start_soon(self._resilient, loop, nursery)
                self._running = True
                task_status.started()
        finally:
            self._running = False
            await self._let_go(token)

    async def _resilient(
        self, loop: Callable[[trio.Nursery], Awaitable[None]], nursery: trio.Nursery
    ) -> None:
        """Run ``loop`` forever: Redis errors only pause it (with backoff) and say so."""
        while True:
            try:
                await loop(nursery)
            except GroupMissingError:
                self._problem = None  # Redis lost its data: the loop makes the group again
            except RedisError as exc:
                self._problem = str(exc)
                await self._pause()

    async def _pause(self) -> None:
        try:
            await self._link.pause()
            self._problem = None
        except RedisError as exc:
            # Refused (a wrong password, too old a server): retrying soon will not help.
            self._problem = str(exc)
            await trio.sleep(self._link.config.backoff.max_delay)

    async def _let_go(self, token: str) -> None:
        """On the way out: free our claims and our lease, so the ids and the node id are
        free at once rather than when the lease lapses.

        Best effort: when the link is being torn down with us (cancelled from outside), the
        lease lapses by itself and other nodes take the claims over then.
        """
        shielded = trio.CancelScope(shield=True)
        with shielded, trio.move_on_after(self._config.poll_seconds * 2), suppress(*_GONE):
            await self._taker.release_claims(only_ended=False)
            await self._taker.drop_lease(token)


@asynccontextmanager
async def open_placement(
    service: Service, link: RedisLink, config: PlacementConfig
) -> AsyncIterator[Placement]:
    """Run placement for ``service`` over ``link`` for the body of the ``async with``.

    Plugs the ``redis`` readiness check into the service (raises ``ValueError`` if the name
    is taken, before anything starts) and sets ``service.placement`` while it runs. It does
    not wait for Redis: with Redis down, the service runs and readiness says why. Leaving it
    gives back this node's claims and lease, so run it for the whole life of the service.
    """
    placement = Placement(service, link, config)
    service.add_readiness_check(config.readiness_check, placement.readiness_problem)
    async with trio.open_nursery() as nursery:
        await nursery.start(placement._run)
        service.placement = placement
        try:
            yield placement
        finally:
            service.placement = None
            nursery.cancel_scope.cancel()


async def run_placement(
    service: Service,
    redis: RedisConfig,
    config: PlacementConfig,
    *,
    task_status: trio.TaskStatus[Placement] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run placement for ``service`` on its own link to ``redis`` until cancelled.

    The nursery start protocol gives the ``Placement`` as soon as it runs, before Redis
    answers (``open_placement`` says what it does).
    """
    async with open_link(redis) as link, open_placement(service, link, config) as placement:
        task_status.started(placement)
        await trio.sleep_forever()


def _refused(reply: PlacementReply, timeout: float) -> Exception:
    return PlacementRefused(reply.session_id, reply.outcome, reply.node, reply.message)


#: Refusals the caller knows by another name; every other one is ``PlacementRefused``.
_REFUSALS: Final[Mapping[Outcome, Callable[[PlacementReply, float], Exception]]] = {
    Outcome.DUPLICATE: lambda reply, timeout: DuplicateChild(reply.session_id),
    Outcome.EXPIRED: lambda reply, timeout: PlacementTimeout(reply.session_id, timeout),
}


def _read_after(
    key: str, block_ms: int, last: str
) -> Callable[[_Client], Awaitable[tuple[Any, ...]]]:
    async def read(client: _Client) -> tuple[Any, ...]:
        found = await client.xread({key: last}, count=_READ_COUNT, block=block_ms)
        return () if not found else next(iter(found.values()))

    return read


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
