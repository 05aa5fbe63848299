"""A webhook endpoint for tests: verifies deliveries, acts on each id once, records everything.

``receiver = await nursery.start(serve_webhook_receiver, verifier)`` listens on 127.0.0.1:0;
``receiver.url`` is where the simulator's phone network posts. It answers as a service should:
400 for a delivery that fails verification, 200 for a good one and for a redelivery (which is
acknowledged but not acted on again). ``fail_next`` makes it answer 500 to that many deliveries
first (to see the sender redeliver). ``incoming`` receives each call acted on.
"""

from __future__ import annotations

import math
import time

import h11
import trio

from rtbus.protocol import (
    ActOnWebhook,
    RealtimeCallIncoming,
    WebhookInbox,
    WebhookRefusal,
    WebhookVerifier,
)
from rtbus.sim._calls import Reply
from rtbus.sim._http import PlainRequest, read_front_door, serve_plain


class WebhookReceiver:
    def __init__(self, port: int, verifier: WebhookVerifier) -> None:
        self.port = port
        self.verifier = verifier
        self.inbox = WebhookInbox(verifier)
        self.log = self.inbox.log
        self.deliveries: list[tuple[str, int]] = []  # (webhook-id, status answered)
        self.acted: list[RealtimeCallIncoming] = []
        self.fail_next = 0
        self.raw: list[PlainRequest] = []
        self._send, self.incoming = trio.open_memory_channel[RealtimeCallIncoming](math.inf)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/openai"

    async def answer(self, request: PlainRequest) -> Reply:
        self.raw.append(request)
        reply = self._judge(request)
        self.deliveries.append((request.header(b"webhook-id"), reply.status))
        return reply

    def _judge(self, request: PlainRequest) -> Reply:
        if self.fail_next:
            self.fail_next -= 1
            return Reply.error(500, "receiver down", None)
        verdict = self.inbox.receive(request.headers, request.body, now=time.time())
        if isinstance(verdict, WebhookRefusal):
            return Reply.error(verdict.status, str(verdict.error), type(verdict.error).__name__)
        if isinstance(verdict, ActOnWebhook) and isinstance(verdict.event, RealtimeCallIncoming):
            self.acted.append(verdict.event)
            self._send.send_nowait(verdict.event)
        return Reply(verdict.status)

    async def handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            connection = h11.Connection(h11.SERVER)
            first = await read_front_door(stream, connection)
            if isinstance(first, PlainRequest):
                await serve_plain(stream, connection, first, self.answer, idle_timeout=10)


async def serve_webhook_receiver(
    verifier: WebhookVerifier, *, task_status: trio.TaskStatus[WebhookReceiver]
) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    receiver = WebhookReceiver(listeners[0].socket.getsockname()[1], verifier)
    task_status.started(receiver)
    await trio.serve_listeners(receiver.handle, listeners)
