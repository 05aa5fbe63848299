"""A tiny HTTP/1.1 client for tests: one request per connection, h11 over a trio TCP stream.

Real bytes on a real socket, so the server under test parses exactly what a client sends; no
client library sits between the test and the wire. ``chunks`` sends the body with chunked
transfer encoding (no ``Content-Length``), for servers that must stop reading at a limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs
import h11
import orjson
import trio

__all__ = ["HttpResponse", "request"]


@attrs.frozen
class HttpResponse:
    """A whole response: status, headers (names lowercased; the last repeat wins), body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


async def request(
    base_url: str,
    method: str,
    path: str,
    *,
    json: object = None,
    body: bytes | None = None,
    chunks: Sequence[bytes] | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> HttpResponse:
    """Send one request to ``base_url`` + ``path`` and read the whole response."""
    url = urlsplit(base_url)
    assert url.hostname is not None, base_url
    assert url.port is not None, base_url
    fields = [("host", url.netloc), *headers]
    if not any(name.lower() == "connection" for name, _ in fields):
        fields.append(("connection", "close"))
    if json is not None:
        body = orjson.dumps(json)
        fields.append(("content-type", "application/json"))
    pieces = list(chunks) if chunks is not None else [body] if body else []
    framing = "transfer-encoding" if chunks is not None else "content-length"
    fields.append((framing, "chunked" if chunks is not None else str(len(body or b""))))
    connection = h11.Connection(h11.CLIENT)
    async with await trio.open_tcp_stream(url.hostname, url.port) as stream:
        head = h11.Request(method=method, target=path, headers=fields)
        data = [h11.Data(data=piece) for piece in pieces]
        await _send(stream, connection, [head, *data, h11.EndOfMessage()])
        return await _receive(stream, connection)


async def _send(stream: trio.SocketStream, connection: h11.Connection, events: list[Any]) -> None:
    for event in events:
        data = connection.send(event)
        try:
            await stream.send_all(data or b"")
        except trio.BrokenResourceError:
            return  # the server answered early (say 413) and closed: read what it said


async def _receive(stream: trio.SocketStream, connection: h11.Connection) -> HttpResponse:
    status, headers, body = 0, {}, b""
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await stream.receive_some())
        elif isinstance(event, h11.Response):
            status = event.status_code
            headers = {k.decode().lower(): v.decode() for k, v in event.headers}
        elif isinstance(event, h11.Data):
            body += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage):
            return HttpResponse(status, headers, body)
        else:
            raise AssertionError(f"unexpected HTTP event {event!r}")
