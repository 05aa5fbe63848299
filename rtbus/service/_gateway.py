"""The bus gateway: the service's bus over one WebSocket per client (``WebSocket /v1/bus``).

The HTTP surface's door hands it the connection (``_http_door``); the WebSocket itself is
``_gateway_socket``'s and the wire format ``rtbus.gateway``'s (docs/gateway.md). One
connection goes:

    upgrade -> token and version checked (close 1008 / 1002 if not) -> requests, until either
    side closes; the bus closing (the service drains) closes it with 1001

Invariants:

* Every ``subscribe`` is a real subscription on ``service.bus`` with the client's filters,
  ``maxsize`` and ``overflow``, so the semantics are the in-process ones: ``block``
  back-pressures the publishers, ``drop_*`` count lag (sent with the next event), and
  ``disconnect`` ends the subscription with a ``subscriber_overflow`` error frame.
* Under ``block`` every subscription has a finite ``block_timeout``: the client's, at most
  the bus's ``remote_block_timeout`` (announced as ``limits.max_block_timeout``), which is
  also the default. A client that stops reading holds the sessions up that long once; then
  its subscription is cut loose and ends with a ``subscriber_too_slow`` error frame, at once,
  even while the forwarder waits for credit.
* Flow control is per subscription: the server sends an event only against credit the
  client granted, so a slow consumer fills its own server-side buffer, where its policy
  applies, and never stalls the connection's other subscriptions.
* A bad request gets one error frame and changes nothing else; the connection goes on.
* Requests that can wait (``send``, ``open_session``, ``close_session``, ``hangup_call``,
  ``refer_call``) run off the reading task, in lanes: one per session or call, so one
  session's events go out in the order sent and a reconnecting session holds up no one
  else. At most ``Limits.max_in_flight`` wait at once.
* Session operations are the control surface's (``_control``): the same checks, answers and
  error codes as ``/v1/sessions``. The connection is the named sender of what it sends
  (``gateway:<n>``): an event the upstream refuses comes back to it as a ``refused`` frame
  (or as the answer, when the request waited for the outcome) and never fails the session.
* Frames leave through one FIFO lock, so a subscription's result precedes its events.
* The token is compared in constant time and never logged or echoed.
"""

from __future__ import annotations

import functools
import itertools
import logging
import weakref
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Final

import attrs
import trio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from rtbus._unwrapping import unwrap_lone_exception
from rtbus.bus import Envelope, SubscriberOverflowError, SubscriberTooSlowError, Subscription
from rtbus.gateway import (
    PROTOCOL_VERSION,
    SUBPROTOCOL,
    Batch,
    CloseSession,
    Credit,
    ErrorCode,
    HangupCall,
    Hello,
    Limits,
    ListCalls,
    ListSessions,
    OpenSession,
    ReferCall,
    ReqId,
    Request,
    Send,
    Subscribe,
    Unsubscribe,
    WireError,
    encode_error,
    encode_event,
    encode_refused,
    encode_result,
    parse_request,
)
from rtbus.protocol import ConnectionClosedError, ErrorDetails
from rtbus.transport import Wire

from ._control import Control, ControlError, upstream_error
from ._gateway_socket import Upgraded, upgrade
from ._http_wire import HttpError, check_bearer
from ._service import Service

__all__ = ["GatewayCounts", "gateway_counts", "gateway_endpoint"]

logger = logging.getLogger("rtbus.gateway")

