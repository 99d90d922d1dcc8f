"""`--keep-readings DAYS`: a scale's readings older than that are deleted every few minutes,
PRUNE_BATCH rows a statement (short locks on a busy table), each in a pool thread."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from balanca.store.schema import Dialect, utc_text

PRUNE_INTERVAL = 300.0
"""Seconds between prunes."""
PRUNE_BATCH = 1000
"""Readings deleted per statement."""


class Pruner:
    """Deletes one scale's readings older than `keep_days`, through `interact` (the store's
    way to run an interaction in a pool thread), once `ready()` says the schema is there."""

    log = Logger()

    def __init__(
        self,
        dialect: Dialect,
        scale: str,
        keep_days: float,
        clock: IReactorTime,
        interact: Callable[..., Awaitable[Any]],
        ready: Callable[[], bool],
    ) -> None:
        self.scale, self.keep_days, self.clock = scale, keep_days, clock
        self.interact, self.ready = interact, ready
        self.pruned = 0
        """Readings deleted since the start."""
        self._busy = False
        self._loop = LoopingCall(self._due)
        self._loop.clock = clock
        self._delete = dialect.sql(
            "DELETE FROM readings WHERE id IN (SELECT id FROM readings WHERE scale = ? AND"
            " time < ? ORDER BY time LIMIT ?)"
            if dialect.name == "sqlite"  # no DELETE ... LIMIT in most builds
            else "DELETE FROM readings WHERE scale = ? AND time < ? ORDER BY time LIMIT ?"
        )

    def start(self) -> None:
        """Prune every PRUNE_INTERVAL seconds from now on."""
        self._loop.start(PRUNE_INTERVAL, now=False)

    def stop(self) -> None:
        """No more prunes."""
        if self._loop.running:
            self._loop.stop()

    async def prune(self) -> int:
        """Delete what is too old now, batch after batch; returns how many went."""
        cutoff = datetime.fromtimestamp(self.clock.seconds() - self.keep_days * 86400, tz=UTC)
        params = (self.scale, utc_text(cutoff), PRUNE_BATCH)
        total = 0
        while (count := await self.interact(_delete, self._delete, params)) > 0:
            total += count
            if count < PRUNE_BATCH:
                break
        self.pruned += total
        if total:
            self.log.info(
                "pruned {count} readings older than {days:g} days", count=total, days=self.keep_days
            )
        return total

    def _due(self) -> None:
        if self._busy or not self.ready():
            return
        self._busy = True

        def done(result: object) -> None:
            self._busy = False

        Deferred.fromCoroutine(self.prune()).addErrback(
            lambda failure: self.log.warn("pruning failed: {error}", error=failure.value)
        ).addBoth(done)


def _delete(txn: Any, sql: str, params: tuple[Any, ...]) -> int:
    txn.execute(sql, params)
    return int(txn.rowcount)
