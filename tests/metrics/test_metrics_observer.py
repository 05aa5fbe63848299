"""The metrics observer on its own: envelopes in, histograms out, no clock but the one given.

The end-to-end tests run it on the simulator; these pin down what it measures between which
envelopes, with arrival times chosen so that each rule shows.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import trio
from prometheus_client import CollectorRegistry

from rtbus.bus import Bus, Envelope
from rtbus.metrics._observer import Observer
from rtbus.protocol import decode_server_event
from rtbus.session import SessionFailed, SessionReconnected


def envelope(at: float, event: dict[str, Any], session: str = "s1") -> Envelope:
    decoded = decode_server_event(orjson.dumps({"event_id": "event_1", **event}))
    return Envelope(session, 1, decoded.type, decoded, at)


def response(type: str, id: str = "resp_1", status: str = "in_progress") -> dict[str, Any]:
    body = {"id": id, "object": "realtime.response", "status": status}
    return {"type": type, "response": body}


Event = dict[str, Any]
STOPPED: Event = {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 900, "item_id": "i1"}
COMMITTED: Event = {"type": "input_audio_buffer.committed", "item_id": "i1"}
AUDIO: Event = {
    "type": "response.output_audio.delta",
    "item_id": "i2",
    "content_index": 0,
    "output_index": 0,
    "response_id": "resp_1",
    "delta": "AAAA",
}


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def observer(registry: CollectorRegistry) -> Observer:
    observer = Observer()
    registry.register(observer)
    return observer


def value(registry: CollectorRegistry, metric: str, /, **labels: str) -> float:
    found = registry.get_sample_value(metric, labels)
    return 0.0 if found is None else found


def test_first_audio_counts_from_speech_stopped_not_from_what_follows(
    observer: Observer, registry: CollectorRegistry
) -> None:
    for at, event in [
        (10.0, STOPPED),
        (10.4, COMMITTED),
        (10.5, response("response.created")),
        (11.25, AUDIO),
        (11.5, AUDIO),
    ]:
        observer.observe(envelope(at, event), now=at)
    assert value(registry, "rtbus_time_to_first_audio_seconds_count") == 1
    assert value(registry, "rtbus_time_to_first_audio_seconds_sum") == pytest.approx(1.25)


def test_first_audio_counts_from_the_commit_without_vad(
    observer: Observer, registry: CollectorRegistry
) -> None:
    for at, event in [(3.0, COMMITTED), (4.0, response("response.created")), (4.5, AUDIO)]:
        observer.observe(envelope(at, event), now=at)
    assert value(registry, "rtbus_time_to_first_audio_seconds_sum") == pytest.approx(1.5)


def test_a_response_without_audio_leaves_nothing_for_the_next_turn(
    observer: Observer, registry: CollectorRegistry
) -> None:
    for at, event in [
        (1.0, response("response.created")),
        (2.0, response("response.done", status="completed")),
        (5.0, response("response.created", id="resp_2")),
        (5.25, AUDIO),
    ]:
        observer.observe(envelope(at, event), now=at)
    assert value(registry, "rtbus_time_to_first_audio_seconds_count") == 1
    assert value(registry, "rtbus_time_to_first_audio_seconds_sum") == pytest.approx(0.25)


def test_response_duration_by_final_status_per_session_and_response(
    observer: Observer, registry: CollectorRegistry
) -> None:
    for at, event, session in [
        (1.0, response("response.created"), "s1"),
        (1.5, response("response.created"), "s2"),
        (4.0, response("response.done", status="cancelled"), "s2"),
        (5.0, response("response.done", status="completed"), "s1"),
        (6.0, response("response.done", id="resp_never_created", status="completed"), "s1"),
    ]:
        observer.observe(envelope(at, event, session), now=at)
    completed = {"status": "completed"}
    assert value(registry, "rtbus_response_duration_seconds_count", **completed) == 1
    assert value(registry, "rtbus_response_duration_seconds_sum", **completed) == 4.0
    assert value(registry, "rtbus_response_duration_seconds_sum", status="cancelled") == 2.5


def test_a_reconnect_voids_what_the_session_had_pending(
    observer: Observer, registry: CollectorRegistry
) -> None:
    observer.observe(envelope(1.0, response("response.created")), now=1.0)
    lifecycle = SessionReconnected(reason="x", attempt=1, upstream_session_id="u", cause="other")
    observer.observe(Envelope("s1", 2, lifecycle.type, lifecycle, 2.0), now=2.0)
    observer.observe(envelope(3.0, AUDIO), now=3.0)
    observer.observe(envelope(4.0, response("response.done", status="failed")), now=4.0)
    assert value(registry, "rtbus_time_to_first_audio_seconds_count") == 0
    assert value(registry, "rtbus_response_duration_seconds_count", status="failed") == 0


def test_frame_to_subscriber_is_the_lag_behind_arrival_for_server_events_only(
    observer: Observer, registry: CollectorRegistry
) -> None:
    observer.observe(envelope(1.0, STOPPED), now=1.02)
    failed = SessionFailed(reason="x", cause="other")
    observer.observe(Envelope("s1", 2, failed.type, failed, 0.0), now=9.0)
    assert value(registry, "rtbus_frame_to_subscriber_seconds_count") == 1
    assert value(registry, "rtbus_frame_to_subscriber_seconds_sum") == pytest.approx(0.02)
    assert value(registry, "rtbus_frame_to_subscriber_seconds_bucket", le="0.025") == 1
    assert value(registry, "rtbus_frame_to_subscriber_seconds_bucket", le="0.01") == 0


def test_rate_limits_keep_known_names_and_skip_what_is_missing(
    observer: Observer, registry: CollectorRegistry
) -> None:
    limits = [
        {"name": "requests", "limit": 100, "remaining": 7, "reset_seconds": 1.0},
        {"name": "tokens", "limit": 5000, "reset_seconds": 1.0},
    ]
    observer.observe(envelope(1.0, {"type": "rate_limits.updated", "rate_limits": limits}), 1.0)
    assert value(registry, "rtbus_rate_limit_remaining", name="requests") == 7
    assert value(registry, "rtbus_rate_limit_limit", name="tokens") == 5000
    assert registry.get_sample_value("rtbus_rate_limit_remaining", {"name": "tokens"}) is None


def test_odd_envelopes_are_ignored_not_raised(
    observer: Observer, registry: CollectorRegistry
) -> None:
    # The tap runs inside every publish: it must never raise, whatever it is shown.
    odd_events: list[Any] = [object(), {"rate_limits": "nope"}, None]
    for n, (type, odd_event) in enumerate(
        zip(("response.done", "rate_limits.updated", "response.created"), odd_events, strict=True)
    ):
        odd = Envelope("s1", n + 1, type, odd_event, 1.0)
        observer.observe(odd, now=2.0)
    assert value(registry, "rtbus_response_duration_seconds_count", status="other") == 0


def test_pending_measurements_are_capped(observer: Observer) -> None:
    for n in range(10_050):
        created = response("response.created", id=f"resp_{n}")
        observer.observe(envelope(float(n), created, session=f"s{n % 7}"), now=float(n))
    assert len(observer._responses) == 10_000
    assert ("s0", "resp_0") not in observer._responses, "the oldest went first"


async def test_the_tap_measures_every_publish_and_delivery_and_is_no_subscriber(
    registry: CollectorRegistry,
) -> None:
    observer = Observer()
    registry.register(observer)
    bus = Bus(tap=observer)
    # A tap is nobody's subscriber: an error nobody takes still reaches nobody.
    assert not bus.has_subscriber("s1", "error")
    async with bus.subscribe() as first, bus.subscribe() as second:
        created = decode_server_event(
            orjson.dumps({"event_id": "e", **response("response.created")})
        )
        await bus.publish("s1", created.type, created, received_at=trio.current_time())
        done = decode_server_event(orjson.dumps({"event_id": "f", **response("response.done")}))
        await bus.publish("s1", done.type, done, received_at=trio.current_time())
        await first.receive()
        await first.receive_batch(10)
        async with second.delivery():
            pass
    assert value(registry, "rtbus_frame_to_subscriber_seconds_count") == 3, "per delivery"
    assert value(registry, "rtbus_response_duration_seconds_count", status="other") == 1
