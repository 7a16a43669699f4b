"""Where a stage partition's state persists between processes, and what it is written as.

A stage holds its live state in memory and hands back, per flush, the writes that changed it:
each changed key once, with its latest value (``None`` deletes it). The same writes go to the
changelog topic first and to a ``Store`` only once the changelog has them, so a store is never
ahead of its changelog (``stream_app.engine.commit``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

Write = tuple[bytes, bytes | None]


class Store(Protocol):
    """One partition of a stage's table."""

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        """Every key and value: what a stage loads when it takes the partition on."""
        ...

    def write(self, writes: Sequence[Write]) -> None:
        """Apply a flush's writes, all or nothing."""
        ...


class MemoryStore:
    """A store in a dict: for tests and for the backtest, which persists nothing."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        return list(self.data.items())

    def write(self, writes: Sequence[Write]) -> None:
        data = self.data
        for key, value in writes:
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
