"""The database side of the store: dialects, numbered migrations, and values to columns and back.

Weights are stored as an exact decimal plus the number of decimals the scale gave, so "12.340"
comes back as "12.340" although a DECIMAL(18,6) column holds 12.340000 (SQLite keeps the text:
it has no DECIMAL, and a NUMERIC column would turn it into a float). Times are stored as UTC text
`YYYY-MM-DD HH:MM:SS.ffffff` (DATETIME(6) on MySQL; it sorts, so ranges use an index) plus the
offset in seconds, so they come back as the same ISO 8601 string with the same offset.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from twisted.enterprise import adbapi

from balanca.reading import Reading, decimal_text, isotime

if TYPE_CHECKING:
    from balanca.store.spec import DatabaseSpec

MIGRATIONS = Path(__file__).parent / "migrations"
MAX_DECIMALS = 6
MAX_INTEGER_DIGITS = 12
"""DECIMAL(18,6): weights up to 999999999999.999999 with up to 6 decimals fit exactly."""
TEXT_LIMITS = {"scale": 64, "run": 40, "unit": 16}
"""Longest values the MySQL VARCHAR columns take; longer ones are refused before any write."""

READING_COLUMNS = (
    "scale", "run", "seq", "time", "utc_offset", "source", "weight", "weight_decimals",
    "unit", "stable", "mode", "tare", "tare_decimals", "status",
)  # fmt: skip
WEIGHING_COLUMNS = (
    "uid", "scale", "run", "seq", "time", "utc_offset", "weight", "weight_decimals",
    "unit", "mode", "tare", "tare_decimals", "reference", "note",
)  # fmt: skip
Row = tuple[Any, ...]
"""Values in the order of READING_COLUMNS (or WEIGHING_COLUMNS): str, int or None only."""


@dataclass(frozen=True)
class Dialect:
    """What differs between the SQL the store sends to SQLite and to MySQL/MariaDB."""

    name: Literal["sqlite", "mysql"]
    marker: str
    """The parameter placeholder."""
    ignore_duplicates: str
    """The clause that makes an insert that hits a unique key do nothing (and nothing else)."""

    def sql(self, text: str) -> str:
        """`text`, written with `?` placeholders, in this dialect's paramstyle."""
        return text.replace("?", self.marker)

    def insert(self, table: str, columns: tuple[str, ...]) -> str:
        """An insert of one row of `columns` that does nothing when the row is there already."""
        values = ", ".join("?" * len(columns))
        text = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values})"
        return self.sql(text + self.ignore_duplicates)


DIALECTS = {
    "sqlite": Dialect("sqlite", "?", " ON CONFLICT DO NOTHING"),
    "mysql": Dialect("mysql", "%s", " ON DUPLICATE KEY UPDATE seq = seq"),
}

LOST_CONNECTION_CODES = frozenset({2003, 2006, 2013})
"""MySQL client errors: can't connect, server has gone away, lost connection during query."""
REFUSED_CODES = frozenset({3819, 4025})
"""MySQL and MariaDB CHECK constraint failures (PyMySQL raises them as OperationalError)."""


def lost_connection(error: BaseException, dbapi: Any) -> bool:
    """Whether `error` means the connection is gone, so the same work may be sent again."""
    if isinstance(error, adbapi.ConnectionLost):
        return True
    code = error.args[0] if error.args else None
    if isinstance(error, dbapi.OperationalError):
        return code in LOST_CONNECTION_CODES
    # PyMySQL raises InterfaceError(0, "") for a connection it has already seen close.
    return isinstance(error, dbapi.InterfaceError) and code == 0


def refused(error: BaseException, dbapi: Any) -> bool:
    """Whether the database refused a row itself (a constraint, a value the column cannot
    hold), so that the same row would fail again, while other rows may go in."""
    if isinstance(error, dbapi.IntegrityError | dbapi.DataError):
        return True
    code = error.args[0] if error.args else None
    return isinstance(error, dbapi.OperationalError) and code in REFUSED_CODES


def identity(spec: DatabaseSpec) -> str:
    """What names one database, whatever the user or password: a journal belongs to it."""
    if spec.dialect == "sqlite":
        return f"sqlite:{os.path.abspath(spec.path)}"
    return f"mysql://{spec.host}:{spec.port}/{spec.database}"


def migrations(dialect: str) -> list[tuple[int, str, list[str]]]:
    """The numbered migrations for `dialect`: (number, file name, statements), in order.

    Statements end with `;` at the end of a line.
    """
    found = []
    for path in sorted((MIGRATIONS / dialect).glob("[0-9][0-9][0-9]_*.sql")):
        text = path.read_text(encoding="utf-8")
        statements = [s.strip() for s in re.split(r";\s*$", text, flags=re.MULTILINE) if s.strip()]
        found.append((int(path.name[:3]), path.name, statements))
    return found


