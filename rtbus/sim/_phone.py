"""The simulated phone network: it places SIP calls by sending signed webhooks.

``PhoneNetwork.place_call(dial)`` rings a new call in the ``CallBook`` and POSTs a
``realtime.call.incoming`` webhook to the configured URL, signed as OpenAI signs (Standard
Webhooks, ``rtbus.protocol.sign_webhook``), shaped exactly as the ``openai`` package's
``RealtimeCallIncomingWebhookEvent``, with the INVITE's ``To`` and ``From`` (and ``Call-ID``)
in ``sip_headers``. ``run(rate)`` places calls at a steady rate until cancelled.

On demand (``Dial``): ``duplicates`` sends the same signed delivery again at once (a sender's
duplicate), ``redeliveries`` sends it again later with a fresh timestamp and signature but the
same ``webhook-id`` (an ack that was lost), and ``bad_signature`` signs with a key that is not
the endpoint's (a forger; the receiver must refuse it). A delivery that gets no 2xx is retried
after ``retry_delays`` seconds (scaled by the simulator's speed), as OpenAI retries, and the
``Delivery`` returned records every attempt's status.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Final, NoReturn

import attrs
import httpx2
import orjson
import trio

from rtbus.protocol import RealtimeCallIncoming, SipHeader, WebhookSecret, sign_webhook

from ._calls import CallBook
from ._ids import IdSource

__all__ = ["Delivery", "Dial", "PhoneNetwork"]

_FORGED: Final = WebhookSecret(b"not the endpoint's webhook secret")


@attrs.frozen
class Dial:
    """One call to place, and how its webhook is delivered."""

    from_number: str = "+15550100"
    to_number: str = "+15550199"
    duplicates: int = 0
    redeliveries: int = 0
    bad_signature: bool = False


@attrs.frozen
class Delivery:
    """What became of one call's webhook: each attempt's HTTP status (``None``: no answer)."""

    call_id: str
    webhook_id: str
    statuses: tuple[int | None, ...]

    @property
    def acknowledged(self) -> bool:
        """Whether any attempt got a 2xx."""
        return any(_acknowledged(s) for s in self.statuses)


class PhoneNetwork:
    """Places calls on a ``CallBook`` and announces them to one webhook URL."""

    def __init__(
        self,
        book: CallBook,
        *,
        webhook_url: str,
        secret: WebhookSecret,
        http: httpx2.AsyncClient,
        rng: random.Random,
        retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0),
        speed: float | None = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._book = book
        self.webhook_url = webhook_url
        self._secret = secret
        self._http = http
        self._ids = IdSource(rng)
        self._retry_delays = retry_delays
        self._speed = speed
        self._clock = clock

    def __repr__(self) -> str:
        return f"<PhoneNetwork -> {self.webhook_url}>"

    async def place_call(self, dial: Dial | None = None) -> Delivery:
        """Ring a new call and deliver its webhook; what each delivery attempt got."""
        dial = dial or Dial()
        now = self._clock()
        call = self._book.ring(_invite_headers(dial, self._ids), now)
        event = RealtimeCallIncoming(
            id=self._ids.new("evt"),
            created_at=int(now),
            call_id=call.call_id,
            sip_headers=tuple(SipHeader(n, v) for n, v in call.sip_headers),
        )
        body = orjson.dumps(event.to_dict())
        webhook_id = self._ids.new("wh")
        signer = _FORGED if dial.bad_signature else self._secret
        statuses = await self._deliver(signer, webhook_id, body, retry=not dial.bad_signature)
        for _ in range(dial.duplicates):
            statuses += (await self._post(sign_webhook(signer, webhook_id, int(now), body), body),)
        for _ in range(dial.redeliveries):
            statuses += await self._deliver(signer, webhook_id, body, retry=False)
        return Delivery(call.call_id, webhook_id, statuses)

    async def run(self, rate: float) -> NoReturn:
        """Place a call every ``1 / rate`` seconds, forever. The rate is in real seconds, even
        unpaced (``speed=None`` paces audio, not callers: it must not mean "infinitely many")."""
        async with trio.open_nursery() as nursery:
            while True:
                nursery.start_soon(self.place_call)
                await trio.sleep(1.0 / rate)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _deliver(
        self, signer: WebhookSecret, webhook_id: str, body: bytes, *, retry: bool
    ) -> tuple[int | None, ...]:
        statuses: list[int | None] = []
        delays = (*self._retry_delays, None) if retry else (None,)
        for delay in delays:
            # Each attempt is signed afresh: a new timestamp, the same webhook-id.
            headers = sign_webhook(signer, webhook_id, int(self._clock()), body)
            status = await self._post(headers, body)
            statuses.append(status)
            if (status is not None and 200 <= status < 300) or delay is None:
                break
            await self._wait(delay)
        return tuple(statuses)

    async def _post(self, headers: dict[str, str], body: bytes) -> int | None:
        headers = {**headers, "content-type": "application/json"}
        try:
            response = await self._http.post(self.webhook_url, content=body, headers=headers)
        except httpx2.TransportError:
            return None
        return response.status_code

    async def _wait(self, seconds: float) -> None:
        if self._speed is None:
            await trio.lowlevel.checkpoint()
        else:
            await trio.sleep(seconds / self._speed)


def _acknowledged(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def _invite_headers(dial: Dial, ids: IdSource) -> tuple[tuple[str, str], ...]:
    tag = ids.new("tag").removeprefix("tag_")[:10]
    return (
        ("From", f"<sip:{dial.from_number}@pstn.example.net>;tag={tag}"),
        ("To", f"<sip:{dial.to_number}@sip.api.openai.com;transport=tls>"),
        ("Call-ID", ids.new("sip").removeprefix("sip_") + "@pstn.example.net"),
    )
