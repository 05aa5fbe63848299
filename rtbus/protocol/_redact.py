"""Scrub secrets out of text before it goes into a message (sans-IO).

Server-provided text -- a handshake rejection body, an echoed header -- may repeat the key
we sent. Anything that puts such text into an exception, a log line or a metric passes it
through :func:`redact` with the secrets of that connection first.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["REDACTED", "redact"]

REDACTED = "***"


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of every non-empty secret replaced by ``***``."""
    # Longest first: when one secret contains another, the whole of the longer one goes.
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
