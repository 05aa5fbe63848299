"""The bus client: a service's bus, sessions and events from another process, over the gateway.

```python
async with rtbus.connect("ws://127.0.0.1:9464/v1/bus", token=token) as bus:
    async with bus.subscribe(types=["response.*"], overflow="drop_oldest") as sub:
        async for envelope in sub:
            ...
    session = await bus.open_session(model="gpt-realtime")
    await session.send({"type": "response.create"})
```

Invariants:

* One connection at a time. While it is down, requests wait for the next one; a request
  whose answer was lost with the connection raises ``GatewayConnectionError`` (it may or may
  not have been carried out). Subscriptions outlive connections: each new connection
  registers every open one again, and its subscriber learns what it missed
  (``_remote_subscription``).
* Reconnects back off with ``rtbus._backoff`` (exponential, jittered, reset after a stable
  run). A close with 1008 (the token) or 1002 (the version) is not retried: it fails the bus,
  every subscription and every waiting request with the server's reason, even when the close
  came before the client could say hello.
* A connection ends for the first reason seen: the server's close, or a ping unanswered for
  ``pong_timeout`` (a half-open connection, which would never say so otherwise).
* One reading task per connection turns frames into answers and buffered events, and never
  waits on a subscriber; one writing task sends registrations and credit, so ``subscribe``
  and reading stay synchronous and cheap. A request first sends what was queued before it,
  so it follows the unsubscribes, registrations and credit queued before it.
* The token goes in the ``Authorization`` header only (``_remote_link``).
"""

from __future__ import annotations

import itertools
import logging
import random
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

import attrs
import orjson
import trio

from rtbus._backoff import Backoff, BackoffState
from rtbus.bus import (
    OverflowPolicy,
    check_maxsize,
    checked_timeout,
    parse_policy,
    parse_sessions,
    parse_types,
)
from rtbus.protocol import (
    ClientEvent,
    ConnectionClosedError,
    ErrorDetails,
    EventOutcome,
    decode_server_event,
    encode,
)
from rtbus.transport import ConnectOptions, ConnectTarget, Wire

from ._frames import (
    ErrorFrame,
    EventFrame,
    RefusedFrame,
    ResultFrame,
    parse_server_frames,
)
from ._link import (
    GatewayConnectionError,
    GatewayError,
    auth_headers,
    closed_error,
    gateway_url,
    lost_error,
    open_link,
    ping_until_stalled,
    quiet_nursery,
)
from ._subscription import GatewayReconnected, RemoteSubscription
from ._wire import (
    PROTOCOL_VERSION,
    CloseSession,
    Credit,
    ErrorCode,
    HangupCall,
    Hello,
    ListCalls,
    ListSessions,
    OpenSession,
    ReferCall,
    Request,
    Send,
    Subscribe,
    Unsubscribe,
    WireError,
    encode_request,
)

__all__ = [
    "RefusalHandler",
    "RemoteBus",
    "RemoteSession",
    "connect",
]

logger = logging.getLogger("rtbus.bus.remote")

RefusalHandler = Callable[[ErrorDetails], object]
"""Takes the upstream's error about an event this client sent (``RemoteBus.send``)."""
# Sends whose refusal handler is kept, newest first out last.
_REFUSALS_KEPT: Final = 1024

_MIB: Final = 1024 * 1024
# Bytes per socket read: the service sends messages of up to about 128 KiB, and one read
# that takes a whole one spares the Wire joining it from pieces. Against 64 KiB, an audio
# delta cost the client 1 us less (12.1-12.4 us against 13.3-13.4, bench_gateway).
_RECEIVE_SIZE: Final = 256 * 1024


@attrs.frozen
class RemoteSession:
    """A session of the remote service, as the service described it when asked."""

    id: str
    model: str | None
    state: str
    _bus: RemoteBus = attrs.field(repr=False, eq=False, alias="bus")

    async def send(
        self, event: ClientEvent | Mapping[str, Any], *, on_refused: RefusalHandler | None = None
    ) -> str:
        """Send a client event to this session (see ``RemoteBus.send``)."""
        return await self._bus.send(self.id, event, on_refused=on_refused)

    async def submit(
        self, event: ClientEvent | Mapping[str, Any], *, within: float
    ) -> EventOutcome:
        """Send a client event and wait for its outcome (see ``RemoteBus.submit``)."""
        return await self._bus.submit(self.id, event, within=within)

    async def close(self) -> None:
        """Close this session gracefully (see ``RemoteBus.close_session``)."""
        await self._bus.close_session(self.id)


