"""The layers of docs/architecture.md, enforced: each package imports only the packages it may
(its layers above), and only through their faces (``rtbus.bus``, never ``rtbus.bus._bus``)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "rtbus"

#: package -> the rtbus packages (and top-level modules) it may import.
MAY_IMPORT: dict[str, set[str]] = {
    "protocol": set(),
    "emitter": {"protocol", "_emitter_overloads"},
    "transport": {"protocol", "emitter", "_unwrapping", "_backoff"},
    "calls": {"protocol", "_backoff"},
    "actors": {"_backoff", "_unwrapping"},
    "bus": {"protocol", "actors", "_turns"},
    "gateway": {"protocol", "transport", "bus", "_backoff", "_unwrapping", "_turns"},
    "redis": {"protocol", "bus", "_backoff", "_unwrapping"},
    "session": {"protocol", "transport", "actors", "bus", "_unwrapping"},
    "metrics": {"protocol", "bus", "session", "actors"},
    "sim": {"protocol", "_replay"},
}
#: What may import anything above it (the assembly and the command).
TOP = {"service", "cli"}
SHARED = {"_backoff", "_unwrapping", "_emitter_overloads", "_replay", "_turns"}


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        yield parts[0], path


def _imports(path: Path) -> Iterator[str]:
    """The ``rtbus.X.Y`` names a module imports (relative imports resolved)."""
    package = ".".join(("rtbus", *path.relative_to(ROOT).parent.parts))
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                yield ".".join([*base, *([node.module] if node.module else [])])
            elif node.module:
                yield node.module


def _violations() -> Iterator[str]:
    for package, path in _modules():
        name = package.removesuffix(".py") if package.endswith(".py") else package
        for imported in _imports(path):
            parts = imported.split(".")
            if parts[0] != "rtbus" or len(parts) < 2 or parts[1] == name:
                continue
            target = parts[1]
            if len(parts) > 2 and parts[2].startswith("_") and target not in SHARED:
                yield f"{path.relative_to(ROOT)}: {imported} (a private module of another package)"
            if name in TOP or name in SHARED or name == "__init__":
                continue
            if target not in MAY_IMPORT.get(name, set()):
                yield f"{path.relative_to(ROOT)}: {imported} ({name} may not import {target})"


def test_packages_import_only_the_layers_above_them_through_their_faces() -> None:
    assert list(_violations()) == []


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_every_layer_exists(package: str) -> None:
    assert (ROOT / package).is_dir() or (ROOT / f"{package}.py").is_file()
