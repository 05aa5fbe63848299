"""The whole service under load: simulator -> session actor -> bus -> subscriber.

Two measurements, in one run, against ``python -m rtbus.sim`` in a subprocess:

* End to end: one session, one long unpaced audio response, read by one ``block``
  subscriber, against the official ``openai`` client reading the same response alone. On the
  live simulator both run at its pace (it is one trio process at 100% of a core), so the
  simulator's frames are also recorded and replayed from a subprocess as fast as the socket
  takes them: the verdict (rtbus >= 2x the openai client's events/s) is on the replay.
* A fleet: 100, 500 and 1,000 concurrent sessions streaming real-time audio (24 kHz PCM16 in
  100 ms deltas) into one service with one ``block`` subscriber. The service runs in its own
  process (fresh for each count, so its RSS and CPU are its own): latency from frame arrival
  (``envelope.received_at``) to the subscriber taking it, the service's CPU seconds per wall
  second, RSS per idle ready session, and drops (delivered against published).

``python -m bench.bench_service``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import attrs
import orjson
import trio
import trio_websocket
import wsproto
import wsproto.events
from wsproto.frame_protocol import FrameProtocol

from bench._table import Row, render
from rtbus import OpenAIConfig, Service, ServiceConfig, Session, open_service
from rtbus.bus import Envelope, Subscription

API_KEY = "sk-bench"
MODEL = "gpt-realtime"
REPEATS = 2
# Unpaced, the simulator sends 6,000-10,000 events/s: 1,500 s of audio is 1.5-2.5 s of it.
E2E_AUDIO_SECONDS = 1_500.0
TARGET_VS_OPENAI = 2.0
FLEET_COUNTS = (100, 500, 1_000)
FLEET_STREAM_SECONDS = 10.0
FLEET_AUDIO_SECONDS = 60.0  # longer than the window: every session streams throughout it
FLEET_BATCH = 100
FLEET_SUBSCRIBER_SIZE = 1_024
FLEET_SHUTDOWN = 5.0
DELTAS_PER_SECOND = 10.0  # 100 ms of audio per delta, paced to real time
TARGET_P99_MS = 25.0
TARGET_RSS_KIB = 64.0
NOFILE = 8_192


# The upstreams (each in its own process) -------------------------------------------------


@attrs.frozen
class Upstream:
    """A server in a subprocess: its base URL, and its CPU time so far."""

    url: str
    pid: int

    def cpu_seconds(self) -> float:
        stat = pathlib.Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def upstream_process(arguments: list[str]) -> Iterator[Upstream]:
    """Run ``python ARGUMENTS``, which prints its base URL first; stop it on the way out
    (the fleet benchmark starts its upstream so too)."""
    process = subprocess.Popen(
        [sys.executable, *arguments],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert process.stdout is not None
        yield Upstream(process.stdout.readline().strip(), process.pid)
    finally:
        process.terminate()
        process.wait()


def simulator(speed: str, audio_seconds: float) -> AbstractContextManager[Upstream]:
    """``python -m rtbus.sim`` on a free port."""
    options = ["--port", "0", "--speed", speed, "--audio-seconds", str(audio_seconds)]
    return upstream_process(["-m", "rtbus.sim", *options, "--api-key", API_KEY])


# End to end: one response, rtbus against the openai client ------------------------------


@attrs.frozen
class Stream:
    """One response read by one client: its events, wall seconds and client CPU seconds."""

    events: int
    wall: float
    cpu: float

    @property
    def per_second(self) -> float:
        return self.events / self.wall

    @property
    def per_cpu_second(self) -> float:
        return self.events / self.cpu


class _Clock:
    """Wall and process CPU time from ``start`` to ``stop``."""

    def start(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def stop(self, events: int) -> Stream:
        return Stream(events, time.perf_counter() - self._wall, time.process_time() - self._cpu)


async def rtbus_response(url: str) -> Stream:
    """rtbus end to end: a session actor publishes, one ``block`` subscriber reads."""
    clock = _Clock()
    async with open_service(OpenAIConfig(api_key=API_KEY, base_url=url)) as svc:
        session = await svc.open_session(id="e2e", model=MODEL)
        # Subscribed once ready: only the response's events are counted, as for openai.
        async with svc.bus.subscribe(sessions="e2e", maxsize=1_024, overflow="block") as sub:
            clock.start()
            await session.send({"type": "response.create"})
            events = await _until_done(sub)
            return clock.stop(events)


async def _until_done(sub: Subscription) -> int:
    events = 0
    async for envelope in sub:
        events += 1
        if envelope.type == "response.done":
            break
    return events


async def openai_response(url: str) -> Stream:
    """The official client alone on asyncio, reading the same response."""
    from openai import AsyncOpenAI

    clock = _Clock()
    client = AsyncOpenAI(api_key=API_KEY, base_url=url)
    async with client.realtime.connect(model=MODEL) as conn:
        await conn.recv()  # session.created, before the clock starts
        clock.start()
        await conn.send({"type": "response.create"})
        events = 0
        async for event in conn:
            events += 1
            if event.type == "response.done":
                break
        return clock.stop(events)


# Replay: the simulator's own frames, sent faster than the simulator can make them --------


@attrs.frozen
class Recording:
    """One simulator connection's frames: the handshake's two, then a whole response's."""

    created: str
    updated: str
    response: list[str]


