"""The conversation: an ordered list of items that clients and responses add to.

Invariants: item ids are unique; ``insert`` places an item right after ``previous_item_id``
(``None`` appends at the end, ``"root"`` inserts at the start, as the real service reads it);
``public`` is the view events carry, which drops input audio bytes as the real service does
everywhere except ``conversation.item.retrieved``.
"""

from __future__ import annotations

import copy

import attrs

__all__ = ["Conversation", "Item", "ItemNotFound", "public"]

Item = dict[str, object]


class ItemNotFound(LookupError):
    """Raised when a client names an item id the conversation does not hold."""

    def __init__(self, item_id: str) -> None:
        super().__init__(item_id)
        self.item_id = item_id


@attrs.define
class Conversation:
    """The ordered items of one session's default conversation."""

    _items: list[Item] = attrs.field(factory=list)

    def __len__(self) -> int:
        return len(self._items)

    def insert(self, item: Item, previous_item_id: str | None) -> str | None:
        """Add ``item`` after ``previous_item_id``; return the id of the item now before it."""
        if previous_item_id is None:
            index = len(self._items)
        elif previous_item_id == "root":
            index = 0
        else:
            index = self._index(previous_item_id) + 1
        self._items.insert(index, item)
        return str(self._items[index - 1]["id"]) if index > 0 else None

    def get(self, item_id: str) -> Item:
        """The stored item (the caller must not mutate it)."""
        return self._items[self._index(item_id)]

    def delete(self, item_id: str) -> None:
        """Remove an item."""
        del self._items[self._index(item_id)]

    def last_id(self) -> str | None:
        """The id of the newest item, the ``previous_item_id`` of the next append."""
        return str(self._items[-1]["id"]) if self._items else None

    def items(self) -> tuple[Item, ...]:
        """All items, oldest first."""
        return tuple(self._items)

    def _index(self, item_id: str) -> int:
        for index, item in enumerate(self._items):
            if item.get("id") == item_id:
                return index
        raise ItemNotFound(item_id)


def public(item: Item) -> Item:
    """``item`` as events show it: input audio bytes removed, a missing transcript ``None``."""
    shown = copy.deepcopy(item)
    content = shown.get("content")
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") == "input_audio":
                part.pop("audio", None)
                part.setdefault("transcript", None)
    return shown
