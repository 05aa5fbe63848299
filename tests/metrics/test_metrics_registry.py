"""Each service's own registry, other components' collectors on it, and the public surface."""

from __future__ import annotations

import gc
import importlib.metadata
from collections.abc import Iterator

import prometheus_client
import pytest
import trio
import trio.testing
from metrics_support import Scrape
from prometheus_client.core import CounterMetricFamily, Metric

import rtbus.metrics
from rtbus import OpenAIConfig, open_service

# Nothing listens here: these services never open a session.
NOWHERE = OpenAIConfig(api_key="sk-unused", base_url="http://127.0.0.1:9/v1")


class Things:
    """A collector as another component (the HTTP surface, the Redis bridge) writes one."""

    def __init__(self, name: str = "rtbus_test_things") -> None:
        self.name = name

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.name, "Things.")

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.name, "Things.", value=3)


async def test_each_service_has_its_own_registry_never_the_global_one() -> None:
    async with open_service(NOWHERE) as one, open_service(NOWHERE) as two:
        assert one.metrics.registry is not two.metrics.registry
        assert one.metrics.registry is not prometheus_client.REGISTRY
        with one.metrics.collecting(Things()):
            assert Scrape(one).value("rtbus_test_things_total") == 3
            assert "rtbus_test_things" not in Scrape(two).text
    assert b"rtbus_" not in prometheus_client.generate_latest(prometheus_client.REGISTRY)


async def test_every_catalogue_family_is_exported_with_its_type() -> None:
    async with open_service(NOWHERE) as svc:
        await trio.testing.wait_all_tasks_blocked()
        scrape = Scrape(svc)
    families = {name: family.type for name, family in scrape.families.items()}
    assert scrape.by("rtbus_build_info", "version") == {importlib.metadata.version("rtbus"): 1}
    expected = {
        "rtbus_sessions": "gauge",
        "rtbus_upstream_connects": "counter",
        "rtbus_upstream_reconnects": "counter",
        "rtbus_upstream_disconnects": "counter",
        "rtbus_session_failures": "counter",
        "rtbus_upstream_close_codes": "counter",
        "rtbus_server_events": "counter",
        "rtbus_client_events": "counter",
        "rtbus_server_errors": "counter",
        "rtbus_websocket_received_bytes": "counter",
        "rtbus_websocket_sent_bytes": "counter",
        "rtbus_websocket_received_frames": "counter",
        "rtbus_decode_seconds": "summary",
        "rtbus_frame_to_subscriber_seconds": "histogram",
        "rtbus_response_duration_seconds": "histogram",
        "rtbus_time_to_first_audio_seconds": "histogram",
        "rtbus_rate_limit_remaining": "gauge",
        "rtbus_rate_limit_limit": "gauge",
        "rtbus_bus_published": "counter",
        "rtbus_bus_delivered": "counter",
        "rtbus_bus_dropped": "counter",
        "rtbus_bus_subscriptions": "gauge",
        "rtbus_bus_queue_depth": "gauge",
        "rtbus_bus_queue_fill_ratio_max": "gauge",
        "rtbus_bus_publishers_waiting": "gauge",
        "rtbus_bus_subscribers_disconnected": "counter",
        "rtbus_bus_publisher_blocked_seconds_max": "gauge",
        "rtbus_actor_restarts": "counter",
        "rtbus_actor_failures": "counter",
        "rtbus_supervisor_remaining_intensity": "gauge",
        "rtbus_build_info": "gauge",
        "rtbus_gc_pause_seconds": "histogram",
    }
    assert {name: families.get(name) for name in expected} == expected


async def test_the_collectors_pauses_are_timed_while_the_service_runs() -> None:
    async with open_service(NOWHERE) as svc:
        before = Scrape(svc).by("rtbus_gc_pause_seconds_count", "generation")
        assert set(before) == {"0", "1", "2"}  # each exported from the start
        gc.collect(0)
        gc.collect(2)
        gc.collect(2)
        scrape = Scrape(svc)
    counts = scrape.by("rtbus_gc_pause_seconds_count", "generation")
    assert counts["0"] >= before["0"] + 1
    assert counts["2"] >= before["2"] + 2  # the interpreter may collect on its own as well
    assert scrape.by("rtbus_gc_pause_seconds_sum", "generation")["2"] > 0
    # Once the service is gone, it times nothing more.
    assert not any(getattr(c, "__self__", None) is svc.metrics.gc for c in gc.callbacks)
    gc.collect(2)
    assert Scrape(svc).by("rtbus_gc_pause_seconds_count", "generation")["2"] == counts["2"]


async def test_a_collector_is_exported_while_registered() -> None:
    things = Things()
    async with open_service(NOWHERE) as svc:
        svc.metrics.register(things)
        assert Scrape(svc).value("rtbus_test_things_total") == 3
        svc.metrics.unregister(things)
        assert "rtbus_test_things" not in Scrape(svc).text
        with svc.metrics.collecting(things) as registered:
            assert registered is things
            assert Scrape(svc).value("rtbus_test_things_total") == 3
        assert "rtbus_test_things" not in Scrape(svc).text


async def test_a_name_taken_already_is_refused_and_changes_nothing() -> None:
    async with open_service(NOWHERE) as svc:
        before = Scrape(svc).families.keys()
        with pytest.raises(ValueError, match="rtbus_bus_published"):
            svc.metrics.register(Things("rtbus_bus_published"))
        with (
            pytest.raises(ValueError, match="rtbus_sessions"),
            svc.metrics.collecting(Things("rtbus_sessions")),
        ):
            pass
        assert Scrape(svc).families.keys() == before


async def test_unregistering_a_stranger_is_an_error() -> None:
    async with open_service(NOWHERE) as svc:
        with pytest.raises(KeyError):
            svc.metrics.unregister(Things())


def test_public_names() -> None:
    assert set(rtbus.metrics.__all__) == {
        "Histogram",
        "MetricsSource",
        "ServiceMetrics",
        "histogram_family",
    }
    exported = {name for name in vars(rtbus.metrics) if not name.startswith("_")}
    assert exported == set(rtbus.metrics.__all__)
    for name in rtbus.metrics.__all__:
        assert getattr(rtbus.metrics, name).__module__.startswith("rtbus.metrics._")
