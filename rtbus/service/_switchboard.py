"""The switchboard: incoming calls routed, accepted or rejected, and served as sessions.

    POST /v1/webhooks/openai --> receive_webhook: verdict now (WebhookInbox), answer at once
                                   `-> a task: route -> accept/reject (CallsClient) -> session
    control surface ----------> calls, hangup, refer, create (a browser's offer), client_secret

A call session is a session like any other (supervised, counted, its events on the bus)
whose spec attaches by ``call_id`` (``RealtimeTarget.call``) instead of naming a model, with
no conversation restore (the upstream keeps the call's conversation) and no recycle; the
call's end (the upstream closes its connection with 1000) is the session's normal end.

Invariants:

* A webhook is answered before anything is done about it: the verdict is synchronous, and
  acting on it is a task in the switchboard's nursery. At most ``max_pending`` are acted on
  at once; past that a delivery is answered 503 and its claim released, so the sender's
  redelivery is acted on later. Each ``webhook-id`` is acted on once (the inbox's log).
* Every call the switchboard holds is in ``_live`` until its session is gone (or the
  switchboard stops, as the service drains); then ``rtbus.call.ended`` is published, once,
  saying who ended it (``_ending``).
* The ``rtbus.call.*`` events are published under the one sequence ``calls`` (``CALLS``).
* Every count is a plain int read at scrape time (``statistics``); labels are bounded: an
  outcome (``OUTCOMES``), a verification result (``RESULTS``), an endpoint of ``CALLS_API``
  and a status code.
* No secret (the webhook secret, the API key, a client secret's value) is logged or put in
  an event, a message or a label.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

import attrs
import trio

from rtbus.calls import (
    CallNotFoundError,
    CallsClient,
    CallsError,
    CallsTransportError,
    CallsUpstreamError,
    ClientSecret,
)
from rtbus.metrics import Histogram
from rtbus.protocol import (
    ActOnWebhook,
    CallAccepted,
    CallEnded,
    CallIncoming,
    CallReferred,
    CallRejected,
    EndedBy,
    MalformedWebhookError,
    ProtocolError,
    RealtimeCallIncoming,
    RealtimeTarget,
    RtbusError,
    WebhookInbox,
    WebhookRedelivery,
    WebhookRefusal,
    WebhookSecret,
    WebhookSignatureError,
    WebhookTimestampError,
    WebhookVerdict,
    WebhookVerifier,
)
from rtbus.session import Session, SessionSpec, SessionState

from ._call_metrics import CallMetrics
from ._call_routes import CallRoute, CallsSettings
from ._service import Service

__all__ = [
    "CALLS",
    "OUTCOMES",
    "RESULTS",
    "CallView",
    "Switchboard",
    "SwitchboardStatistics",
    "UnknownCall",
    "WebhookAnswer",
    "run_switchboard",
]

log = logging.getLogger("rtbus.calls")

#: The bus sequence the ``rtbus.call.*`` events are published under.
CALLS: Final = "calls"
#: The outcome label of ``rtbus_calls_total``.
OUTCOMES: Final = ("accepted", "rejected", "referred", "failed", "ended")
#: The result label of ``rtbus_webhook_verifications_total``.
RESULTS: Final = ("verified", "redelivery", "malformed", "bad_signature", "stale", "busy")
_REFUSAL_RESULTS: Final[Mapping[type[Exception], str]] = {
    MalformedWebhookError: "malformed",
    ProtocolError: "malformed",
    WebhookSignatureError: "bad_signature",
    WebhookTimestampError: "stale",
}
_ACCEPT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# How long a stopping switchboard may take to tell of the calls it lets go.
_LET_GO_SECONDS: Final = 1.0
#: A call rtbus cannot hold any more of: the caller hears Busy Here.
_BUSY: Final = 486
_BROWSER: Final = "browser"


class UnknownCall(RtbusError):
    """Raised by a call operation naming a call the switchboard does not hold (never was,
    or is over): the caller's mistake."""

    def __init__(self, call_id: str) -> None:
        super().__init__(call_id)
        self.call_id = call_id

    def __str__(self) -> str:
        return f"no call with id {self.call_id!r}"


@attrs.frozen
class WebhookAnswer:
    """What to answer a webhook delivery: ``status``, and for a refusal ``code`` and
    ``message`` (which never hold a secret)."""

    status: int
    code: str = "ok"
    message: str = ""


@attrs.frozen
class CallView:
    """A call as the control surface shows it."""

    call_id: str
    session_id: str
    route: str
    state: str
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen(kw_only=True)
class SwitchboardStatistics:
    """A snapshot of the switchboard's counters (read at scrape time)."""

    outcomes: Mapping[str, int]
    active: int
    pending: int
    verifications: Mapping[str, int]
    api_errors: Mapping[tuple[str, str], int]


