"""Where a stage partition's state persists between processes, and what it is written as.

A stage holds its live state in memory and hands back, per flush, the writes that changed it:
each changed key once, with its latest value (``None`` deletes it). The same writes go to the
changelog topic first and to a ``Store`` only once the changelog has them, together with the
changelog offset they reach, so a store is never ahead of its changelog (``stream_app.engine.commit``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

Write = tuple[bytes, bytes | None]


class Store(Protocol):
    """One partition of a stage's table (``faust_bridge.RocksPartition`` in the worker)."""

    def items(self) -> Sequence[tuple[bytes, bytes]]:
        """Every key and value: what a stage loads when it takes the partition on."""
        ...

    def write(self, writes: Sequence[Write], changelog_offset: int | None) -> None:
        """Apply a flush's writes, all or nothing, and remember the changelog offset they reach."""
        ...


class MemoryStore:
    """A store in a dict, for the engine's tests."""

    __slots__ = ("checkpoint", "data")

    def __init__(self, items: Sequence[tuple[bytes, bytes]] = ()) -> None:
        self.data: dict[bytes, bytes] = dict(items)
        self.checkpoint: int | None = None

    def items(self) -> list[tuple[bytes, bytes]]:
        return list(self.data.items())

    def write(self, writes: Sequence[Write], changelog_offset: int | None) -> None:
        data = self.data
        for key, value in writes:
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        self.checkpoint = changelog_offset