LIMITS: Final = Limits()
"""The limits of every connection but ``max_block_timeout``, which is the service bus's."""
# The most one forwarder takes at once, and less when that would not go in one write (see
# ``_Forwarder._fits``); credit bounds it too. What it took is out of its subscription's
# maxsize and policy until written: this bounds what a client that stops reading pins, and
# how long one forwarder's step holds the loop (building a write: 1-1.5 ms at most). A loaded
# service needs it large: at 1,000 sessions a turn lasts milliseconds, and a forwarder taking
# 256 a turn could not catch up once the sessions' start had filled its subscription.
_BATCH: Final = 1024
# A gathered batch goes out in messages of about this size: smaller ones let the client work
# on the first while the rest are in flight; 64 audio deltas (420 KB) in one message cost
# both sides a fifth more CPU per event, 32 KB ones a third more, and 256 KiB ones triple the
# service's kernel time (bench_gateway).
_MESSAGE_BYTES: Final = 128 * 1024
# One write carries messages up to about this size: a write is a scheduler turn, and a turn
# of a loaded service is long (a millisecond at 1,000 sessions), so a write a message kept a
# fleet's subscriber a second behind its sessions (bench_fleet).
_WRITE_BYTES: Final = 4 * 1024 * 1024
# A write that has not gone out after _WRITE_TIMEOUT, plus its size at _WRITE_RATE: the
# client stopped reading, or reads slower than one session's audio (66 KB/s). The
# connection ends, so it pins no more than it held (a write per subscription).
_WRITE_TIMEOUT: Final = 30.0
_WRITE_RATE: Final = 64 * 1024
_IDLE_TURNS: Final = 2  # scheduler turns without a new envelope that end a gathered batch
_GATHER_SECONDS: Final = 0.0005  # the longest a gathered batch's first envelope waits for more
_POLICY_VIOLATION: Final = 1008
_PROTOCOL_ERROR: Final = 1002
_GOING_AWAY: Final = 1001
# How long our close frame waits for the client's answer: it has the frame; the wait only
# lets the close be clean (and a refused client is held no longer than that).
_CLOSE_GRACE: Final = 1.0
_SHUTTING_DOWN: Final = "the service is shutting down"


# Why a gateway connection was refused: its upgrade was answered 400 (not a valid HTTP/1.1
# upgrade) or 426 (not an upgrade); it was closed with 1008 (the token) or 1002 (the version).
_REFUSED_UPGRADES: Final = {400: "bad_request", 426: "not_an_upgrade"}
_REFUSED_CLOSES: Final = {_POLICY_VIOLATION: "token", _PROTOCOL_ERROR: "subprotocol"}
REFUSALS: Final = (*_REFUSED_UPGRADES.values(), *_REFUSED_CLOSES.values())
"""Every ``reason`` of ``rtbus_gateway_refused_total``."""


