"""``NULL``: an explicit JSON null in a client event.

The codec maps both an absent optional field and a JSON ``null`` to ``None``, and ``encode``
leaves ``None`` fields out. A few fields give ``null`` a meaning of its own:
``session.audio.input.turn_detection: null`` switches server VAD off, ``noise_reduction: null``
switches noise reduction off. Those fields (the ones openai's ``*_param.py`` TypedDicts make
``Optional``, or whose description says they can be set to ``null``) also accept ``NULL``,
which ``encode`` writes as ``null`` and the decoder returns for a ``null`` it reads there, so a
server ``session.updated`` that carries ``turn_detection: null`` round-trips exactly.
"""

from __future__ import annotations

from typing import Final, final

__all__ = ["NULL", "Null"]


@final
class Null:
    """The type of ``NULL``, the one explicit-JSON-null value. Falsy; there is only one."""

    __slots__ = ()
    _instance: Null | None = None

    def __new__(cls) -> Null:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NULL"

    def __reduce__(self) -> str:
        # Pickling by name keeps the singleton a singleton across processes.
        return "NULL"

    def __copy__(self) -> Null:
        return self

    def __deepcopy__(self, memo: object) -> Null:
        return self


NULL: Final = Null()
