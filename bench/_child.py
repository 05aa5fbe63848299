"""Lines from a benchmark's child process (a client or a consumer it starts), read on trio."""

from __future__ import annotations

import trio


class Lines:
    """The lines a child writes to its stdout, one at a time."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = b""

    async def next(self) -> str:
        """The next line, without its newline; ``RuntimeError`` if the child ended first."""
        while b"\n" not in self._buffer:
            data = await self._stream.receive_some()
            if not data:
                raise RuntimeError("the benchmark's child process ended without answering")
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()
