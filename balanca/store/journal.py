"""The journal: a local SQLite file that holds every reading until the database has it.

Each second the store appends the readings that arrived (one transaction, fsync'd:
`synchronous=FULL`), and forgets them once the database has them, so a crash at any instant
loses at most the last second. Rows keep their order by `ord`. Each row is a JSON
object keyed by column name, so a journal written by an older version still reads after a
migration. Rows the database refused (a constraint, a value it cannot store) wait in
`dead_letters` with the reason, for an operator (`python -m balanca.store.deadletters`).

A journal belongs to one database: `meta` records its identity, and a journal found for
another one is moved aside, never replayed. The file is used through a one-thread adbapi
pool, off the reactor thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool

from balanca.store.pool import Pool, close_in_background
from balanca.store.schema import READING_COLUMNS, Row, identity

if TYPE_CHECKING:
    from balanca.store.spec import DatabaseSpec

TABLES = (
    "CREATE TABLE IF NOT EXISTS pending (ord INTEGER PRIMARY KEY, row TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dead_letters (id INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
    " row TEXT NOT NULL, reason TEXT NOT NULL, at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


LEGACY_JOURNAL = "balanca-journal.sqlite3"
"""Where 0.1 kept the journal of any MySQL database, in the working directory."""


def default_journal_path(spec: DatabaseSpec) -> str:
    """The journal of `spec`: next to a SQLite database (`NAME-journal.sqlite3`), else in the
    working directory, named after the MySQL database and a hash of its identity."""
    if spec.dialect == "sqlite":
        return os.path.splitext(spec.path)[0] + "-journal.sqlite3"
    digest = hashlib.sha256(identity(spec).encode()).hexdigest()[:10]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", spec.database)
    return f"balanca-journal-{name}-{digest}.sqlite3"


@dataclass(frozen=True)
class Opened:
    """What opening a journal found."""

    pending: int
    """Readings left by an earlier run, to write first."""
    next_ord: int
    """The `ord` of the next row appended."""
    dead: int
    """Rows set aside for an operator."""
    foreign: str | None = None
    """The identity of another database, when the file found was for that one."""
    moved_to: str | None = None
    """Where that foreign journal was moved."""


class Journal:
    """A local, ordered, fsync'd file of rows not in the database yet, for one database."""

    def __init__(self, path: str, identity: str, reactor: Any) -> None:
        self.path = path
        self.identity = identity
        self._reactor = reactor
        self._pool: Pool | None = None

    def open(self) -> Deferred[Opened]:
        """Check the file's database (moving a foreign one aside) and count what waits."""
        pool = self._reactor.getThreadPool()
        return deferToThreadPool(self._reactor, pool, open_file, self.path, self.identity)

    def append(self, entries: Sequence[tuple[int, Row]]) -> Deferred[None]:
        """Keep (ord, row) `entries`, numbered after everything already in the journal; on
        disk when this fires."""
        return self._run(_append, [(ord_, dump(row)) for ord_, row in entries])

    def oldest(self, limit: int) -> Deferred[list[tuple[int, Row]]]:
        """Up to `limit` of the oldest rows, as (ord, row)."""
        return self._run(_oldest, limit)

    def settle(self, through: int, dead: Sequence[tuple[Row, str]] = ()) -> Deferred[None]:
        """Forget the rows up to `through` (written), setting `dead` aside with their reasons."""
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        letters = [("reading", dump(row), reason, stamp) for row, reason in dead]
        return self._run(_settle, through, letters)

    def barrier(self) -> Deferred[None]:
        """Fires once every operation asked before it is done (they run in order)."""
        return self._run(lambda txn: None)

    def close(self) -> Deferred[None] | None:
        """Close the file (after the last operation has fired), off the reactor thread."""
        pool, self._pool = self._pool, None
        return None if pool is None else close_in_background(pool, self._reactor)

    def _run(self, interaction: Any, *args: Any) -> Deferred[Any]:
        if self._pool is None:
            self._pool = Pool(
                "sqlite3",
                self.path,
                check_same_thread=False,
                cp_min=1,
                cp_max=1,
                cp_openfun=setup,
                cp_reactor=self._reactor,
            )
        deferred: Deferred[Any] = self._pool.runInteraction(interaction, *args)
        return deferred


def setup(connection: sqlite3.Connection) -> None:
    """Make `connection` durable at each commit, and its tables exist."""
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    for statement in TABLES:
        connection.execute(statement)
    connection.commit()


def open_file(path: str, identity: str) -> Opened:
    """Open the journal at `path` for the database `identity` (blocking)."""
    found = _recorded_identity(path)
    moved_to = None
    if found is not None and found != identity:
        moved_to = f"{os.path.splitext(path)[0]}.foreign-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.replace(path + suffix, moved_to + suffix)
    connection = sqlite3.connect(path)
    try:
        setup(connection)
        connection.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('database', ?)", (identity,)
        )
        connection.commit()
        pending, last = connection.execute("SELECT COUNT(*), MAX(ord) FROM pending").fetchone()
        (dead,) = connection.execute("SELECT COUNT(*) FROM dead_letters").fetchone()
    finally:
        connection.close()
    return Opened(pending, (last or 0) + 1, dead, found if moved_to else None, moved_to)


def _recorded_identity(path: str) -> str | None:
    """The database a journal file says it serves; None when there is no file or no record."""
    if not os.path.exists(path):
        return None
    connection = sqlite3.connect(path)
    try:
        row = connection.execute("SELECT value FROM meta WHERE key = 'database'").fetchone()
    except sqlite3.OperationalError:  # no meta table: a journal from 0.1, kept as ours
        return None
    finally:
        connection.close()
    return None if row is None else str(row[0])


def dump(row: Row) -> str:
    """A row as the journal keeps it: JSON keyed by column name."""
    return json.dumps(dict(zip(READING_COLUMNS, row, strict=True)), separators=(",", ":"))


def load(text: str) -> Row:
    """A row the journal kept, in today's READING_COLUMNS order."""
    values = json.loads(text)
    return tuple(values.get(column) for column in READING_COLUMNS)


def _append(txn: Any, entries: list[tuple[int, str]]) -> None:
    txn.executemany("INSERT INTO pending (ord, row) VALUES (?, ?)", entries)


def _oldest(txn: Any, limit: int) -> list[tuple[int, Row]]:
    txn.execute("SELECT ord, row FROM pending ORDER BY ord LIMIT ?", (limit,))
    return [(ord_, load(row)) for ord_, row in txn.fetchall()]


def _settle(txn: Any, through: int, letters: list[tuple[str, str, str, str]]) -> None:
    txn.executemany("INSERT INTO dead_letters (kind, row, reason, at) VALUES (?, ?, ?, ?)", letters)
    txn.execute("DELETE FROM pending WHERE ord <= ?", (through,))
