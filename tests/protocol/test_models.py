"""The generated models: up to date with the generator, named by the rules, shaped as promised."""

from __future__ import annotations

import copy
import importlib.util
import pickle
import sys
import typing
from pathlib import Path
from types import ModuleType

import attrs
import openai
import pytest

from rtbus.protocol import _models as m
from rtbus.protocol._models_base import EMPTY_EXTRA
from rtbus.protocol._null import NULL, Null

ROOT = Path(__file__).resolve().parents[2]
EVENT_CLASSES = [*m.SERVER_EVENT_CLASSES_IN_ORDER, *m.CLIENT_EVENT_CLASSES_IN_ORDER]
MODEL_CLASSES = [getattr(m, name) for name in m.__all__ if attrs.has(getattr(m, name))]


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_protocol", ROOT / "tools" / "gen_protocol.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_protocol"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(openai.__version__ != "3.54.0", reason="generated from openai==3.54.0")
def test_generated_modules_are_up_to_date() -> None:
    generated = _load_generator().generate()
    models = {p.relative_to(ROOT) for p in (ROOT / "rtbus" / "protocol").glob("_models*.py")}
    hand_written = {
        Path("rtbus/protocol/_models_base.py"),
        Path("rtbus/protocol/_models_compile.py"),
    }
    assert set(generated) == models - hand_written | {Path("rtbus/_emitter_overloads.py")}
    for path, source in generated.items():
        assert source == (ROOT / path).read_text(), f"{path} is stale: run tools/gen_protocol.py"


def test_error_models_are_named_for_errors_py() -> None:
    details = {f.name for f in attrs.fields(m.ErrorDetails)}
    assert details == {"message", "type", "code", "event_id", "param", "_extra"}
    assert [f.name for f in attrs.fields(m.ErrorEvent)] == ["type", "event_id", "error", "_extra"]
    assert typing.get_type_hints(m.ErrorEvent)["error"] is m.ErrorDetails


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda cls: cls.__name__)
def test_event_class_is_named_by_its_type_with_that_type_as_default(cls: type) -> None:
    type_field = attrs.fields_dict(cls)["type"]
    assert typing.get_args(type_field.type) == (type_field.default,)
    assert isinstance(type_field.default, str)
    words = type_field.default.replace("_", ".").split(".")
    assert cls.__name__ == "".join(w[:1].upper() + w[1:] for w in words) + "Event"


@pytest.mark.parametrize("cls", m.SERVER_EVENT_CLASSES_IN_ORDER, ids=lambda cls: cls.__name__)
def test_server_events_carry_a_required_event_id(cls: type) -> None:
    fields = attrs.fields_dict(cls)
    if cls is m.InputAudioBufferDtmfEventReceivedEvent:
        assert "event_id" not in fields  # openai models this one without
        return
    assert fields["event_id"].default is attrs.NOTHING


@pytest.mark.parametrize("cls", m.CLIENT_EVENT_CLASSES_IN_ORDER, ids=lambda cls: cls.__name__)
def test_client_events_have_an_optional_event_id(cls: type) -> None:
    assert attrs.fields_dict(cls)["event_id"].default is None


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=lambda cls: cls.__name__)
def test_models_are_frozen_slotted_and_keyword_only(cls: type) -> None:
    assert "__slots__" in vars(cls)
    assert all(f.kw_only for f in attrs.fields(cls))
    extra = attrs.fields_dict(cls)["_extra"]
    assert (extra.default, extra.alias, extra.repr) == (EMPTY_EXTRA, "_extra", False)


def test_instances_are_immutable_and_hashable() -> None:
    event = m.InputAudioBufferAppendEvent(audio="AAAA")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.audio = "BBBB"  # type: ignore[misc]
    assert hash(event) == hash(m.InputAudioBufferAppendEvent(audio="AAAA"))
    # Unknown fields count for equality but not for the hash (a dict cannot be hashed).
    other = m.InputAudioBufferAppendEvent(audio="AAAA", _extra={"new": 1})
    assert (other == event, hash(other) == hash(event)) == (False, True)


def test_single_valued_tags_default_so_construction_is_short() -> None:
    item = m.ConversationItemUserMessage(content=(m.UserMessageContent(text="hi"),))
    assert (item.type, item.role) == ("message", "user")
    assert m.ServerVad().type == "server_vad"
    assert m.AudioPCM().type == "audio/pcm"


def test_nested_names_drop_the_realtime_prefix() -> None:
    assert not [name for name in m.__all__ if name.startswith("Realtime")]


def test_null_is_a_falsy_singleton_that_survives_copies() -> None:
    assert Null() is NULL
    assert not NULL
    assert repr(NULL) == "NULL"
    assert copy.copy(NULL) is NULL
    assert copy.deepcopy(NULL) is NULL
    assert pickle.loads(pickle.dumps(NULL)) is NULL


def test_null_is_accepted_where_openai_params_allow_none() -> None:
    nullable = {
        (cls.__name__, name)
        for cls in MODEL_CLASSES
        for name, hint in typing.get_type_hints(cls).items()
        if Null in typing.get_args(hint)
    }
    assert {
        ("AudioInputConfig", "turn_detection"),
        ("AudioInputConfig", "noise_reduction"),
        ("AudioInputConfig", "transcription"),
        ("SessionConfig", "tracing"),
        ("SessionConfig", "prompt"),
    } <= nullable
    assert ("AudioInputConfig", "format") not in nullable


def test_empty_extra_is_shared_and_survives_pickle() -> None:
    event = m.InputAudioBufferClearEvent()
    assert event._extra is EMPTY_EXTRA
    assert not EMPTY_EXTRA
    assert EMPTY_EXTRA == {}
    assert pickle.loads(pickle.dumps(event))._extra is EMPTY_EXTRA
    assert copy.deepcopy(EMPTY_EXTRA) is EMPTY_EXTRA
