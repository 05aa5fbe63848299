"""Scrub secrets out of text before it goes into a message (sans-IO).

Server-provided text -- a handshake rejection body, an echoed header -- may repeat the key
we sent. Anything that puts such text into an exception, a log line or a metric passes it
through :func:`redact` with the secrets of that connection first.

A secret is replaced where it stands as a whole value (a token): not where its characters
happen to occur inside a longer word. A key ``t`` must scrub ``token=t``, never turn
``set AZURE_...`` into ``se*** AZURE_...``. The config check refuses secrets that short, so
the boundary rule loses nothing real.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["REDACTED", "redact"]

REDACTED = "***"
# The characters a key or token is made of: a secret next to one of them is part of a
# longer token, so it is not this secret.
_TOKEN_CHAR = r"[A-Za-z0-9_\-]"


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every whole-token occurrence of every non-empty secret replaced by
    ``***``."""
    pattern = _pattern(secrets)
    return text if pattern is None else pattern.sub(REDACTED, text)


def _pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    # Longest first: when one secret contains another, the whole of the longer one goes.
    ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not ordered:
        return None
    alternatives = "|".join(re.escape(secret) for secret in ordered)
    return re.compile(f"(?<!{_TOKEN_CHAR})(?:{alternatives})(?!{_TOKEN_CHAR})")