async def record(url: str) -> Recording:
    """Take one long response from the simulator at ``url``, frame by frame."""
    ws_url = url.replace("http://", "ws://", 1) + f"/realtime?model={MODEL}"
    headers = [(b"authorization", f"Bearer {API_KEY}".encode())]
    async with trio_websocket.open_websocket_url(
        ws_url, extra_headers=headers, max_message_size=16 * 1024 * 1024
    ) as ws:
        created = str(await ws.get_message())
        await ws.send_message(
            orjson.dumps({"type": "session.update", "session": {"type": "realtime"}}).decode()
        )
        updated = await _frames_until(ws, "session.updated")
        await ws.send_message(orjson.dumps({"type": "response.create"}).decode())
        response: list[str] = []
        await _frames_until(ws, "response.done", response)
    return Recording(created, updated[-1], response)


async def _frames_until(
    ws: trio_websocket.WebSocketConnection, type: str, into: list[str] | None = None
) -> list[str]:
    frames = [] if into is None else into
    while not frames or orjson.loads(frames[-1])["type"] != type:
        frames.append(str(await ws.get_message()))
    return frames


def _frame(text: str) -> bytes:
    return bytes(FrameProtocol(client=False, extensions=[]).send_data(text, fin=True))


async def _replay_connection(
    recording: Recording, response: bytes, socket: trio.SocketStream
) -> None:
    """Act the simulator for one client: handshake, config, then the response at once."""
    ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await _accept(socket, ws)
        await socket.send_all(_frame(recording.created))
        replies = {"session.update": _frame(recording.updated), "response.create": response}
        while data := await socket.receive_some():
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, wsproto.events.CloseConnection):
                    await socket.send_all(ws.send(event.response()))
                    return
                if isinstance(event, wsproto.events.TextMessage):
                    reply = replies.get(orjson.loads(event.data)["type"], b"")
                    await _send_chunked(socket, reply)


async def _accept(socket: trio.SocketStream, ws: wsproto.WSConnection) -> None:
    while True:
        for event in ws.events():
            if isinstance(event, wsproto.events.Request):
                await socket.send_all(ws.send(wsproto.events.AcceptConnection()))
                return
        ws.receive_data(await socket.receive_some())


async def _send_chunked(socket: trio.SocketStream, data: bytes) -> None:
    view = memoryview(data)
    for start in range(0, len(view), 1 << 20):
        await socket.send_all(view[start : start + (1 << 20)])


