"""A tool executor in another process: function calls in through the gateway, output out.

The same worker as ``tool_worker_in_process.py``, against a running service (``make run``,
or ``rtbus serve``; ``RTBUS_URL``, default http://127.0.0.1:9464, and ``RTBUS_HTTP_TOKEN``)::

    .venv/bin/python examples/tool_worker_gateway.py --turns 2

It opens a session with a ``get_weather`` tool; one task executes every call the model makes
(``function_call_output`` and ``response.create`` back to the session), the other asks.
"""

from __future__ import annotations

import argparse
import json
import os

import trio

import rtbus
from rtbus.gateway import RemoteBus
from rtbus.protocol import ResponseFunctionCallArgumentsDoneEvent, ResponseOutputTextDoneEvent

URL = os.environ.get("RTBUS_URL", "http://127.0.0.1:9464")
TOKEN = os.environ.get("RTBUS_HTTP_TOKEN")
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


async def execute_tools(
    bus: RemoteBus, session_id: str, *, task_status: trio.TaskStatus[None]
) -> None:
    types = "response.function_call_arguments.done"
    async with bus.subscribe(sessions=session_id, types=types) as calls:
        task_status.started()  # subscribed: no call can be missed from here on
        async for envelope in calls:
            call = envelope.event
            assert isinstance(call, ResponseFunctionCallArgumentsDoneEvent)
            print(f"tool call: {call.name}({call.arguments})")
            output = {
                "type": "function_call_output",
                "call_id": call.call_id,
                "output": get_weather(call.arguments),
            }
            await bus.send(
                envelope.session_id, {"type": "conversation.item.create", "item": output}
            )
            await bus.send(envelope.session_id, {"type": "response.create"})


async def main(turns: int) -> None:
    async with rtbus.connect(URL, token=TOKEN) as bus, trio.open_nursery() as nursery:
        session = await bus.open_session(session=SESSION)
        await nursery.start(execute_tools, bus, session.id)
        async with bus.subscribe(sessions=session.id, types="response.output_text.done") as answers:
            for turn in range(1, turns + 1):
                await bus.send(
                    session.id, user_says(f"Turn {turn}: get_weather for Paris, please.")
                )
                await bus.send(session.id, {"type": "response.create"})
                answer = await answers.receive()  # the response after the tool's output
                assert isinstance(answer.event, ResponseOutputTextDoneEvent)
                print(f"answer: {answer.event.text}")
        await session.close()
        nursery.cancel_scope.cancel()  # the tool executor


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=3, help="questions to ask (default 3)")
    trio.run(main, parser.parse_args().turns)
