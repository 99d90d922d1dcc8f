"""The CSV sheets exports write, pure: their columns, each cell as written, the totals, and
the `Writer` that turns pages of rows into bytes (in the export's worker process).

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
from typing import Any, Generic, Literal, TypeVar

from balanca.http.language import Lang, decimal_text, local_text, word
from balanca.records.seal import Record

T = TypeVar("T")
Kind = Literal["int", "text", "decimal", "time", "word", "bool"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
DELIMITERS: dict[Lang, str] = {"pt-BR": ";", "en": ","}


@dataclass(frozen=True)
class Column:
    """A column: the key it shows, its header in each language and how its cells read."""

    key: str
    pt: str
    en: str
    kind: Kind = "text"

    def header(self, lang: Lang) -> str:
        """The column's header in `lang`."""
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
        """Add up `other`'s counts and sums, unit by unit."""
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
        """The header row (after a UTF-8 BOM in pt-BR)."""
        bom = codecs.BOM_UTF8 if self.lang == "pt-BR" else b""
        return bom + self._csv([[neutral(c.header(self.lang)) for c in self.sheet.columns]])

    def page(self, rows: Sequence[T]) -> Chunk:
        """A page of rows as written, with what the counted ones add up to."""
        sheet, lang, totals, lines = self.sheet, self.lang, Totals(self.sheet.sums), []
        for row in rows:
            values = sheet.values(row)
            if sheet.counted(row):
                totals.add(values["unit"], 1, values)
            lines.append([cell(values.get(c.key), c.kind, lang) for c in sheet.columns])
        return Chunk(self._csv(lines), len(rows), totals)

    def totals(self, totals: Totals) -> bytes:
        """The last lines: the totals per unit."""
        return self._csv(totals.lines(self.sheet.columns, self.lang))

    def _csv(self, lines: Iterable[Sequence[str]]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=DELIMITERS[self.lang], lineterminator="\r\n").writerows(lines)
        return buffer.getvalue().encode("utf-8")


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
