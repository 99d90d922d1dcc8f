"""The `transactions` index and the reads of truck weighing: a listing, one transaction, a
vehicle and its stored tare (DESIGN.md, "Truck weighing").

The index (plate, state, the numbers of its records, times) is written in the same database
transaction as the records it indexes (balanca.store.transactions); `rebuild` makes it again
from the records alone, and the service does so at start when it disagrees with them (`sync`).
Every figure a read answers comes from the records themselves
(`balanca.records.transaction.view`). Functions run inside a database interaction (`txn` a
cursor in a pool thread).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from balanca.reading import isotime
from balanca.records.seal import Record
from balanca.records.transaction import Rules, expiry, passes, state, view
from balanca.store import ledger
from balanca.store.schema import Dialect, utc_text

NEWEST = 2**62
"""A record number above any: "every record so far"."""


BATCH = 1000
"""Transactions read together while rebuilding the index."""


INDEX_COLUMNS = (
    "id", "plate", "state", "open_plate", "in_number", "out_number", "compared_tare",
    "opened_utc", "closed_utc", "last_number",
)  # fmt: skip


INSERT_INDEX = (
    f"INSERT INTO transactions ({', '.join(INDEX_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(INDEX_COLUMNS))})"
)


@dataclass(frozen=True)
class Filters:
    """What a listing of transactions asks for (every field optional); newest first.
    `since_utc` and `until_utc` bound when a transaction was opened; `before` is an id."""

    state: str | None = None
    plate: str | None = None
    since_utc: str | None = None
    until_utc: str | None = None
    before: int | None = None
    limit: int = 50


# Reads.


def get(txn: Any, dialect: Dialect, rules: Rules, transaction_id: int) -> dict[str, Any] | None:
    """Transaction `transaction_id` as the API shows it, or None."""
    found = views(txn, dialect, rules, [transaction_id])
    return found[0] if found else None


def views(txn: Any, dialect: Dialect, rules: Rules, ids: Sequence[int]) -> list[dict[str, Any]]:
    """The transactions `ids` (those that exist, in that order) as the API shows them."""
    if not ids:
        return []
    grouped = grouped_records(txn, dialect, "r.transaction_id", ids)
    marks = ", ".join("?" * len(ids))
    txn.execute(
        dialect.sql(f"SELECT id, compared_tare FROM transactions WHERE id IN ({marks})"),
        tuple(ids),
    )
    compared_of = {int(i): int(n) for i, n in txn.fetchall() if n is not None}
    found = grouped_records(txn, dialect, "r.number", sorted(set(compared_of.values())))
    tares = {number: records[0] for number, records in found.items()}
    return [
        view(i, grouped[i], tares.get(compared_of.get(i, 0)), rules) for i in ids if i in grouped
    ]


def listing(txn: Any, dialect: Dialect, rules: Rules, filters: Filters) -> list[dict[str, Any]]:
    """Transactions matching `filters`, newest first."""
    clauses, params = [], list[Any]()
    for column, value, op in (
        ("state", filters.state, "="),
        ("plate", filters.plate, "="),
        ("opened_utc", filters.since_utc, ">="),
        ("opened_utc", filters.until_utc, "<"),
        ("id", filters.before, "<"),
    ):
        if value is not None:
            clauses.append(f"{column} {op} ?")
            params.append(value)
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    txn.execute(
        dialect.sql(f"SELECT id FROM transactions{where} ORDER BY id DESC LIMIT ?"),
        (*params, filters.limit),
    )
    return views(txn, dialect, rules, [int(row[0]) for row in txn.fetchall()])


def stored_tare(
    txn: Any, dialect: Dialect, plate: str, before: int, now: datetime, rules: Rules
) -> Record | None:
    """The stored tare of `plate` in force at `now` as the records numbered below `before`
    tell it: the newest of its `tare` records not voided by then, unless it has expired."""
    txn.execute(
        dialect.sql(
            ledger.SELECT + " WHERE r.plate = ? AND r.kind = 'tare' AND r.number < ? AND NOT"
            " EXISTS (SELECT 1 FROM records v WHERE v.voids = r.number AND v.number < ?)"
            " ORDER BY r.number DESC LIMIT 1"
        ),
        (plate, before, before),
    )
    row = txn.fetchone()
    tare = None if row is None else ledger.decode(row)
    return tare if tare is not None and now < expiry(tare, rules) else None


def vehicle(txn: Any, dialect: Dialect, rules: Rules, plate: str, now: datetime) -> dict[str, Any]:
    """A vehicle: its stored tare in force (and when it expires), its open transaction, and
    its ten latest transactions."""
    tare = stored_tare(txn, dialect, plate, NEWEST, now, rules)
    txn.execute(dialect.sql("SELECT id FROM transactions WHERE open_plate = ?"), (plate,))
    row = txn.fetchone()
    return {
        "plate": plate,
        "tare": tare,
        "expires": None if tare is None else isotime(expiry(tare, rules)),
        "open": None if row is None else int(row[0]),
        "transactions": listing(txn, dialect, rules, Filters(plate=plate, limit=10)),
    }


# The index.


def rebuild(txn: Any, dialect: Dialect, rules: Rules) -> int:
    """Empty the `transactions` index and make it again from the records alone; returns how
    many transactions it holds."""
    txn.execute("DELETE FROM transactions")
    txn.execute("SELECT MAX(transaction_id) FROM records")
    newest, count = int(txn.fetchone()[0] or 0), 0
    txn.execute("SELECT DISTINCT plate FROM records WHERE kind = 'tare'")
    with_tares = {row[0] for row in txn.fetchall()}
    for low in range(0, newest, BATCH):
        txn.execute(
            dialect.sql(
                ledger.SELECT
                + " WHERE r.transaction_id > ? AND r.transaction_id <= ? ORDER BY r.number"
            ),
            (low, low + BATCH),
        )
        grouped: dict[int, list[Record]] = {}
        for record in map(ledger.decode, txn.fetchall()):
            grouped.setdefault(record["transaction"], []).append(record)
        rows = []
        for transaction_id, records in sorted(grouped.items()):
            first, last = passes(records)
            compared = None
            if first is not None and last is not None and last["plate"] in with_tares:
                closed = datetime.fromisoformat(last["captured"])  # a two-pass close
                compared = stored_tare(txn, dialect, last["plate"], last["number"], closed, rules)
            rows.append(index_row(transaction_id, records, compared))
        txn.executemany(dialect.sql(INSERT_INDEX), rows)
        count += len(rows)
    return count


def agrees(txn: Any) -> bool:
    """The index covers every transaction of the records, up to their newest record."""
    txn.execute(
        "SELECT MAX(number), COUNT(DISTINCT transaction_id) FROM records"
        " WHERE transaction_id IS NOT NULL"
    )
    newest, count = txn.fetchone()
    txn.execute("SELECT MAX(last_number), COUNT(*) FROM transactions")
    indexed, indexed_count = txn.fetchone()
    return (int(newest or 0), int(count)) == (int(indexed or 0), int(indexed_count))


def sync(txn: Any, dialect: Dialect, rules: Rules) -> int | None:
    """Rebuild the index when it disagrees with the records: how many it now holds, or None
    when it agreed."""
    return None if agrees(txn) else rebuild(txn, dialect, rules)


def write_index(
    txn: Any,
    dialect: Dialect,
    transaction_id: int,
    records: Sequence[Record],
    compared: Mapping[str, Any] | None,
) -> None:
    """Write the index row of a transaction from its records."""
    txn.execute(dialect.sql("DELETE FROM transactions WHERE id = ?"), (transaction_id,))
    txn.execute(dialect.sql(INSERT_INDEX), index_row(transaction_id, records, compared))


def index_row(
    transaction_id: int, records: Sequence[Record], compared: Mapping[str, Any] | None
) -> tuple[Any, ...]:
    """The index row of a transaction (INDEX_COLUMNS), from its records."""
    first, last = passes(records)
    head = first or last
    assert head is not None
    now = state(records)
    return (
        transaction_id,
        head["plate"],
        now,
        head["plate"] if now == "open" else None,
        None if first is None else first["number"],
        None if last is None else last["number"],
        None if compared is None else compared["number"],
        captured_utc(head),
        None if last is None else captured_utc(last),
        max(r["number"] for r in records),
    )


def grouped_records(
    txn: Any, dialect: Dialect, column: str, values: Sequence[int]
) -> dict[int, list[Record]]:
    """Records whose `column` is one of `values`, grouped by it, in number order."""
    if not values:
        return {}
    key = "transaction" if column == "r.transaction_id" else "number"
    marks = ", ".join("?" * len(values))
    txn.execute(
        dialect.sql(f"{ledger.SELECT} WHERE {column} IN ({marks}) ORDER BY r.number"),
        tuple(values),
    )
    grouped: dict[int, list[Record]] = {}
    for record in map(ledger.decode, txn.fetchall()):
        grouped.setdefault(record[key], []).append(record)
    return grouped


def captured_utc(record: Mapping[str, Any]) -> str:
    """When `record` was captured, as the index and the ranges store it (UTC text)."""
    return utc_text(datetime.fromisoformat(record["captured"]))
