"""The real-time fleet: N sessions streaming real-time audio into one service, CPU per event.

A cheap upstream runs in another process: one thread, non-blocking sockets, no event loop
library, every frame encoded once before the run. After the handshake answers the simulator
recorded (``session.created``, then ``session.updated`` for the client's ``session.update``)
and the start of a response, each connection gets one ~6.6 KB audio delta every 100 ms and a
transcript delta every 300 ms: 13.3 events per session-second, paced on a 10 ms tick with the
sessions spread over the tick's phases. The upstream costs under a quarter of a core at 2,000
sessions (the table says how much in each window), so it is never what the service waits for.

The service runs in a fresh process per session count (``open_service``, N sessions, one
``block`` subscriber measuring frame-to-subscriber latency from ``envelope.received_at``),
with the garbage collector set as ``rtbus serve`` sets it (``[service] gc_threshold``).
Over a fixed window after a warm-up it measures the process's CPU time (``time.process_time``,
user + system) per event the subscriber took, and p50/p99 latency. "real time" is the events
taken per second over the events the upstream paces per second: below ~0.98 the service no
longer keeps up and latency is queueing, not cost. It also reports the garbage collector's
pauses (the longest full collection: they come while sessions open, as the long-lived objects
grow by a quarter; the longest pause of any collection inside the window) and the loop's
longest stall inside the window, with how much of it the process spent on the CPU (the rest,
the machine did not run it).

The same fleet with its one subscriber through the bus gateway instead (``GATEWAY_COUNTS``):
the service also serves its HTTP surface, and the subscriber is a gateway client (``raw``,
the frame spliced, never decoded) in a third process, taking every session's events. The
gateway's target is x0.7 of the in-process rate: with the service as what bounds the rate,
the ratio of the service's CPU per event in process to its CPU per event with the gateway
subscriber, in the same run. The client's CPU per event and its p99 (from the service's
receive to the client's, on the client's clock: ``received_at`` is its arrival less the
frame's age) are shown beside.

``python -m bench fleet`` (every count) or ``python -m bench fleet --quick`` (100 and 300;
``RTBUS_BENCH_FLEET_COUNTS=100,1000`` picks others). ``RTBUS_BENCH_FLEET_PROFILE=out.txt``
samples the 300-session service during its window with ``py-spy record --format raw`` into
``out.txt`` (``pip install py-spy``); its CPU figures are then not the table's.
"""

from __future__ import annotations

import base64
import functools
import gc
import hashlib
import os
import pathlib
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import attrs
import orjson
import trio

from bench._child import Lines
from bench._table import Row, render
from bench.bench_service import (
    Recording,
    Upstream,
    open_in_batches,
    record,
    simulator,
    upstream_process,
)
from rtbus import OpenAIConfig, ServiceConfig, open_service
from rtbus.bus import Subscription
from rtbus.gateway import connect
from rtbus.service import HttpAddress, HttpConfig, ServiceSettings, serve_http, young_gc_threshold

API_KEY = "sk-bench"
MODEL = "gpt-realtime"
COUNTS: Final = (100, 300, 1_000, 2_000)
QUICK_COUNTS: Final = (100, 300)
GATEWAY_COUNTS: Final = (300, 1_000)  # with the subscriber through the gateway (quick: 300)
GATEWAY_TOKEN: Final = "bench-fleet-token"
# The gateway subscriber's maxsize: half is its window of credit, which bounds what is in
# flight while credit comes back through a loaded loop. At 4,096 (a window of 2,048) the
# sessions' start-up burst at 1,000 sessions filled it, every session stayed blocked on its
# publishes, and blocked publishing cost the service enough to keep it so: x0.63, p99 0.5-1 s.
GATEWAY_SUBSCRIBER_SIZE: Final = 16_384
TARGET_GATEWAY_RATIO = 0.7
PROFILE_COUNT: Final = 300
WARMUP_SECONDS = 3.0
WINDOW_SECONDS = 10.0
SUBSCRIBER_SIZE = 4_096
TICK: Final = 0.010
_STALL_PERIOD: Final = 0.020
AUDIO_EVERY: Final = 10  # ticks: 100 ms
TRANSCRIPT_EVERY: Final = 30  # ticks: 300 ms
EVENTS_PER_SESSION_SECOND: Final = 1 / (AUDIO_EVERY * TICK) + 1 / (TRANSCRIPT_EVERY * TICK)
TARGET_CPU_US = 70.0
TARGET_P99_MS = 25.0
NOFILE = 16_384
_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# The upstream (its own process): one thread, non-blocking sockets -----------------------


