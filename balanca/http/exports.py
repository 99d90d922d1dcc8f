"""CSV exports, streamed: `GET /api/weighings.csv` and `GET /api/transactions.csv`.

The listings' filters, newest first, the whole range unless `limit` says otherwise. The file
is written as it is read: a page of rows read from the database and turned into CSV bytes in
the export's own worker process (balanca.store.export's `Pages` and `Worker`, this module's
`Writer`), written to the client, then the next page only once the client has taken it. The stream is a push
producer registered on the request, so a client that reads slowly pauses the database reads
instead of filling the service's memory; one that stops reading for STALL seconds is cut.

    ?lang=pt-BR (default)   `;` between cells, decimal commas, a UTF-8 BOM (Excel in Brazil)
    ?lang=en                `,` and `.`

Every file: a header row in its language, CRLF line ends, times as the service's local
`YYYY-MM-DD HH:MM:SS`, weights with their sealed digits and no thousands separators, then a
last line per unit with the totals (`Total`, how many rows were added up, the unit, the sums
under their columns; one `Total` line with 0 when there were none, so a file always ends
with one and a cut-off download shows). A cell that would start with `=`, `+`, `-`, `@`, a
tab or a carriage return is written with a `'` before it, so a spreadsheet never reads a
plate or a note as a formula (OWASP, "CSV injection").
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request
from zope.interface import implementer

from balanca.http.api import Answer, Api, ApiError, Endpoint
from balanca.http.language import Lang, decimal_text, language, local_text, word
from balanca.http.records import listing_filters
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
    from balanca.config import DatabaseSpec

EXPORT_LIMITS = (EVERYTHING, EVERYTHING)
"""An export's `limit=`: every row unless it names fewer."""

