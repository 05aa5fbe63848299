"""Generate rtbus's attrs protocol models from the openai package's pydantic models.

Run ``.venv/bin/python tools/gen_protocol.py`` after upgrading ``openai``; it rewrites the
``rtbus/protocol/_models_*.py`` files. ``tests/protocol/test_models.py`` regenerates in memory and
fails if the checked-in files differ, so the models never drift from the schema silently.

How the openai models map onto ours:

* every pydantic model becomes an ``@attrs.frozen(kw_only=True, weakref_slot=False)`` class
  (no weakref slot, so the codec can fill it through a twin; see ``_models_compile``); two
  openai models with
  the same fields (``Part`` in ``content_part.added`` and ``content_part.done``) become one;
* ``List[X]`` becomes ``tuple[X, ...]``, ``Dict[str, X]`` ``Mapping[str, X]``, ``object``
  ``JsonValue``; discriminated unions become plain unions (the codec finds the tags);
* a field is nullable (``| Null``) when openai's ``*_param.py`` TypedDict makes it ``Optional``
  or its description says it can be set to ``null``: there JSON null means something;
* a single-valued ``type`` Literal gets that value as its default;
* names: events are named by their ``type`` (``ErrorEvent``), other classes drop the
  ``Realtime`` prefix, and ``RENAMES`` settles the rest.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import itertools
import re
import subprocess
import sys
import textwrap
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import openai
import pydantic
from openai.types.realtime import (
    ConversationItem,
    RealtimeClientEvent,
    RealtimeResponse,
    RealtimeResponseCreateParams,
    RealtimeServerEvent,
    SessionUpdateEvent,
)
from openai.types.realtime import (
    ConversationItemAdded as ConversationItemAddedEvent,
)
from openai.types.realtime.response_item_reference import ResponseItemReference

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rtbus" / "protocol"

# openai's ``module.Class`` (module relative to openai.types) -> our class name.
RENAMES: dict[str, str] = {
    "realtime.realtime_error.RealtimeError": "ErrorDetails",
    "realtime.realtime_conversation_item_system_message.Content": "SystemMessageContent",
    "realtime.realtime_conversation_item_user_message.Content": "UserMessageContent",
    "realtime.realtime_conversation_item_assistant_message.Content": "AssistantMessageContent",
    "realtime.realtime_mcp_list_tools.Tool": "McpListedTool",
    "realtime.realtime_mcphttp_error.RealtimeMcphttpError": "McpHttpError",
    "realtime.conversation_item_input_audio_transcription_failed_event.Error": (
        "TranscriptionError"
    ),
    "realtime.conversation_item_input_audio_transcription_completed_event."
    "UsageTranscriptTextUsageTokens": "TranscriptionUsageTokens",
    "realtime.conversation_item_input_audio_transcription_completed_event."
    "UsageTranscriptTextUsageTokensInputTokenDetails": "TranscriptionUsageInputTokenDetails",
    "realtime.conversation_item_input_audio_transcription_completed_event."
    "UsageTranscriptTextUsageDuration": "TranscriptionUsageDuration",
    "realtime.realtime_response_status.Error": "ResponseStatusError",
    "realtime.response_content_part_added_event.Part": "ContentPart",
    "realtime.response_content_part_done_event.Part": "ContentPart",
    "realtime.realtime_response.Audio": "ResponseAudio",
    "realtime.realtime_response.AudioOutput": "ResponseAudioOutput",
    "realtime.realtime_session_create_request.RealtimeSessionCreateRequest": "SessionConfig",
    "realtime.realtime_transcription_session_create_request."
    "RealtimeTranscriptionSessionCreateRequest": "TranscriptionSessionConfig",
    "realtime.realtime_audio_config_input.RealtimeAudioConfigInput": "AudioInputConfig",
    "realtime.realtime_audio_config_output.RealtimeAudioConfigOutput": "AudioOutputConfig",
    "realtime.realtime_transcription_session_audio_input.RealtimeTranscriptionSessionAudioInput": (
        "TranscriptionAudioInputConfig"
    ),
    "realtime.realtime_transcription_session_audio.RealtimeTranscriptionSessionAudio": (
        "TranscriptionAudioConfig"
    ),
    "realtime.realtime_transcription_session_audio_input_turn_detection.ServerVad": (
        "TranscriptionServerVad"
    ),
    "realtime.realtime_transcription_session_audio_input_turn_detection.SemanticVad": (
        "TranscriptionSemanticVad"
    ),
    "realtime.realtime_tools_config_union.Mcp": "McpTool",
    "realtime.realtime_tools_config_union.McpAllowedToolsMcpToolFilter": "McpToolFilter",
    "realtime.realtime_tools_config_union.McpRequireApprovalMcpToolApprovalFilter": (
        "McpApprovalFilter"
    ),
    "realtime.realtime_tools_config_union.McpRequireApprovalMcpToolApprovalFilterAlways": (
        "McpToolFilter"
    ),
    "realtime.realtime_tools_config_union.McpRequireApprovalMcpToolApprovalFilterNever": (
        "McpToolFilter"
    ),
    "realtime.realtime_response_create_mcp_tool.AllowedToolsMcpToolFilter": "McpToolFilter",
    "realtime.realtime_response_create_mcp_tool.RequireApprovalMcpToolApprovalFilter": (
        "McpApprovalFilter"
    ),
    "realtime.realtime_response_create_mcp_tool.RequireApprovalMcpToolApprovalFilterAlways": (
        "McpToolFilter"
    ),
    "realtime.realtime_response_create_mcp_tool.RequireApprovalMcpToolApprovalFilterNever": (
        "McpToolFilter"
    ),
    "realtime.realtime_tracing_config.TracingConfiguration": "TracingConfig",
    "realtime.realtime_response_create_audio_output.RealtimeResponseCreateAudioOutput": (
        "ResponseCreateAudio"
    ),
    "realtime.realtime_response_create_audio_output.Output": "ResponseCreateAudioOutput",
    "realtime.realtime_response_create_audio_output.OutputVoiceID": "VoiceID",
    "realtime.realtime_response_create_mcp_tool.RealtimeResponseCreateMcpTool": "McpTool",
    "responses.response_prompt.ResponsePrompt": "Prompt",
    "responses.response_input_text.ResponseInputText": "PromptInputText",
    "responses.response_input_image.ResponseInputImage": "PromptInputImage",
    "responses.response_input_file.ResponseInputFile": "PromptInputFile",
}

# Fields whose pydantic type is narrower than what a client may send: openai's
# ``*_with_references_param`` TypedDicts accept item references in ``response.create``'s
# ``input``, and the server takes them; the pydantic model has no ``WithReferences`` twin.
WIDENED: dict[tuple[str, str], typing.Any] = {
    ("realtime.realtime_response_create_params.RealtimeResponseCreateParams", "input"): (
        list[ConversationItem | ResponseItemReference] | None
    ),
}

# Generated modules, in import order: each may import only from the ones before it.
SECTIONS = (
    "items",
    "session",
    "responses",
    "server_events",
    "response_events",
    "client_events",
)

_HEADER = '''\
"""{title}