def server_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One unmasked frame from the server: written by hand, once per payload, before the run."""
    length = len(payload)
    if length < 126:
        head = bytes([0x80 | opcode, length])
    elif length < 65_536:
        head = bytes([0x80 | opcode, 126]) + length.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + length.to_bytes(8, "big")
    return head + payload


@attrs.frozen
class Script:
    """What every connection is sent: the answers, the response's start, the two deltas."""

    created: bytes
    updated: bytes
    start: bytes
    audio: bytes
    transcript: bytes

    @classmethod
    def from_recording(cls, recording: Recording) -> Script:
        types = [orjson.loads(text)["type"] for text in recording.response]
        first_audio = types.index("response.output_audio.delta")
        transcript = types.index("response.output_audio_transcript.delta")
        return cls(
            created=server_frame(recording.created.encode()),
            updated=server_frame(recording.updated.encode()),
            start=b"".join(server_frame(t.encode()) for t in recording.response[:first_audio]),
            audio=server_frame(recording.response[first_audio].encode()),
            transcript=server_frame(recording.response[transcript].encode()),
        )


@attrs.define(eq=False)
class _Peer:
    """One client connection on the upstream: what it sent so far, what waits to go out."""

    sock: socket.socket
    index: int
    inbound: bytearray = attrs.Factory(bytearray)
    outbound: bytearray = attrs.Factory(bytearray)
    upgraded: bool = False
    streaming: bool = False


def _accept_key(request: bytes) -> bytes:
    for line in request.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            return base64.b64encode(hashlib.sha1(value.strip() + _GUID).digest())
    raise ValueError("no Sec-WebSocket-Key")