@attrs.define
class _LiveCall:
    call_id: str
    session: Session
    route: str
    started_at: float
    ended_by_rtbus: bool = False


class Switchboard:
    """Routes incoming calls, holds their sessions, and carries out call operations."""

    def __init__(
        self,
        service: Service,
        settings: CallsSettings,
        calls: CallsClient,
        nursery: trio.Nursery,
        *,
        secret: WebhookSecret | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._service = service
        self._settings = settings
        self._calls = calls
        self._nursery = nursery
        self._clock = clock
        verifier = None if secret is None else WebhookVerifier(secret, settings.webhook_tolerance)
        self._inbox = None if verifier is None else WebhookInbox(verifier)
        self._live: dict[str, _LiveCall] = {}
        self._pending = 0
        self._accepting = 0
        self._stopping = False
        self._outcomes: Counter[str] = Counter(dict.fromkeys(OUTCOMES, 0))
        self._results: Counter[str] = Counter(dict.fromkeys(RESULTS, 0))
        self._api_errors: Counter[tuple[str, str]] = Counter()
        #: Webhook arrival (or a browser's offer) to the upstream's answer to the accept.
        self.webhook_to_accept = Histogram(_ACCEPT_BUCKETS)

    def __repr__(self) -> str:
        return f"<Switchboard {len(self._live)} calls>"

    # -- webhooks -------------------------------------------------------------------------

    def receive_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookAnswer:
        """The answer to one delivery, decided now; acting on it is left to a task."""
        if self._inbox is None:
            return WebhookAnswer(404, "not_found", "no webhook secret is configured ([calls])")
        if self._stopping or self._service.draining:
            return WebhookAnswer(503, "draining", "the service is draining and takes no calls")
        verdict = self._inbox.receive(headers, body, now=self._clock())
        return _VERDICTS[type(verdict)](self, verdict)

    def _act_on(self, verdict: WebhookVerdict) -> WebhookAnswer:
        assert isinstance(verdict, ActOnWebhook)
        assert self._inbox is not None
        if self._pending >= self._settings.max_pending:
            self._inbox.release(verdict.webhook_id)  # the redelivery is acted on instead
            self._results["busy"] += 1
            return WebhookAnswer(503, "busy", "too many calls arriving at once; redeliver later")
        self._results["verified"] += 1
        if isinstance(verdict.event, RealtimeCallIncoming):
            self._pending += 1
            self._nursery.start_soon(self._incoming, verdict.event, trio.current_time())
        return WebhookAnswer(200)

    def _redelivered(self, verdict: WebhookVerdict) -> WebhookAnswer:
        self._results["redelivery"] += 1
        return WebhookAnswer(200)

    def _refused(self, verdict: WebhookVerdict) -> WebhookAnswer:
        assert isinstance(verdict, WebhookRefusal)
        self._results[_REFUSAL_RESULTS[type(verdict.error)]] += 1
        log.info("webhook refused: %s", verdict.error)
        return WebhookAnswer(verdict.status, "invalid_webhook", str(verdict.error))

    # -- an incoming call ---------------------------------------------------------------

    async def _incoming(self, event: RealtimeCallIncoming, received_at: float) -> None:
        try:
            route = self._settings.route_for(event)
            caller, callee = event.sip_header("From"), event.sip_header("To")
            await self._publish(
                CallIncoming(call_id=event.call_id, caller=caller, callee=callee, route=route.name)
            )
            if route.action == "reject" or self._held_and_coming() >= self._settings.max_calls:
                status = route.status_code if route.action == "reject" else _BUSY
                await self._reject(event.call_id, route.name, status)
                return
            await self._accept(event.call_id, route, received_at)
        except Exception:
            # A bug here must cost this call, not the switchboard and every call it holds.
            log.exception("call %s: acting on its webhook failed", event.call_id)
            self._outcomes["failed"] += 1
        finally:
            self._pending -= 1

    def _held_and_coming(self) -> int:
        """The calls held, and those being accepted now: what ``max_calls`` bounds."""
        return len(self._live) + self._accepting

    async def _reject(self, call_id: str, route: str, status: int) -> None:
        try:
            with self._counted():
                await self._calls.reject(call_id, status)
        except CallsError as exc:
            await self._failed(call_id, exc)
            return
        self._outcomes["rejected"] += 1
        await self._publish(CallRejected(call_id=call_id, route=route, status_code=status))

    async def _accept(self, call_id: str, route: CallRoute, received_at: float) -> None:
        self._accepting += 1
        try:
            await self._accept_and_attach(call_id, route, received_at)
        finally:
            self._accepting -= 1

    async def _accept_and_attach(self, call_id: str, route: CallRoute, received_at: float) -> None:
        config = route.accept_body(self._service.config.session_defaults.model)
        try:
            with self._counted():
                await self._calls.accept(call_id, config)
        except CallsError as exc:
            await self._failed(call_id, exc)
            return
        self.webhook_to_accept.observe(trio.current_time() - received_at)
        with contextlib.suppress(Exception):  # logged, counted and published by _attach
            await self._attach(call_id, route.name, config, received_at)

    async def _attach(
        self, call_id: str, route: str, config: Mapping[str, Any], received_at: float
    ) -> Session:
        """Open the call's session; raises what ``open_session`` raises (after hanging up)."""
        try:
            session = await self._service.open_session(id=call_id, spec=self._spec(call_id, config))
        except Exception as exc:
            log.warning("call %s: its session could not start: %s", call_id, exc)
            await self._hang_up_quietly(call_id)
            await self._failed(call_id, exc, by="rtbus")
            raise
        live = _LiveCall(call_id, session, route, trio.current_time())
        self._live[call_id] = live
        self._outcomes["accepted"] += 1
        seconds = live.started_at - received_at
        await self._publish(
            CallAccepted(
                call_id=call_id, session_id=session.id, route=route, accept_seconds=seconds
            )
        )
        self._nursery.start_soon(self._until_over, live)
        return session

    def _spec(self, call_id: str, config: Mapping[str, Any]) -> SessionSpec:
        """A call session: attached by call id; no restore, no recycle (see the module)."""
        model = config.get("model")
        session = {k: v for k, v in config.items() if k != "model"}
        return attrs.evolve(
            self._service.config.session_defaults,
            model=model if isinstance(model, str) else self._service.config.session_defaults.model,
            session=session,
            target=RealtimeTarget.call(call_id),
            resume=False,
            recycle_after=None,
        )

    async def _until_over(self, live: _LiveCall) -> None:
        await self._service.wait_session_gone(live.session.id)
        await self._over(live)

    async def let_go(self) -> None:
        """The switchboard stops (the service drains): every call held is over for it."""
        self._stopping = True
        for live in list(self._live.values()):
            await self._over(live)

    async def _over(self, live: _LiveCall) -> None:
        if self._live.pop(live.call_id, None) is None:
            return  # told already
        self._outcomes["ended"] += 1
        by, reason = self._ending(live)
        await self._publish(
            CallEnded(
                call_id=live.call_id,
                session_id=live.session.id,
                by=by,
                reason=reason,
                seconds=trio.current_time() - live.started_at,
            )
        )

    def _ending(self, live: _LiveCall) -> tuple[EndedBy, str]:
        """Who ended the call, and how that reads."""
        if live.ended_by_rtbus:
            return "rtbus", "rtbus hung up or transferred the call"
        if self._stopping or self._service.draining:
            # The call's control connection closed with the service; upstream it may go on.
            return "rtbus", "the service drained and let go of the call"
        if live.session.state is SessionState.FAILED:
            return "upstream", "the call session failed: the upstream lost the call"
        return "caller", "the call ended upstream: the caller hung up"

    async def _failed(self, call_id: str, error: Exception, by: EndedBy | None = None) -> None:
        self._outcomes["failed"] += 1
        who = by or _fault(error)
        await self._publish(
            CallEnded(call_id=call_id, session_id="", by=who, reason=str(error), seconds=0.0)
        )

    async def _hang_up_quietly(self, call_id: str) -> None:
        try:
            with self._counted():
                await self._calls.hangup(call_id)
        except CallsError as exc:
            log.info("call %s: hanging up failed too: %s", call_id, exc)

    # -- the operations the control surface offers -----------------------------------------

    def calls(self) -> list[CallView]:
        """Every call held now."""
        return [self._view(live) for live in self._live.values()]

    async def hangup(self, call_id: str) -> CallView:
        """End a call; its session ends when the upstream closes its connection."""
        live = self._held(call_id)
        live.ended_by_rtbus = True
        with self._counted():
            await self._calls.hangup(call_id)
        return self._view(live)

    async def hang_up_session(self, session_id: str) -> str | None:
        """Hang up the call whose session is ``session_id``, before that session is closed
        (a call's session closed alone would leave the caller on a line nobody answers).
        Returns the call's id, or ``None`` when the session is no call's. A hang-up the
        calls API refuses is logged and counted: the session closes anyway."""
        live = self._live.get(session_id)  # a call's session is opened with the call's id
        if live is None:
            return None
        live.ended_by_rtbus = True
        try:
            with self._counted():
                await self._calls.hangup(live.call_id)
        except CallNotFoundError:
            live.ended_by_rtbus = False  # the caller hung up first: theirs is the end
        except CallsError as exc:
            log.info("call %s: hanging up before closing its session failed: %s", live.call_id, exc)
        return live.call_id

    async def refer(self, call_id: str, target_uri: str) -> CallView:
        """Transfer a SIP call to ``target_uri``; the call then ends here."""
        live = self._held(call_id)
        live.ended_by_rtbus = True
        with self._counted():
            await self._calls.refer(call_id, target_uri)
        self._outcomes["referred"] += 1
        await self._publish(
            CallReferred(call_id=call_id, session_id=live.session.id, target_uri=target_uri)
        )
        return self._view(live)

    async def create(self, sdp_offer: str) -> tuple[CallView, str]:
        """A browser call from its SDP offer, with the server's session config: the call
        (its session attached) and the SDP answer for the browser."""
        started = trio.current_time()
        config = self._browser_config()
        with self._counted():
            created = await self._calls.create(sdp_offer, config)
        self.webhook_to_accept.observe(trio.current_time() - started)
        await self._attach(created.call_id, _BROWSER, config, started)
        return self._view(self._live[created.call_id]), created.sdp_answer

    async def client_secret(self, expires_after: int | None = None) -> ClientSecret:
        """An ephemeral key for a browser, for the server's session config only."""
        after = (
            None if expires_after is None else {"anchor": "created_at", "seconds": expires_after}
        )
        with self._counted():
            return await self._calls.client_secret(self._browser_config(), expires_after=after)

    def _browser_config(self) -> dict[str, Any]:
        model = self._service.config.session_defaults.model
        return {"type": "realtime", "model": model, **self._settings.browser_session()}

    def _held(self, call_id: str) -> _LiveCall:
        live = self._live.get(call_id)
        if live is None:
            raise UnknownCall(call_id)
        return live

    def _view(self, live: _LiveCall) -> CallView:
        seconds = trio.current_time() - live.started_at
        state = live.session.state.value
        return CallView(live.call_id, live.session.id, live.route, state, seconds)

    @contextmanager
    def _counted(self) -> Iterator[None]:
        """Count a calls API request's failure by endpoint and status."""
        try:
            yield
        except CallsError as exc:
            self._api_errors[exc.endpoint, _status_label(exc)] += 1
            raise

    async def _publish(self, event: Any) -> None:
        with contextlib.suppress(trio.ClosedResourceError):  # drained: nobody is left to tell
            await self._service.bus.publish(
                CALLS, event.type, event, received_at=trio.current_time()
            )

    def statistics(self) -> SwitchboardStatistics:
        return SwitchboardStatistics(
            outcomes=dict(self._outcomes),
            active=len(self._live),
            pending=self._pending,
            verifications=dict(self._results),
            api_errors=dict(self._api_errors),
        )


_VERDICTS: Final[Mapping[type, Callable[[Switchboard, WebhookVerdict], WebhookAnswer]]] = {
    ActOnWebhook: Switchboard._act_on,
    WebhookRedelivery: Switchboard._redelivered,
    WebhookRefusal: Switchboard._refused,
}


def _fault(error: Exception) -> EndedBy:
    """Whose fault a failed accept or reject is: a call gone (the caller gave up) is the
    caller's, an upstream failing is the upstream's, the rest (our request refused) ours."""
    if isinstance(error, CallNotFoundError):
        return "caller"
    if isinstance(error, CallsUpstreamError | CallsTransportError):
        return "upstream"
    return "rtbus"


def _status_label(error: CallsError) -> str:
    status = getattr(error, "status", None)
    return "none" if status is None else str(status)


async def run_switchboard(
    service: Service,
    settings: CallsSettings,
    *,
    secret: WebhookSecret | None = None,
    task_status: trio.TaskStatus[Switchboard] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the service's switchboard until cancelled (nursery start protocol): while it runs
    it is ``service.switchboard``, and its metrics are on the service's registry.
    ``secret`` verifies webhooks (default: ``settings.webhook_secret``; none: no webhooks)."""
    client = CallsClient(
        service.config.upstream, timeout=settings.api_timeout, max_retries=settings.api_retries
    )
    async with client, trio.open_nursery() as nursery:
        board = Switchboard(service, settings, client, nursery, secret=secret or settings.secret())
        with service.metrics.collecting(CallMetrics(board)):
            service.switchboard = board
            try:
                task_status.started(board)
                await trio.sleep_forever()
            finally:
                service.switchboard = None
                nursery.cancel_scope.cancel()
                with trio.CancelScope(shield=True), trio.move_on_after(_LET_GO_SECONDS):
                    await board.let_go()
