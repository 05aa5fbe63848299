"""A call from ring to hang-up through rtbus's own pieces, against the simulator."""

from __future__ import annotations

import functools

import trio
from support.webhook_receiver import WebhookReceiver, serve_webhook_receiver

from rtbus.calls import CallsClient
from rtbus.protocol import OpenAIConfig, RealtimeTarget, WebhookVerifier
from rtbus.sim import SimServer, serve_sim
from rtbus.transport import ConnectTarget, open_target


async def test_ring_accept_attach_converse_hang_up(nursery: trio.Nursery) -> None:
    server: SimServer = await nursery.start(
        functools.partial(
            serve_sim, "127.0.0.1", 0, speed=None, caller_turns=2, response_audio_seconds=0.2
        )
    )
    receiver: WebhookReceiver = await nursery.start(
        serve_webhook_receiver, WebhookVerifier(server.webhook_secret)
    )
    config = OpenAIConfig(api_key="sk-test", base_url=server.url)
    await server.place_call(webhook_url=receiver.url)
    incoming = await receiver.incoming.receive()
    assert incoming.sip_header("To") is not None

    async with CallsClient(config) as calls:
        await calls.accept(incoming.call_id, {"type": "realtime", "model": "gpt-realtime"})

    target = ConnectTarget.from_config(config, RealtimeTarget.call(incoming.call_id))
    types: list[str] = []
    async with open_target(target) as rt:
        async for event in rt:  # ends when the caller hangs up: a normal close
            types.append(event.type)
    assert types[0] == "session.created"
    assert types.count("input_audio_buffer.speech_stopped") == 2
    assert types.count("response.done") == 2
