"""The shortest complete rtbus program: a session of a running service, through its gateway.

Start the service (``make run``, or ``rtbus serve``), then, in another terminal::

    .venv/bin/python examples/quickstart.py --turns 2

Each turn asks a question and prints the answer as it streams. ``RTBUS_URL`` says where the
service is (default http://127.0.0.1:9464), ``RTBUS_HTTP_TOKEN`` its token if it has one.
"""

from __future__ import annotations

import argparse
import os

import trio

import rtbus
from rtbus.protocol import ResponseOutputTextDeltaEvent

URL = os.environ.get("RTBUS_URL", "http://127.0.0.1:9464")
TOKEN = os.environ.get("RTBUS_HTTP_TOKEN")


def user_says(text: str) -> dict[str, object]:
    content = [{"type": "input_text", "text": text}]
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": content},
    }


async def main(turns: int) -> None:
    async with rtbus.connect(URL, token=TOKEN) as bus:
        session = await bus.open_session(
            session={"type": "realtime", "output_modalities": ["text"]}
        )
        # Subscribe before sending: a subscription sees what is published after it exists.
        types = ["response.output_text.delta", "response.done"]
        async with bus.subscribe(sessions=session.id, types=types) as sub:
            for turn in range(1, turns + 1):
                await session.send(user_says(f"Question {turn}: how are you?"))
                await session.send({"type": "response.create"})
                async for envelope in sub:
                    if isinstance(envelope.event, ResponseOutputTextDeltaEvent):
                        print(envelope.event.delta, end="", flush=True)
                    elif envelope.type == "response.done":
                        print()
                        break
        await session.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=3, help="questions to ask (default 3)")
    trio.run(main, parser.parse_args().turns)
