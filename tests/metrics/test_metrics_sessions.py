"""Sessions and upstream metrics, scraped from a running service on the simulator."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from metrics_support import Scrape
from support.upstream import CREATE, first_connect_only, take_until, upstream

from rtbus import SessionSpec, open_service
from rtbus.actors import ChildStartFailed
from rtbus.sim import SimServer


async def test_a_session_that_talks_is_counted_by_state_type_and_bytes(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    async with (
        open_service(upstream(sim)) as svc,
        svc.bus.subscribe(sessions="talker-7f3a") as sub,
    ):
        session = await svc.open_session(id="talker-7f3a")
        await session.send(CREATE)
        published = await take_until(sub, "response.done")
        scrape = Scrape(svc)
        stats = session.statistics()
    assert scrape.by("rtbus_sessions", "state") == {
        "connecting": 0,
        "resuming": 0,
        "ready": 1,
        "reconnecting": 0,
        "closing": 0,
        "closed": 0,
        "failed": 0,
    }
    assert scrape.value("rtbus_upstream_connects_total") == 1
    by_type = scrape.by("rtbus_server_events_total", "type")
    for type in {e.type for e in published}:
        assert by_type[type] == sum(1 for e in published if e.type == type), type
    assert by_type["rtbus.session.ready"] == 1
    assert scrape.by("rtbus_client_events_total", "type") == {
        "session.update": 1,
        "response.create": 1,
    }
    wire = stats.counts
    assert wire.frames_received >= len([e for e in published if not e.type.startswith("rtbus.")])
    assert scrape.value("rtbus_websocket_received_frames_total") == wire.frames_received
    assert scrape.value("rtbus_websocket_received_bytes_total") == wire.bytes_received > 10_000
    assert scrape.value("rtbus_websocket_sent_bytes_total") == wire.bytes_sent > 0
    assert scrape.value("rtbus_decode_seconds_count") == wire.decodes == wire.frames_received
    assert 0 < scrape.value("rtbus_decode_seconds_sum") < 1
    assert "talker-7f3a" not in scrape.text, "no label carries a session id"


async def test_a_dropped_connection_counts_a_reconnect_by_cause_and_its_close_code(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    spec = first_connect_only(sim, "drop:after_events=2")
    async with (
        open_service(upstream(sim)) as svc,
        svc.bus.subscribe(types="rtbus.session.*") as sub,
    ):
        await svc.open_session(id="dropped-91c2", spec=spec)
        lifecycle = await take_until(sub, "rtbus.session.reconnected")
        scrape = Scrape(svc)
    assert [e.event.cause for e in lifecycle[1:]] == ["close_1006", "close_1006"]  # type: ignore[attr-defined]
    assert scrape.by("rtbus_upstream_disconnects_total", "reason") == {"close_1006": 1}
    assert scrape.by("rtbus_upstream_reconnects_total", "reason") == {"close_1006": 1}
    assert scrape.by("rtbus_upstream_close_codes_total", "code") == {"none": 1}
    assert scrape.value("rtbus_upstream_connects_total") == 2
    assert "dropped-91c2" not in scrape.text


async def test_a_close_code_is_its_own_cause_and_label(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    spec = first_connect_only(sim, "close:1011:after_events=2")
    async with (
        open_service(upstream(sim)) as svc,
        svc.bus.subscribe(types="rtbus.session.*") as sub,
    ):
        await svc.open_session(id="s1", spec=spec)
        await take_until(sub, "rtbus.session.reconnected")
        scrape = Scrape(svc)
    assert scrape.by("rtbus_upstream_reconnects_total", "reason") == {"close_1011": 1}
    assert scrape.by("rtbus_upstream_close_codes_total", "code") == {"1011": 1}


async def test_session_expired_is_counted_as_an_error_and_a_reconnect(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    spec = first_connect_only(sim, "expire:after_events=2")
    async with (
        open_service(upstream(sim)) as svc,
        svc.bus.subscribe(types=["error", "rtbus.session.*"]) as sub,
    ):
        await svc.open_session(id="s1", spec=spec)
        await take_until(sub, "rtbus.session.reconnected")
        scrape = Scrape(svc)
    assert scrape.by("rtbus_upstream_reconnects_total", "reason") == {"session_expired": 1}
    assert scrape.by("rtbus_upstream_disconnects_total", "reason") == {"session_expired": 1}
    assert (
        scrape.value(
            "rtbus_server_errors_total", type="invalid_request_error", code="session_expired"
        )
        == 1
    )


async def test_a_bad_key_is_a_failure_labelled_by_its_http_status(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_service(upstream(sim, key="sk-wrong-key-abc")) as svc:
        with pytest.raises(ChildStartFailed):
            await svc.open_session(id="s1")
        scrape = Scrape(svc)
    assert scrape.by("rtbus_session_failures_total", "reason") == {"http_401": 1}
    assert scrape.value("rtbus_upstream_connects_total") == 1, "the ended session still counts"
    assert scrape.value("rtbus_upstream_close_codes_total") == 0, "no connection was open"
    assert "sk-wrong-key-abc" not in scrape.text


async def test_server_errors_are_counted_by_type_and_code(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    # Valid events (rtbus refuses invalid ones itself) that the upstream refuses.
    no_such_item = {"type": "conversation.item.delete", "item_id": "no_such_item"}
    async with open_service(upstream(sim)) as svc, svc.bus.subscribe(types="error") as errors:
        session = await svc.open_session(id="s1")
        await session.send(no_such_item)
        await session.send({"type": "input_audio_buffer.commit"})
        received = [await errors.receive(), await errors.receive()]
        scrape = Scrape(svc)
    codes = [e.event.error.code for e in received]  # type: ignore[attr-defined]
    assert codes == ["item_not_found", "input_audio_buffer_commit_empty"]
    assert scrape.by("rtbus_server_errors_total", "code") == dict.fromkeys(codes, 1)
    assert set(scrape.by("rtbus_server_errors_total", "type")) == {"invalid_request_error"}
    assert scrape.value("rtbus_server_events_total", type="error") == 2
    assert scrape.by("rtbus_client_events_total", "type") == {
        "session.update": 1,
        "conversation.item.delete": 1,
        "input_audio_buffer.commit": 1,
    }


async def test_unhandled_error_restarts_the_actor_and_every_count_says_so(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    spec = first_connect_only(sim, "error:invalid_value:after_events=2")
    async with (
        open_service(upstream(sim)) as svc,
        svc.bus.subscribe(types="rtbus.*") as sub,
    ):
        await svc.open_session(id="s1", spec=spec)
        await take_until(sub, "rtbus.session.reconnected")
        scrape = Scrape(svc)
    assert scrape.by("rtbus_session_failures_total", "reason") == {"unhandled_error": 1}
    assert scrape.by("rtbus_upstream_reconnects_total", "reason") == {"unhandled_error": 1}
    assert (
        scrape.value(
            "rtbus_server_errors_total", type="invalid_request_error", code="invalid_value"
        )
        == 1
    )
    assert scrape.value("rtbus_actor_failures_total", supervisor="root/sessions") == 1
    assert (
        scrape.value("rtbus_actor_restarts_total", supervisor="root/sessions", outcome="restarted")
        == 1
    )
    # The restart was counted against the session's own budget, not its supervisor's.
    assert scrape.value("rtbus_supervisor_remaining_intensity", supervisor="root/sessions") == 3


async def test_counters_never_go_down_when_sessions_end(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    fatal = SessionSpec(extra_query={"sim_fault": "error:insufficient_quota:after_events=2"})
    async with (
        open_service(upstream(sim)) as svc,
        svc.bus.subscribe(types=["response.done", "rtbus.session.failed"]) as sub,
    ):
        talker = await svc.open_session(id="talker-5d1e")
        await talker.send(CREATE)
        await take_until(sub, "response.done")
        await svc.open_session(id="doomed-0b7c", spec=fatal)
        await take_until(sub, "rtbus.session.failed")
        before = Scrape(svc)
        await svc.close_session("talker-5d1e")
        await trio.testing.wait_all_tasks_blocked()
        after = Scrape(svc)
        assert svc.sessions == {}
    assert after.by("rtbus_sessions", "state") == dict.fromkeys(
        before.by("rtbus_sessions", "state"), 0
    )
    counters = after.counters()
    for key, value in before.counters().items():
        assert counters.get(key, 0) >= value, key
    assert after.by("rtbus_session_failures_total", "reason") == {
        "server_error_insufficient_quota": 1
    }
    # Both connections were closed by rtbus: one drained, one failed for good.
    assert after.by("rtbus_upstream_close_codes_total", "code") == {"1000": 2}
    assert after.value("rtbus_server_events_total", type="rtbus.session.closed") == 1
    for id in ("talker-5d1e", "doomed-0b7c"):
        assert id not in after.text
