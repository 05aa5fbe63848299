"""The official ``openai`` SDK talks to the simulator (its client runs on asyncio in a thread).

Every frame the SDK receives must validate against the SDK's own server event union, and the
SDK's ``parse_event`` must give the typed class for it (not a fallback).
"""

from __future__ import annotations

import asyncio
import base64

import openai
import orjson
import pydantic
import trio
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from sim_support import conforms_frame

from rtbus.sim import SimServer, serve_sim, speech_like_pcm16

API_KEY = "sk-sim-test"


async def start(nursery: trio.Nursery) -> SimServer:
    async def run(*, task_status: trio.TaskStatus[SimServer]) -> None:
        await serve_sim(
            "127.0.0.1",
            0,
            api_key=API_KEY,
            speed=None,
            response_audio_seconds=0.5,
            response_text="Sure, here you go.",
            task_status=task_status,
        )

    server: SimServer = await nursery.start(run)
    return server


async def read_until(conn: AsyncRealtimeConnection, event_type: str) -> list[bytes]:
    frames = [await conn.recv_bytes()]
    while orjson.loads(frames[-1])["type"] != event_type:
        frames.append(await conn.recv_bytes())
    return frames


async def audio_conversation(base_url: str) -> list[bytes]:
    client = openai.AsyncOpenAI(api_key=API_KEY, base_url=base_url)
    async with asyncio.timeout(30), client.realtime.connect(model="gpt-realtime") as conn:
        frames = [await conn.recv_bytes()]
        await conn.session.update(
            session={"type": "realtime", "audio": {"input": {"turn_detection": None}}}
        )
        frames += await read_until(conn, "session.updated")
        audio = base64.b64encode(speech_like_pcm16(0.5)).decode()
        await conn.input_audio_buffer.append(audio=audio)
        await conn.input_audio_buffer.commit()
        frames += await read_until(conn, "conversation.item.done")
        await conn.response.create()
        frames += await read_until(conn, "response.done")
    await client.close()
    return frames


async def text_conversation(base_url: str) -> list[bytes]:
    client = openai.AsyncOpenAI(api_key=API_KEY, base_url=base_url)
    async with asyncio.timeout(30), client.realtime.connect(model="gpt-realtime") as conn:
        frames = [await conn.recv_bytes()]
        await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        frames += await read_until(conn, "session.updated")
        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Say something."}],
            }
        )
        frames += await read_until(conn, "conversation.item.done")
        await conn.response.create()
        frames += await read_until(conn, "response.done")
        for frame in frames:
            parsed = conn.parse_event(frame)
            assert isinstance(parsed, pydantic.BaseModel)
            assert type(parsed).__module__.startswith("openai.types.realtime")
    await client.close()
    return frames


def run_in_asyncio(conversation: object, base_url: str) -> list[bytes]:
    assert callable(conversation)
    result = asyncio.run(conversation(base_url))
    assert isinstance(result, list)
    return result


async def test_the_sdk_converses_in_audio(nursery: trio.Nursery) -> None:
    server = await start(nursery)
    frames = await trio.to_thread.run_sync(run_in_asyncio, audio_conversation, server.url)
    events = [conforms_frame(frame) for frame in frames]
    kinds = [event["type"] for event in events]
    assert kinds[:2] == ["session.created", "session.updated"]
    assert "input_audio_buffer.committed" in kinds
    assert kinds.count("response.output_audio.delta") == 5
    assert kinds[-1] == "response.done"
    assert events[-1]["response"]["status"] == "completed"  # type: ignore[index]


async def test_the_sdk_converses_in_text(nursery: trio.Nursery) -> None:
    server = await start(nursery)
    frames = await trio.to_thread.run_sync(run_in_asyncio, text_conversation, server.url)
    events = [conforms_frame(frame) for frame in frames]
    text = "".join(str(e["delta"]) for e in events if e["type"] == "response.output_text.delta")
    assert text == "Sure, here you go."
    assert server.statistics().connections_total == 1
