"""The spill journal: readings waiting for the database, kept in a local SQLite file.

While the database is unreachable the store keeps a bounded backlog in memory and puts the
rest here; what a clean stop could not write goes here too, and the next start writes it out.
Rows are kept in order by `ord`: appends go after the last row, and `prepend` puts the memory
backlog (older than anything in the journal) before the first. Each row is a JSON object keyed
by column name, so a journal written by an older version still reads after a migration.
The file is opened on first use, through a one-thread adbapi pool, off the reactor thread.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from twisted.enterprise import adbapi
from twisted.internet.defer import Deferred

from balanca.store.schema import READING_COLUMNS, Row

CREATE = "CREATE TABLE IF NOT EXISTS pending (ord INTEGER PRIMARY KEY, row TEXT NOT NULL)"


class Journal:
    """A local, ordered file of reading rows that could not be written yet."""

    def __init__(self, path: str, reactor: Any) -> None:
        self.path = path
        self._reactor = reactor
        self._pool: adbapi.ConnectionPool | None = None

    def exists(self) -> bool:
        """Whether a journal file is there (possibly left by an earlier run)."""
        return os.path.exists(self.path)

    def count(self) -> Deferred[int]:
        """How many rows are waiting."""
        return self._run(_count)

    def append(self, rows: Sequence[Row]) -> Deferred[None]:
        """Keep `rows` after everything already in the journal."""
        return self._run(_append, [_dump(row) for row in rows])

    def prepend(self, rows: Sequence[Row]) -> Deferred[None]:
        """Keep `rows` before everything already in the journal."""
        return self._run(_prepend, [_dump(row) for row in rows])

    def oldest(self, limit: int) -> Deferred[list[tuple[int, Row]]]:
        """Up to `limit` of the oldest rows, as (ord, row)."""
        return self._run(_oldest, limit)

    def discard(self, through: int) -> Deferred[None]:
        """Forget the rows up to and including `through` (they are in the database now)."""
        return self._run(_discard, through)

    def close(self) -> None:
        """Close the file (after the last operation has fired)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _run(self, interaction: Any, *args: Any) -> Deferred[Any]:
        if self._pool is None:
            self._pool = adbapi.ConnectionPool(
                "sqlite3",
                self.path,
                check_same_thread=False,
                cp_min=1,
                cp_max=1,
                cp_openfun=lambda conn: conn.execute(CREATE),
                cp_reactor=self._reactor,
            )
        deferred: Deferred[Any] = self._pool.runInteraction(interaction, *args)
        return deferred


def _dump(row: Row) -> str:
    return json.dumps(dict(zip(READING_COLUMNS, row, strict=True)), separators=(",", ":"))


def _load(text: str) -> Row:
    values = json.loads(text)
    return tuple(values.get(column) for column in READING_COLUMNS)


def _count(txn: Any) -> int:
    txn.execute("SELECT COUNT(*) FROM pending")
    return int(txn.fetchone()[0])


def _append(txn: Any, rows: list[str]) -> None:
    txn.executemany("INSERT INTO pending (row) VALUES (?)", [(row,) for row in rows])


def _prepend(txn: Any, rows: list[str]) -> None:
    txn.execute("SELECT COALESCE(MIN(ord), 1) FROM pending")
    first = int(txn.fetchone()[0]) - len(rows)
    txn.executemany(
        "INSERT INTO pending (ord, row) VALUES (?, ?)",
        [(first + i, row) for i, row in enumerate(rows)],
    )


def _oldest(txn: Any, limit: int) -> list[tuple[int, Row]]:
    txn.execute("SELECT ord, row FROM pending ORDER BY ord LIMIT ?", (limit,))
    return [(ord_, _load(row)) for ord_, row in txn.fetchall()]


def _discard(txn: Any, through: int) -> None:
    txn.execute("DELETE FROM pending WHERE ord <= ?", (through,))
