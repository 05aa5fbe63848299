"""A tool executor inside the service's process: function calls in, their output out.

The model calls ``get_weather``; a supervised worker runs it and sends the result back
(``function_call_output``) with a ``response.create``, and the model answers with it. This
program starts everything it needs: the simulated Realtime server and the service::

    .venv/bin/python examples/tool_worker_in_process.py --turns 2

The same worker through a running service's gateway: ``tool_worker_gateway.py``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable

import trio

import rtbus
from rtbus.bus import Envelope
from rtbus.protocol import ResponseFunctionCallArgumentsDoneEvent, ResponseOutputTextDoneEvent

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city now.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
SESSION = {"type": "realtime", "output_modalities": ["text"], "tools": [WEATHER_TOOL]}


def get_weather(arguments: str) -> str:
    city = json.loads(arguments)["city"]
    return json.dumps({"city": city, "sky": "clear", "celsius": 21})


def user_says(text: str) -> dict[str, object]:
    content = [{"type": "input_text", "text": text}]
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": content},
    }


def tool_executor(svc: rtbus.Service) -> Callable[[Envelope], Awaitable[None]]:
    async def execute(envelope: Envelope) -> None:
        call = envelope.event
        assert isinstance(call, ResponseFunctionCallArgumentsDoneEvent)
        print(f"tool call: {call.name}({call.arguments})")
        output = {
            "type": "function_call_output",
            "call_id": call.call_id,
            "output": get_weather(call.arguments),
        }
        await svc.send(envelope.session_id, {"type": "conversation.item.create", "item": output})
        await svc.send(envelope.session_id, {"type": "response.create"})

    return execute


async def main(turns: int) -> None:
    async with trio.open_nursery() as nursery:
        sim = await nursery.start(rtbus.sim.serve_sim, "127.0.0.1", 0)
        config = rtbus.OpenAIConfig(api_key="sk-any-key-for-the-sim", base_url=sim.url)
        async with rtbus.open_service(config) as svc:
            # Supervised: if it raises, it is restarted and handed the same call again.
            await svc.add_worker(tool_executor(svc), types="response.function_call_arguments.done")
            session = await svc.open_session(session=SESSION)
            async with svc.subscribe(sessions=session.id, types="response.output_text.done") as sub:
                for turn in range(1, turns + 1):
                    await svc.send(
                        session.id, user_says(f"Turn {turn}: get_weather for Paris, please.")
                    )
                    await svc.send(session.id, {"type": "response.create"})
                    answer = await sub.receive()  # the response after the tool's output
                    assert isinstance(answer.event, ResponseOutputTextDoneEvent)
                    print(f"answer: {answer.event.text}")
        nursery.cancel_scope.cancel()  # the simulator


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=3, help="questions to ask (default 3)")
    trio.run(main, parser.parse_args().turns)