def _client_frames(peer: _Peer) -> Iterator[tuple[int, bytes]]:
    """Complete (masked) client frames out of ``peer.inbound``: (opcode, payload)."""
    buffer = peer.inbound
    while len(buffer) >= 2:
        length, offset = buffer[1] & 0x7F, 2
        if length == 126:
            length, offset = int.from_bytes(buffer[2:4], "big"), 4
        elif length == 127:
            length, offset = int.from_bytes(buffer[2:10], "big"), 10
        if len(buffer) < offset + 4 + length:
            return
        mask = bytes(buffer[offset : offset + 4]) * (length // 4 + 1)
        masked = buffer[offset + 4 : offset + 4 + length]
        payload = (int.from_bytes(masked, "big") ^ int.from_bytes(mask[:length], "big")).to_bytes(
            length, "big"
        )
        opcode = buffer[0] & 0x0F
        del buffer[: offset + 4 + length]
        yield opcode, payload


class FleetUpstream:
    """Accepts connections, answers the handshakes, paces the deltas on a 10 ms tick."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.selector = selectors.DefaultSelector()
        self.peers: dict[int, _Peer] = {}
        self.accepted = 0

    def serve(self, listener: socket.socket) -> None:
        listener.setblocking(False)
        self.selector.register(listener, selectors.EVENT_READ, None)
        tick, next_tick = 0, time.monotonic()
        while True:
            timeout = max(0.0, next_tick - time.monotonic())
            for key, _ in self.selector.select(timeout):
                if key.data is None:
                    self._accept(listener)
                else:
                    self._readable(key.data)
            if time.monotonic() >= next_tick:
                self._tick(tick)
                tick, next_tick = tick + 1, next_tick + TICK

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peer = _Peer(sock, self.accepted)
            self.accepted += 1
            self.peers[sock.fileno()] = peer
            self.selector.register(sock, selectors.EVENT_READ, peer)

    def _readable(self, peer: _Peer) -> None:
        try:
            data = peer.sock.recv(65_536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(peer)
            return
        peer.inbound += data
        if not peer.upgraded:
            self._upgrade(peer)
        for opcode, payload in _client_frames(peer):
            self._client_frame(peer, opcode, payload)

    def _upgrade(self, peer: _Peer) -> None:
        end = peer.inbound.find(b"\r\n\r\n")
        if end < 0:
            return
        request = bytes(peer.inbound[:end])
        del peer.inbound[: end + 4]
        peer.upgraded = True
        answer = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + _accept_key(request) + b"\r\n\r\n"
        )
        self._send(peer, answer + self.script.created)

    def _client_frame(self, peer: _Peer, opcode: int, payload: bytes) -> None:
        if opcode == 0x8:  # close: answer it, the client closes TCP
            self._send(peer, server_frame(payload[:2], 0x8))
        elif opcode == 0x9:  # ping
            self._send(peer, server_frame(payload, 0xA))
        elif opcode == 0x1 and orjson.loads(payload).get("type") == "session.update":
            self._send(peer, self.script.updated + self.script.start)
            peer.streaming = True

    def _tick(self, tick: int) -> None:
        audio_phase, transcript_phase = tick % AUDIO_EVERY, tick % TRANSCRIPT_EVERY
        for peer in list(self.peers.values()):
            if not peer.streaming:
                continue
            frames = b""
            if peer.index % AUDIO_EVERY == audio_phase:
                frames += self.script.audio
            if peer.index % TRANSCRIPT_EVERY == transcript_phase:
                frames += self.script.transcript
            if frames:
                self._send(peer, frames)

    def _send(self, peer: _Peer, data: bytes) -> None:
        peer.outbound += data
        try:
            sent = peer.sock.send(peer.outbound)
        except (BlockingIOError, InterruptedError):
            return  # The client is behind: it stays queued, and it is late.
        except OSError:
            self._drop(peer)
            return
        del peer.outbound[:sent]

    def _drop(self, peer: _Peer) -> None:
        if self.peers.pop(peer.sock.fileno(), None) is not None:
            self.selector.unregister(peer.sock)
            peer.sock.close()


def upstream_entry() -> None:
    """The upstream's entry point (its own process): ``serve(SCRIPT_PATH)``, port printed."""
    raise_nofile()
    raw = orjson.loads(pathlib.Path(sys.argv[1]).read_bytes())
    script = Script(**{name: text.encode("latin-1") for name, text in raw.items()})
    listener = socket.create_server(("127.0.0.1", 0), backlog=4_096)
    print(f"http://127.0.0.1:{listener.getsockname()[1]}/v1", flush=True)
    FleetUpstream(script).serve(listener)


def _script_json(script: Script) -> bytes:
    return orjson.dumps({k: v.decode("latin-1") for k, v in attrs.asdict(script).items()})


@contextmanager
def fleet_upstream(script: Script, directory: str) -> Iterator[Upstream]:
    path = os.path.join(directory, "script.json")
    pathlib.Path(path).write_bytes(_script_json(script))
    code = "from bench.bench_fleet import upstream_entry; upstream_entry()"
    with upstream_process(["-c", code, path]) as upstream:
        yield upstream


# The service (its own process per count) ---------------------------------------------------


@attrs.define
class _Pauses:
    """The cyclic garbage collector's pauses in this process (``gc.callbacks``): the longest
    full (generation 2) collection and how many there were (while the sessions opened, and
    the one forced before the warm-up), the tracked objects counted once before the warm-up,
    and the longest pause of any collection during the window. A full collection stops every
    session for its length."""

    full_max: float = 0.0
    full_count: int = 0
    tracked: int = 0
    window_max: float = 0.0
    in_window: bool = False
    _started: float = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        if info["generation"] == 2:
            self.full_max, self.full_count = max(self.full_max, took), self.full_count + 1
        if self.in_window:
            self.window_max = max(self.window_max, took)


@attrs.define
class _Stalls:
    """The event loop's longest stall in the window: how late a 20 ms sleep woke, and how
    much of that lateness the process spent on the CPU. On the CPU, the service held the
    loop; off it, the machine did not run the process (another tenant, the host). Any stall
    delays the sleep it falls in, so the period bounds only this watcher's own cost (at 5 ms
    it was 2% of the service's CPU at 300 sessions, in py-spy)."""

    late: float = 0.0
    on_cpu: float = 0.0

    async def watch(self) -> None:
        while True:
            wall, cpu = time.perf_counter(), time.process_time()
            await trio.sleep(_STALL_PERIOD)
            late = time.perf_counter() - wall - _STALL_PERIOD
            if late > self.late:
                self.late, self.on_cpu = late, min(late, time.process_time() - cpu)


@attrs.define
class _Probe:
    """The one subscriber: counts what it takes, and times it inside the window.

    It takes every session's events, so it reads as such a subscriber should: everything
    buffered in one read (``receive_batch``). One envelope per read is one per scheduler
    turn, and a turn of a loaded service runs many sessions' reads: a one-at-a-time
    subscriber of the whole fleet falls behind, and measures its own queue."""

    recording: bool = False
    taken: int = 0
    latencies: list[float] = attrs.Factory(list)

    async def record(self, on: bool) -> _Seen:
        """Start (``on``) or stop counting; what was seen in the window."""
        await trio.lowlevel.checkpoint()
        self.recording = on
        return _Seen(self.taken, self.latencies, {})

    async def consume(self, sub: Subscription) -> None:
        while True:
            batch = await sub.receive_batch(SUBSCRIBER_SIZE)
            if self.recording:
                now = trio.current_time()
                self.taken += len(batch)
                self.latencies.extend(now - envelope.received_at for envelope in batch)


@attrs.frozen
class _Seen:
    """What a subscriber took in the window, their latencies (s), and any other figures."""

    taken: int
    latencies: list[float]
    extra: dict[str, float]


class _RemoteProbe:
    """The subscriber as a gateway client in its own process (``probe_entry``), told on its
    stdin when the window opens and closes; it answers what it took, and its CPU."""

    def __init__(self, process: trio.Process) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self._stdin, self._lines = process.stdin, Lines(process.stdout)

    @classmethod
    async def start(cls, url: str, nursery: trio.Nursery) -> _RemoteProbe:
        command = [sys.executable, "-c", "from bench.bench_fleet import probe_entry; probe_entry()"]
        process = await nursery.start(
            functools.partial(
                trio.run_process,
                [*command, url],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                check=False,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            )
        )
        probe = cls(process)
        if await probe._lines.next() != "ready":
            raise RuntimeError("the gateway probe did not subscribe")
        return probe

    async def record(self, on: bool) -> _Seen:
        await self._stdin.send_all(b"start\n" if on else b"stop\n")
        if on:
            return _Seen(0, [], {})
        report = orjson.loads(await self._lines.next())
        extra = {"client_cpu_us_per_event": report["cpu"] / max(1, report["taken"]) * 1e6}
        return _Seen(report["taken"], report["latencies"], extra)


async def _probe(url: str) -> None:
    """The gateway probe: subscribe to everything, raw; count and time what comes between
    ``start`` and ``stop`` on stdin, then print it with this process's CPU meanwhile."""
    commands = Lines(trio.lowlevel.FdStream(os.dup(0)))
    taken, latencies, recording, cpu = 0, [], False, 0.0
    async with (
        connect(url, token=GATEWAY_TOKEN) as remote,
        remote.subscribe(raw=True, maxsize=GATEWAY_SUBSCRIBER_SIZE, overflow="block") as sub,
        trio.open_nursery() as nursery,
    ):

        async def take() -> None:
            nonlocal taken
            async for envelope in sub:
                if recording:
                    taken += 1
                    latencies.append(trio.current_time() - envelope.received_at)

        nursery.start_soon(take)
        print("ready", flush=True)
        await commands.next()  # start
        recording, cpu = True, time.process_time()
        await commands.next()  # stop
        recording, cpu = False, time.process_time() - cpu
        report = {"taken": taken, "cpu": cpu, "latencies": latencies}
        print(orjson.dumps(report).decode(), flush=True)
        nursery.cancel_scope.cancel()


def probe_entry() -> None:
    """The gateway probe's process: ``_probe(URL)``."""
    trio.run(_probe, sys.argv[1])


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < NOFILE:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(NOFILE, hard), hard))


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def fleet(upstream: Upstream, count: int, profile: str | None, gateway: bool) -> None:
    """Open ``count`` sessions, measure the window, print the measurements as one JSON line
    and end the process there: the responses never end, so a graceful close of every session
    would wait out each one's shutdown grace, and nothing after the window is measured.
    ``gateway``: the subscriber is a gateway client in another process."""
    config = ServiceConfig(upstream=OpenAIConfig(api_key=API_KEY, base_url=upstream.url))
    pauses = _Pauses()
    gc.callbacks.append(pauses)
    async with trio.open_nursery() as nursery, open_service(config) as svc:
        probe: _Probe | _RemoteProbe
        if gateway:
            http = HttpConfig(port=0, token=GATEWAY_TOKEN)
            address: HttpAddress = await nursery.start(serve_http, svc, http)
            probe = await _RemoteProbe.start(address.url, nursery)
        else:
            probe = _Probe()
            sub = svc.bus.subscribe(maxsize=SUBSCRIBER_SIZE, overflow="block")
            nursery.start_soon(probe.consume, sub)
        await open_in_batches(svc, count)
        result = await _window(probe, count, profile, upstream, pauses)
        result |= {"gc_full_max_ms": pauses.full_max * 1e3, "gc_full_count": pauses.full_count}
        result |= {"gc_tracked": pauses.tracked, "gc_window_max_ms": pauses.window_max * 1e3}
        print(orjson.dumps(result).decode(), flush=True)
        os._exit(0)


