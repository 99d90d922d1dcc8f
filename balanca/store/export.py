"""Long listings read a batch at a time, for exports that must not hold them whole.

A listing is read newest first in pages keyed on its number (`number < the last one
written`, which the primary key answers at once however deep the page), each page one short
database interaction: a million records pass through in constant memory, and between pages
the database is free for captures (SQLite's pool has one connection). Records are never
updated, so pages read one after another neither skip nor repeat a record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Generic, TypeVar

from twisted.internet.defer import Deferred, succeed

from balanca.records.seal import Record
from balanca.records.transaction import Rules
from balanca.store import ledger, transactions
from balanca.store.schema import Dialect

T = TypeVar("T")
R = TypeVar("R")
BATCH = 500
"""Rows read from the database at a time."""
EVERYTHING = 2**62
"""An export's `limit` when none is asked for: the whole range."""

Interact = Callable[..., Deferred[Any]]
Page = Callable[[Any, int | None, int], Sequence[T]]
"""Runs in a database thread: (cursor, below this number or None, at most this many) → rows,
newest first."""


class Pages(Generic[T]):
    """The rows of a listing, a page at a time, newest first: `below` bounds the first page
    (a listing's `before`), `limit` all of them together."""

    def __init__(
        self,
        interact: Interact,
        page: Page[T],
        number: Callable[[T], int],
        below: int | None = None,
        limit: int = EVERYTHING,
        batch: int = BATCH,
    ) -> None:
        self.interact, self.page, self.number, self.batch = interact, page, number, batch
        self.below, self.left = below, limit
        self.done = limit <= 0

    def next(self, then: Callable[[Sequence[T]], R]) -> Deferred[R]:
        """`then` of the next page (of none, once the listing is through). `then` runs in the
        database thread right after the page is read, so that what it makes of the rows (an
        export's bytes) costs the reactor nothing; one page is asked for at a time."""
        if self.done:
            return succeed(then(()))
        size = min(self.batch, self.left)
        return self.interact(self._read, self.below, size, then)

    def _read(self, txn: Any, below: int | None, size: int, then: Callable[[Sequence[T]], R]) -> R:
        rows = self.page(txn, below, size)
        self.left -= len(rows)
        self.done = len(rows) < size or self.left <= 0
        if rows:
            self.below = self.number(rows[-1])
        return then(rows)


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
    filters: transactions.Filters,
) -> list[dict[str, Any]]:
    """A page of transactions matching `filters` (their `before` replaced by `below`), as
    the API shows them; a `Page` once the keywords are bound."""
    return transactions.listing(txn, dialect, rules, replace(filters, before=below, limit=size))
