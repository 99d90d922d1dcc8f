"""The store: records readings and weighings in SQLite or MySQL/MariaDB, off the reactor thread.

A hub subscriber. Readings chosen by the record policy queue in memory and are written in
batches (one `executemany` interaction each) at least every second. While the database is
unreachable they stay queued, up to `max_pending` in memory and the rest in the spill journal,
and are written in order, once each, when it is back; a clean stop writes or journals them all.
Queries for the HTTP API return Deferreds of JSON-ready dicts.

adbapi retries nothing by itself: every interaction is sent once more after a lost connection
(the pools reconnect), which is harmless because readings are unique on (scale, run, seq) and
weighings on a uid the store gives them before the first try.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from twisted.application.service import Service
from twisted.enterprise import adbapi
from twisted.internet.defer import Deferred, DeferredLock, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from balanca.reading import Reading
from balanca.store.backlog import Backlog
from balanca.store.journal import Journal
from balanca.store.schema import (
    DIALECTS,
    READING_COLUMNS,
    WEIGHING_COLUMNS,
    Row,
    connection_pool,
    encode_reading,
    encode_weighing,
    ensure_database,
    lost_connection,
    migrate,
    reading_dict,
    utc_text,
    weighing_dict,
)

if TYPE_CHECKING:
    from balanca.config import DatabaseSpec

RECORD_POLICIES = ("stable", "all", "none")
FLUSH_INTERVAL = 1.0
"""Seconds between writes of the queued readings."""
PING_INTERVAL = 10.0
"""Seconds without a write after which the store checks that the database still answers."""


class DatabaseUnavailable(Exception):
    """The database cannot be reached now (the HTTP layer answers 503)."""


class Store(Service):
    """Records the hub's readings and serves stored readings and weighings."""

    log = Logger()

    def __init__(
        self,
        spec: DatabaseSpec,
        reactor: Any,
        *,
        record: str = "stable",
        scale: str = "default",
        run: str | None = None,
        journal_path: str | None = None,
        max_pending: int = 10000,
        clock: IReactorTime | None = None,
    ) -> None:
        """`reactor` runs the database threads; `clock` (default: `reactor`) times the writes.

        `run` names this start of the service (default: UTC time and a random suffix).
        """
        if record not in RECORD_POLICIES:
            raise ValueError(f"record must be one of {', '.join(RECORD_POLICIES)}, not {record!r}")
        self.spec = spec
        self.dialect = DIALECTS[spec.dialect]
        self.record = record
        self.scale = scale
        self._reactor = reactor
        self._clock: IReactorTime = clock or reactor
        self.run = run or new_run(self._clock.seconds())
        self._queue = Backlog(
            Journal(journal_path or default_journal_path(spec), reactor), max_pending
        )
        # Counters, read by the metrics collector at scrape time (and `backlog`, `rows_failed`).
        self.rows_written = 0
        self.rows_refused = 0
        self.batches = 0
        self.failures = 0
        self.last_batch_seconds: float | None = None
        self.last_error: str | None = "not connected yet"
        self._reachable: bool | None = None
        self._last_contact = self._clock.seconds()
        self._schema_ready = False
        self._pool: adbapi.ConnectionPool | None = None
        self._writing = DeferredLock()
        self._last_stable: tuple[Decimal | None, str, str, Decimal | None] | None = None
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self._clock
        d = self.dialect
        self._insert_reading = d.sql(_insert("readings", READING_COLUMNS) + d.ignore_duplicates)
        self._insert_weighing = d.sql(_insert("weighings", WEIGHING_COLUMNS) + d.ignore_duplicates)
        self._weighing_fields = "id, " + ", ".join(WEIGHING_COLUMNS[1:])

    @property
    def backlog(self) -> int:
        """Readings waiting to be written, in memory and in the journal."""
        return len(self._queue)

    @property
    def rows_failed(self) -> int:
        """Readings that will never be written: refused by the columns, or lost by the journal."""
        return self.rows_refused + self._queue.lost

    @property
    def state(self) -> Literal["ok", "degraded"]:
        """`ok` while the database answered the last attempt, else `degraded`."""
        return "ok" if self._reachable else "degraded"

    def health(self) -> dict[str, Any]:
        """The store's state for `/api/health`."""
        return {
            "db": self.state,
            "database": self.spec.describe(),
            "backlog": self.backlog,
            "journal": self._queue.journaled,
            "last_error": self.last_error,
            "last_batch_seconds": self.last_batch_seconds,
            "rows_written": self.rows_written,
            "rows_failed": self.rows_failed,
            "batches": self.batches,
            "failures": self.failures,
        }

    def startService(self) -> None:
        """Open the database, apply migrations and start writing (all in the background)."""
        super().startService()
        self.log.info(
            "recording {record} readings of scale {scale} to {database} (run {run})",
            record=self.record, scale=self.scale, database=self.spec.describe(), run=self.run,
        )  # fmt: skip
        self._pool = connection_pool(self.spec, self._reactor)
        self._queue.open()
        self._loop.start(FLUSH_INTERVAL, now=True)

    def stopService(self) -> Deferred[None]:
        """Write everything pending, or keep it in the journal if the database is down.

        Readings that arrive from now on are not recorded. Fires when that is done and the
        pools are closed.
        """
        if self._pool is None:
            return succeed(None)
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        return Deferred.fromCoroutine(self._stop())

    def reading(self, reading: Reading, payload: bytes) -> None:
        """Hub subscriber: queue `reading` if the record policy wants it."""
        if not self.running or reading.scale != self.scale or not self._wanted(reading):
            return
        try:
            row = encode_reading(reading, self.run)
        except ValueError as error:
            self.rows_refused += 1
            self.log.warn("reading {seq} not recorded: {error}", seq=reading.seq, error=error)
            return
        self._queue.add(row)

    def status(self, payload: bytes) -> None:
        """Hub subscriber: the scale's state is not recorded."""

    def flush(self) -> Deferred[None]:
        """Write everything queued now; fails with DatabaseUnavailable if the database fails."""
        return Deferred.fromCoroutine(self._flush())

    def add_weighing(
        self, reading: Reading, reference: str | None, note: str | None
    ) -> Deferred[dict[str, Any]]:
        """Store a weighing of `reading` (which must have a weight); fires with the stored row."""
        return Deferred.fromCoroutine(self._add_weighing(reading, reference, note))

    def weighings(self, limit: int, before: int | None = None) -> Deferred[list[dict[str, Any]]]:
        """Stored weighings, newest first: up to `limit` with an id below `before`."""
        where, params = "scale = ?", list[object]([self.scale])
        if before is not None:
            where, params = where + " AND id < ?", [*params, before]
        sql = (
            f"SELECT {self._weighing_fields} FROM weighings WHERE {where} ORDER BY id DESC LIMIT ?"
        )
        return Deferred.fromCoroutine(self._select(sql, [*params, limit], weighing_dict))

    def readings(
        self, since: datetime | None = None, until: datetime | None = None, limit: int = 100
    ) -> Deferred[list[dict[str, Any]]]:
        """Stored readings, newest first: up to `limit` with since <= time < until.

        `since` and `until` are aware datetimes or None (no bound); a naive one raises
        ValueError at once.
        """
        where, params = ["scale = ?"], list[object]([self.scale])
        for bound, clause in ((since, "time >= ?"), (until, "time < ?")):
            if bound is not None:
                where.append(clause)
                params.append(utc_text(bound))
        sql = (
            f"SELECT id, {', '.join(READING_COLUMNS)} FROM readings WHERE {' AND '.join(where)}"
            " ORDER BY time DESC, id DESC LIMIT ?"
        )
        return Deferred.fromCoroutine(self._select(sql, [*params, limit], reading_dict))

    def _wanted(self, reading: Reading) -> bool:
        # `stable`: a stable weight once, again after motion or another status came in between.
        if self.record != "stable":
            return self.record == "all"
        if not (reading.stable and reading.status == "ok" and reading.weight is not None):
            self._last_stable = None
            return False
        key = (reading.weight, reading.unit, reading.mode, reading.tare)
        if key == self._last_stable:
            return False
        self._last_stable = key
        return True

    def _tick(self) -> None:
        self._queue.save()
        if not self._writing.locked:
            self._writing.run(self._drain)

    async def _drain(self) -> bool:
        """Write the backlog, oldest first, until it is empty; False if the database failed."""
        try:
            if not self._schema_ready:
                await self._prepare()
            wrote = False
            while await self._queue.write_oldest(self._write):
                wrote = True
            if not wrote and self._clock.seconds() - self._last_contact >= PING_INTERVAL:
                await self._interact(_fetch, "SELECT 1", ())
        except Exception as error:  # whatever failed, the rows stay queued
            self._degraded(error)
            return False
        return True

    async def _prepare(self) -> None:
        if self._pool is None:
            raise DatabaseUnavailable("the store is not running")
        await deferToThreadPool(self._reactor, self._pool.threadpool, ensure_database, self.spec)
        applied = await self._interact(migrate, self.dialect)
        self._schema_ready = True
        self.log.info(
            "database {database} ready{applied}",
            database=self.spec.describe(),
            applied=f", applied {', '.join(applied)}" if applied else "",
        )

    async def _write(self, rows: list[Row]) -> None:
        started = self._clock.seconds()
        try:
            await self._interact(_insert_many, self._insert_reading, rows)
        except Exception:
            self.failures += 1
            raise
        self.last_batch_seconds = self._clock.seconds() - started
        self.batches += 1
        self.rows_written += len(rows)

    async def _interact(self, interaction: Callable[..., Any], *args: Any) -> Any:
        """Run `interaction` in a pool thread, once more if the connection was lost."""
        if self._pool is None:
            raise DatabaseUnavailable("the store is not running")
        try:
            result = await self._pool.runInteraction(interaction, *args)
        except Exception as error:
            if not lost_connection(error, self._pool.dbapi):
                raise
            if self._reachable:
                self.log.info("database connection lost ({error}), trying again", error=error)
            try:
                result = await self._pool.runInteraction(interaction, *args)
            except Exception as again:
                if not lost_connection(again, self._pool.dbapi):
                    raise
                self._degraded(again)
                raise DatabaseUnavailable(self.last_error) from again
        self._healthy()
        return result

    async def _select(
        self, sql: str, params: list[Any], shape: Callable[[Row], dict[str, Any]]
    ) -> list[dict[str, Any]]:
        if not self._schema_ready:
            raise DatabaseUnavailable(self.last_error)
        rows = await self._interact(_fetch, self.dialect.sql(sql), tuple(params))
        return [shape(row) for row in rows]

    async def _add_weighing(
        self, reading: Reading, reference: str | None, note: str | None
    ) -> dict[str, Any]:
        if not self._schema_ready:
            raise DatabaseUnavailable(self.last_error)
        row = encode_weighing(uuid.uuid4().hex, reading, self.run, reference, note)
        select = self.dialect.sql(f"SELECT {self._weighing_fields} FROM weighings WHERE uid = ?")
        stored = await self._interact(_insert_and_fetch, self._insert_weighing, row, select)
        return weighing_dict(stored)

    async def _flush(self) -> None:
        await self._queue.save()
        if not await self._writing.run(self._drain):
            raise DatabaseUnavailable(self.last_error)

    async def _stop(self) -> None:
        try:
            await self._flush()
        except DatabaseUnavailable:
            await self._queue.keep()
            if self.backlog:
                self.log.warn(
                    "database {database} unavailable at stop: {count} readings kept in {path}"
                    " for the next start",
                    database=self.spec.describe(), count=self.backlog, path=self._queue.journal.path,
                )  # fmt: skip
        finally:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
            self._queue.close()
            self._schema_ready = False

    def _degraded(self, error: BaseException) -> None:
        self.last_error = f"{type(error).__name__}: {error}"
        if self._reachable is not False:
            self.log.warn(
                "database {database} unavailable: {error} ({backlog} readings waiting)",
                database=self.spec.describe(), error=self.last_error, backlog=self.backlog,
            )  # fmt: skip
        self._reachable = False

    def _healthy(self) -> None:
        self._last_contact = self._clock.seconds()
        if self._reachable is False:
            self.log.info(
                "database {database} is back ({backlog} readings to write)",
                database=self.spec.describe(), backlog=self.backlog,
            )  # fmt: skip
        self._reachable = True
        self.last_error = None


def new_run(seconds: float) -> str:
    """A name for one start of the service: its UTC time and a random suffix."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def default_journal_path(spec: DatabaseSpec) -> str:
    """Next to a SQLite database (`NAME-journal.sqlite3`), else in the working directory."""
    if spec.dialect == "sqlite":
        return os.path.splitext(spec.path)[0] + "-journal.sqlite3"
    return "balanca-journal.sqlite3"


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _insert_many(txn: Any, sql: str, rows: list[Row]) -> None:
    txn.executemany(sql, rows)


def _fetch(txn: Any, sql: str, params: tuple[Any, ...]) -> list[Row]:
    txn.execute(sql, params)
    return list(txn.fetchall())


def _insert_and_fetch(txn: Any, insert: str, row: Row, select: str) -> Row:
    txn.execute(insert, row)
    txn.execute(select, (row[0],))
    return tuple(txn.fetchone())
