"""The calls pieces sit in their layers: the sans-IO parts import no I/O, the sim only protocol."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rtbus

ROOT = Path(rtbus.__file__).parent
SANS_IO = ["protocol/_calls.py", "protocol/_webhooks.py", "protocol/_webhook_events.py"]
IO_LIBRARIES = {"trio", "trio_websocket", "httpx2", "h11", "anyio", "socket"}
SIM_CALLS = ["sim/_calls.py", "sim/_caller.py", "sim/_http.py", "sim/_phone.py"]


def imports(relative: str) -> set[str]:
    tree = ast.parse((ROOT / relative).read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", SANS_IO)
def test_sans_io_modules_import_no_io(module: str) -> None:
    assert not {name.split(".")[0] for name in imports(module)} & IO_LIBRARIES


@pytest.mark.parametrize("module", SIM_CALLS)
def test_the_simulator_imports_only_the_protocol_of_rtbus(module: str) -> None:
    ours = {name for name in imports(module) if name.startswith("rtbus")}
    assert all(name.startswith("rtbus.protocol") for name in ours), ours


def test_the_calls_client_imports_below_itself_only() -> None:
    ours = {name for name in imports("calls/_client.py") if name.startswith("rtbus")}
    assert ours <= {"rtbus._backoff", "rtbus.protocol"}, ours