async def _window(
    probe: _Probe | _RemoteProbe,
    count: int,
    profile: str | None,
    upstream: Upstream,
    pauses: _Pauses,
) -> dict[str, float]:
    # The collection the opening left due, before the warm-up: a full one stalls every session
    # for a moment, and the backlog it leaves must clear before the window opens.
    gc.collect()
    pauses.tracked = len(gc.get_objects())
    await trio.sleep(WARMUP_SECONDS)
    spy = None if profile is None else _py_spy(profile)
    await probe.record(True)
    pauses.in_window = True
    stalls = _Stalls()
    wall, cpu, theirs = time.perf_counter(), time.process_time(), upstream.cpu_seconds()
    with trio.move_on_after(WINDOW_SECONDS):
        await stalls.watch()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    theirs = upstream.cpu_seconds() - theirs
    pauses.in_window = False
    seen = await probe.record(False)
    if spy is not None:
        await trio.to_thread.run_sync(spy.wait)
    latencies = sorted(seen.latencies)
    taken = max(1, seen.taken)
    return seen.extra | {
        "cpu_us_per_event": cpu / taken * 1e6,
        "cpu_per_wall": cpu / wall,
        "upstream_cpu_per_wall": theirs / wall,
        "events_per_second": seen.taken / wall,
        "real_time": seen.taken / wall / (EVENTS_PER_SESSION_SECOND * count),
        "p50_ms": _percentile(latencies, 0.50) * 1e3,
        "p99_ms": _percentile(latencies, 0.99) * 1e3,
        "stall_ms": stalls.late * 1e3,
        "stall_cpu_ms": stalls.on_cpu * 1e3,
    }


