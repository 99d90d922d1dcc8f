"""CSV exports, streamed: `GET /api/weighings.csv` and `GET /api/transactions.csv`.

The listings' filters, newest first, the whole range unless `limit` says otherwise. The file
is written as it is read: a page of rows read from the database and turned into CSV bytes in
the export's own worker process (balanca.store.export's `Pages` and `Worker`, the sheet's
`Writer`: balanca.http.sheets says what a file holds), written to the client, then the next
page only once the client has taken it. The stream is a push producer registered on the
request, so a client that reads slowly pauses the database reads instead of filling the
service's memory; one that stops reading for STALL seconds is cut.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Generic, TypeVar

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request
from zope.interface import implementer

from balanca.http.api import Answer, Api, ApiError, Endpoint
from balanca.http.language import language
from balanca.http.records import listing_filters
from balanca.http.sheets import TRANSACTIONS, WEIGHINGS, Chunk, Sheet, Totals, Transaction, Writer
from balanca.http.transactions import transaction_filters
from balanca.records.seal import Record
from balanca.store.export import (
    EVERYTHING,
    Page,
    Pages,
    Worker,
    records_page,
    transactions_page,
)
from balanca.store.recordbook import RecordBook
from balanca.store.transactions import Transactions

if TYPE_CHECKING:
    from balanca.store.spec import DatabaseSpec

EXPORT_LIMITS = (EVERYTHING, EVERYTHING)
"""An export's `limit=`: every row unless it names fewer."""

T = TypeVar("T")
STALL = 60.0
"""Seconds a client may leave an export unread before it is cut."""
MAX_EXPORTS = 2
"""Exports of one kind under way at a time (each has a worker process)."""


