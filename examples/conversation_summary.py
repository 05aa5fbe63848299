"""A session's conversation record, bounded, with what the bound drops folded into a summary.

Every session keeps the conversation (transcripts, never audio) to give back to a new
upstream session after a reconnect. Here the bound is small (4 items), so after a few turns
the oldest items go, and ``summarize`` keeps the gist. It starts the simulated Realtime
server and a service itself::

    .venv/bin/python examples/conversation_summary.py --turns 4
"""

from __future__ import annotations

import argparse

import attrs
import trio

import rtbus
import rtbus.session


def summarize(summary: str | None, dropped: rtbus.session.RecordedItem) -> str | None:
    """Fold one dropped item into the summary so far (keep it cheap: it runs inline)."""
    return ((summary or "") + f" {dropped.role}: {dropped.text}")[-2_000:]


spec = rtbus.SessionSpec(summarize=summarize)


def user_says(text: str) -> dict[str, object]:
    content = [{"type": "input_text", "text": text}]
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": content},
    }


async def main(turns: int) -> None:
    small = rtbus.session.RecordBound(max_items=4)
    async with trio.open_nursery() as nursery:
        sim = await nursery.start(rtbus.sim.serve_sim, "127.0.0.1", 0)
        config = rtbus.OpenAIConfig(api_key="sk-any-key-for-the-sim", base_url=sim.url)
        async with rtbus.open_service(config) as svc:
            text_only = {"type": "realtime", "output_modalities": ["text"]}
            session = await svc.open_session(
                spec=attrs.evolve(spec, record=small), session=text_only
            )
            async with svc.subscribe(sessions=session.id, types="response.done") as done:
                for turn in range(1, turns + 1):
                    await svc.send(session.id, user_says(f"Turn {turn}: remember {turn}."))
                    await svc.send(session.id, {"type": "response.create"})
                    await done.receive()
            record = session.conversation()
            print(f"items kept: {len(record.items)}, dropped: {record.dropped}")
            print(f"summary:{record.summary}")
        nursery.cancel_scope.cancel()  # the simulator


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=4, help="turns to hold (default 4)")
    trio.run(main, parser.parse_args().turns)