Generated by tools/gen_protocol.py from openai=={version}; do not edit.
"""

'''


@dataclass
class FieldSpec:
    name: str
    annotation: str
    default: str | None  # Python source of the default; None when required
    doc: str


@dataclass
class ClassSpec:
    name: str
    section: str
    doc: str
    fields: list[FieldSpec]
    uses: set[str] = field(default_factory=set)


class Generator:
    """Walks openai's pydantic models and collects one ``ClassSpec`` per distinct shape."""

    def __init__(self) -> None:
        self.by_model: dict[type[pydantic.BaseModel], str] = {}
        self.classes: dict[str, ClassSpec] = {}
        self.section = SECTIONS[0]
        self.server_events: list[str] = []
        self.client_events: list[str] = []
        self.server_tags: dict[str, str] = {}

    def run(self) -> None:
        """Visit everything, shared parts first so each lands in the module it belongs to."""
        for section, roots in _shared_roots().items():
            self.section = section
            for model in roots:
                self.visit(model)
        for model in _union_members(RealtimeServerEvent):
            tag = _tag_value(model.model_fields["type"].annotation) or ""
            self.section = "response_events" if tag.startswith("response.") else "server_events"
            self.server_events.append(self.visit(model))
            self.server_tags[tag] = self.server_events[-1]
        self.section = "client_events"
        self.client_events = [self.visit(m) for m in _union_members(RealtimeClientEvent)]

    def visit(self, model: type[pydantic.BaseModel]) -> str:
        if model in self.by_model:
            return self.by_model[model]
        uses: set[str] = set()
        fields = [self.field_spec(model, n, f, uses) for n, f in _ordered_fields(model)]
        name = _class_name(model)
        known = self.classes.get(name)
        if known is None:
            self.classes[name] = ClassSpec(name, self.section, _class_doc(model), fields, uses)
        elif _shape(known.fields) != _shape(fields):
            raise SystemExit(f"name clash: {_qualified(model)} would be {name}; add to RENAMES")
        self.by_model[model] = name
        return name

    def field_spec(
        self, model: type[pydantic.BaseModel], name: str, info: typing.Any, uses: set[str]
    ) -> FieldSpec:
        doc = _field_docs(model).get(name, "")
        nullable = _is_nullable(model, name, doc)
        widened = WIDENED.get((_qualified(model), name), info.annotation)
        annotation = self.render(widened, uses)
        tag = _tag_value(info.annotation) if name in ("type", "role") else None
        if nullable:
            annotation = annotation.replace(" | None", "") + " | Null | None"
        if tag is not None:
            default: str | None = repr(tag).replace("'", '"')
        elif info.is_required():
            default = None
        else:
            default = "None"
        return FieldSpec(name, annotation, default, _first_sentence(doc))

    def render(self, t: typing.Any, uses: set[str]) -> str:
        origin = typing.get_origin(t)
        args = typing.get_args(t)
        if origin is typing.Annotated:
            return self.render(args[0], uses)
        if isinstance(t, type) and issubclass(t, pydantic.BaseModel):
            name = self.visit(t)
            uses.add(name)
            return name
        if t is type(None):
            return "None"
        if t is object:
            return "JsonValue"
        if t in (str, int, float, bool):
            return str(t.__name__)
        if origin is typing.Literal:
            return "Literal[" + ", ".join(repr(a).replace("'", '"') for a in args) + "]"
        if origin is list:
            return f"tuple[{self.render(args[0], uses)}, ...]"
        if origin is dict:
            return f"Mapping[{self.render(args[0], uses)}, {self.render(args[1], uses)}]"
        if origin in (typing.Union, types.UnionType):
            rendered = [self.render(a, uses) for a in args if a is not type(None)]
            if type(None) in args:
                rendered.append("None")
            return " | ".join(dict.fromkeys(rendered))
        raise SystemExit(f"no rendering for {t!r}")


