"""A transcription session (``RealtimeTarget.transcription()``) run by the service, end to end
against rtbus.sim on loopback: its config gets its kind, audio in gives transcripts on the bus,
and a lost connection comes back as a transcription session with nothing to restore."""

from __future__ import annotations

import base64
import functools
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing
from support.upstream import KEY, take_until, upstream

from rtbus import SessionSpec, open_service
from rtbus.protocol import NULL, ConfigError, RealtimeTarget
from rtbus.service import Service
from rtbus.session import Session
from rtbus.sim import SimServer, serve_sim

TRANSCRIPT = "my card number ends in four two"
MANUAL = {"audio": {"input": {"turn_detection": None}}}
SPEC = SessionSpec(target=RealtimeTarget.transcription(), session=MANUAL)


@pytest.fixture
async def sim(nursery: trio.Nursery) -> SimServer:
    serve = functools.partial(
        serve_sim, "127.0.0.1", 0, speed=None, api_key=KEY, input_transcript=TRANSCRIPT
    )
    server: SimServer = await nursery.start(serve)
    return server


@pytest.fixture
async def service(sim: SimServer) -> AsyncIterator[Service]:
    async with open_service(upstream(sim)) as svc:
        yield svc


async def speak(session: Session) -> None:
    audio = base64.b64encode(bytes(9_600)).decode("ascii")  # 200 ms of 24 kHz PCM16
    await session.send({"type": "input_audio_buffer.append", "audio": audio})
    await session.send({"type": "input_audio_buffer.commit"})


async def test_audio_in_gives_transcripts_on_the_bus(
    service: Service, autojump_clock: trio.testing.MockClock
) -> None:
    sub = service.bus.subscribe(sessions="t1", maxsize=1_000)
    session = await service.open_session(id="t1", spec=SPEC)
    await speak(session)
    taken = await take_until(sub, "conversation.item.input_audio_transcription.completed")
    types = [e.type for e in taken]
    assert types.index("session.created") < types.index("session.updated")
    updated = next(e for e in taken if e.type == "session.updated").event
    assert updated.session.type == "transcription"  # type: ignore[attr-defined]
    assert updated.session.audio.input.turn_detection is NULL  # type: ignore[attr-defined]
    assert taken[-1].event.transcript == TRANSCRIPT  # type: ignore[attr-defined]
    assert "error" not in types
    assert "response.created" not in types
    await sub.aclose()


async def test_a_lost_connection_comes_back_transcribing(
    service: Service, sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    sub = service.bus.subscribe(sessions="t1", maxsize=1_000)
    session = await service.open_session(id="t1", spec=SPEC)
    await speak(session)
    await take_until(sub, "conversation.item.input_audio_transcription.completed")
    assert sim.inject("drop") == 1
    resumed = (await take_until(sub, "rtbus.session.resumed"))[-1].event
    assert (resumed.items_restored, resumed.items_refused) == (0, 0)  # type: ignore[attr-defined]
    await speak(session)
    taken = await take_until(sub, "conversation.item.input_audio_transcription.completed")
    assert "error" not in [e.type for e in taken]
    assert sim.statistics().connections_total == 2
    await sub.aclose()


def test_a_spec_whose_config_is_of_the_other_kind_fails_when_made() -> None:
    with pytest.raises(ConfigError, match=r"session\.type") as caught:
        SessionSpec(target=RealtimeTarget.transcription(), session={"type": "realtime"})
    assert "'transcription'" in str(caught.value)
    with pytest.raises(ConfigError, match=r"session\.type"):
        SessionSpec(target=RealtimeTarget.call("rtc_1"), session={"type": "transcription"})
    with pytest.raises(ConfigError, match=r"session\.audio\.output"):
        # A transcription session has no output audio: the protocol's own model says so.
        SessionSpec(
            target=RealtimeTarget.transcription(),
            session={"audio": {"output": {"voice": "marin"}}},
        )


async def test_a_recycle_replaces_it_with_another_transcription_session(
    service: Service, sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    sub = service.bus.subscribe(sessions="t1", maxsize=1_000)
    spec = SessionSpec(target=RealtimeTarget.transcription(), session=MANUAL, recycle_after=3.0)
    session = await service.open_session(id="t1", spec=spec)
    recycled = (await take_until(sub, "rtbus.session.recycled"))[-1].event
    assert recycled.items_restored == 0  # type: ignore[attr-defined]
    await speak(session)
    taken = await take_until(sub, "conversation.item.input_audio_transcription.completed")
    assert "error" not in [e.type for e in taken]
    assert session.statistics().counts.recycles == 1
    await sub.aclose()


def test_a_config_of_type_transcription_is_a_transcription_session() -> None:
    # What the HTTP surface and the gateway pass on: only a session config, no target.
    spec = SessionSpec(session={"type": "transcription"})
    assert spec.connects_to == RealtimeTarget.transcription()
    assert SessionSpec(model="m").connects_to == RealtimeTarget.model("m")
