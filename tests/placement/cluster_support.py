"""The cluster tests' parts: services that place sessions and bridge their events to Redis,
worker processes consuming them (``support.redis_worker``), and what each side saw."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs
import trio
from placement_support import FAST, PASSWORD, redis_config
from support.polling import eventually
from support.redis_server import RedisServer
from support.redis_worker import GROUPS
from support.upstream import upstream

from rtbus.bus import Bus, Envelope, OverflowPolicy
from rtbus.redis import RedisBridge
from rtbus.service import Service, open_service
from rtbus.service._placement import Placement, PlacementConfig, run_placement
from rtbus.session import Session
from rtbus.sim import SimServer

TESTS = Path(__file__).resolve().parents[1]

#: One published event: (session id, seq, type).
Seen = tuple[str, int, str]


class Collector:
    """Everything one service's bus published from when it was made: make it beside the
    bridge (no checkpoint between), and both see the very same envelopes."""

    def __init__(self, bus: Bus) -> None:
        self._subscription = bus.subscribe(maxsize=1_000_000, overflow=OverflowPolicy.BLOCK)
        self.seen: list[Seen] = []
        self.counts: Counter[tuple[str, str]] = Counter()  # (session, type) -> how many
        self._changed = trio.Event()

    async def run(self) -> None:
        async with self._subscription as subscription:
            async for envelope in subscription:
                self._take(envelope)

    def _take(self, envelope: Envelope) -> None:
        self.seen.append((envelope.session_id, envelope.seq, envelope.type))
        self.counts[envelope.session_id, envelope.type] += 1
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._changed.wait()


@attrs.frozen
class ClusterService:
    """A service with a placement and a bridge to Redis."""

    name: str
    service: Service
    placement: Placement
    bridge: RedisBridge
    collector: Collector


@contextlib.asynccontextmanager
async def cluster_service(
    sim: SimServer, redis: RedisServer, name: str, **redis_options: Any
) -> AsyncIterator[ClusterService]:
    config = attrs.evolve(redis_config(redis), **redis_options)
    async with open_service(upstream(sim)) as service:
        collector, bridge = Collector(service.bus), RedisBridge(service.bus, config, node=name)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(collector.run)
                await nursery.start(bridge.run)
                placing = PlacementConfig(node=name, max_sessions=2, **FAST)
                placement = await nursery.start(run_placement, service, config, placing)
                await eventually(lambda: placement.readiness_problem() is None)
                yield ClusterService(name, service, placement, bridge, collector)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await bridge.aclose()


def session_of(id: str, services: Iterable[ClusterService]) -> tuple[ClusterService, Session]:
    for node in services:
        if id in node.service.sessions:
            return node, node.service.sessions[id]
    raise AssertionError(f"session {id!r} runs nowhere")


async def respond(services: Iterable[ClusterService], id: str) -> None:
    """Ask session ``id`` for a response and wait until its ``response.done`` is published."""
    node, session = session_of(id, services)
    counts, key = node.collector.counts, (id, "response.done")
    done = counts[key]
    await session.send({"type": "response.create"})
    await node.collector.wait_for(lambda: counts[key] > done)


# -- the worker processes --------------------------------------------------------------------


@attrs.frozen
class Handled:
    group: str
    node: str
    session: str
    seq: int
    type: str
    consumer: str
    deliveries: int


class Workers:
    """Worker processes (``support.redis_worker``), each writing to its own file."""

    def __init__(self, redis: RedisServer, directory: Path) -> None:
        self._redis = redis
        self._directory = directory
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._read: dict[str, int] = {}
        self._lines: list[list[str]] = []
        self._handled: list[Handled] = []

    def start(self, name: str, *options: str) -> None:
        env = os.environ | {"PYTHONPATH": str(TESTS), "RTBUS_REDIS_PASSWORD": PASSWORD}
        command = [sys.executable, "-m", "support.redis_worker", self._redis.url, name]
        command += [str(self._output(name)), *options]
        with open(self._directory / f"{name}.stderr", "wb") as stderr:
            self.processes[name] = subprocess.Popen(
                command, env=env, cwd=TESTS, stdout=subprocess.DEVNULL, stderr=stderr
            )

    def kill(self, name: str) -> None:
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)

    def lines(self) -> list[list[str]]:
        """Every line the workers wrote so far, split into words (read incrementally)."""
        for name in self.processes:
            path = self._output(name)
            if not path.exists():
                continue
            with path.open("rb") as output:
                output.seek(self._read.get(name, 0))
                text = output.read()
            complete = text[: text.rfind(b"\n") + 1]  # a line being written waits
            self._read[name] = self._read.get(name, 0) + len(complete)
            for line in complete.decode().splitlines():
                self._take(line.split())
        return self._lines

    def _take(self, words: list[str]) -> None:
        self._lines.append(words)
        if words[0] == "handled":
            w = words
            self._handled.append(Handled(w[1], w[2], w[3], int(w[4]), w[5], w[6], int(w[7])))

    def ready(self) -> set[str]:
        return {words[1] for words in self.lines() if words[0] == "ready"}

    def handled(self) -> list[Handled]:
        self.lines()
        return self._handled

    def hanging_in(self) -> dict[str, str]:
        """Group -> the worker whose handler hangs in it (never returns)."""
        return {words[1]: words[4] for words in self.lines() if words[0] == "hanging"}

    def _output(self, name: str) -> Path:
        return self._directory / f"{name}.out"

    def stderr(self) -> str:
        return "\n".join(
            (self._directory / f"{name}.stderr").read_text(errors="replace")
            for name in self.processes
        )


@contextlib.contextmanager
def worker_processes(
    redis: RedisServer, directory: Path, count: int, *options: str
) -> Iterator[Workers]:
    workers = Workers(redis, directory)
    try:
        for n in range(count):
            workers.start(f"w{n}", *options)
        yield workers
    finally:
        workers.stop_all()


#: One event wherever it was published: (node, session id, seq).
Key = tuple[str, str, int]


def wanted_by(group: str, *services: ClusterService) -> set[Key]:
    """What the services published that ``group`` takes."""
    globs = GROUPS[group]
    return {
        (node.name, session, seq)
        for node in services
        for session, seq, type in node.collector.seen
        if any(fnmatch.fnmatchcase(type, glob) for glob in globs)
    }


def handled_counts(workers: Workers, group: str) -> Counter[Key]:
    """How many times the group handled each event."""
    return Counter((h.node, h.session, h.seq) for h in workers.handled() if h.group == group)