def _shared_roots() -> dict[str, list[type[pydantic.BaseModel]]]:
    """The roots of the shared modules; whatever a root reaches first belongs to its module."""
    return {
        "items": _flatten(ConversationItemAddedEvent.model_fields["item"].annotation),
        "session": _flatten(SessionUpdateEvent.model_fields["session"].annotation),
        "responses": [RealtimeResponse, RealtimeResponseCreateParams],
    }


def _shape(fields: list[FieldSpec]) -> list[tuple[str, str, str | None]]:
    return [(f.name, f.annotation, f.default) for f in fields]


def _union_members(union: typing.Any) -> list[type[pydantic.BaseModel]]:
    return _flatten(union)


def _flatten(t: typing.Any) -> list[type[pydantic.BaseModel]]:
    if typing.get_origin(t) is typing.Annotated:
        return _flatten(typing.get_args(t)[0])
    if isinstance(t, type) and issubclass(t, pydantic.BaseModel):
        return [t]
    return [m for a in typing.get_args(t) for m in _flatten(a)]


def _ordered_fields(model: type[pydantic.BaseModel]) -> list[tuple[str, typing.Any]]:
    """``type`` first, then ``event_id``, then openai's order (required before optional)."""
    items = list(model.model_fields.items())
    rank = {"type": 0, "event_id": 1}
    return sorted(items, key=lambda kv: rank.get(kv[0], 2))


