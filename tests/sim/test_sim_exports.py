"""The public surface of ``rtbus.sim`` is what we meant, and options are checked."""

from __future__ import annotations

import typing

import attrs
import pytest

import rtbus.sim
from rtbus.protocol._errors import ConfigError
from rtbus.sim import SimOptionFields, SimOptions


def test_public_names() -> None:
    assert sorted(rtbus.sim.__all__) == [
        "Delivery",
        "Dial",
        "Fault",
        "FaultKind",
        "SessionSettings",
        "SimOptionFields",
        "SimOptions",
        "SimServer",
        "SimSession",
        "SimStatistics",
        "serve_sim",
        "speech_like_pcm16",
    ]
    for name in rtbus.sim.__all__:
        assert getattr(rtbus.sim, name).__module__.startswith("rtbus.sim")


def test_option_keywords_mirror_the_options_class() -> None:
    assert set(typing.get_type_hints(SimOptionFields)) == {f.name for f in attrs.fields(SimOptions)}


def test_every_fault_kind_is_documented() -> None:
    doc = rtbus.sim.__doc__ or ""
    for kind in rtbus.sim.FaultKind:
        assert f"``{kind.value}" in doc


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("speed", 0.0),
        ("response_audio_seconds", -1.0),
        ("audio_chunk_seconds", 0.0),
        ("fault_rate", 1.5),
        ("max_session_seconds", 0.0),
        ("max_message_size", 0),
        ("handshake_timeout", -1.0),
    ],
)
def test_bad_options_are_config_errors_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ConfigError) as caught:
        SimOptions(**{field: value})  # type: ignore[arg-type]
    assert caught.value.key == field
