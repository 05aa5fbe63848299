"""The shortest complete rtbus program: a session of a running service, through its gateway.

Start the service (`make run`), then: `.venv/bin/python examples/quickstart.py --turns 2`.
RTBUS_URL says where the service is, RTBUS_HTTP_TOKEN its token if it has one.
"""

import argparse
import os

import trio

import rtbus
from rtbus.protocol import ResponseOutputTextDeltaEvent

URL = os.environ.get("RTBUS_URL", "http://127.0.0.1:9464")
TOKEN = os.environ.get("RTBUS_HTTP_TOKEN")


async def main(turns: int) -> None:
    async with rtbus.connect(URL, token=TOKEN) as bus:
        session = await bus.open_session(
            session={"type": "realtime", "output_modalities": ["text"]}
        )
        # Subscribe before sending: a subscription sees what is published after it exists.
        types = ["response.output_text.delta", "response.done"]
        async with bus.subscribe(sessions=session.id, types=types) as sub:
            for turn in range(1, turns + 1):
                question = {"type": "input_text", "text": f"Question {turn}: how are you?"}
                item = {"type": "message", "role": "user", "content": [question]}
                await session.send({"type": "conversation.item.create", "item": item})
                await session.send({"type": "response.create"})
                async for envelope in sub:  # the answer, as it streams
                    if isinstance(envelope.event, ResponseOutputTextDeltaEvent):
                        print(envelope.event.delta, end="", flush=True)
                    elif envelope.type == "response.done":
                        print()
                        break
        await session.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Ask a running rtbus service's model.")
    parser.add_argument("--turns", type=int, default=3, help="questions to ask (default 3)")
    trio.run(main, parser.parse_args().turns)