def _tag_value(t: typing.Any) -> str | None:
    """The one value of a ``type`` Literal (optional or not), else None."""
    if typing.get_origin(t) is typing.Literal:
        args = [t]
    else:
        args = [a for a in typing.get_args(t) if a is not type(None)]
    if len(args) == 1 and typing.get_origin(args[0]) is typing.Literal:
        values = typing.get_args(args[0])
        if len(values) == 1 and isinstance(values[0], str):
            return values[0]
    return None


def _qualified(model: type) -> str:
    return f"{model.__module__.removeprefix('openai.types.')}.{model.__qualname__}"


def _class_name(model: type[pydantic.BaseModel]) -> str:
    renamed = RENAMES.get(_qualified(model))
    if renamed is not None:
        return renamed
    if _is_event(model):
        tag = _tag_value(model.model_fields["type"].annotation)
        assert tag is not None, model
        return "".join(p[:1].upper() + p[1:] for p in re.split(r"[._]", tag)) + "Event"
    return model.__name__.removeprefix("Realtime")


def _is_event(model: type[pydantic.BaseModel]) -> bool:
    return model in _flatten(RealtimeServerEvent) or model in _flatten(RealtimeClientEvent)


def _is_nullable(model: type[pydantic.BaseModel], name: str, doc: str) -> bool:
    if re.search(r"set to\s+`null`", doc):
        return True
    param = _param_typeddict(model)
    if param is None:
        return False
    hint = typing.get_type_hints(param).get(name)
    return hint is not None and type(None) in typing.get_args(hint)


def _param_typeddict(model: type) -> typing.Any:
    try:
        module = importlib.import_module(model.__module__ + "_param")
    except ImportError:
        return None
    return getattr(module, model.__name__ + "Param", None) or getattr(module, model.__name__, None)


_DOC_CACHE: dict[type, dict[str, str]] = {}


def _field_docs(model: type) -> dict[str, str]:
    """Attribute docstrings (the string after each field) from the model's source."""
    if model not in _DOC_CACHE:
        tree = ast.parse(inspect.getsource(model))
        body = tree.body[0].body  # type: ignore[attr-defined]
        docs: dict[str, str] = {}
        for node, after in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
            ):
                docs[node.target.id] = str(after.value.value)
        _DOC_CACHE[model] = docs
    return _DOC_CACHE[model]


def _class_doc(model: type) -> str:
    doc = inspect.getdoc(model) if "__doc__" in vars(model) and model.__doc__ else ""
    return _first_sentence(doc or "") or f"The ``{_class_name(model)}`` object."


def _first_sentence(doc: str) -> str:
    text = " ".join(doc.split())
    match = re.match(r"(.+?(?<!i\.e)(?<!e\.g)[.!?])(\s+[A-Z`]|$)", text)
    sentence = match.group(1) if match else text
    sentence = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", sentence)  # drop link targets
    sentence = sentence.replace("\u2019", "'").replace("\u2018", "'")
    return sentence.replace('"""', "'''").replace("\\", "\\\\")


# -- writing -------------------------------------------------------------------------------

_TITLES = {
    "items": "Conversation items: messages, function calls and MCP items, and their content.",
    "session": "Session configuration: audio formats, turn detection, transcription, tools.",
    "responses": "Responses: the response object, its status and usage, and response.create.",
    "server_events": "The events the Realtime server sends, except ``response.*``; one class each.",
    "response_events": "The ``response.*`` events the Realtime server sends, one class per type.",
    "client_events": "The events a Realtime client sends, one class per ``type``.",
}


def render_modules(gen: Generator) -> dict[str, str]:
    """The source of each generated module, keyed by file name."""
    owner = {spec.name: spec.section for spec in gen.classes.values()}
    sources = {f"_models_{section}.py": _module_source(gen, section, owner) for section in SECTIONS}
    sources["_models.py"] = _index_source(gen, owner)
    return {name: _tidy(name, source) for name, source in sources.items()}