async def _serve_replay(recording: Recording) -> None:
    response = b"".join(_frame(text) for text in recording.response)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    print(f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/v1", flush=True)
    handler = functools.partial(_replay_connection, recording, response)
    await trio.serve_listeners(handler, listeners)


def replay_entry() -> None:
    """The replaying upstream's entry point (in its subprocess): ``_serve_replay(PATH)``."""
    recording = Recording(**orjson.loads(pathlib.Path(sys.argv[1]).read_bytes()))
    trio.run(_serve_replay, recording)


def replayer(recording: Recording, directory: str) -> AbstractContextManager[Upstream]:
    """Serve ``recording`` from a subprocess."""
    path = os.path.join(directory, "recording.json")
    with open(path, "wb") as file:
        file.write(orjson.dumps(attrs.asdict(recording)))
    return upstream_process(["-c", _entry("replay_entry"), path])


def _entry(name: str) -> str:
    return f"from bench.bench_service import {name}; {name}()"


# End to end: the rows ----------------------------------------------------------------------


def _best(streams: list[Stream]) -> Stream:
    counts = {s.events for s in streams}
    if len(counts) != 1:
        raise RuntimeError(f"the runs disagree on the response's event count: {counts}")
    return max(streams, key=lambda s: s.per_second)


def _both(url: str) -> tuple[Stream, Stream]:
    ours = _best([trio.run(rtbus_response, url) for _ in range(REPEATS)])
    theirs = _best([asyncio.run(openai_response(url)) for _ in range(REPEATS)])
    if ours.events != theirs.events:
        raise RuntimeError(f"rtbus took {ours.events} events, openai {theirs.events}")
    return ours, theirs


def end_to_end_rows() -> list[Row]:
    """Both clients on the live simulator, then on its replayed frames."""
    with simulator("unpaced", E2E_AUDIO_SECONDS) as sim:
        cpu = sim.cpu_seconds()
        live = _both(sim.url)
        sim_load = (sim.cpu_seconds() - cpu) / sum(2 * s.wall for s in live)
        recording = trio.run(record, sim.url)
    with tempfile.TemporaryDirectory() as directory, replayer(recording, directory) as replay:
        replayed = _both(replay.url)
    return _live_rows(*live, sim_load) + _replayed_rows(*replayed)


def _live_rows(ours: Stream, theirs: Stream, sim_load: float) -> list[Row]:
    name = f"e2e live sim, {ours.events:,} events"
    pace = f"x{ours.per_second / theirs.per_second:.2f}; sim at {sim_load:.0%} CPU"
    return [
        Row("service", f"{name}: rtbus", ours.per_second, "events/s"),
        Row("service", f"{name}: openai client", theirs.per_second, "events/s", pace),
    ]


def _replayed_rows(ours: Stream, theirs: Stream) -> list[Row]:
    name = f"e2e replayed sim, {ours.events:,} events"
    ratio = ours.per_second / theirs.per_second
    return [
        Row("service", f"{name}: rtbus", ours.per_second, "events/s"),
        Row(
            "service",
            f"{name}: openai client",
            theirs.per_second,
            "events/s",
            f"rtbus {ratio:.2f}x faster",
            f">= {TARGET_VS_OPENAI}x",
            "ok" if ratio >= TARGET_VS_OPENAI else "MISS",
        ),
        Row("service", f"{name}: rtbus CPU", 1e6 / ours.per_cpu_second, "us/event"),
        Row("service", f"{name}: openai CPU", 1e6 / theirs.per_cpu_second, "us/event"),
    ]


# The fleet: many real-time sessions in one service (its own process) ---------------------


@attrs.define
class _Probe:
    """The one subscriber: counts everything, times what arrives inside the window."""

    recording: bool = False
    taken: int = 0
    latencies: list[float] = attrs.Factory(list)
    audio_deltas: int = 0

    async def consume(self, sub: Subscription) -> None:
        async for envelope in sub:
            self.taken += 1
            if self.recording:
                self._record(envelope)

    def _record(self, envelope: Envelope) -> None:
        self.latencies.append(trio.current_time() - envelope.received_at)
        if envelope.type == "response.output_audio.delta":
            self.audio_deltas += 1


def rss_kib() -> int:
    """This process's resident set, from ``/proc/self/status``."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < NOFILE:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(NOFILE, hard), hard))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def fleet(url: str, count: int) -> dict[str, float]:
    """Run ``count`` sessions streaming for the window; the measurements, by name."""
    upstream = OpenAIConfig(api_key=API_KEY, base_url=url)
    config = ServiceConfig(upstream=upstream, session_shutdown=FLEET_SHUTDOWN)
    probe = _Probe()
    result: dict[str, float] = {}
    # The subscriber outlives the service: it drains its buffer after the bus has closed.
    async with trio.open_nursery() as nursery, open_service(config) as svc:
        sub = svc.bus.subscribe(maxsize=FLEET_SUBSCRIBER_SIZE, overflow="block")
        # Supervision events stamped before this subscription existed are not its to take.
        before = svc.bus.statistics().published
        nursery.start_soon(probe.consume, sub)
        result.update(await _sessions_lifetime(svc, count, probe))
    stats = svc.bus.statistics()
    result["published"] = stats.published - before
    result["delivered"] = probe.taken
    result["dropped"] = sum(stats.dropped.values())
    return result


async def _sessions_lifetime(svc: Service, count: int, probe: _Probe) -> dict[str, float]:
    """Open, measure idle RSS, stream through the window, stop every response, close."""
    gc.collect()
    before = rss_kib()
    sessions = await open_in_batches(svc, count)
    gc.collect()
    result = {"rss_kib_per_session": (rss_kib() - before) / count}
    result.update(await _stream_window(sessions, probe))
    await _quiesce(sessions)
    for session in sessions:
        await svc.close_session(session.id)
    return result


async def open_in_batches(svc: Service, count: int) -> list[Session]:
    """Open ``count`` sessions, ``FLEET_BATCH`` at a time (the fleet benchmarks share it)."""
    sessions: list[Session] = []

    async def open_one(index: int) -> None:
        sessions.append(await svc.open_session(id=f"s{index:04d}", model=MODEL))

    for first in range(0, count, FLEET_BATCH):
        async with trio.open_nursery() as nursery:
            for index in range(first, min(count, first + FLEET_BATCH)):
                nursery.start_soon(open_one, index)
    return sessions


async def _stream_window(sessions: list[Session], probe: _Probe) -> dict[str, float]:
    for session in sessions:
        await session.send({"type": "response.create"})
    # Skip the start-up burst (response.created and friends from every session at once).
    await trio.sleep(1.0)
    probe.recording = True
    wall, cpu = time.perf_counter(), time.process_time()
    await trio.sleep(FLEET_STREAM_SECONDS)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    probe.recording = False
    latencies = probe.latencies
    return {
        "p50_ms": _percentile(latencies, 0.50) * 1e3,
        "p99_ms": _percentile(latencies, 0.99) * 1e3,
        "max_ms": max(latencies) * 1e3,
        "cpu_per_wall": cpu / wall,
        "events_per_second": len(latencies) / wall,
        "real_time": probe.audio_deltas / wall / (DELTAS_PER_SECOND * len(sessions)),
    }


async def _quiesce(sessions: list[Session]) -> None:
    # Closing waits for a running response to finish: cancel them all first.
    async with trio.open_nursery() as nursery:
        for session in sessions:
            nursery.start_soon(session.send, {"type": "response.cancel"})


def fleet_entry() -> None:
    """The service process's entry point: ``fleet(URL, COUNT)``, printed as one JSON line."""
    raise_nofile()
    url, count = sys.argv[1], int(sys.argv[2])
    print(orjson.dumps(trio.run(fleet, url, count)).decode(), flush=True)


def measure_fleet(count: int) -> dict[str, float]:
    """``count`` sessions against a real-time simulator, the service in a fresh process."""
    with simulator("1", FLEET_AUDIO_SECONDS) as sim:
        done = subprocess.run(
            [sys.executable, "-c", _entry("fleet_entry"), sim.url, str(count)],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
    result: dict[str, float] = orjson.loads(done.stdout)
    return result


def _fleet_rows(count: int, m: dict[str, float]) -> list[Row]:
    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISS"

    name = f"{count:,} sessions"
    kept = f"sim at {m['real_time']:.2f}x real time"
    lost = int(m["published"] - m["delivered"])
    return [
        Row("service", f"{name}: events in window", m["events_per_second"], "events/s", kept),
        Row("service", f"{name}: latency p50", m["p50_ms"], "ms"),
        Row(
            "service",
            f"{name}: latency p99",
            m["p99_ms"],
            "ms",
            f"max {m['max_ms']:.1f} ms",
            f"<= {TARGET_P99_MS:g}",
            verdict(m["p99_ms"] <= TARGET_P99_MS),
        ),
        Row("service", f"{name}: service CPU", m["cpu_per_wall"], "cpu-s/s"),
        Row(
            "service",
            f"{name}: RSS per idle session",
            m["rss_kib_per_session"],
            "KiB",
            "",
            f"<= {TARGET_RSS_KIB:g}",
            verdict(m["rss_kib_per_session"] <= TARGET_RSS_KIB),
        ),
        Row(
            "service",
            f"{name}: dropped under block",
            m["dropped"] + lost,
            "events",
            f"{int(m['delivered']):,} of {int(m['published']):,}",
            "0",
            verdict(m["dropped"] == 0 and lost == 0),
        ),
    ]


def fleet_rows() -> list[Row]:
    raise_nofile()  # the simulator inherits it: it holds the other end of every socket
    return [row for count in FLEET_COUNTS for row in _fleet_rows(count, measure_fleet(count))]


def run() -> list[Row]:
    """Measure end to end against the openai client, then the fleets; the table's rows."""
    return end_to_end_rows() + fleet_rows()


def main() -> None:
    print(render(run()))


if __name__ == "__main__":
    main()
