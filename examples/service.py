"""Many sessions in one process: the service, a supervised worker, a subscription.

It starts the simulated Realtime server and a service on it, adds a worker that logs every
finished response, opens a few sessions and waits for each to answer ``--turns`` times::

    .venv/bin/python examples/service.py --sessions 3 --turns 2
"""

from __future__ import annotations

import argparse

import trio

import rtbus
from rtbus.bus import Envelope


def user_says(text: str) -> dict[str, object]:
    content = [{"type": "input_text", "text": text}]
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": content},
    }


def log_response(envelope: Envelope) -> None:  # a worker's handler; it may be async too
    print(f"{envelope.session_id} #{envelope.seq} {envelope.type}")


async def main(sessions: int, turns: int) -> None:
    async with trio.open_nursery() as nursery:
        sim = await nursery.start(rtbus.sim.serve_sim, "127.0.0.1", 0)
        config = rtbus.OpenAIConfig(api_key="sk-any-key-for-the-sim", base_url=sim.url)
        async with rtbus.open_service(config) as svc:
            await svc.add_worker(log_response, types="response.done")
            opened = [
                await svc.open_session(session={"type": "realtime", "output_modalities": ["text"]})
                for _ in range(sessions)
            ]
            # Subscribed before anything is sent: it sees every response from the start.
            async with svc.subscribe(types="response.done", maxsize=256, overflow="block") as sub:
                for turn in range(1, turns + 1):
                    for session in opened:
                        await session.send(user_says(f"Turn {turn}: hello."))
                        await session.send({"type": "response.create"})
                    for _ in opened:
                        await sub.receive()
        nursery.cancel_scope.cancel()  # the simulator


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=3, help="sessions to open (default 3)")
    parser.add_argument("--turns", type=int, default=3, help="turns per session (default 3)")
    args = parser.parse_args()
    trio.run(main, args.sessions, args.turns)