def _tidy(name: str, source: str, folder: Path = PACKAGE) -> str:
    """Sort imports and format with the project's ruff settings, as a person would."""
    ruff = str(Path(sys.executable).with_name("ruff"))
    for args in (["check", "--fix", "--select", "I", "--quiet"], ["format", "--quiet"]):
        source = subprocess.run(
            [ruff, *args, "--stdin-filename", str(ROOT / folder / name), "-"],
            input=source,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
    return source


def _module_source(gen: Generator, section: str, owner: dict[str, str]) -> str:
    specs = [s for s in gen.classes.values() if s.section == section]
    parts = [_HEADER.format(title=_TITLES[section], version=openai.__version__)]
    parts.append(_imports(specs, section, owner))
    parts.append("__all__ = [\n" + "".join(f'    "{s.name}",\n' for s in specs) + "]\n\n")
    parts.extend(_class_source(spec) for spec in specs)
    return "\n".join(parts)


def _imports(specs: list[ClassSpec], section: str, owner: dict[str, str]) -> str:
    source = "\n".join(f.annotation for s in specs for f in s.fields)
    out = ["from collections.abc import Mapping"]
    if "Literal[" in source:
        out.append("from typing import Literal")
    out.append("\nimport attrs\n")
    out.append("from ._models_base import EMPTY_EXTRA, JsonValue")
    needed = sorted({u for s in specs for u in s.uses if owner[u] != section})
    for other in SECTIONS:
        names = [n for n in needed if owner[n] == other]
        if names:
            out.append(_from_import(f"._models_{other}", names))
    if "Null" in source:
        out.append("from ._null import Null")
    return "\n".join(out) + "\n\n"


def _from_import(module: str, names: list[str]) -> str:
    one_line = f"from {module} import {', '.join(names)}"
    if len(one_line) <= 100:
        return one_line
    return f"from {module} import (\n" + "".join(f"    {n},\n" for n in names) + ")"


def _class_source(spec: ClassSpec) -> str:
    lines = [
        "@attrs.frozen(kw_only=True, weakref_slot=False)",
        f"class {spec.name}:",
        *_docstring(spec.doc),
        "",
    ]
    for f in spec.fields:
        if f.doc and f.name not in ("type", "event_id"):
            lines.extend(
                textwrap.wrap(f.doc, 96, initial_indent="    #: ", subsequent_indent="    #: ")
            )
        lines.append(_field_line(f))
    lines.append(
        "    _extra: Mapping[str, JsonValue] = attrs.field("
        'default=EMPTY_EXTRA, alias="_extra", repr=False, hash=False)'
    )
    return "\n".join(lines) + "\n\n"


def _docstring(doc: str) -> list[str]:
    if len(doc) <= 90:
        return [f'    """{doc}"""']
    return [
        '    """',
        *textwrap.wrap(doc, 96, initial_indent="    ", subsequent_indent="    "),
        '    """',
    ]


def _field_line(f: FieldSpec) -> str:
    default = "" if f.default is None else f" = {f.default}"
    line = f"    {f.name}: {f.annotation}{default}"
    if len(line) <= 100:
        return line
    body = []
    for i, part in enumerate(f.annotation.split(" | ")):
        prefix = "        | " if i else "        "
        if len(prefix + part) > 100 and part.startswith("Literal["):
            values = part.removeprefix("Literal[").removesuffix("]").split(", ")
            inner = "".join(f"            {v},\n" for v in values)
            body.append(f"{prefix}Literal[\n{inner}        ]\n")
        else:
            body.append(f"{prefix}{part}\n")
    return f"    {f.name}: (\n{''.join(body)}    ){default}"


_INDEX_DOC = """\
\"\"\"Every Realtime model, and the two event unions.

Generated by tools/gen_protocol.py from openai=={version}; do not edit.

The classes live in ``_models_<area>.py``; this module gathers them so the codec and the
package ``__init__`` have one place to import from.
\"\"\"

from typing import TypeAlias

"""


def _index_source(gen: Generator, owner: dict[str, str]) -> str:
    parts = [_INDEX_DOC.format(version=openai.__version__)]
    for section in SECTIONS:
        names = sorted(n for n, s in owner.items() if s == section)
        parts.append(_from_import(f"._models_{section}", names) + "\n")
    exported = sorted(
        [
            *owner,
            "ServerEvent",
            "ClientEvent",
            "SERVER_EVENT_CLASSES_IN_ORDER",
            "CLIENT_EVENT_CLASSES_IN_ORDER",
        ]
    )
    parts.append("\n__all__ = [\n" + "".join(f'    "{n}",\n' for n in exported) + "]\n")
    for alias, names in (("ServerEvent", gen.server_events), ("ClientEvent", gen.client_events)):
        which = alias.removesuffix("Event").lower()
        constant = f"{which.upper()}_EVENT_CLASSES_IN_ORDER"
        parts.append(
            f"\n#: Every modeled {which} event class, in openai's order.\n"
            f"{constant} = (\n"
            + "".join(f"    {n},\n" for n in names)
            + ")\n\n"
            + f"{alias}: TypeAlias = (\n"
            + "".join(f"    {'| ' if i else ''}{n}\n" for i, n in enumerate(names))
            + ")\n"
        )
    return "".join(parts)


OVERLOADS = Path("rtbus") / "_emitter_overloads.py"

_OVERLOADS_HEADER = '''\
"""Typed ``on`` and ``once``: one overload per server event type.

Python has no type-level map from a literal to a class, so ``rt.on("response.done", fn)`` can
type ``fn`` only through one overload per event type. Generated by tools/gen_protocol.py from
openai=={version}; do not edit.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, Literal, TypeVar, overload

from . import protocol as p

__all__ = ["Handler", "TypedHandlers"]

E = TypeVar("E")
Handler = Callable[[E], object]
"""A handler takes one argument; if it returns an awaitable, that is awaited."""


class TypedHandlers(abc.ABC):
    """The typed front of ``RealtimeEmitter.on`` and ``once``."""

    @abc.abstractmethod
    def _bind(self, name: str, handler: Handler[Any], *, once: bool) -> Handler[Any]:
        """Bind ``handler`` to ``name``; the emitter keeps the registry."""
'''

_OVERLOAD = """
    @overload
    def {method}(self, name: Literal["{tag}"], handler: Handler[{cls}]) -> Handler[{cls}]: ..."""

_IMPLEMENTATION = '''
    @overload
    def {method}(self, name: str, handler: Handler[Any]) -> Handler[Any]: ...
    def {method}(self, name: str, handler: Handler[Any]) -> Handler[Any]:
        """{doc}"""
        return self._bind(name, handler, once={once})
'''

_METHOD_DOCS = {
    "on": "Call ``handler`` for every ``name`` until ``off``; returns it (decorator-friendly).",
    "once": "Call ``handler`` for the next ``name`` only; returns it.",
}


def _overloads_source(gen: Generator) -> str:
    """``on`` and ``once``, typed for ``"event"``, ``"error"`` and every server event type."""
    specials = {"event": "p.ServerEvent | p.UnknownEvent", "error": "p.RealtimeError"}
    tags = specials | {
        tag: f"p.{name}" for tag, name in sorted(gen.server_tags.items()) if tag != "error"
    }
    parts = [_OVERLOADS_HEADER.format(version=openai.__version__)]
    for method, once in (("on", False), ("once", True)):
        parts.extend(_OVERLOAD.format(method=method, tag=t, cls=c) for t, c in tags.items())
        parts.append(_IMPLEMENTATION.format(method=method, doc=_METHOD_DOCS[method], once=once))
    return "".join(parts)


def generate() -> dict[Path, str]:
    """The generated modules' sources, keyed by path under the project; nothing is written."""
    gen = Generator()
    gen.run()
    sources = {PACKAGE.relative_to(ROOT) / name: s for name, s in render_modules(gen).items()}
    sources[OVERLOADS] = _tidy(OVERLOADS.name, _overloads_source(gen), OVERLOADS.parent)
    return sources


def main() -> None:
    """Rewrite the generated modules in place."""
    for path, source in generate().items():
        (ROOT / path).write_text(source)
        print(f"wrote {path} ({source.count(chr(10))} lines)", file=sys.stderr)


if __name__ == "__main__":
    main()
