"""The records table: append a sealed record, read records back exactly as sealed.

Functions that run inside a database interaction (a pool thread, `txn` a cursor). There is
no update and no delete here or anywhere: a record, once written, is only read. Numbering is
gapless because each append reads the chain's head and writes number + 1 in the same
transaction (the head row locked on MySQL; SQLite has one writer), and `number` is the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from balanca.records.seal import GENESIS, RECORD_KEYS, Record, seal
from balanca.store.idempotency import Receipt, keep_answer, receipt_cutoff
from balanca.store.schema import WEIGHING_COLUMNS, Dialect, utc_text, weighing_dict

STORED_KEYS = tuple(k for k in RECORD_KEYS if k != "voided_by")
SEAL_KEYS = ("prev", "hash", "signature")
COLUMNS = {key: ("transaction_id" if key == "transaction" else key) for key in STORED_KEYS}
"""Record key → column (`transaction` is a keyword in SQLite)."""
BOOLEAN_KEYS = frozenset({"again"})
SELECT = (
    "SELECT "
    + ", ".join(f"r.{c}" for c in COLUMNS.values())
    + ", (SELECT MIN(v.number) FROM records v WHERE v.voids = r.number) FROM records r"
)


@dataclass(frozen=True)
class Filters:
    """What a listing asks for (every field optional); newest first."""

    scale: str | None = None
    plate: str | None = None
    kind: str | None = None
    since_utc: str | None = None
    until_utc: str | None = None
    before: int | None = None
    limit: int = 100


def head(txn: Any, dialect: Dialect) -> tuple[int, str] | None:
    """The newest record's (number, hash), locked against a concurrent append on MySQL."""
    lock = " FOR UPDATE" if dialect.name == "mysql" else ""
    txn.execute("SELECT number, hash FROM records ORDER BY number DESC LIMIT 1" + lock)
    row = txn.fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def append(
    txn: Any,
    dialect: Dialect,
    draft: Mapping[str, Any],
    key: Ed25519PrivateKey,
    captured_utc: str,
    uid: str,
    receipt: Receipt | None = None,
) -> Record:
    """Number, seal and insert `draft` (every record key but number and the seal's).

    `uid` names this capture: sent again (a retry after a lost connection whose first try
    had committed), it returns the record already written instead of writing a second one.
    With a `receipt`, the answer to its Idempotency-Key (201 and the record) is kept in the
    same transaction.
    """
    txn.execute(dialect.sql("SELECT number FROM record_captures WHERE uid = ?"), (uid,))
    if (done := txn.fetchone()) is not None:
        written = get(txn, dialect, int(done[0]))
        assert written is not None, "record_captures names only written records"
        return written
    top = head(txn, dialect)
    number, prev = (1, GENESIS) if top is None else (top[0] + 1, top[1])
    record = seal({**draft, "number": number}, prev, key)
    columns = [*COLUMNS.values(), "captured_utc"]
    values = [_stored(k, record[k]) for k in COLUMNS] + [captured_utc]
    txn.execute(
        dialect.sql(
            f"INSERT INTO records ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        ),
        tuple(values),
    )
    txn.execute(
        dialect.sql("INSERT INTO record_captures (uid, number) VALUES (?, ?)"), (uid, number)
    )
    if receipt is not None:
        keep_answer(
            txn, dialect, receipt, (201, record), captured_utc, receipt_cutoff(captured_utc)
        )
    return record


def get(txn: Any, dialect: Dialect, number: int) -> Record | None:
    """Record `number` with its `voided_by`, or None."""
    txn.execute(dialect.sql(SELECT + " WHERE r.number = ?"), (number,))
    row = txn.fetchone()
    return None if row is None else decode(row)


def listing(txn: Any, dialect: Dialect, filters: Filters) -> list[Record]:
    """Records matching `filters`, newest first."""
    where, params = _where(filters)
    txn.execute(
        dialect.sql(f"{SELECT}{where} ORDER BY r.number DESC LIMIT ?"), (*params, filters.limit)
    )
    return [decode(row) for row in txn.fetchall()]


def batch(txn: Any, dialect: Dialect, after: int, limit: int) -> list[Record]:
    """Up to `limit` records numbered above `after`, in number order (for the chain check)."""
    columns = ", ".join(COLUMNS.values())
    txn.execute(
        dialect.sql(
            f"SELECT {columns}, NULL FROM records WHERE number > ? ORDER BY number LIMIT ?"
        ),
        (after, limit),
    )
    return [decode(row) for row in txn.fetchall()]


def extent(txn: Any) -> tuple[int, int]:
    """The newest record's number (0 for none) and how many records there are."""
    txn.execute("SELECT MAX(number), COUNT(*) FROM records")
    newest, count = txn.fetchone()
    return int(newest or 0), int(count)


def decode(row: Sequence[Any]) -> Record:
    """A row (COLUMNS then voided_by) as the record of DESIGN.md, types as sealed."""
    record: Record = {}
    for key, value in zip((*STORED_KEYS, "voided_by"), row, strict=True):
        if value is not None and key in BOOLEAN_KEYS:
            value = bool(value)
        elif isinstance(value, bytes | bytearray):
            value = value.decode("utf-8")
        record[key] = value
    return {k: record[k] for k in RECORD_KEYS}


def _stored(key: str, value: Any) -> Any:
    return int(value) if key in BOOLEAN_KEYS and value is not None else value


def _where(filters: Filters) -> tuple[str, list[Any]]:
    clauses, params = [], list[Any]()
    for column, value, op in (
        ("r.scale", filters.scale, "="),
        ("r.plate", filters.plate, "="),
        ("r.kind", filters.kind, "="),
        ("r.captured_utc", filters.since_utc, ">="),
        ("r.captured_utc", filters.until_utc, "<"),
        ("r.number", filters.before, "<"),
    ):
        if value is not None:
            clauses.append(f"{column} {op} ?")
            params.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def seal_legacy(txn: Any, dialect: Dialect, key: Ed25519PrivateKey) -> int:
    """Number and seal the weighings 0.1 wrote, in id order, once: at the first start of a
    database that has them and no records yet. Returns how many were sealed."""
    if head(txn, dialect) is not None:
        return 0
    fields = "id, " + ", ".join(WEIGHING_COLUMNS[1:])
    txn.execute(f"SELECT {fields} FROM weighings ORDER BY id")
    rows = list(txn.fetchall())
    for row in rows:
        old = weighing_dict(row)
        draft = dict.fromkeys(k for k in STORED_KEYS if k not in ("number", *SEAL_KEYS))
        draft.update(
            kind="weighing",
            scale=old["scale"],
            run=old["run"],
            seq=old["seq"],
            time=old["time"],
            captured=old["time"],
            weight=old["weight"],
            unit=old["unit"],
            decimals=_decimals(old["weight"]),
            mode=old["mode"],
            tare=old["tare"],
            status="ok",
            reference=old["reference"],
            note=old["note"],
            again=False,
        )
        captured_utc = utc_text(datetime.fromisoformat(old["time"]))
        append(txn, dialect, draft, key, captured_utc, f"0.1-weighing-{old['id']}")
    return len(rows)


def _decimals(text: str) -> int:
    return len(text.partition(".")[2])