@attrs.define(eq=False)
class _Pending:
    """A request waiting for its answer; ``on_answer`` runs in the reading task if set."""

    on_answer: Callable[[ResultFrame | ErrorFrame], None] | None = None
    done: trio.Event = attrs.Factory(trio.Event)
    answer: ResultFrame | ErrorFrame | None = None
    lost: BaseException | None = None

    def settle(self, frame: ResultFrame | ErrorFrame) -> None:
        self.answer = frame
        if self.on_answer is not None:
            self.on_answer(frame)
        self.done.set()

    def lose(self, failure: BaseException) -> None:
        self.lost = failure
        self.done.set()

    def unwrap(self) -> Any:
        if isinstance(self.answer, ResultFrame):
            return self.answer.result
        if isinstance(self.answer, ErrorFrame):
            raise GatewayError(self.answer.code, self.answer.message)
        assert self.lost is not None
        raise self.lost


class RemoteBus(trio.abc.AsyncResource):
    """A remote service's bus and sessions; made by ``connect``, which runs it."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        backoff: Backoff,
        connect_timeout: float,
        max_message_size: int,
        keepalive_interval: float | None,
        pong_timeout: float,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url
        self._target = ConnectTarget(url, auth_headers(token))
        self._options = ConnectOptions(
            connect_timeout=connect_timeout,
            close_timeout=connect_timeout,
            max_message_size=max_message_size,
            keepalive_interval=keepalive_interval,
            pong_timeout=pong_timeout,
            receive_buffer_size=_RECEIVE_SIZE,
        )
        self._backoff = backoff
        self._rng = rng or random.Random()
        self._ids = itertools.count(1)
        self._subscriptions: dict[str, RemoteSubscription] = {}
        self._pending: dict[int, _Pending] = {}
        self._refusals: OrderedDict[int, RefusalHandler] = OrderedDict()
        self._link: Wire | None = None
        self._link_changed = trio.Event()
        self._links = self._attempts = 0
        self._up_at: float | None = None
        self._down_since = trio.current_time()
        self._reconnected: GatewayReconnected | None = None
        self._unregistered: deque[RemoteSubscription] = deque()
        self._unsubscribing: deque[str] = deque()
        self._owing: dict[RemoteSubscription, None] = {}
        self._work = trio.Event()
        self._failure: GatewayConnectionError | None = None
        self._closed = False
        self._running = trio.CancelScope()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "connected" if self._link else "connecting"
        return f"<RemoteBus {self.url} {state}>"

    @property
    def connected(self) -> bool:
        """Whether a connection to the gateway is up now."""
        return self._link is not None

    # -- the bus ---------------------------------------------------------------------------

    def subscribe(
        self,
        *,
        sessions: str | Iterable[str] = "*",
        types: str | Iterable[str] = "*",
        maxsize: int = 256,
        overflow: OverflowPolicy | str = OverflowPolicy.BLOCK,
        raw: bool = False,
        block_timeout: float | None = None,
        observer: bool = False,
    ) -> RemoteSubscription:
        """A new subscription, as ``Bus.subscribe``; ``raw=True`` hands each event over as the
        upstream frame's bytes. Registered in the background: ``async with`` it (or
        ``await sub.wait_registered()``) to know it is. Raises ``BusArgumentError`` for a bad
        argument, here, as the in-process bus does.

        Under ``block`` a subscription through the gateway always has a finite
        ``block_timeout``: ``None`` takes the service's (its ``[bus] block_timeout_seconds``),
        and a longer one than that is refused. A subscriber that keeps the service's
        publishers waiting past it is cut loose: its reads raise ``SubscriberTooSlowError``.
        An ``observer`` only watches, as ``Bus.subscribe(observer=True)``.
        """
        self._raise_if_closed()
        types, sessions = _materialized(types), _materialized(sessions)
        parse_types(types)
        parse_sessions(sessions)
        policy = parse_policy(overflow)
        check_maxsize(maxsize)
        if block_timeout is not None:
            checked_timeout("block_timeout", block_timeout)
        id = f"s{next(self._ids)}"
        subscription = RemoteSubscription(
            id,
            lambda req: Subscribe(
                req=req,
                sub=id,
                types=types,
                sessions=sessions,
                overflow=policy,
                maxsize=maxsize,
                block_timeout=block_timeout,
                observe=observer,
            ),
            maxsize=maxsize,
            policy=policy,
            raw=raw,
            on_read=self._owe,
            on_close=self._forget,
        )
        self._subscriptions[id] = subscription
        if self._link is not None:
            self._unregistered.append(subscription)
            self._work.set()
        return subscription

    # -- sessions --------------------------------------------------------------------------

    async def open_session(
        self,
        *,
        model: str | None = None,
        session: Mapping[str, Any] | None = None,
        id: str | None = None,
    ) -> RemoteSession:
        """Start a session on the service, as ``Service.open_session``; returns once it is
        ready. Raises ``GatewayError`` with the service's reason if it could not start."""
        result = await self._call(
            lambda req: OpenSession(req=req, model=model, session=session, id=id)
        )
        return self._session(result)

    async def close_session(self, id: str) -> None:
        """Close session ``id`` gracefully (its running response finishes, then close 1000)."""
        await self._call(lambda req: CloseSession(req=req, id=id))

    async def calls(self) -> tuple[Mapping[str, Any], ...]:
        """The calls the service holds now, as the control API shows them (``GET /v1/calls``)."""
        result = await self._call(lambda req: ListCalls(req=req))
        return tuple(result["calls"])

    async def hangup_call(self, id: str) -> Mapping[str, Any]:
        """Hang call ``id`` up (as ``POST /v1/calls/{id}/hangup``)."""
        result: Mapping[str, Any] = await self._call(lambda req: HangupCall(req=req, id=id))
        return result

    async def refer_call(self, id: str, target_uri: str) -> Mapping[str, Any]:
        """Transfer SIP call ``id`` to ``target_uri`` (as ``POST /v1/calls/{id}/refer``)."""
        request = lambda req: ReferCall(req=req, id=id, target_uri=target_uri)  # noqa: E731
        result: Mapping[str, Any] = await self._call(request)
        return result

    async def sessions(self) -> tuple[RemoteSession, ...]:
        """The sessions the service runs now."""
        result = await self._call(lambda req: ListSessions(req=req))
        return tuple(self._session(summary) for summary in result["sessions"])

    async def send(
        self,
        session_id: str,
        event: ClientEvent | Mapping[str, Any],
        *,
        on_refused: RefusalHandler | None = None,
    ) -> str:
        """Send a client event (an rtbus client event or its JSON shape as a mapping) to a
        session; returns its ``event_id`` once it went out upstream. If the upstream refuses
        it later, ``on_refused`` gets the upstream's error (without one, it is logged); the
        service counts this client as the event's sender, so the refusal never fails the
        session. Raises ``GatewayError`` (code ``invalid_event``, ``unknown_session``, ...)
        when the service refused it."""
        data = _event_bytes(event)

        def request(req: int) -> Send:
            if on_refused is not None:
                self._keep_refusal_handler(req, on_refused)
            return Send(req=req, session=session_id, event=data)

        result = await self._call(request)
        return str(result["event_id"])

    async def submit(
        self, session_id: str, event: ClientEvent | Mapping[str, Any], *, within: float
    ) -> EventOutcome:
        """Send a client event and wait up to ``within`` seconds (0 to 30) for the upstream
        to refuse it: the outcome is ``accepted`` or ``refused`` with the upstream's error,
        as ``Session.submit`` in process."""
        data = _event_bytes(event)
        result = await self._call(
            lambda req: Send(req=req, session=session_id, event=data, wait=within)
        )
        error = result.get("error")
        return EventOutcome(
            str(result["event_id"]), None if error is None else _details(error["upstream"])
        )

    def _keep_refusal_handler(self, req: int, handler: RefusalHandler) -> None:
        self._refusals[req] = handler
        while len(self._refusals) > _REFUSALS_KEPT:
            self._refusals.popitem(last=False)

    def _session(self, summary: Mapping[str, Any]) -> RemoteSession:
        return RemoteSession(summary["id"], summary.get("model"), summary["state"], bus=self)

    # -- closing ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connection: subscriptions hand out what they hold, then end; waiting
        requests raise ``trio.ClosedResourceError``. Idempotent."""
        if not self._closed:
            self._closed = True
            for subscription in list(self._subscriptions.values()):
                subscription.end()
            self._lose_pending(trio.ClosedResourceError("the remote bus was closed"))
            link, self._link = self._link, None
            self._announce()
            if link is not None:
                # The reader sees the close handshake end, and the connection winds down.
                await link.close_within(self._options.close_timeout)
            self._running.cancel()
        await trio.lowlevel.checkpoint()

    # -- requests --------------------------------------------------------------------------

    async def _call(self, make: Callable[[int], Request]) -> Any:
        link = await self._live()
        req = next(self._ids)
        pending = self._pending[req] = _Pending()
        try:
            # What was queued before this request (a subscription closed, credit) goes
            # first: after ``await sub.aclose()``, a request sees the subscription gone.
            await self._send_pending(link)
            await self._write(link, make(req))
            await pending.done.wait()
        finally:
            self._pending.pop(req, None)
        return pending.unwrap()

    async def _live(self) -> Wire:
        while self._link is None:
            self._raise_if_closed()
            await self._link_changed.wait()
        return self._link

    async def _write(self, link: Wire, request: Request) -> None:
        # Shielded, within close_timeout: a caller cancelled while its request was half
        # written would cut the connection (a half frame corrupts what follows), and every
        # subscription on it. Past the bound the wire aborts: the request is lost, and said so.
        try:
            with trio.move_on_after(self._options.close_timeout, shield=True):
                await link.send_text(encode_request(request))
        except ConnectionClosedError as exc:
            raise lost_error() from exc

    def _raise_if_closed(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise trio.ClosedResourceError("the remote bus is closed")

    # -- the connection --------------------------------------------------------------------

    async def _run(self, *, task_status: trio.TaskStatus[None]) -> None:
        """Connect, and reconnect with backoff until closed or refused for good. The first
        connection's failure is raised (through ``connect``), later ones are retried."""
        retries = BackoffState(self._backoff)
        with self._running:
            while True:
                self._attempts += 1
                try:
                    await self._connection(task_status)
                except GatewayConnectionError as exc:
                    if not self._links:
                        raise  # the first connection: the caller hears why
                    if self._closed:
                        return
                    if exc.fatal:
                        self._fail(exc)
                        return
                    logger.info("gateway connection lost: %s", exc)
                task_status = trio.TASK_STATUS_IGNORED
                ran_for, self._down_since = self._up_for(), trio.current_time()
                _, delay = retries.next_retry(ran_for, self._rng)
                await trio.sleep(delay)

    def _up_for(self) -> float:
        return 0.0 if self._up_at is None else trio.current_time() - self._up_at

    async def _connection(self, task_status: trio.TaskStatus[None]) -> None:
        """One connection, from connect to close; raises why it ended."""
        self._up_at = None
        ended: list[GatewayConnectionError] = []  # the first account of the end wins
        try:
            link = await open_link(self._target, self._options)
            try:
                async with quiet_nursery() as nursery:
                    nursery.start_soon(self._read, link, ended, nursery.cancel_scope)
                    await self._hello(link)
                    self._up(link)
                    task_status.started()
                    nursery.start_soon(self._send_work, link)
                    nursery.start_soon(self._keep_alive, link, ended)
                    await trio.sleep_forever()  # until the reader sees the close
            finally:
                await link.close_within(self._options.close_timeout)
        finally:
            self._down()
        raise ended[0] if ended else closed_error(None)

    async def _hello(self, link: Wire) -> None:
        req = next(self._ids)
        pending = self._pending[req] = _Pending()
        try:
            await link.send_text(encode_request(Hello(req=req, versions=(PROTOCOL_VERSION,))))
        except ConnectionClosedError:
            # A server that refuses (the token) closes at once, maybe before this could ask.
            # The reader reads the close frame, says why and ends the connection: wait for it.
            with trio.move_on_after(self._options.close_timeout):
                await trio.sleep_forever()
            raise lost_error() from None
        await pending.done.wait()
        try:
            pending.unwrap()
        except GatewayError as exc:
            raise GatewayConnectionError(f"the gateway refused: {exc}", fatal=True) from None

    def _up(self, link: Wire) -> None:
        self._links += 1
        self._up_at = now = trio.current_time()
        attempts, self._attempts = self._attempts, 0
        self._reconnected = (
            GatewayReconnected(attempt=attempts, down_for=now - self._down_since)
            if self._links > 1
            else None
        )
        self._link = link
        self._announce()
        self._unregistered = deque(self._subscriptions.values())
        self._work.set()

    def _announce(self) -> None:
        """Wake every task waiting for the connection (or for the news that there is none)."""
        self._link_changed.set()
        self._link_changed = trio.Event()

    def _down(self) -> None:
        self._link = None
        self._owing.clear()
        self._unsubscribing.clear()
        self._lose_pending(lost_error())

    def _lose_pending(self, failure: BaseException) -> None:
        pending, self._pending = self._pending, {}
        for waiting in pending.values():
            waiting.lose(failure)

    def _fail(self, failure: GatewayConnectionError) -> None:
        logger.warning("gateway connection refused for good: %s", failure)
        self._failure = failure
        for subscription in list(self._subscriptions.values()):
            subscription.fail(failure)
        self._lose_pending(failure)
        self._announce()

    # -- reading ---------------------------------------------------------------------------

    async def _read(
        self, link: Wire, ended: list[GatewayConnectionError], scope: trio.CancelScope
    ) -> None:
        """Handle every message each receive brings, in this task, until the link is done."""
        inbox = link.inbox
        while True:
            while inbox:
                self._on_frame(inbox.popleft()[0])
            if not await link.fill():
                break
        ended.append(closed_error(link))
        scope.cancel()

    async def _keep_alive(self, link: Wire, ended: list[GatewayConnectionError]) -> None:
        stalled = await ping_until_stalled(link, self._options)
        if stalled is not None:
            ended.append(stalled)
            # The reader then sees the stream end, and the connection winds down.
            await link.abort()

    def _on_frame(self, message: str | bytes) -> None:
        try:
            frames = parse_server_frames(message)
        except WireError as exc:
            logger.warning("the gateway sent a frame this client cannot read: %s", exc)
            return
        for frame in frames:
            _ON_FRAME[type(frame)](self, frame)

    def _on_event(self, frame: EventFrame) -> None:
        subscription = self._subscriptions.get(frame.sub)
        if subscription is not None:
            subscription.deliver(frame, trio.current_time())

    def _on_answer(self, frame: ResultFrame | ErrorFrame) -> None:
        pending = self._pending.pop(frame.req, None) if isinstance(frame.req, int) else None
        if pending is not None:
            pending.settle(frame)

    def _on_refused(self, frame: RefusedFrame) -> None:
        handler = self._refusals.pop(frame.req, None) if isinstance(frame.req, int) else None
        if handler is None:
            logger.warning(
                "the upstream refused event %s sent to session %s: %s",
                frame.event_id,
                frame.session,
                frame.error.get("message"),
            )
            return
        handler(_details(frame.error))

    def _on_error(self, frame: ErrorFrame) -> None:
        if frame.req is not None:
            self._on_answer(frame)
            return
        if frame.sub is None:
            logger.warning("the gateway reported an error: %s: %s", frame.code, frame.message)
            return
        subscription = self._subscriptions.get(frame.sub)
        if subscription is None:
            # One this client closed, about credit or an overflow that crossed the unsubscribe.
            logger.debug("error for closed subscription %s: %s", frame.sub, frame.code)
        elif frame.code in _CUT:
            _CUT[frame.code](subscription, frame.dropped or 0)
        else:
            subscription.fail(GatewayError(frame.code, frame.message))

    # -- writing: registrations and credit -------------------------------------------------

    async def _send_work(self, link: Wire) -> None:
        try:
            while True:
                self._work = trio.Event()
                await self._send_pending(link)
                await self._work.wait()
        except GatewayConnectionError:
            return  # the reader sees the close and ends the connection

    async def _send_pending(self, link: Wire) -> None:
        while self._unregistered:
            await self._register(link, self._unregistered.popleft())
        while self._unsubscribing:
            sub = self._unsubscribing.popleft()
            await self._write(link, Unsubscribe(req=next(self._ids), sub=sub))
        while self._owing:
            subscription = next(iter(self._owing))
            del self._owing[subscription]
            owed, subscription.owed = subscription.owed, 0
            await self._write(link, Credit(sub=subscription.id, n=owed))

    async def _register(self, link: Wire, subscription: RemoteSubscription) -> None:
        if subscription.closed:
            return
        req = next(self._ids)
        reconnected = self._reconnected

        def answered(frame: ResultFrame | ErrorFrame) -> None:
            if isinstance(frame, ResultFrame):
                subscription.registered(reconnected=reconnected, result=frame.result)
            else:
                subscription.fail(GatewayError(frame.code, frame.message))

        self._pending[req] = _Pending(on_answer=answered)
        await self._write(link, subscription.request(req))

    def _owe(self, subscription: RemoteSubscription) -> None:
        if subscription.owed >= max(1, subscription.window // 2) and self._link is not None:
            self._owing[subscription] = None
            self._work.set()

    def _forget(self, subscription: RemoteSubscription) -> None:
        self._subscriptions.pop(subscription.id, None)
        self._owing.pop(subscription, None)
        if self._link is not None and not self._closed:
            self._unsubscribing.append(subscription.id)
            self._work.set()


# Error codes that end a subscription the service cut, and what the client's half does.
_CUT: Final[Mapping[str, Callable[[RemoteSubscription, int], None]]] = {
    ErrorCode.SUBSCRIBER_OVERFLOW: RemoteSubscription.overflowed,
    ErrorCode.SUBSCRIBER_TOO_SLOW: RemoteSubscription.too_slow,
}

_ON_FRAME: Final[Mapping[type[Any], Callable[[RemoteBus, Any], None]]] = {
    EventFrame: RemoteBus._on_event,
    ResultFrame: RemoteBus._on_answer,
    ErrorFrame: RemoteBus._on_error,
    RefusedFrame: RemoteBus._on_refused,
}


def _event_bytes(event: ClientEvent | Mapping[str, Any]) -> bytes:
    return orjson.dumps(dict(event)) if isinstance(event, Mapping) else encode(event)


def _details(error: Mapping[str, Any]) -> ErrorDetails:
    """The upstream's error object as the protocol's ``ErrorDetails`` (as in process)."""
    event = decode_server_event(
        orjson.dumps({"type": "error", "event_id": "", "error": dict(error)})
    )
    details = getattr(event, "error", None)
    if not isinstance(details, ErrorDetails):
        message = str(error.get("message") or "refused")
        return ErrorDetails(type="invalid_request_error", message=message)
    return details


def _materialized(value: str | Iterable[str]) -> str | tuple[str, ...]:
    # An iterator would be used up by checking it, before it is sent.
    return value if isinstance(value, str) else tuple(value)


@asynccontextmanager
async def connect(
    url: str,
    *,
    token: str | None = None,
    backoff: Backoff | None = None,
    connect_timeout: float = 10.0,
    max_message_size: int = 64 * _MIB,
    keepalive_interval: float | None = 20.0,
    pong_timeout: float = 20.0,
) -> AsyncIterator[RemoteBus]:
    """Connect to a service's bus gateway for the body of the ``async with``.

    ``url`` is the gateway (``ws://host:port/v1/bus``) or the service (``http://host:port``).
    ``token`` is the service's bearer token, sent in the ``Authorization`` header. The first
    connection must succeed (else ``GatewayConnectionError``); after that the client
    reconnects by itself with ``backoff`` until the body ends. A ping every
    ``keepalive_interval`` seconds (``None``: none) finds a connection that died without a
    word within ``keepalive_interval + pong_timeout``, and it is replaced. Raises
    ``ConfigError`` for a timeout that is not a positive number of seconds.
    """
    bus = RemoteBus(
        gateway_url(url),
        token,
        backoff=backoff or Backoff(),
        connect_timeout=connect_timeout,
        max_message_size=max_message_size,
        keepalive_interval=keepalive_interval,
        pong_timeout=pong_timeout,
    )
    async with quiet_nursery() as nursery:
        await nursery.start(bus._run)
        try:
            yield bus
        finally:
            with trio.CancelScope(shield=True):
                await bus.aclose()
            nursery.cancel_scope.cancel()