class GatewayCounts:
    """The gateway's metrics, a prometheus_client collector on the service's registry:
    ``rtbus_gateway_connections``, ``rtbus_gateway_frames_total{direction}``,
    ``rtbus_gateway_messages_sent_total`` (WebSocket messages: a batch of frames is one, and a
    gathered batch of about 128 KiB or more is several),
    ``rtbus_gateway_errors_total{code}`` (``code`` is an ``ErrorCode``: bounded),
    ``rtbus_gateway_refused_total{reason}`` (connections refused before they were served;
    ``reason`` is one of ``REFUSALS``) and ``rtbus_gateway_stalled_total`` (connections ended
    because a write did not go out in time: ``_WRITE_TIMEOUT`` and its size at
    ``_WRITE_RATE``)."""

    def __init__(self) -> None:
        self.connections = 0
        self.frames: Counter[str] = Counter({"in": 0, "out": 0})
        self.messages_sent = 0
        self.errors: Counter[str] = Counter()
        self.refused: Counter[str] = Counter(dict.fromkeys(REFUSALS, 0))
        self.stalled = 0

    def describe(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        return self.collect()

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield GaugeMetricFamily(
            "rtbus_gateway_connections", "Bus gateway connections open now.", self.connections
        )
        yield _by(
            "direction", self.frames, "rtbus_gateway_frames", "Bus gateway frames, by direction."
        )
        yield CounterMetricFamily(
            "rtbus_gateway_messages_sent",
            "Bus gateway WebSocket messages sent; a batch of frames is one.",
            self.messages_sent,
        )
        yield _by(
            "code", self.errors, "rtbus_gateway_errors", "Bus gateway error frames sent, by code."
        )
        yield _by(
            "reason",
            self.refused,
            "rtbus_gateway_refused",
            "Bus gateway connections refused before they were served, by reason.",
        )
        yield CounterMetricFamily(
            "rtbus_gateway_stalled",
            "Bus gateway connections ended because a write did not go out in time "
            "(the client stopped reading).",
            self.stalled,
        )


def _by(label: str, counts: Counter[str], name: str, documentation: str) -> CounterMetricFamily:
    """A counter family with one sample per key of ``counts``, labelled ``label``."""
    family = CounterMetricFamily(name, documentation, labels=(label,))
    for key, count in sorted(counts.items()):
        family.add_metric((key,), count)
    return family


_COUNTS: weakref.WeakKeyDictionary[Service, GatewayCounts] = weakref.WeakKeyDictionary()


def gateway_counts(service: Service) -> GatewayCounts:
    """The gateway metrics of ``service``, registered on its registry the first time asked
    (the HTTP surface may ask at start, so the metrics show before the first connection)."""
    counts = _COUNTS.get(service)
    if counts is None:
        counts = _COUNTS[service] = GatewayCounts()
        service.metrics.registry.register(counts)
    return counts


async def gateway_endpoint(
    service: Service,
    token: str | None,
    stream: trio.abc.Stream,
    early: bytes,
    *,
    start_timeout: float,
) -> None:
    """Serve one gateway connection, from its upgrade request (``early``: the bytes read of it
    already) until the client or the service ends it; the stream is closed when it returns.
    ``start_timeout`` bounds how long ``open_session`` waits for the session to be ready, as
    ``HttpConfig.session_start_timeout`` does for ``POST /v1/sessions``."""
    counts = gateway_counts(service)
    upgraded = await upgrade(stream, early)
    if not isinstance(upgraded, Upgraded):
        if upgraded is not None:
            counts.refused[_REFUSED_UPGRADES.get(upgraded.status, "bad_request")] += 1
        return
    wire = upgraded.wire
    try:
        refusal = _refusal(upgraded, token)
        if refusal is not None:
            code, reason = refusal
            logger.info("gateway connection refused: %s", reason)
            counts.refused[_REFUSED_CLOSES[code]] += 1
            await wire.close_within(_CLOSE_GRACE, code, reason)
            return
        counts.connections += 1
        try:
            await _Connection(service, wire, counts, start_timeout).serve()
        finally:
            counts.connections -= 1
    finally:
        # The service stopping (it drains, then its HTTP surface is cancelled) says so, even
        # to a connection without a subscription or whose forwarder had no time to.
        if service.draining and not wire.done:
            await wire.close_within(_CLOSE_GRACE, _GOING_AWAY, _SHUTTING_DOWN)
        await wire.abort()


def _refusal(upgraded: Upgraded, token: str | None) -> tuple[int, str] | None:
    """Why the connection may not go on (close code and reason), or None. The token first,
    so a stranger learns nothing else."""
    if token is not None:
        try:
            check_bearer(upgraded.headers, token)
        except HttpError as exc:
            return _POLICY_VIOLATION, exc.message
    if upgraded.offered and SUBPROTOCOL not in upgraded.offered:
        return _PROTOCOL_ERROR, f"unsupported subprotocol: this server speaks {SUBPROTOCOL}"
    return None


class _Forwarder:
    """Sends one subscription's envelopes to the client, against the credit it granted."""

    def __init__(self, id: str, subscription: Subscription, credit: int) -> None:
        self.id = id
        self.subscription = subscription
        self.scope = trio.CancelScope()
        self._credit = credit
        self._more = trio.Event()
        self._stopped = False  # the subscription was cut (or closed)
        self._stopping = False  # unsubscribed: stop after the write on its way
        self._writing = False
        # Envelopes taken from the subscription, with their lag, and not yet written.
        self._held: list[tuple[Envelope, int]] = []
        # How many frames the last write suggests one write carries: a batch takes no more.
        self._fits = _BATCH
        # Frames handed to writes: what an unsubscribe's answer says was delivered (a batch
        # taken but not yet built is not: the read may yield before it is held).
        self.sent = 0

    def grant(self, n: int) -> None:
        self._credit += n
        self._more.set()

    def stop(self) -> None:
        """Stop forwarding: at once, or once the write on its way is out (cut short, a
        write would abort the whole connection)."""
        self._stopping = True
        if not self._writing:
            self.scope.cancel()

    async def run(self, connection: _Connection) -> None:
        with self.scope:
            try:
                # The nursery would wrap what ends the loop in a group: take it out.
                with unwrap_lone_exception():
                    async with trio.open_nursery() as watch:
                        watch.start_soon(self._watch)
                        while True:
                            await self._forward(connection)
            except SubscriberOverflowError as exc:  # a SubscriberTooSlowError too
                connection.forget(self, cancel=False)  # not the scope this runs in
                error = WireError(_CUT_CODES[type(exc)], str(exc), sub=self.id)
                await connection.error(error, dropped=exc.dropped)
            except trio.EndOfChannel:
                await connection.going_away(_SHUTTING_DOWN)
            except trio.ClosedResourceError:
                return  # unsubscribed while it waited for envelopes

    async def _watch(self) -> None:
        # A client that stopped reading leaves the forwarder waiting for credit, not on the
        # subscription: wake it when the subscription is cut, so the error goes out at once.
        await self.subscription.wait_stopped()
        self._stopped = True
        self._more.set()

    async def _forward(self, connection: _Connection) -> None:
        while self._credit <= 0 and not self._stopped:
            self._more = trio.Event()
            await self._more.wait()
        # Stopped without credit: a read of one raises why (closed, overflowed, too slow).
        limit = max(1, min(self._credit, self._fits))
        self._held = taken = self._tagged(await self.subscription.receive_batch(limit))
        # Gather: while scheduler turns bring more (publishers are busy), wait more turns
        # before writing, so a burst costs a few messages, not one each. A turn only counts
        # what came (taking each turn's cost the service 1-1.5 us per event); what came
        # stays in the subscription, and a publish that finds it full has the forwarder take
        # it then (``on_full``), so it absorbs what it would had each turn's been taken.
        # Trio may run this task before or after a publisher within a turn, so one turn can
        # bring nothing mid-burst: _IDLE_TURNS in a row without anything end it, and so does
        # _GATHER_SECONDS since the first was taken (turns are long on a busy loop).
        subscription, started, idle = self.subscription, trio.current_time(), 0

        def take() -> None:
            if len(taken) < limit:
                taken.extend(self._tagged(subscription.receive_buffered(limit - len(taken))))

        seen = len(taken) + subscription.buffered
        subscription.on_full(take)
        try:
            while seen < limit and idle < _IDLE_TURNS and self._may_gather(started):
                await trio.lowlevel.cancel_shielded_checkpoint()
                now = len(taken) + subscription.buffered
                idle, seen = (0, now) if now > seen else (idle + 1, seen)
        finally:
            subscription.on_full(None)
        take()
        self._credit -= len(taken)
        # Unsubscribed while gathering: what it holds is not written (nor counted delivered).
        await trio.lowlevel.checkpoint_if_cancelled()
        # Between writes an unsubscribe stops the rest (``stop``): its answer follows the
        # write on its way (the write lock is FIFO), and nothing of this subscription follows
        # its answer. The connection ending (the service stopping) cancels a write
        # midway, and the wire then aborts the stream: a client that stopped reading holds
        # nothing up.
        while self._held and not self._stopping:
            self._writing = True
            try:
                await connection.write_built(self._build)
            finally:
                self._writing = False
        if self._stopping:
            self.scope.cancel()
            await trio.lowlevel.checkpoint()

    def _build(self) -> tuple[list[list[bytes]], int]:
        """The messages of the next write (up to about ``_WRITE_BYTES``) and how many frames
        they carry, built now, under the write lock: an event's ``age`` runs until its write
        starts, not until it was queued behind another subscription's. Each message closes
        once it reaches ``_MESSAGE_BYTES`` (so it may pass that by one frame). The frames
        leave ``_held`` here, counted in ``sent``. Unsubscribed while it waited for the lock:
        nothing, since the answer, queued behind it, counted these as not delivered."""
        if self._stopping:
            return [], 0
        now, messages, frames, size, batch = trio.current_time(), [], 0, 0, Batch()
        for envelope, lag in self._held:
            if batch.size >= _MESSAGE_BYTES:
                messages.append(batch.message())
                frames, size, batch = frames + len(batch), size + batch.size, Batch()
                if size >= _WRITE_BYTES:
                    break
            age = max(0.0, now - envelope.received_at)
            batch.add(encode_event(self.id, envelope, lag=lag, age=age))
        if batch.size:
            messages.append(batch.message())
            frames, size = frames + len(batch), size + batch.size
        del self._held[:frames]
        self.sent += frames
        if frames:
            self._fits = max(1, min(_BATCH, _WRITE_BYTES * frames // max(1, size)))
        return messages, frames

    def _may_gather(self, started: float) -> bool:
        return (
            trio.current_time() - started < _GATHER_SECONDS
            and not self.scope.cancel_called
            and not self.subscription.closed
        )

    def _tagged(self, batch: list[Envelope]) -> list[tuple[Envelope, int]]:
        """``batch`` with the lag each envelope goes out with: what was dropped before the
        read's first, then 0 (read right after the read, as the bus says)."""
        lag = self.subscription.lag
        return [(envelope, lag if i == 0 else 0) for i, envelope in enumerate(batch)]


# The error code a cut subscription's end goes out with.
_CUT_CODES: Final[Mapping[type[SubscriberOverflowError], ErrorCode]] = {
    SubscriberOverflowError: ErrorCode.SUBSCRIBER_OVERFLOW,
    SubscriberTooSlowError: ErrorCode.SUBSCRIBER_TOO_SLOW,
}

_Waiting = Callable[["_Connection", Any], Awaitable[object]]
#: Requests that may wait (on a session, a call, the upstream): they run in lanes.
_Waits = Send | OpenSession | CloseSession | HangupCall | ReferCall
_connection_ids = itertools.count(1)


class _Connection:
    """One client's connection: its subscriptions, its lanes of waiting requests."""

    def __init__(
        self, service: Service, wire: Wire, counts: GatewayCounts, start_timeout: float
    ) -> None:
        self._service = service
        self._wire = wire
        self._counts = counts
        self.control = Control(service, start_timeout=start_timeout)
        self.sender = f"gateway:{next(_connection_ids)}"
        self._limits = attrs.evolve(
            LIMITS, max_block_timeout=service.bus.limits.remote_block_timeout
        )
        self._write_lock = trio.StrictFIFOLock()
        self._subscriptions: dict[str, _Forwarder] = {}
        self._lanes: dict[str, deque[tuple[Request, _Waiting]]] = {}
        self._in_flight = 0
        self._nursery: trio.Nursery | None = None
        self._closing = False

    async def serve(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await self._read()
                nursery.cancel_scope.cancel()
        finally:
            # Gone: a refusal that comes back later has nobody to go to (see ``refused``).
            self._nursery, self._closing = None, True
            for forwarder in self._subscriptions.values():
                forwarder.subscription.close()

    async def _read(self) -> None:
        """Handle the client's requests in order, until it closes (or the stream ends)."""
        wire, inbox = self._wire, self._wire.inbox
        while inbox or await wire.fill():
            while inbox:
                payload, _, _ = inbox.popleft()
                self._counts.frames["in"] += 1
                await self._handle(payload)

    async def _handle(self, data: bytes) -> None:
        try:
            request = parse_request(data, self._limits)
            await _HANDLERS[type(request)](self, request)
        except WireError as exc:
            await self.error(exc)

    # -- writing ---------------------------------------------------------------------------

    async def write(self, message: list[bytes]) -> None:
        """Send one message of one frame, given as its parts (joined once by the wire)."""
        await self.write_built(lambda: ([message], 1))

    async def write_built(self, build: Callable[[], tuple[list[list[bytes]], int]]) -> None:
        """Send what ``build`` makes (messages, and the frames in them) in one write, built
        once the write lock is this caller's; nothing if it makes no message."""
        async with self._write_lock:
            # A writer handed the lock by ``going_away`` runs before the cancellation reaches
            # it: nothing goes after the close frame.
            if self._closing:
                return
            messages, frames = build()
            if not messages:
                return
            size = sum(len(part) for parts in messages for part in parts)
            timeout = _WRITE_TIMEOUT + size / _WRITE_RATE
            with trio.move_on_after(timeout) as write:
                try:
                    await self._wire.send_binary(*messages)
                except ConnectionClosedError:
                    return  # The client is gone: the reader sees the end.
            if write.cancelled_caught:
                self._counts.stalled += 1
                message = "gateway client %s did not take a write of %d bytes in %.0fs: ended"
                logger.warning(message, self.sender, size, timeout)
                # Cut short midway the wire aborts the stream itself; stuck behind another
                # write of its own (a pong) it does not: end it here, so the reader sees it
                # (and the connection, ending, may cancel this task right here).
                await self._wire.abort()
                return
        self._counts.frames["out"] += frames
        self._counts.messages_sent += len(messages)

    async def error(self, error: WireError, *, dropped: int | None = None) -> None:
        self._counts.errors[error.code.value] += 1
        frame = encode_error(
            error.code, error.message, req=error.req, sub=error.sub, dropped=dropped
        )
        await self.write([frame])

    async def _result(self, req: ReqId, result: object) -> None:
        await self.write([encode_result(req, result)])

    async def going_away(self, reason: str) -> None:
        """Close with 1001: the client should reconnect (to the service's successor)."""
        if not self._closing:
            self._closing = True
            async with self._write_lock:
                await self._wire.close_within(_CLOSE_GRACE, _GOING_AWAY, reason)
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    # -- requests answered at once ---------------------------------------------------------

    async def _hello(self, request: Hello) -> None:
        if PROTOCOL_VERSION not in request.versions:
            message = f"this server speaks version {PROTOCOL_VERSION} ({SUBPROTOCOL})"
            raise WireError(ErrorCode.UNSUPPORTED_VERSION, message, req=request.req)
        result = {"version": PROTOCOL_VERSION, "limits": self._limits.as_json()}
        await self._result(request.req, result)

    async def _subscribe(self, request: Subscribe) -> None:
        self._check_room(request)
        block_timeout = request.block_timeout or self._limits.max_block_timeout
        try:
            subscription = self._service.bus.subscribe(
                types=request.types,
                sessions=request.sessions,
                maxsize=request.maxsize,
                overflow=request.overflow,
                block_timeout=block_timeout,
                observer=request.observe,
            )
        except trio.ClosedResourceError:
            message = "the service's bus is closed"
            raise WireError(ErrorCode.NOT_RUNNING, message, req=request.req) from None
        forwarder = self._subscriptions[request.sub] = _Forwarder(
            request.sub, subscription, request.credit
        )
        await self._result(request.req, {"sub": request.sub, "block_timeout": block_timeout})
        assert self._nursery is not None
        self._nursery.start_soon(forwarder.run, self)

    def _check_room(self, request: Subscribe) -> None:
        if request.sub in self._subscriptions:
            message = f"subscription {request.sub!r} is open already on this connection"
            raise WireError(ErrorCode.DUPLICATE_SUBSCRIPTION, message, req=request.req)
        if len(self._subscriptions) >= LIMITS.max_subscriptions:
            message = f"at most {LIMITS.max_subscriptions} subscriptions per connection"
            raise WireError(ErrorCode.TOO_MANY_SUBSCRIPTIONS, message, req=request.req)

    async def _unsubscribe(self, request: Unsubscribe) -> None:
        forwarder = self._forwarder(request.sub, request.req)
        self.forget(forwarder)
        statistics = forwarder.subscription.statistics()
        # What the forwarder held and will not write now was taken, not delivered.
        result = {"sub": request.sub, "delivered": forwarder.sent}
        await self._result(request.req, result | {"dropped": statistics.dropped})

    async def _credit(self, request: Credit) -> None:
        self._forwarder(request.sub, None).grant(request.n)

    def _forwarder(self, sub: str, req: ReqId | None) -> _Forwarder:
        forwarder = self._subscriptions.get(sub)
        if forwarder is None:
            message = f"no subscription {sub!r} on this connection"
            raise WireError(ErrorCode.UNKNOWN_SUBSCRIPTION, message, req=req, sub=sub)
        return forwarder

    def forget(self, forwarder: _Forwarder, *, cancel: bool = True) -> None:
        """Close the subscription and stop forwarding it; its id is free again."""
        if self._subscriptions.get(forwarder.id) is forwarder:
            del self._subscriptions[forwarder.id]
        forwarder.subscription.close()
        if cancel:
            forwarder.stop()

    async def _list_sessions(self, request: ListSessions) -> None:
        await self._answer(request, _list)

    async def _list_calls(self, request: ListCalls) -> None:
        await self._answer(request, _calls)

    async def _hangup_call(self, request: HangupCall) -> None:
        self._enqueue(f"call:{request.id}", request, _hangup)

    async def _refer_call(self, request: ReferCall) -> None:
        self._enqueue(f"call:{request.id}", request, _refer)

    # -- requests that wait, in lanes ------------------------------------------------------

    async def _send_event(self, request: Send) -> None:
        self._enqueue(f"session:{request.session}", request, _send)

    async def _open_session(self, request: OpenSession) -> None:
        key = f"session:{request.id}" if request.id is not None else f"open:{request.req}"
        self._enqueue(key, request, _open)

    async def _close_session(self, request: CloseSession) -> None:
        self._enqueue(f"session:{request.id}", request, _close)

    def _enqueue(self, key: str, request: _Waits, run: _Waiting) -> None:
        if self._service.draining:
            message = "the service is draining and takes no more work"
            raise WireError(ErrorCode.DRAINING, message, req=request.req)
        if self._in_flight >= LIMITS.max_in_flight:
            message = f"at most {LIMITS.max_in_flight} requests may wait at once; wait for answers"
            raise WireError(ErrorCode.TOO_MANY_REQUESTS, message, req=request.req)
        self._in_flight += 1
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = deque()
            assert self._nursery is not None
            self._nursery.start_soon(self._drain, key, lane)
        lane.append((request, run))

    async def _drain(self, key: str, lane: deque[tuple[Request, _Waiting]]) -> None:
        try:
            while lane:
                request, run = lane[0]
                try:
                    await self._answer(request, run)
                finally:
                    lane.popleft()
                    self._in_flight -= 1
        finally:
            del self._lanes[key]

    async def _answer(self, request: Any, run: _Waiting) -> None:
        """Run a session operation; its answer goes out as the result."""
        try:
            result = await run(self, request)
        except ControlError as exc:
            await self.error(WireError(exc.code, exc.message, req=request.req))
        except Exception:
            logger.exception("gateway request %s failed", type(request).__name__)
            message = "the request failed inside rtbus"
            await self.error(WireError(ErrorCode.INTERNAL_ERROR, message, req=request.req))
        else:
            await self._result(request.req, result)

    def refused(self, request: Send, error: ErrorDetails) -> None:
        """The upstream refused an event this connection sent: tell the client. Called by
        the session's task, so the frame is written from this connection's own."""
        frame = encode_refused(
            request.req, request.session, error.event_id or "", upstream_error(error)
        )
        if self._nursery is not None and not self._closing:
            self._nursery.start_soon(self.write, [frame])
        else:
            logger.info("an event sent to %s was refused after its client left", request.session)


async def _send(connection: _Connection, request: Send) -> object:
    assert not isinstance(request.event, bytes)  # the server parsed it into a mapping
    on_refused = functools.partial(connection.refused, request)
    result = await connection.control.send(
        request.session,
        request.event,
        sender=connection.sender,
        wait=request.wait,
        on_refused=None if request.wait is not None else on_refused,
    )
    return result.as_json()


async def _open(connection: _Connection, request: OpenSession) -> object:
    fields = {"model": request.model, "session": request.session, "id": request.id}
    given = {name: value for name, value in fields.items() if value is not None}
    return (await connection.control.open_session(given)).as_json()


async def _close(connection: _Connection, request: CloseSession) -> object:
    return (await connection.control.close_session(request.id)).as_json()


async def _calls(connection: _Connection, request: ListCalls) -> object:
    return {"calls": [call.as_json() for call in connection.control.calls()]}


async def _hangup(connection: _Connection, request: HangupCall) -> object:
    return (await connection.control.hangup_call(request.id)).as_json()


async def _refer(connection: _Connection, request: ReferCall) -> object:
    options = {"target_uri": request.target_uri}
    return (await connection.control.refer_call(request.id, options)).as_json()


async def _list(connection: _Connection, request: ListSessions) -> object:
    return {"sessions": [view.as_json() for view in connection.control.sessions()]}


_Handler = Callable[[_Connection, Any], Awaitable[None]]
_HANDLERS: Final[Mapping[type[Any], _Handler]] = {
    Hello: _Connection._hello,
    Subscribe: _Connection._subscribe,
    Unsubscribe: _Connection._unsubscribe,
    Credit: _Connection._credit,
    Send: _Connection._send_event,
    OpenSession: _Connection._open_session,
    CloseSession: _Connection._close_session,
    ListSessions: _Connection._list_sessions,
    ListCalls: _Connection._list_calls,
    HangupCall: _Connection._hangup_call,
    ReferCall: _Connection._refer_call,
}