T = TypeVar("T")
Kind = Literal["int", "text", "decimal", "time", "word", "bool"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
STALL = 60.0
"""Seconds a client may leave an export unread before it is cut."""
MAX_EXPORTS = 2
"""Exports of one kind under way at a time (each has a worker process)."""
DELIMITERS: dict[Lang, str] = {"pt-BR": ";", "en": ","}


@dataclass(frozen=True)
class Column:
    """A column: the key it shows, its header in each language and how its cells read."""

    key: str
    pt: str
    en: str
    kind: Kind = "text"

    def header(self, lang: Lang) -> str:
        return self.pt if lang == "pt-BR" else self.en


@dataclass(frozen=True)
class Sheet(Generic[T]):
    """What a CSV export writes for each row, and what it adds up."""

    name: str
    """The file name offered to the browser."""
    columns: tuple[Column, ...]
    values: Callable[[T], Mapping[str, Any]]
    """A row's cells by column key (raw values: decimal strings, ISO times, ...)."""
    counted: Callable[[T], bool]
    """Whether a row adds to the totals."""
    sums: tuple[str, ...]
    """The decimal columns the totals add up."""


def cell(value: Any, kind: Kind, lang: Lang) -> str:
    """One cell as written, safe to open in a spreadsheet."""
    if value is None or value == "":
        return ""
    if kind == "decimal":
        text = decimal_text(value, lang)
    elif kind == "time":
        text = local_text(value)
    elif kind == "word":
        text = word(value, lang)
    elif kind == "bool":
        text = word("yes" if value else "no", lang)
    else:
        text = str(value)
    return neutral(text)


def neutral(text: str) -> str:
    """`text`, with a `'` before it when a spreadsheet would read it as a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


@dataclass
class Totals:
    """Per unit: how many rows were added up, and the sums of the sheet's decimal columns."""

    sums: tuple[str, ...]
    units: dict[str, tuple[int, dict[str, Decimal]]] = field(default_factory=dict)

    def add(self, unit: str | None, count: int, values: Mapping[str, Any]) -> None:
        """Add `count` rows of `unit` whose sums are `values` (decimal strings or Decimals)."""
        had, sums = self.units.get(unit or "", (0, {}))
        for key in self.sums:
            if values.get(key) is not None:
                sums[key] = sums.get(key, Decimal(0)) + Decimal(values[key])
        self.units[unit or ""] = (had + count, sums)

    def merge(self, other: Totals) -> None:
        for unit, (count, sums) in other.units.items():
            self.add(unit, count, sums)

    def lines(self, columns: Sequence[Column], lang: Lang) -> list[list[str]]:
        """A line per unit (one line of 0 for none): `Total`, the count, the unit, the sums."""
        lines = []
        for unit, (count, sums) in sorted(self.units.items()) or [("", (0, {}))]:
            line = [""] * len(columns)
            line[0], line[1] = word("total", lang), str(count)
            for i, column in enumerate(columns):
                if column.key == "unit":
                    line[i] = neutral(unit)
                elif column.key in sums:
                    line[i] = decimal_text(sums[column.key], lang)
            lines.append(line)
        return lines


@dataclass(frozen=True)
class Chunk:
    """A page of an export as written: its bytes, how many rows, what they add up to."""

    data: bytes
    rows: int
    totals: Totals


@dataclass(frozen=True)
class Writer(Generic[T]):
    """Writes a sheet in a language: the header, pages of rows, the totals. Pure and made
    of module-level parts, so it crosses to the worker process that writes the pages."""

    sheet: Sheet[T]
    lang: Lang

    def header(self) -> bytes:
        bom = codecs.BOM_UTF8 if self.lang == "pt-BR" else b""
        return bom + self._csv([[neutral(c.header(self.lang)) for c in self.sheet.columns]])

    def page(self, rows: Sequence[T]) -> Chunk:
        sheet, lang, totals, lines = self.sheet, self.lang, Totals(self.sheet.sums), []
        for row in rows:
            values = sheet.values(row)
            if sheet.counted(row):
                totals.add(values["unit"], 1, values)
            lines.append([cell(values.get(c.key), c.kind, lang) for c in sheet.columns])
        return Chunk(self._csv(lines), len(rows), totals)

    def totals(self, totals: Totals) -> bytes:
        return self._csv(totals.lines(self.sheet.columns, self.lang))

    def _csv(self, lines: Iterable[Sequence[str]]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=DELIMITERS[self.lang], lineterminator="\r\n").writerows(lines)
        return buffer.getvalue().encode("utf-8")


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


def record_values(record: Record) -> Mapping[str, Any]:
    """A record's cells: its keys, the time of its reading (or of the record, for one made
    without a reading: a void, a typed-in tare)."""
    return {**record, "time": record["time"] or record["captured"]}


def record_counted(record: Record) -> bool:
    """A capture that stands (not voided) adds to the totals; voids and stored tares do not."""
    return record["kind"] in ("weighing", "in", "out") and record["voided_by"] is None


WEIGHINGS = Sheet[Record](
    name="weighings.csv",
    columns=(
        Column("number", "Número", "Number", "int"),
        Column("kind", "Tipo", "Kind", "word"),
        Column("time", "Data e hora", "Time", "time"),
        Column("scale", "Balança", "Scale"),
        Column("plate", "Placa", "Plate"),
        Column("product", "Produto", "Product"),
        Column("party", "Cliente/fornecedor", "Party"),
        Column("reference", "Referência", "Reference"),
        Column("weight", "Peso", "Weight", "decimal"),
        Column("unit", "Unidade", "Unit"),
        Column("mode", "Modo", "Mode", "word"),
        Column("tare", "Tara do indicador", "Indicator tare", "decimal"),
        Column("gross", "Bruto", "Gross", "decimal"),
        Column("net", "Líquido", "Net", "decimal"),
        Column("transaction", "Transação", "Transaction", "int"),
        Column("operator", "Operador", "Operator"),
        Column("voids", "Anula o nº", "Voids", "int"),
        Column("reason", "Motivo", "Reason"),
        Column("voided_by", "Anulado pelo nº", "Voided by", "int"),
        Column("note", "Observação", "Note"),
        Column("hash", "Hash", "Hash"),
    ),
    values=record_values,
    counted=record_counted,
    sums=("weight", "gross", "net"),
)


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
    return int(record["number"])


Transaction = dict[str, Any]


def transaction_values(transaction: Transaction) -> Mapping[str, Any]:
    """A transaction's cells: its own keys, and of each pass its time, scale, weight and
    record (a one-pass transaction has no entry), the stored tare's record, the operators."""
    values = dict(transaction)
    for name in ("in", "out"):
        record = transaction[name] or {}
        values[f"{name}_time"] = record.get("time")
        values[f"{name}_scale"] = record.get("scale")
        values[f"{name}_weight"] = record.get("weight")
        values[f"{name}_number"] = record.get("number")
    values["tare_record"] = (transaction["out"] or {}).get("tare_record")
    operators = (r["operator"] for r in (transaction["in"], transaction["out"]) if r)
    values["operator"] = ", ".join(dict.fromkeys(o for o in operators if o))
    return values


def transaction_counted(transaction: Transaction) -> bool:
    """A closed transaction adds to the totals (an open or a voided one does not)."""
    return bool(transaction["state"] == "closed")


def transaction_id(transaction: Transaction) -> int:
    return int(transaction["id"])


TRANSACTIONS = Sheet[Transaction](
    name="transactions.csv",
    columns=(
        Column("id", "Ticket", "Ticket", "int"),
        Column("state", "Situação", "State", "word"),
        Column("plate", "Placa", "Plate"),
        Column("product", "Produto", "Product"),
        Column("party", "Cliente/fornecedor", "Party"),
        Column("reference", "Referência", "Reference"),
        Column("in_time", "Entrada", "Entry time", "time"),
        Column("in_scale", "Balança de entrada", "Entry scale"),
        Column("in_weight", "Peso de entrada", "Entry weight", "decimal"),
        Column("out_time", "Saída", "Exit time", "time"),
        Column("out_scale", "Balança de saída", "Exit scale"),
        Column("out_weight", "Peso de saída", "Exit weight", "decimal"),
        Column("gross", "Bruto", "Gross", "decimal"),
        Column("tare", "Tara", "Tare", "decimal"),
        Column("net", "Líquido", "Net", "decimal"),
        Column("unit", "Unidade", "Unit"),
        Column("tare_source", "Origem da tara", "Tare source", "word"),
        Column("tare_mismatch", "Tara divergente", "Tare mismatch", "bool"),
        Column("in_number", "Registro de entrada", "Entry record", "int"),
        Column("out_number", "Registro de saída", "Exit record", "int"),
        Column("tare_record", "Registro da tara", "Tare record", "int"),
        Column("operator", "Operador", "Operator"),
        Column("note", "Observação", "Note"),
    ),
    values=transaction_values,
    counted=transaction_counted,
    sums=("gross", "tare", "net"),
)


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
