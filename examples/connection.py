"""One Realtime connection, no service: send a message, print the answer as it streams.

With ``OPENAI_API_KEY`` set it talks to OpenAI (``OPENAI_BASE_URL`` to go elsewhere); without
it, it starts the simulated Realtime server in process and talks to that::

    .venv/bin/python examples/connection.py --turns 2
"""

from __future__ import annotations

import argparse
import os

import trio

import rtbus


def user_says(text: str) -> dict[str, object]:
    content = [{"type": "input_text", "text": text}]
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": content},
    }


async def converse(config: rtbus.OpenAIConfig, turns: int) -> None:
    async with rtbus.open_realtime(config, model="gpt-realtime") as rt:
        rt.on("error", lambda err: print("error:", err))  # bound: errors do not end the loop
        rt.on("response.output_text.delta", lambda ev: print(ev.delta, end="", flush=True))
        await rt.send(
            {
                "type": "session.update",
                "session": {"type": "realtime", "output_modalities": ["text"]},
            }
        )
        for turn in range(1, turns + 1):
            await rt.send(user_says(f"Turn {turn}: say hello."))
            await rt.send({"type": "response.create"})
            async for event in rt:
                if event.type == "response.done":
                    print()
                    break


async def main(turns: int) -> None:
    if os.environ.get("OPENAI_API_KEY"):
        await converse(rtbus.OpenAIConfig.from_env(), turns)
        return
    async with trio.open_nursery() as nursery:
        sim = await nursery.start(rtbus.sim.serve_sim, "127.0.0.1", 0)
        await converse(
            rtbus.OpenAIConfig(api_key="sk-any-key-for-the-sim", base_url=sim.url), turns
        )
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=3, help="messages to send (default 3)")
    trio.run(main, parser.parse_args().turns)
