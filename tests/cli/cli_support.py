"""The ``rtbus`` command as a real subprocess, with its output read line by line as it comes."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager

import attrs
import trio

SAFETY_NET = 60  # seconds: only a hung process ever meets it
POLL = 0.05  # seconds between questions to another process


@attrs.define
class Stream:
    """The lines one of the process's streams has printed so far."""

    lines: list[str] = attrs.field(factory=list)
    ended: bool = False
    _changed: trio.Event = attrs.field(factory=trio.Event)

    async def read(self, stream: trio.abc.ReceiveStream) -> None:
        pending = b""
        async for chunk in stream:
            *complete, pending = (pending + chunk).split(b"\n")
            self._add([line.decode() for line in complete])
        self._add([pending.decode()] if pending else [])
        self.ended = True
        self._changed.set()

    def _add(self, lines: list[str]) -> None:
        if lines:
            self.lines += lines
            self._changed.set()
            self._changed = trio.Event()

    async def wait_for(self, wanted: Callable[[str], bool]) -> str:
        """The first line ``wanted`` accepts, once it is printed."""
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if wanted(line):
                    return line
            seen = len(self.lines)
            assert not self.ended, "the process ended without printing it:\n" + self.text
            await self._changed.wait()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@attrs.frozen
class Rtbus:
    """A running ``rtbus`` process and what it printed."""

    process: trio.Process
    stdout: Stream
    stderr: Stream

    def signal(self, number: signal.Signals) -> None:
        self.process.send_signal(number)

    async def wait(self) -> int:
        status = await self.process.wait()
        return status


@asynccontextmanager
async def rtbus(*args: str, env: Mapping[str, str] | None = None) -> AsyncIterator[Rtbus]:
    """Run ``rtbus ARGS`` for the body; killed if it still runs at the end."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("RTBUS_", "OPENAI_"))}
    command = [sys.executable, "-m", "rtbus.cli", *args]
    with trio.fail_after(SAFETY_NET):
        async with trio.open_nursery() as nursery:
            process = await trio.lowlevel.open_process(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**environ, **(env or {})},
            )
            assert process.stdout is not None
            assert process.stderr is not None
            running = Rtbus(process, Stream(), Stream())
            nursery.start_soon(running.stdout.read, process.stdout)
            nursery.start_soon(running.stderr.read, process.stderr)
            try:
                yield running
            finally:
                process.kill()
                with trio.CancelScope(shield=True):  # reaped even when the test failed
                    await process.wait()


@contextmanager
def restored_logging() -> Iterator[None]:
    """Put the root logger back as it was (``configure_logging`` changes it)."""
    logger = logging.getLogger()
    handlers, level = list(logger.handlers), logger.level
    try:
        yield
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)
