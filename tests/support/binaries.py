"""Finding the external programs some tests run for real (``redis-server``, ``prometheus``).

On a developer machine without one, those tests skip with a reason that names the Debian
package to install. In CI (``CI=true``) a missing program fails the test instead: CI installs
them (``.ci/run``), so a skip there would hide a broken set-up.
"""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["free_port", "require_binary"]


def require_binary(name: str, apt_package: str) -> str:
    """The absolute path of ``name`` on PATH; skip (or fail under CI) when it is missing."""
    path = shutil.which(name)
    if path is not None:
        return path
    reason = f"{name} is not on PATH: apt-get install -y {apt_package}"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} (CI=true, so this is a failure, not a skip)")
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for servers that cannot bind 0)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
