"""The histograms and rate-limit gauges the metrics worker keeps, after real voice turns."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from metrics_support import VOICE_TURN, Scrape
from support.upstream import CREATE, start_sim, take_until, upstream

from rtbus import open_service
from rtbus.bus import Envelope
from rtbus.protocol import SERVER_EVENT_TYPES
from rtbus.service._demo import speak
from rtbus.sim import SimServer


@pytest.fixture
async def sim(nursery: trio.Nursery) -> SimServer:
    # Paced at real time (virtual, under autojump_clock): the durations are not all zero.
    return await start_sim(nursery, speed=1.0)


def first(envelopes: list[Envelope], type: str, after: int = 0) -> Envelope:
    return next(e for e in envelopes[after:] if e.type == type)


async def test_a_voice_turn_is_measured_from_the_end_of_speech_to_the_first_audio(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_service(upstream(sim)) as svc, svc.bus.subscribe(sessions="s1") as sub:
        session = await svc.open_session(id="s1", session=VOICE_TURN)
        await speak(session, seconds=1.0)
        envelopes = await take_until(sub, "response.done")
        await trio.testing.wait_all_tasks_blocked()  # the metrics worker has taken them all
        scrape = Scrape(svc)
    stopped = first(envelopes, "input_audio_buffer.speech_stopped")
    audio = first(envelopes, "response.output_audio.delta", envelopes.index(stopped))
    created = first(envelopes, "response.created")
    done = envelopes[-1]
    assert scrape.value("rtbus_time_to_first_audio_seconds_count") == 1
    assert scrape.value("rtbus_time_to_first_audio_seconds_sum") == pytest.approx(
        audio.received_at - stopped.received_at
    )
    assert scrape.value("rtbus_response_duration_seconds_count", status="completed") == 1
    assert scrape.value("rtbus_response_duration_seconds_sum", status="completed") == (
        pytest.approx(done.received_at - created.received_at)
    )
    assert done.received_at - created.received_at >= 0.3, "the response held 0.3 s of audio"
    frames = [e for e in envelopes if e.type in SERVER_EVENT_TYPES]
    assert scrape.value("rtbus_frame_to_subscriber_seconds_count") == len(frames)
    assert scrape.value("rtbus_frame_to_subscriber_seconds_bucket", le="+Inf") == len(frames)


async def test_without_user_audio_first_audio_counts_from_response_created(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_service(upstream(sim)) as svc, svc.bus.subscribe(sessions="s1") as sub:
        session = await svc.open_session(id="s1")
        for _ in range(2):
            await session.send(CREATE)
            envelopes = await take_until(sub, "response.done")
        await trio.testing.wait_all_tasks_blocked()
        scrape = Scrape(svc)
    created = first(envelopes, "response.created")
    audio = first(envelopes, "response.output_audio.delta")
    assert scrape.value("rtbus_time_to_first_audio_seconds_count") == 2, "one per response"
    assert scrape.value("rtbus_time_to_first_audio_seconds_sum") >= (
        audio.received_at - created.received_at
    )
    assert scrape.value("rtbus_response_duration_seconds_count", status="completed") == 2


async def test_rate_limits_are_the_last_ones_the_server_gave(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    async with (
        open_service(upstream(sim)) as svc,
        svc.bus.subscribe(types=["rate_limits.updated", "response.done"]) as sub,
    ):
        session = await svc.open_session(id="s1")
        for _ in range(2):
            await session.send(CREATE)
            envelopes = await take_until(sub, "response.done")
        await trio.testing.wait_all_tasks_blocked()
        scrape = Scrape(svc)
    limits = first(envelopes, "rate_limits.updated").event.rate_limits  # type: ignore[attr-defined]
    assert {limit.name for limit in limits} == {"requests", "tokens"}
    assert scrape.by("rtbus_rate_limit_remaining", "name") == {
        limit.name: limit.remaining for limit in limits
    }
    assert scrape.by("rtbus_rate_limit_limit", "name") == {
        limit.name: limit.limit for limit in limits
    }