def migrate(txn: Any, dialect: Dialect) -> list[str]:
    """Apply the migrations not yet recorded in `schema_version` (in a pool thread).

    Returns the names of those applied now. On SQLite they run in one explicit transaction,
    DDL included, so a failure leaves nothing half-done. MySQL commits every DDL statement by
    itself, so its migrations are written to be run again (`CREATE TABLE IF NOT EXISTS`,
    guarded ALTERs): one cut half-way is finished by the next try.
    """
    if dialect.name == "sqlite":
        txn.execute("BEGIN")  # Python's sqlite3 would run the DDL outside any transaction
    txn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL PRIMARY KEY,"
        " name VARCHAR(255) NOT NULL, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)"
    )
    txn.execute("SELECT version FROM schema_version")
    done = {row[0] for row in txn.fetchall()}
    applied = []
    for version, name, statements in migrations(dialect.name):
        if version in done:
            continue
        for statement in statements:
            txn.execute(statement)
        txn.execute(
            dialect.sql("INSERT INTO schema_version (version, name) VALUES (?, ?)"), (version, name)
        )
        applied.append(name)
    return applied


def encode_reading(reading: Reading, run: str) -> Row:
    """The row for `reading` in READING_COLUMNS order; ValueError if a column cannot hold it."""
    return (
        _text("scale", reading.scale),
        _text("run", run),
        reading.seq,
        *encode_time(reading.time),
        reading.source,
        *encode_decimal(reading.weight),
        _text("unit", reading.unit),
        int(reading.stable),
        reading.mode,
        *encode_decimal(reading.tare),
        reading.status,
    )


def decode_reading(row: Row) -> Reading:
    """The reading stored as `row` (READING_COLUMNS order)."""
    scale, _, seq, time, offset, source, weight, wd, unit, stable, mode, tare, td, status = row
    return Reading(
        scale=scale,
        seq=seq,
        time=decode_time(time, offset),
        source=source,
        weight=decode_decimal(weight, wd),
        unit=unit,
        stable=bool(stable),
        mode=mode,
        tare=decode_decimal(tare, td),
        status=status,
    )


def encode_time(moment: datetime) -> tuple[str, int]:
    """An aware datetime as (UTC text that sorts, offset in seconds east of UTC)."""
    return utc_text(moment), int(_offset(moment).total_seconds())


def utc_text(moment: datetime) -> str:
    """An aware datetime as the UTC text the time columns hold."""
    _offset(moment)  # refuse a naive time: astimezone() would take it as local time
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def decode_time(value: datetime | str, offset: int) -> datetime:
    """The aware datetime for a stored UTC time (a datetime from MySQL, text from SQLite)."""
    utc = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return utc.replace(tzinfo=UTC).astimezone(timezone(timedelta(seconds=offset)))


def encode_decimal(value: Decimal | None) -> tuple[str | None, int | None]:
    """An exact decimal as (its text, its number of decimals); ValueError if it does not fit."""
    if value is None:
        return None, None
    if not value.is_finite():
        raise ValueError(f"weight {value} is not a number")
    exponent = int(value.as_tuple().exponent)
    decimals = max(0, -exponent)
    if decimals > MAX_DECIMALS or value.adjusted() >= MAX_INTEGER_DIGITS:
        raise ValueError(f"weight {value} does not fit DECIMAL(18,6)")
    # Negative zero would come back from MySQL unsigned, so both dialects store it unsigned.
    return format(value.copy_abs() if value.is_zero() else value, "f"), decimals


def decode_decimal(value: Decimal | str | None, decimals: int | None) -> Decimal | None:
    """The exact decimal stored as `value` with `decimals` decimals."""
    if value is None or decimals is None:
        return None
    return Decimal(value).quantize(Decimal(1).scaleb(-decimals))


def _offset(moment: datetime) -> timedelta:
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError(f"time {moment!r} has no UTC offset")
    return offset


def _text(column: str, value: str) -> str:
    if len(value) > TEXT_LIMITS[column]:
        raise ValueError(f"{column} {value!r} is longer than {TEXT_LIMITS[column]} characters")
    return value


def reading_dict(row: Row) -> dict[str, Any]:
    """A stored reading (`id` then READING_COLUMNS) as JSON: the reading shape plus id and run."""
    return {"id": row[0], **decode_reading(row[1:]).to_dict(), "run": row[2]}


def weighing_dict(row: Row) -> dict[str, Any]:
    """A stored weighing (`id` then WEIGHING_COLUMNS without uid) as JSON, weights as text."""
    id_, scale, run, seq, time, offset, weight, wd, unit, mode, tare, td, reference, note = row
    return {
        "id": id_,
        "scale": scale,
        "run": run,
        "seq": seq,
        "time": isotime(decode_time(time, offset)),
        "weight": decimal_text(decode_decimal(weight, wd)),
        "unit": unit,
        "mode": mode,
        "tare": decimal_text(decode_decimal(tare, td)),
        "reference": reference,
        "note": note,
    }
