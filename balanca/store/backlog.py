"""The backlog: reading rows waiting for the database, oldest first.

A new row waits in memory until the next tick (at most a second), when `save` appends it to
the journal on disk; the writer takes the oldest batch from the journal and settles it (forgets
it, setting refused rows aside) only once the database has it. So a crash loses at most the
rows of the last second, and a replay writes again at most the batch under way, which the
database's unique keys ignore. Should the journal fail (a full disk), rows wait in memory
behind it instead, up to `MAX_STRANDED`, and are counted as lost beyond that.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from balanca.store.journal import Journal, Opened
from balanca.store.schema import Row

BATCH = 500
"""Rows per write."""
MAX_STRANDED = 100_000
"""Rows kept in memory while the journal cannot take them."""

Write = Callable[[list[Row]], Awaitable[Sequence[tuple[Row, str]]]]
"""Writes rows to the database; returns the rows it refused, with the reasons."""


class Backlog:
    """Reading rows not written yet, in order: journal, then stranded, then fresh."""

    log = Logger()

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.lost = 0
        """Rows neither the journal nor memory could keep."""
        self.dead = 0
        """Rows set aside in the journal's dead letters."""
        self.journaled = 0
        """Rows in the journal, counting appends under way."""
        self._fresh: list[Row] = []
        self._stranded: deque[Row] = deque()
        self._opening: Deferred[Any] | None = None

    def __len__(self) -> int:
        return len(self._fresh) + len(self._stranded) + self.journaled

    def open(self) -> None:
        """Open the journal, counting what an earlier run left; new rows queue behind it."""
        self._opening = self.journal.open().addCallbacks(self._found, self._unreadable)

    def add(self, row: Row) -> None:
        """A new row, after all the others."""
        self._fresh.append(row)

    def save(self) -> Deferred[None]:
        """Put the rows that arrived since the last save on disk (or in memory behind it)."""
        if not self._fresh or self._opening is not None:
            return succeed(None)
        rows, self._fresh = self._fresh, []
        if self._stranded:
            self._strand(rows)
            return succeed(None)
        self.journaled += len(rows)
        return self.journal.append(rows).addErrback(self._append_failed, rows)

    async def write_oldest(self, write: Write) -> bool:
        """Write the oldest batch with `write` and forget it; False when nothing waits."""
        if self._opening is not None:
            await self._opening
        if self.journaled:
            entries = await self.journal.oldest(BATCH)
            if entries:
                refused = await write([row for _, row in entries])
                await self.journal.settle(entries[-1][0], refused)
                self.dead += len(refused)
            self.journaled = self.journaled - len(entries) if entries else 0
        elif self._stranded:
            rows = [self._stranded[i] for i in range(min(BATCH, len(self._stranded)))]
            refused = await write(rows)
            for _ in rows:
                self._stranded.popleft()
            if refused:
                await self.journal.settle(0, refused)
                self.dead += len(refused)
        else:
            return False
        return True

    async def keep(self) -> None:
        """Put every fresh row on disk (at a stop), once the journal is open."""
        if self._opening is not None:
            await self._opening
        await self.save()

    def close(self) -> Deferred[None] | None:
        """Close the journal file."""
        return self.journal.close()

    def _strand(self, rows: list[Row]) -> None:
        self._stranded.extend(rows)
        while len(self._stranded) > MAX_STRANDED:
            self._stranded.popleft()
            self.lost += 1

    def _append_failed(self, failure: Any, rows: list[Row]) -> None:
        self.journaled -= len(rows)
        if not self._stranded:
            self.log.failure(
                "journal {path} failed: readings wait in memory", failure, path=self.journal.path
            )
        self._strand(rows)

    def _found(self, opened: Opened) -> None:
        self._opening = None
        self.journaled += opened.pending
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
        self.log.failure("journal {path} unreadable", failure, path=self.journal.path)
