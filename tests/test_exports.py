"""The public surface is what we meant: every name exported, defined in a private module,
and nothing public by accident."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

import rtbus

PACKAGES = [
    "rtbus",
    "rtbus.protocol",
    "rtbus.calls",
    "rtbus.transport",
    "rtbus.actors",
    "rtbus.bus",
    "rtbus.session",
    "rtbus.metrics",
    "rtbus.service",
    "rtbus.sim",
    "rtbus.redis",
]
# Modules that are layers of their own (docs/architecture.md).
PUBLIC_MODULES = {"rtbus.emitter", "rtbus.redis"}
CONTRACT = {  # the public API contract: tests outside the project rely on these names
    "rtbus": {
        "RealtimeError",
        "OpenAIConfig",
        "AzureConfig",
        "is_azure",
        "build_realtime_url",
        "open_realtime",
        "open_service",
        "protocol",
        "sim",
        "connect",
    },
    "rtbus.protocol": {
        "SERVER_EVENT_TYPES",
        "CLIENT_EVENT_TYPES",
        "decode_server_event",
        "decode_client_event",
        "encode",
        "UnknownEvent",
    },
    "rtbus.sim": {"serve_sim"},
}


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_exactly_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    for attr in module.__all__:
        getattr(module, attr)  # the root loads its names lazily
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and (attr in module.__all__ or not _is_subpackage_of(value, name))
    }
    assert set(module.__all__) == public
    assert CONTRACT.get(name, set()) <= public


@pytest.mark.parametrize("name", PACKAGES)
def test_public_objects_come_from_private_modules(name: str) -> None:
    module = importlib.import_module(name)
    for attr in module.__all__:
        value = getattr(module, attr)
        defined_in = getattr(value, "__module__", None)
        if isinstance(value, types.ModuleType) or defined_in is None:
            continue
        if defined_in.startswith("rtbus") and defined_in not in PUBLIC_MODULES:
            assert defined_in.rsplit(".", 1)[-1].startswith("_"), (attr, defined_in)


def _is_subpackage_of(value: object, name: str) -> bool:
    return isinstance(value, types.ModuleType) and value.__name__.startswith(name + ".")


def test_contract_names_resolve() -> None:
    assert rtbus.protocol.decode_server_event is not None
    assert rtbus.sim.serve_sim is not None


def test_the_sans_io_protocol_loads_no_io_library() -> None:
    # A fresh interpreter: this one has loaded everything already.
    code = (
        "import sys, rtbus.protocol; "
        "print(sorted(m for m in ('trio', 'hypercorn', 'coredis', 'prometheus_client') "
        "if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"


def test_an_unknown_root_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = rtbus.nothing
    assert set(dir(rtbus)) >= set(rtbus.__all__)
