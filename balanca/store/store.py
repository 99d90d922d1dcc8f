"""The store: records readings in SQLite or MySQL/MariaDB, off the reactor thread, and runs the
record book's interactions on the same pools.

A hub subscriber. Readings chosen by the record policy go to the journal on disk every second
(backlog.py), and from there to the database in batches (one `executemany` interaction each),
in order, once each, however long it is away. A row the database refuses (a constraint, a
value it cannot store) is set aside in the journal's dead letters and the rest go on. A stop
puts what is pending on disk first, then gives the database STOP_WRITE_TIMEOUT seconds.
Queries for the HTTP API return Deferreds of JSON-ready dicts; another part's interaction
(`interact`: a sealed record) is answered within CAPTURE_TIMEOUT seconds whatever the database
does.

Calls to the database go through database.py (one retry after a lost connection, bounds).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, DeferredLock, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from balanca.reading import Reading
from balanca.store.backlog import Backlog
from balanca.store.condition import (
    Condition,
    DatabaseRefused,
    DatabaseUnavailable,
    describe,
)
from balanca.store.database import CLOSE_TIMEOUT, Database
from balanca.store.journal import LEGACY_JOURNAL, Journal, default_journal_path
from balanca.store.prune import Pruner
from balanca.store.schema import (
    DIALECTS,
    READING_COLUMNS,
    Row,
    encode_reading,
    identity,
    reading_dict,
    refused,
    utc_text,
)

if TYPE_CHECKING:
    from balanca.store.spec import DatabaseSpec

T = TypeVar("T")
RECORD_POLICIES = ("stable", "all", "none")
FLUSH_INTERVAL = 1.0
"""Seconds between saves of the new readings to the journal, each followed by a write."""
PING_INTERVAL = 5.0
"""Seconds without a write after which the store checks that the database still answers."""
CAPTURE_TIMEOUT = 4.5
"""Seconds a record waits for the database before it is answered 503 `db_unavailable`."""
STOP_WRITE_TIMEOUT = 3.0
"""Seconds a stop gives the database, once everything pending is on disk."""


class Store(Service):
    """Records the hubs' readings and serves stored readings."""

    log = Logger()

    def __init__(
        self,
        spec: DatabaseSpec,
        reactor: Any,
        *,
        record: str = "stable",
        scales: Sequence[str] = ("default",),
        run: str | None = None,
        journal_path: str | None = None,
        keep_days: float | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        """`reactor` runs the database threads; `clock` (default: `reactor`) times the writes.

        `scales` are the ids of the scales it records (one store serves them all);
        `run` names this start of the service (default: UTC time and a random suffix);
        `keep_days` prunes readings older than that many days (None keeps them all).
        """
        if record not in RECORD_POLICIES:
            raise ValueError(f"record must be one of {', '.join(RECORD_POLICIES)}, not {record!r}")
        self.spec = spec
        self.dialect = DIALECTS[spec.dialect]
        self.record = record
        self.scales = tuple(scales)
        self.keep_days = keep_days
        self._reactor = reactor
        self._clock: IReactorTime = clock or reactor
        self.run = run or new_run(self._clock.seconds())
        journal = Journal(journal_path or default_journal_path(spec), identity(spec), reactor)
        self._queue = Backlog(journal)
        # Counters, read by the metrics collector at scrape time (and `backlog`, `rows_failed`).
        self.rows_written = 0
        """Rows the database took (duplicates it ignored are not counted)."""
        self.rows_refused = 0
        self.batches = 0
        self.failures = 0
        self.last_batch_seconds: float | None = None
        self.db = Condition(self._clock, spec.describe(), lambda: len(self._queue))
        self._reasons_logged: set[str] = set()
        self.database = Database(spec, reactor, self._clock, self.db)
        self._writing = DeferredLock()
        self._last_stable: dict[str, tuple[Decimal | None, str, str, Decimal | None]] = {}
        """The `stable` policy's memory, per scale: the weight it recorded last."""
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self._clock
        d = self.dialect
        self._insert_reading = d.insert("readings", READING_COLUMNS)
        self.pruner = (
            None
            if keep_days is None
            else Pruner(
                d,
                self.scales,
                keep_days,
                self._clock,
                self.database.run,
                lambda: self.database.ready,
            )
        )

    @property
    def backlog(self) -> int:
        """Readings waiting to be written, in memory and in the journal."""
        return len(self._queue)

    @property
    def rows_failed(self) -> int:
        """Readings that will never be written: refused by the columns, or lost by the journal."""
        return self.rows_refused + self._queue.lost

    @property
    def dead_letters(self) -> int:
        """Rows the database refused, set aside in the journal for an operator."""
        return self._queue.dead

    @property
    def state(self) -> Literal["ok", "degraded"]:
        """`ok` while the database takes writes in time (see `condition`), else `degraded`."""
        return self.db.current()[0]

    @property
    def last_error(self) -> str | None:
        """The database's latest error, None once it answers again."""
        return self.db.last_error

    def condition(self) -> tuple[Literal["ok", "degraded"], str]:
        """The state and its code: `ok`, `db_unavailable`, `db_error` or `db_slow` (the oldest
        pending write has waited SLOW_AFTER seconds)."""
        return self.db.current()

    def health(self) -> dict[str, Any]:
        """The store's state for `/api/health` (`db` is the state, as in 0.1)."""
        state, code = self.db.current()
        return {
            "db": state,
            "state": state,
            "code": code,
            "oldest": self.db.oldest(),
            "database": self.spec.describe(),
            "backlog": self.backlog,
            "journal": self._queue.journaled,
            "dead_letters": self.dead_letters,
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
            "recording {record} readings of scales {scales} to {database} (run {run}),"
            " journal {journal}",
            record=self.record, scales=", ".join(self.scales), database=self.spec.describe(),
            run=self.run,
            journal=self._queue.journal.path,
        )  # fmt: skip
        if self.spec.dialect == "mysql" and os.path.exists(LEGACY_JOURNAL):
            self.log.warn(
                "{path} was left by balanca 0.1 for a database it did not record: it is not"
                " replayed into {database} (see the README, 'The journal')",
                path=LEGACY_JOURNAL, database=self.spec.describe(),
            )  # fmt: skip
        self.database.open()
        self._queue.open()
        self._loop.start(FLUSH_INTERVAL, now=True)
        if self.pruner is not None:
            self.pruner.start()

    def stopService(self) -> Deferred[None]:
        """Put everything pending on disk, then give the database a few seconds to take it.

        Readings that arrive from now on are not recorded. Fires within about
        STOP_WRITE_TIMEOUT + CLOSE_TIMEOUT seconds, whatever the database does.
        """
        if not self.running:
            return succeed(None)
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        if self.pruner is not None:
            self.pruner.stop()
        return Deferred.fromCoroutine(self._stop())

    def reading(self, reading: Reading, payload: bytes) -> None:
        """Hub subscriber: queue `reading` if the record policy wants it."""
        if not self.running or reading.scale not in self.scales or not self._wanted(reading):
            return
        try:
            row = encode_reading(reading, self.run)
        except ValueError as error:
            self.rows_refused += 1
            self.log.warn("reading {seq} not recorded: {error}", seq=reading.seq, error=error)
            return
        self.db.queued()
        self._queue.add(row)

    def status(self, payload: bytes) -> None:
        """Hub subscriber: the scale's state is not recorded."""

    def interact(self, interaction: Callable[..., T], *args: Any) -> Deferred[T]:
        """Run `interaction(txn, *args)` in a database thread for another part of the store
        (the record book), once the schema is ready; DatabaseUnavailable when it is not, or
        when the database does not answer within CAPTURE_TIMEOUT seconds."""

        async def bounded() -> T:
            if not self.database.ready:
                raise DatabaseUnavailable(self.last_error)
            done = Deferred.fromCoroutine(self.database.run(interaction, *args))
            return await self.database.bounded(done, CAPTURE_TIMEOUT, "answer")

        return Deferred.fromCoroutine(bounded())

    def flush(self) -> Deferred[None]:
        """Write everything queued now; fails with DatabaseUnavailable if the database fails."""
        return Deferred.fromCoroutine(self._flush())

    def readings(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        scale: str | None = None,
    ) -> Deferred[list[dict[str, Any]]]:
        """Stored readings, newest first: up to `limit` with since <= time < until, of `scale`
        (None: of every scale this store records).

        `since` and `until` are aware datetimes or None (no bound); a naive one raises
        ValueError at once.
        """
        clause, params = self._of_scales(scale)
        where = [clause]
        for bound, clause in ((since, "time >= ?"), (until, "time < ?")):
            if bound is not None:
                where.append(clause)
                params.append(utc_text(bound))
        sql = (
            f"SELECT id, {', '.join(READING_COLUMNS)} FROM readings WHERE {' AND '.join(where)}"
            " ORDER BY time DESC, id DESC LIMIT ?"
        )
        return Deferred.fromCoroutine(self._select(sql, [*params, limit], reading_dict))

    def _of_scales(self, scale: str | None) -> tuple[str, list[object]]:
        """The WHERE clause and parameters for rows of `scale`, or of all this store's scales."""
        scales = self.scales if scale is None else (scale,)
        return f"scale IN ({', '.join('?' * len(scales))})", list[object](scales)

    def prune(self) -> Deferred[int]:
        """Delete these scales' readings older than `keep_days` now; fires with how many went."""
        assert self.pruner is not None, "prune needs keep_days"
        return Deferred.fromCoroutine(self.pruner.prune())

    def _wanted(self, reading: Reading) -> bool:
        # `stable`: a stable weight once, again after motion or another status came in between.
        if self.record != "stable":
            return self.record == "all"
        if not (reading.stable and reading.status == "ok" and reading.weight is not None):
            self._last_stable.pop(reading.scale, None)
            return False
        key = (reading.weight, reading.unit, reading.mode, reading.tare)
        if key == self._last_stable.get(reading.scale):
            return False
        self._last_stable[reading.scale] = key
        return True

    def _tick(self) -> None:
        self._queue.save()
        if not self._writing.locked:
            self._writing.run(self._drain)
        self.db.log_change()

    async def _drain(self) -> bool:
        """Write the backlog, oldest first, until it is empty; False if the database failed."""
        try:
            if not self.database.ready:
                await self.database.prepare()
            wrote = False
            while await self._queue.write_oldest(self._write):
                wrote = True
                self.db.progressed()
            if not wrote and self._clock.seconds() - self.db.last_contact >= PING_INTERVAL:
                await self.database.run(_fetch, "SELECT 1", ())
        except CancelledError:
            raise
        except Exception as error:  # whatever failed, the rows stay queued
            self.db.failed(error)
            return False
        return True

    async def _write(self, rows: list[Row]) -> list[tuple[Row, str]]:
        """Write `rows`; a batch the database refuses goes row by row, and the rows it refuses
        come back with the reason, to be set aside."""
        started = self._clock.seconds()
        aside: list[tuple[Row, str]] = []
        try:
            try:
                inserted = await self.database.run(_insert_many, self._insert_reading, rows)
            except DatabaseRefused as error:
                cause = error.__cause__
                if cause is None or not refused(cause, self.database.dbapi):
                    raise
                inserted, aside = await self.database.run(
                    _insert_each, self._insert_reading, rows, self.database.dbapi
                )
        except Exception:
            self.failures += 1
            raise
        self.last_batch_seconds = self._clock.seconds() - started
        self.batches += 1
        self.rows_written += inserted
        for row, reason in aside:
            if reason not in self._reasons_logged:
                self._reasons_logged.add(reason)
                self.log.warn(
                    "database refused reading {seq} of run {run}: {reason}; set aside in the"
                    " journal's dead letters (python -m balanca.store.deadletters list)",
                    seq=row[2], run=row[1], reason=reason,
                )  # fmt: skip
        return aside

    async def _select(
        self, sql: str, params: list[Any], shape: Callable[[Row], dict[str, Any]]
    ) -> list[dict[str, Any]]:
        if not self.database.ready:
            raise DatabaseUnavailable(self.last_error)
        rows = await self.database.run(_fetch, self.dialect.sql(sql), tuple(params))
        return [shape(row) for row in rows]

    async def _flush(self) -> None:
        await self._queue.save()
        drained = await self._writing.run(self._drain)
        await self._queue.settled()
        if not drained:
            failed = (
                DatabaseRefused
                if self.db.current()[1] == DatabaseRefused.code
                else DatabaseUnavailable
            )
            raise failed(self.last_error)

    async def _stop(self) -> None:
        try:
            await self._queue.keep()
            try:
                await self.database.bounded(
                    self._writing.run(self._drain), STOP_WRITE_TIMEOUT, "take the backlog"
                )
            except DatabaseUnavailable as error:
                self.db.last_error = str(error)
            if self.backlog:
                self.log.warn(
                    "database {database} unavailable at stop ({error}): {count} readings kept in"
                    " {path} for the next start",
                    database=self.spec.describe(), error=self.last_error, count=self.backlog,
                    path=self._queue.journal.path,
                )  # fmt: skip
        finally:
            for closed in (self._queue.close(), self.database.close()):
                if closed is not None:
                    try:
                        await self.database.bounded(closed, CLOSE_TIMEOUT, "let go")
                    except DatabaseUnavailable:
                        self.log.info("database threads still busy at stop: not waiting for them")


def new_run(seconds: float) -> str:
    """A name for one start of the service: its UTC time and a random suffix."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def _insert_many(txn: Any, sql: str, rows: list[Row]) -> int:
    txn.executemany(sql, rows)
    return int(txn.rowcount)


def _insert_each(
    txn: Any, sql: str, rows: list[Row], dbapi: Any
) -> tuple[int, list[tuple[Row, str]]]:
    """Insert `rows` one by one, keeping aside those the database refuses."""
    inserted, aside = 0, []
    for row in rows:
        try:
            txn.execute(sql, row)
        except Exception as error:
            if not refused(error, dbapi):
                raise
            aside.append((row, describe(error)))
        else:
            inserted += int(txn.rowcount)
    return inserted, aside


def _fetch(txn: Any, sql: str, params: tuple[Any, ...]) -> list[Row]:
    txn.execute(sql, params)
    return list(txn.fetchall())
