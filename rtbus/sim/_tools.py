"""Deterministic stand-ins for the model's judgement: when to call a function, token counts.

The rule for function calls is simple enough for a test to rely on:

* ``tool_choice`` ``"none"`` never calls; ``{"type": "function", "name": N}`` always calls N;
  ``"required"`` calls the first function tool.
* ``"auto"`` calls the first function tool whose name appears (case-insensitively) in the
  newest user message's text, and only when the newest item is that user message, so a
  ``function_call_output`` is answered in speech instead of calling the tool again.

Arguments are an example instance of the tool's JSON Schema ``parameters``: each declared
property gets a value of its type (``"sim"``, ``1``, ``true``, the first ``enum`` value...).
"""

from __future__ import annotations

import orjson

from ._conversation import Conversation, Item
from ._ids import IdSource
from ._response import FunctionCall

__all__ = ["choose_function_call", "count_input_tokens", "example_arguments"]

JSONObject = dict[str, object]

_EXAMPLES: dict[str, object] = {
    "string": "sim",
    "integer": 1,
    "number": 1.5,
    "boolean": True,
    "array": [],
    "object": {},
    "null": None,
}


def choose_function_call(
    conversation: Conversation, session: JSONObject, params: JSONObject, ids: IdSource
) -> FunctionCall | None:
    """The function call a response makes, or ``None`` when it should speak."""
    tools = params.get("tools", session.get("tools"))
    functions = [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []
    tool = _pick(functions, params.get("tool_choice", session.get("tool_choice")), conversation)
    if tool is None:
        return None
    arguments = orjson.dumps(example_arguments(tool.get("parameters"))).decode()
    return FunctionCall(name=str(tool["name"]), call_id=ids.new("call"), arguments=arguments)


def _pick(
    functions: list[JSONObject], choice: object, conversation: Conversation
) -> JSONObject | None:
    if not functions or choice == "none":
        return None
    if isinstance(choice, dict):
        return next((t for t in functions if t.get("name") == choice.get("name")), None)
    if choice == "required":
        return functions[0]
    said = _newest_user_text(conversation).casefold()
    return (
        next((t for t in functions if str(t.get("name")).casefold() in said), None)
        if said
        else None
    )


def _newest_user_text(conversation: Conversation) -> str:
    items = conversation.items()
    if not items or items[-1].get("role") != "user":
        return ""
    return " ".join(_texts(items[-1]))


def _texts(item: Item) -> list[str]:
    content = item.get("content")
    parts = content if isinstance(content, list) else []
    found = [p.get("text") or p.get("transcript") for p in parts if isinstance(p, dict)]
    return [t for t in found if isinstance(t, str)]


def example_arguments(parameters: object) -> object:
    """An instance of the JSON Schema ``parameters`` (an object schema, usually)."""
    if not isinstance(parameters, dict):
        return {}
    enum = parameters.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    properties = parameters.get("properties")
    if isinstance(properties, dict):
        return {name: example_arguments(schema) for name, schema in properties.items()}
    kind = parameters.get("type")
    return _EXAMPLES.get(kind, {}) if isinstance(kind, str) else {}


def count_input_tokens(conversation: Conversation, session: JSONObject) -> int:
    """A plausible input token count: words of the instructions and of every item's text."""
    words = len(str(session.get("instructions", "")).split())
    for item in conversation.items():
        words += sum(len(text.split()) for text in _texts(item))
    return words
