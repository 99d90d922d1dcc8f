"""The backlog: reading rows waiting for the database, oldest first, bounded in memory.

Up to `max_pending` rows wait in memory. Beyond that, new rows go to the spill journal (saved
there at each tick, from a short list), and keep going there until the journal is empty again,
so the order stays: memory (oldest), then journal, then the rows not saved yet. The writer
takes the oldest batch and forgets it only once it is written; a stop with the database down
puts the memory rows in the journal ahead of the rest, for the next start.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from itertools import islice
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from balanca.store.journal import Journal
from balanca.store.schema import Row

BATCH = 500
"""Rows per write."""


class Backlog:
    """Reading rows not written yet, in order, in memory and in the spill journal."""

    log = Logger()

    def __init__(self, journal: Journal, max_pending: int) -> None:
        self.journal = journal
        self.max_pending = max_pending
        self.lost = 0
        """Rows the journal failed to keep."""
        self._memory: deque[Row] = deque()
        self._unsaved: list[Row] = []
        self._journaled: int | None = 0
        """Rows in the journal, counting appends under way; None until an old journal is counted."""
        self._opening: Deferred[None] | None = None

    def __len__(self) -> int:
        return len(self._memory) + len(self._unsaved) + self.journaled

    @property
    def journaled(self) -> int:
        """Rows in the spill journal."""
        return self._journaled or 0

    def open(self) -> None:
        """Count what an earlier run left in the journal; new rows queue behind it."""
        if self.journal.exists():
            self._journaled = None
            self._opening = self.journal.count().addCallbacks(self._found, self._unreadable)

    def add(self, row: Row) -> None:
        """A new row, after all the others."""
        if self._journaled == 0 and not self._unsaved and len(self._memory) < self.max_pending:
            self._memory.append(row)
        else:
            self._unsaved.append(row)

    def save(self) -> Deferred[None]:
        """Put the rows beyond the memory bound in the journal."""
        if not self._unsaved or self._journaled is None:
            return succeed(None)
        rows, self._unsaved = self._unsaved, []
        if self._journaled == 0:
            self.log.warn(
                "{count} readings waiting for the database: keeping the rest in {path}",
                count=len(self._memory), path=self.journal.path,
            )  # fmt: skip
        self._journaled += len(rows)
        return self.journal.append(rows).addErrback(self._append_failed, len(rows))

    async def write_oldest(self, write: Callable[[list[Row]], Awaitable[None]]) -> bool:
        """Write the oldest batch with `write` and forget it; False when nothing waits."""
        if self._opening is not None:
            await self._opening
        if self._memory:
            rows = list(islice(self._memory, BATCH))
            await write(rows)
            for _ in rows:
                self._memory.popleft()
        elif self._journaled:
            entries = await self.journal.oldest(BATCH)
            if entries:
                await write([row for _, row in entries])
                await self.journal.discard(entries[-1][0])
            self._journaled = self._journaled - len(entries) if entries else 0
        elif self._unsaved and self._journaled == 0:
            self._memory.extend(self._unsaved)
            self._unsaved.clear()
        else:
            return False
        return True

    async def keep(self) -> None:
        """Put every row in the journal, in order (at a stop, with the database down)."""
        if self._opening is not None:
            await self._opening
        rows = list(self._memory)
        self._memory.clear()
        if rows:
            await self.journal.prepend(rows)
            self._journaled = self.journaled + len(rows)
        await self.save()

    def close(self) -> None:
        """Close the journal file."""
        self.journal.close()

    def _append_failed(self, failure: Any, count: int) -> None:
        self._journaled = self.journaled - count
        self.lost += count
        self.log.failure("{count} readings lost: the journal failed", failure, count=count)

    def _found(self, count: int) -> None:
        self._journaled, self._opening = count, None
        if count:
            self.log.info(
                "{count} readings from an earlier run wait in {path}",
                count=count, path=self.journal.path,
            )  # fmt: skip

    def _unreadable(self, failure: Any) -> None:
        self._journaled, self._opening = 0, None
        self.log.failure("journal {path} unreadable", failure, path=self.journal.path)