def csv_headers(request: Request, name: str) -> None:
    """The headers of a CSV download named `name`."""
    request.setHeader(b"Content-Type", b"text/csv; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"Content-Disposition", f'attachment; filename="{name}"'.encode())


@implementer(IPushProducer)
class CsvStream(Generic[T]):
    """One export on its way to a client: reads a page while the client keeps up, pauses
    while it does not, and ends with the totals."""

    log = Logger()

    def __init__(
        self, request: Request, pages: Pages[T], writer: Writer[T], clock: IReactorTime
    ) -> None:
        self.request, self.pages, self.writer, self.clock = request, pages, writer, clock
        self.totals = Totals(writer.sheet.sums)
        self.rows = 0
        """Rows written so far."""
        self._paused = self._reading = self._stopped = False
        self._stall: IDelayedCall | None = None

    def start(self, first: Chunk) -> None:
        """Answer 200 with the header row and the first page, then stream the rest."""
        request = self.request
        csv_headers(request, self.writer.sheet.name)
        request.notifyFinish().addErrback(lambda _: self.stopProducing())
        request.registerProducer(self, True)
        self._write(first, self.writer.header())
        self._pump()

    @property
    def waiting(self) -> bool:
        """Paused by the client's full buffers, with no page being read."""
        return self._paused and not self._reading

    # IPushProducer: the request's transport says when the client keeps up.

    def pauseProducing(self) -> None:
        self._paused = True
        if self._stall is None:
            self._stall = self.clock.callLater(STALL, self._stalled)

    def resumeProducing(self) -> None:
        self._paused = False
        self._cancel_stall()
        self._pump()

    def stopProducing(self) -> None:
        self._stopped = True
        self._cancel_stall()

    # Inside.

    def _pump(self) -> None:
        if self._reading or self._paused or self._stopped:
            return
        if self.pages.done:
            self._finish()
            return
        self._reading = True
        self.pages.next(self.writer.page).addCallbacks(self._read, self._failed)

    def _read(self, chunk: Chunk) -> None:
        self._reading = False
        if not self._stopped:
            self._write(chunk)
            self._pump()

    def _write(self, chunk: Chunk, head: bytes = b"") -> None:
        self.totals.merge(chunk.totals)
        self.rows += chunk.rows
        if head or chunk.data:
            self.request.write(head + chunk.data)

    def _finish(self) -> None:
        self.request.write(self.writer.totals(self.totals))
        self._stopped = True
        self.request.unregisterProducer()
        self.request.finish()

    def _failed(self, failure: Failure) -> None:
        self._reading = False
        if self._stopped:
            return
        self.log.warn(
            "export {name}: cut after {rows} rows: {error}",
            name=self.writer.sheet.name, rows=self.rows, error=failure.getErrorMessage(),
        )  # fmt: skip
        self._abort()

    def _stalled(self) -> None:
        self._stall = None
        self.log.info(
            "export {name}: the client read nothing for {stall:g} s; cut after {rows} rows",
            name=self.writer.sheet.name, stall=STALL, rows=self.rows,
        )  # fmt: skip
        self._abort()

    def _abort(self) -> None:
        """End the response without its last chunk: the client sees a transfer cut short,
        never a file that looks whole."""
        self.stopProducing()
        self.request.unregisterProducer()
        self.request.channel.forceAbortClient()

    def _cancel_stall(self) -> None:
        if self._stall is not None and self._stall.active():
            self._stall.cancel()
        self._stall = None


class CsvEndpoint(Endpoint, Generic[T]):
    """An export: the listing's filters, then the file streamed page by page from a worker
    process of its own (at most MAX_EXPORTS at a time, each with its process)."""

    token_in_query = True

    def __init__(self, api: Api, sheet: Sheet[T], spec: DatabaseSpec) -> None:
        super().__init__(api)
        self.sheet, self.spec = sheet, spec
        self.workers = 0
        """Exports with a worker process (from their first page to their end)."""
        self.streams: set[CsvStream[T]] = set()
        """The exports under way."""

    def listing(self, request: Request) -> tuple[Page[T], Callable[[T], int], int | None, int]:
        """What the request asks for: its page, a row's number, the listing's `before` and
        `limit` (every row unless it names one; 400 when a filter is malformed)."""
        raise NotImplementedError

    def get(self, request: Request) -> Answer | defer.Deferred[Answer]:
        lang, (page, number, before, limit) = language(request), self.listing(request)
        if request.method == b"HEAD":
            csv_headers(request, self.sheet.name)
            request.write(b"")
            request.finish()
            return 200, b""
        if self.workers >= MAX_EXPORTS:
            raise ApiError(
                503, "exports busy", f"at most {MAX_EXPORTS} at a time: try again", "exports_busy"
            )
        worker = Worker(self.spec, lambda future: deferToThread(future.result))
        self.workers += 1
        writer = Writer(self.sheet, lang)
        stream = CsvStream(
            request, Pages(worker, page, number, before, limit), writer, self.api.clock
        )

        def done(_: object) -> None:
            """The answer is over (written, refused, or its client gone): the worker goes."""
            worker.close()
            self.workers -= 1
            self.streams.discard(stream)

        request.notifyFinish().addBoth(done)

        def started(first: Chunk) -> Answer:
            if not getattr(request, "_disconnected", False):
                self.streams.add(stream)
                stream.start(first)
            return 200, b""  # under way (or nobody to answer): `finish` leaves it be

        def failed(failure: Failure) -> Answer:
            if getattr(request, "_disconnected", False):
                return 200, b""  # the client left (and its worker with it): nothing to say
            failure.raiseException()

        return stream.pages.next(writer.page).addCallbacks(started).addErrback(failed)


class WeighingsCsv(CsvEndpoint[Record]):
    """`GET /api/weighings.csv`: the records `GET /api/weighings` lists, every one of them."""

    def __init__(self, api: Api, records: RecordBook) -> None:
        super().__init__(api, WEIGHINGS, records.spec)
        self.records = records

    def listing(
        self, request: Request
    ) -> tuple[Page[Record], Callable[[Record], int], int | None, int]:
        filters = listing_filters(request, self.api.scale_query(request), EXPORT_LIMITS)
        page: Page[Record] = partial(records_page, dialect=self.records.dialect, filters=filters)
        return page, record_number, filters.before, filters.limit


def record_number(record: Record) -> int:
    """A record's number, the key its listing is paged on."""
    return int(record["number"])


def transaction_id(transaction: Transaction) -> int:
    """A transaction's id, the key its listing is paged on."""
    return int(transaction["id"])


class TransactionsCsv(CsvEndpoint[Transaction]):
    """`GET /api/transactions.csv`: the transactions `GET /api/transactions` lists, every one
    of them; the totals add up the closed ones."""

    def __init__(self, api: Api, records: RecordBook, transactions: Transactions) -> None:
        super().__init__(api, TRANSACTIONS, records.spec)
        self.records, self.transactions = records, transactions

    def listing(
        self, request: Request
    ) -> tuple[Page[Transaction], Callable[[Transaction], int], int | None, int]:
        filters = transaction_filters(request, EXPORT_LIMITS)
        page: Page[Transaction] = partial(
            transactions_page,
            dialect=self.records.dialect,
            rules=self.transactions.rules,
            filters=filters,
        )
        return page, transaction_id, filters.before, filters.limit