def _py_spy(path: str) -> subprocess.Popen[bytes]:
    """py-spy sampling this process for the window (from outside: its CPU is not ours)."""
    py_spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    options = ["--format", "raw", "--rate", "1000", "--nonblocking", "--duration"]
    return subprocess.Popen(
        [py_spy, "record", *options, str(int(WINDOW_SECONDS)), "-o", path, "-p", str(os.getpid())],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def fleet_entry() -> None:
    """The service process's entry point: ``fleet(URL, COUNT)``."""
    raise_nofile()
    upstream = Upstream(sys.argv[1], int(sys.argv[2]))
    # As ``rtbus serve`` runs (``[service] gc_threshold``).
    with young_gc_threshold(ServiceSettings().gc_threshold):
        trio.run(fleet, upstream, int(sys.argv[3]), sys.argv[4] or None, sys.argv[5] == "gateway")


def measure(
    upstream: Upstream, count: int, profile: str | None, gateway: bool = False
) -> dict[str, float]:
    command = [sys.executable, "-c", "from bench.bench_fleet import fleet_entry; fleet_entry()"]
    subscriber = "gateway" if gateway else "in-process"
    done = subprocess.run(
        [*command, upstream.url, str(upstream.pid), str(count), profile or "", subscriber],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    result: dict[str, float] = orjson.loads(done.stdout)
    return result


def _taken_row(name: str, m: dict[str, float]) -> Row:
    rate = f"{m['real_time']:.2f}x real time"
    return Row("fleet", f"{name}: events taken", m["events_per_second"], "events/s", rate)


def _p99_row(name: str, m: dict[str, float]) -> Row:
    """p99 against its target, judged only where the service keeps real time."""
    real_time = m["real_time"] >= 0.98
    verdict = ("ok" if m["p99_ms"] <= TARGET_P99_MS else "MISS") if real_time else "n/a"
    behind = "" if real_time else "behind real time"
    target = f"<= {TARGET_P99_MS:g}"
    return Row("fleet", f"{name}: latency p99", m["p99_ms"], "ms", behind, target, verdict)


def _rows(count: int, m: dict[str, float]) -> list[Row]:
    name = f"{count:,} sessions"
    cpu_ok = m["cpu_us_per_event"] <= TARGET_CPU_US
    return [
        Row(
            "fleet",
            f"{name}: CPU per event",
            m["cpu_us_per_event"],
            "us/event",
            f"{m['cpu_per_wall']:.2f} cpu-s/s",
            f"<= {TARGET_CPU_US:g}",
            "ok" if cpu_ok else "MISS",
        ),
        _taken_row(name, m),
        Row("fleet", f"{name}: upstream CPU", m["upstream_cpu_per_wall"], "cpu-s/s"),
        Row("fleet", f"{name}: latency p50", m["p50_ms"], "ms"),
        _p99_row(name, m),
        Row(
            "fleet",
            f"{name}: full GC pause, longest",
            m["gc_full_max_ms"],
            "ms",
            f"of {m['gc_full_count']:.0f}; {m['gc_tracked']:,.0f} objects tracked",
        ),
        Row("fleet", f"{name}: GC pause in the window, longest", m["gc_window_max_ms"], "ms"),
        Row(
            "fleet",
            f"{name}: loop stall in the window, longest",
            m["stall_ms"],
            "ms",
            f"{m['stall_cpu_ms']:.1f} ms of it on the CPU",
        ),
    ]


def _gateway_rows(count: int, m: dict[str, float], base: dict[str, float]) -> list[Row]:
    """The fleet with its subscriber through the gateway, against the in-process run of the
    same count: the rate the service's CPU allows, as a ratio."""
    name = f"{count:,} sessions, gateway subscriber"
    ratio = base["cpu_us_per_event"] / m["cpu_us_per_event"]
    return [
        Row(
            "fleet",
            f"{name}: service CPU per event",
            m["cpu_us_per_event"],
            "us/event",
            f"x{ratio:.2f} of the in-process rate",
            f">= x{TARGET_GATEWAY_RATIO}",
            "ok" if ratio >= TARGET_GATEWAY_RATIO else "MISS",
        ),
        Row("fleet", f"{name}: client CPU per event", m["client_cpu_us_per_event"], "us/event"),
        _taken_row(name, m),
        _p99_row(name, m),
    ]


def counts() -> tuple[int, ...]:
    chosen = os.environ.get("RTBUS_BENCH_FLEET_COUNTS")
    if chosen:
        return tuple(int(c) for c in chosen.split(","))
    return QUICK_COUNTS if os.environ.get("RTBUS_BENCH_QUICK") else COUNTS


def run() -> list[Row]:
    """Record the simulator's frames, start the upstream, measure every count."""
    raise_nofile()  # the upstream inherits it
    with simulator("unpaced", 2.0) as sim:
        script = Script.from_recording(trio.run(record, sim.url))
    profile = os.environ.get("RTBUS_BENCH_FLEET_PROFILE")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as directory, fleet_upstream(script, directory) as upstream:
        for count in counts():
            output = profile if profile and count == PROFILE_COUNT else None
            base = measure(upstream, count, output)
            rows.extend(_rows(count, base))
            if count in GATEWAY_COUNTS:
                rows.extend(_gateway_rows(count, measure(upstream, count, None, True), base))
    return rows


def main() -> None:
    if "--quick" in sys.argv:
        os.environ["RTBUS_BENCH_QUICK"] = "1"
    print(render(run()))


if __name__ == "__main__":
    main()
