"""The store's database as every part of the store uses it: one connection pool, each call
sent once more after a lost connection, every wait bounded, and the database's condition kept.

adbapi retries nothing by itself; sending an interaction again after a lost connection (the
pool reconnects) is harmless because readings are unique on (scale, run, seq) and a record's
capture carries a uid it is found by (ledger.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.enterprise import adbapi
from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from balanca.store.condition import Condition, DatabaseUnavailable, refusal
from balanca.store.pool import close_in_background, connection_pool, ensure_database
from balanca.store.schema import DIALECTS, lost_connection, migrate

if TYPE_CHECKING:
    from balanca.store.spec import DatabaseSpec

T = TypeVar("T")
CLOSE_TIMEOUT = 1.0
"""Seconds a close waits for the pool's threads to let go (they never hold the exit)."""


class Database:
    """A database the store opens, migrates, calls and closes; `condition` says how it does."""

    log = Logger()

    def __init__(
        self, spec: DatabaseSpec, reactor: Any, clock: IReactorTime, condition: Condition
    ) -> None:
        """`reactor` runs the pool's threads; `clock` times the bounds."""
        self.spec = spec
        self.dialect = DIALECTS[spec.dialect]
        self.condition = condition
        self.ready = False
        """The schema is migrated and the pool open: interactions may run."""
        self._reactor, self._clock = reactor, clock
        self._pool: adbapi.ConnectionPool | None = None

    @property
    def dbapi(self) -> Any:
        """The driver's module (its error classes tell a refusal from a lost connection)."""
        if self._pool is None:
            raise DatabaseUnavailable("the store is not running")
        return self._pool.dbapi

    def open(self) -> None:
        """Make the pool; nothing connects until the first call."""
        self._pool = connection_pool(self.spec, self._reactor)

    async def prepare(self) -> None:
        """Create the database when missing and apply its migrations (logged)."""
        if self._pool is None:
            raise DatabaseUnavailable("the store is not running")
        await deferToThreadPool(self._reactor, self._pool.threadpool, ensure_database, self.spec)
        applied = await self.run(migrate, self.dialect)
        self.ready = True
        self.log.info(
            "database {database} ready{applied}",
            database=self.spec.describe(),
            applied=f", applied {', '.join(applied)}" if applied else "",
        )

    async def run(self, interaction: Callable[..., T], *args: Any) -> T:
        """Run `interaction(txn, *args)` in a pool thread, once more if the connection was
        lost; a database error comes back as DatabaseRefused, a lost link as
        DatabaseUnavailable."""
        pool = self._pool
        if pool is None:
            raise DatabaseUnavailable("the store is not running")
        condition = self.condition
        token = condition.call_started()
        try:
            try:
                result: T = await pool.runInteraction(interaction, *args)
            except Exception as error:
                if not lost_connection(error, pool.dbapi):
                    raise refusal(error, pool.dbapi) from error
                if condition.reachable:
                    self.log.info("database connection lost ({error}), trying again", error=error)
                try:
                    result = await pool.runInteraction(interaction, *args)
                except Exception as again:
                    if not lost_connection(again, pool.dbapi):
                        raise refusal(again, pool.dbapi) from again
                    condition.failed(again)
                    raise DatabaseUnavailable(condition.last_error) from again
        finally:
            condition.call_ended(token)
        condition.answered()
        return result

    async def bounded(self, deferred: Deferred[T], seconds: float, what: str) -> T:
        """`deferred`'s result, or DatabaseUnavailable once `seconds` have passed."""
        deferred.addTimeout(seconds, self._clock)
        try:
            return await deferred
        except TimeoutError:
            raise DatabaseUnavailable(f"the database did not {what} within {seconds:g} s") from None

    def close(self) -> Deferred[None] | None:
        """Close the pool in the background (None when it was not open); not ready from now."""
        pool, self._pool = self._pool, None
        self.ready = False
        return None if pool is None else close_in_background(pool, self._reactor)
