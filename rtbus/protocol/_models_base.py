"""What every generated model shares: the JSON value type and the empty extra-fields mapping.

Each model class carries ``_extra``: the fields the server sent that the model does not name
(the API grows; we keep what we do not know and send it back unchanged). It defaults to one
shared empty read-only mapping, ``EMPTY_EXTRA``, so the common case allocates nothing. It
takes part in ``==`` (two events that differ only in an unknown field are different events)
but not in the hash (a dict cannot be hashed), and is left out of ``repr`` to keep reprs
readable; read it as ``event._extra``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Final, NoReturn, TypeAlias, Union, final

__all__ = ["EMPTY_EXTRA", "JsonValue"]

# A runtime ``Union`` (not a PEP 604 string) so that ``JsonValue | None`` works in the generated
# annotations and the codec can recognise the free-form fields by their ``list[JsonValue]`` arm.
#: Any JSON value, as ``orjson.loads`` returns it (tuples are accepted when encoding).
JsonValue: TypeAlias = Union[  # noqa: UP007
    bool,
    int,
    float,
    str,
    list["JsonValue"],
    tuple["JsonValue", ...],
    dict[str, "JsonValue"],
    None,
]


@final
class _EmptyExtra(Mapping[str, JsonValue]):
    """The type of ``EMPTY_EXTRA``: empty, immutable, and one of a kind through pickle and copy.

    (A ``MappingProxyType`` would do, but it cannot be pickled, and events cross processes.)
    """

    __slots__ = ()

    def __getitem__(self, key: str) -> NoReturn:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "EMPTY_EXTRA"

    def __reduce__(self) -> str:
        return "EMPTY_EXTRA"


EMPTY_EXTRA: Final[Mapping[str, JsonValue]] = _EmptyExtra()
