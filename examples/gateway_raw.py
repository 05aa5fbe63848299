"""Follow a running service's bus raw: each event as the upstream's frame, not decoded.

Against a running service (``make run``; ``RTBUS_URL``, default http://127.0.0.1:9464, and
``RTBUS_HTTP_TOKEN``)::

    .venv/bin/python examples/gateway_raw.py --events 20

``raw=True`` skips decoding: ``envelope.raw`` is the frame's bytes, spliced through byte for
byte (``envelope.event`` only says its type: ``Undecoded``), the cheapest way to archive or
forward events. It prints each one's size and stops after ``--events``.
"""

from __future__ import annotations

import argparse
import os

import trio

import rtbus

URL = os.environ.get("RTBUS_URL", "http://127.0.0.1:9464")
TOKEN = os.environ.get("RTBUS_HTTP_TOKEN")


async def main(events: int) -> None:
    async with (
        rtbus.connect(URL, token=TOKEN) as bus,
        bus.subscribe(types=["response.*"], overflow="drop_oldest", raw=True) as sub,
    ):
        seen = 0
        async for envelope in sub:
            assert envelope.raw is not None  # the upstream frame's bytes
            print(
                f"{envelope.session_id} #{envelope.seq} {envelope.type} {len(envelope.raw)} bytes"
            )
            seen += 1
            if seen == events:
                break


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20, help="events to show (default 20)")
    trio.run(main, parser.parse_args().events)
