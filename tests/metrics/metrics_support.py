"""Shared helpers for the metrics tests: a simulator, a service on it, and scrapes read back
through prometheus_client's own text parser (what Prometheus would see)."""

from __future__ import annotations

import base64
import functools
from collections.abc import Mapping
from typing import Any

import prometheus_client
import trio
from prometheus_client.parser import text_string_to_metric_families

from rtbus import OpenAIConfig, Service, SessionSpec, sim
from rtbus.bus import Envelope, Subscription
from rtbus.session import Session
from rtbus.sim import SimServer, serve_sim
from rtbus.transport import ConnectTarget, ReconnectPolicy

KEY = "sk-sim-metrics-test"
MODEL = "gpt-realtime"
CREATE: dict[str, Any] = {"type": "response.create"}
VOICE_TURN: dict[str, Any] = {
    "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}}
}
_APPEND_BYTES = 4800  # 100 ms of PCM16 at 24 kHz
_APPEND_SECONDS = 0.1

Labels = frozenset[tuple[str, str]]


async def start_sim(nursery: trio.Nursery, *, speed: float | None = None) -> SimServer:
    """A simulator on a free port: unpaced by default, at ``speed`` times real time if given
    (on the virtual clock under ``autojump_clock``)."""
    serve = functools.partial(
        serve_sim, "127.0.0.1", 0, speed=speed, response_audio_seconds=0.3, api_key=KEY
    )
    server: SimServer = await nursery.start(serve)
    return server


def upstream(server: SimServer, key: str = KEY) -> OpenAIConfig:
    return OpenAIConfig(api_key=key, base_url=server.url)


def first_connect_only(server: SimServer, fault: str) -> SessionSpec:
    """A spec whose first connection carries ``fault``; reconnects go to a clean target."""
    clean = ConnectTarget.from_config(upstream(server), MODEL)
    return SessionSpec(
        model=MODEL,
        extra_query={"sim_fault": fault},
        reconnect=ReconnectPolicy(before_attempt=lambda attempt: clean),
    )


class Scrape:
    """One scrape of a service's registry, parsed back from the text exposition."""

    def __init__(self, service: Service) -> None:
        self.text = prometheus_client.generate_latest(service.metrics.registry).decode()
        self.families = {f.name: f for f in text_string_to_metric_families(self.text)}
        self.samples: dict[str, dict[Labels, float]] = {}
        for family in self.families.values():
            for sample in family.samples:
                labels = frozenset(sample.labels.items())
                self.samples.setdefault(sample.name, {})[labels] = sample.value

    def value(self, metric: str, /, **labels: str) -> float:
        """The sample ``metric{labels}``; 0 when the series is absent (a counter not yet hit)."""
        return self.samples.get(metric, {}).get(frozenset(labels.items()), 0.0)

    def by(self, name: str, label: str) -> Mapping[str, float]:
        """Every sample of ``name`` (with one label), by that label's value."""
        return {dict(key)[label]: value for key, value in self.samples.get(name, {}).items()}

    def counters(self) -> dict[tuple[str, Labels], float]:
        """Every counter sample (``_total``), keyed by name and labels."""
        return {
            (name, labels): value
            for name, rows in self.samples.items()
            if name.endswith("_total")
            for labels, value in rows.items()
        }


async def take_until(sub: Subscription, type: str, *, within: float = 120.0) -> list[Envelope]:
    """What ``sub`` hands out up to the first ``type``; fails after ``within`` seconds (of the
    virtual clock, under ``autojump_clock``) rather than wait forever."""
    taken = []
    with trio.fail_after(within):
        async for envelope in sub:
            taken.append(envelope)
            if envelope.type == type:
                return taken
    raise AssertionError(f"the subscription ended before {type}")


async def speak(session: Session) -> None:
    """A user turn at real time: a second of speech, then half a second of silence (server
    VAD ends it)."""
    speech = sim.speech_like_pcm16(1.0)
    silence = bytes(len(sim.speech_like_pcm16(0.5)))
    for audio in (speech, silence):
        for start in range(0, len(audio), _APPEND_BYTES):
            chunk = base64.b64encode(audio[start : start + _APPEND_BYTES]).decode()
            await session.send({"type": "input_audio_buffer.append", "audio": chunk})
            await trio.sleep(_APPEND_SECONDS)
