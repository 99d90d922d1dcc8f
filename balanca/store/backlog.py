"""The backlog: reading rows waiting for the database, oldest first.

A new row waits in memory until the next tick (at most a second), when `save` numbers it and
appends it to the journal on disk. The newest numbered rows stay in memory too (up to
`MAX_MEMORY`), so the writer takes them from there without reading the disk, while their
append may still be under way; older ones are read back from the journal. A batch is settled
(forgotten on disk, refused rows set aside) only once the database has it. So a crash loses at
most the rows of the last second, and a replay writes again at most the batch under way, which
the database's unique keys ignore. Should the journal fail (a full disk), the rows stay in
memory only, up to `MAX_MEMORY`, and are counted as lost beyond that.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from itertools import islice
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from balanca.store.journal import Journal, Opened
from balanca.store.schema import Row

BATCH = 500
"""Rows per write."""
MAX_MEMORY = 10_000
"""Numbered rows kept in memory as well as on disk."""

Write = Callable[[list[Row]], Awaitable[Sequence[tuple[Row, str]]]]
"""Writes rows to the database; returns the rows it refused, with the reasons."""


class Backlog:
    """Reading rows not written yet, in order: on disk only, then in memory, then fresh."""

    log = Logger()

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.lost = 0
        """Rows the journal failed to keep and memory had no room for."""
        self.dead = 0
        """Rows set aside in the journal's dead letters."""
        self.on_disk_only = 0
        """Rows in the journal older than any kept in memory."""
        self.journal_failed = False
        self._fresh: list[Row] = []
        self._memory: deque[tuple[int, Row]] = deque()
        self._next_ord = 1
        self._opening: Deferred[Any] | None = None

    def __len__(self) -> int:
        return self.on_disk_only + len(self._memory) + len(self._fresh)

    @property
    def journaled(self) -> int:
        """Rows numbered for the journal (on disk, or being appended)."""
        return self.on_disk_only + len(self._memory)

    def open(self) -> None:
        """Open the journal, counting what an earlier run left; new rows queue behind it."""
        self._opening = self.journal.open().addCallbacks(self._found, self._unreadable)

    def add(self, row: Row) -> None:
        """A new row, after all the others."""
        self._fresh.append(row)

    def save(self) -> Deferred[None]:
        """Number the rows that arrived since the last save and put them on disk."""
        if not self._fresh or self._opening is not None:
            return succeed(None)
        entries = [(self._next_ord + i, row) for i, row in enumerate(self._fresh)]
        self._next_ord += len(entries)
        self._fresh = []
        self._memory.extend(entries)
        overflow = len(self._memory) - MAX_MEMORY
        for _ in range(max(0, overflow)):
            self._memory.popleft()
            if self.journal_failed:
                self.lost += 1
            else:
                self.on_disk_only += 1
        if self.journal_failed:
            return succeed(None)
        return self.journal.append(entries).addErrback(self._append_failed)

    async def write_oldest(self, write: Write) -> bool:
        """Write the oldest batch with `write` and settle it; False when nothing waits."""
        if self._opening is not None:
            await self._opening
        from_disk = self.on_disk_only > 0
        if from_disk:
            entries = await self.journal.oldest(min(BATCH, self.on_disk_only))
            if not entries:  # fewer on disk than counted: what was there is written
                self.on_disk_only = 0
                return True
        elif self._memory:
            entries = list(islice(self._memory, BATCH))
        else:
            return False
        refused = await write([row for _, row in entries])
        last = entries[-1][0]
        if from_disk:
            self.on_disk_only = max(0, self.on_disk_only - len(entries))
        while self._memory and self._memory[0][0] <= last:
            self._memory.popleft()
        self.dead += len(refused)
        if not self.journal_failed:
            self.journal.settle(last, refused).addErrback(self._settle_failed)
        return True

    async def keep(self) -> None:
        """Put every fresh row on disk (at a stop), once the journal is open."""
        if self._opening is not None:
            await self._opening
        await self.save()

    def settled(self) -> Deferred[None]:
        """Fires once the journal has done everything asked of it so far."""
        return succeed(None) if self.journal_failed else self.journal.barrier()

    def close(self) -> Deferred[None] | None:
        """Close the journal file (after the operations under way)."""
        return self.journal.close()

    def _append_failed(self, failure: Any) -> None:
        if not self.journal_failed:
            self.log.failure(
                "journal {path} failed: readings wait in memory only", failure,
                path=self.journal.path,
            )  # fmt: skip
        self.journal_failed = True

    def _settle_failed(self, failure: Any) -> None:
        self.log.failure(
            "journal {path}: written rows not forgotten", failure, path=self.journal.path
        )

    def _found(self, opened: Opened) -> None:
        self._opening = None
        self.on_disk_only = opened.pending
        self._next_ord = opened.next_ord
        self.dead = opened.dead
        if opened.foreign is not None:
            self.log.warn(
                "journal {path} belongs to another database ({other}), not this one ({ours}):"
                " moved to {moved}, nothing replayed from it",
                path=self.journal.path, other=opened.foreign, ours=self.journal.identity,
                moved=opened.moved_to,
            )  # fmt: skip
        if opened.pending:
            self.log.info(
                "{count} readings from an earlier run wait in {path}",
                count=opened.pending, path=self.journal.path,
            )  # fmt: skip
        if opened.dead:
            self.log.warn(
                "{count} rows the database refused wait in {path} (python -m"
                " balanca.store.deadletters list)",
                count=opened.dead, path=self.journal.path,
            )  # fmt: skip

    def _unreadable(self, failure: Any) -> None:
        self._opening = None
        self.journal_failed = True
        self.log.failure("journal {path} unreadable", failure, path=self.journal.path)
