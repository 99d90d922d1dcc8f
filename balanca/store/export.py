"""Long listings read a page at a time in a process of their own, for exports that must
hold them neither whole nor in the service's interpreter.

A listing is read newest first in pages keyed on its number (`number < the last one
written`, which the primary key answers at once however deep the page): a million records
pass through in the memory of one page. Each export has a worker process (`Worker`, at a
lower priority, like the chain check's) with its own database connection: it reads a page
and turns it into what the export writes (CSV bytes) there, so the reading and the writing,
some 50 µs of Python a row, neither hold the interpreter lock the reactor needs nor take the
store's connection from captures. One page is asked for at a time, and the next only when
the caller asks (an export: once its client has taken the last one). Records are never
updated, so pages read one after another neither skip nor repeat a record (on MariaDB the
worker's one read transaction is one snapshot of the whole export).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from twisted.internet.defer import Deferred, succeed

from balanca.records.seal import Record
from balanca.records.transaction import Rules
from balanca.store import ledger, transaction_index
from balanca.store.pool import connect
from balanca.store.schema import Dialect

if TYPE_CHECKING:
    from balanca.store.spec import DatabaseSpec

T = TypeVar("T")
R = TypeVar("R")
BATCH = 500
"""Rows read from the database at a time."""
EVERYTHING = 2**62
"""An export's `limit` when none is asked for: the whole range."""
NICE = 10
"""How much lower a worker's priority is than the service's."""

Page = Callable[[Any, int | None, int], Sequence[T]]
"""Runs in the worker: (cursor, below this number or None, at most this many) → rows, newest
first. It and what is done with its rows cross to the worker by pickling: module-level
functions, or partials of them over plain values."""


@dataclass(frozen=True)
class Read(Generic[R]):
    """What a worker answers for a page: what was made of its rows, how many there were, and
    the last one's number (None for none)."""

    value: R
    rows: int
    last: int | None


class Worker:
    """One export's process: pages read with its own connection, one at a time."""

    def __init__(self, spec: DatabaseSpec, wait: Callable[[Future[Any]], Awaitable[Any]]) -> None:
        """`wait` turns the process's future into something the caller can await (on a
        reactor: a Deferred fired from a thread)."""
        self.wait = wait
        self.pool = ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("spawn"),  # no fork of a threaded reactor
            initializer=_started,
            initargs=(spec,),
        )

    def run(self, function: Callable[..., R], *args: Any) -> Deferred[R]:
        """`function(cursor, *args)` in the worker."""
        return Deferred.fromCoroutine(self._run(function, *args))

    async def _run(self, function: Callable[..., R], *args: Any) -> R:
        result: R = await self.wait(self.pool.submit(_run, function, *args))
        return result

    def close(self) -> None:
        """Let the process go once its page (if any) is read; never blocks."""
        self.pool.shutdown(wait=False, cancel_futures=True)


class Pages(Generic[T]):
    """The rows of a listing, a page at a time, newest first: `below` bounds the first page
    (a listing's `before`), `limit` all of them together."""

    def __init__(
        self,
        worker: Worker,
        page: Page[T],
        number: Callable[[T], int],
        below: int | None = None,
        limit: int = EVERYTHING,
        batch: int = BATCH,
    ) -> None:
        self.worker, self.page, self.number, self.batch = worker, page, number, batch
        self.below, self.left = below, limit
        self.done = limit <= 0

    def next(self, then: Callable[[Sequence[T]], R]) -> Deferred[R]:
        """`then` of the next page (of none, once the listing is through), made in the
        worker right after the page is read: only what `then` makes of the rows (an export's
        bytes) comes back."""
        if self.done:
            return succeed(then(()))
        size = min(self.batch, self.left)
        read = self.worker.run(read_page, self.page, self.number, self.below, size, then)
        return read.addCallback(self._advance, size)

    def _advance(self, read: Read[R], size: int) -> R:
        self.left -= read.rows
        self.done = read.rows < size or self.left <= 0
        if read.last is not None:
            self.below = read.last
        return read.value


def read_page(
    txn: Any,
    page: Page[T],
    number: Callable[[T], int],
    below: int | None,
    size: int,
    then: Callable[[Sequence[T]], R],
) -> Read[R]:
    """Read a page and make `then` of it (in the worker)."""
    rows = page(txn, below, size)
    return Read(then(rows), len(rows), number(rows[-1]) if rows else None)


def records_page(
    txn: Any, below: int | None, size: int, *, dialect: Dialect, filters: ledger.Filters
) -> list[Record]:
    """A page of records matching `filters` (their `before` replaced by `below`); a `Page`
    once `dialect` and `filters` are bound."""
    return ledger.listing(txn, dialect, replace(filters, before=below, limit=size))


def transactions_page(
    txn: Any,
    below: int | None,
    size: int,
    *,
    dialect: Dialect,
    rules: Rules,
    filters: transaction_index.Filters,
) -> list[dict[str, Any]]:
    """A page of transactions matching `filters` (their `before` replaced by `below`), as
    the API shows them; a `Page` once the keywords are bound."""
    return transaction_index.listing(
        txn, dialect, rules, replace(filters, before=below, limit=size)
    )


# Inside the worker process.

_spec: DatabaseSpec | None = None
_connection: Any = None


def _started(spec: DatabaseSpec) -> None:
    global _spec
    os.nice(NICE)
    _spec = spec


def _run(function: Callable[..., R], *args: Any) -> R:
    """`function(cursor, *args)` on the worker's connection, opened at its first page."""
    global _connection
    if _connection is None:
        assert _spec is not None, "the worker was started with its database"
        _connection = connect(_spec)
    return function(_connection.cursor(), *args)
