"""Truck weighing in the database: transactions and stored tares written as sealed records,
and the `transactions` index beside them (DESIGN.md, "Truck weighing").

Every figure is in the records (`balanca.records.transaction` reads a transaction from
them). A transaction's id is 1 + the highest `transaction` of any record, taken inside the
append's database transaction under the record book's one writer, so ids are derived from
the records too. The `transactions` table is an index (plate, state, the numbers of its
records, times) written in the same database transaction as the records it indexes;
`rebuild` makes it again from the records alone, and the service does so at start when it
disagrees with them (`sync`).

For the rest of the service (tickets, exports, fleet publishing):

    Transactions(book, rules)                     writes (coroutines) go through the record
                                                  book's one writer; `sync` runs at its start
      .open(reading, fields, one_pass, receipt)   -> transaction (the `in`, or one-pass `out`)
      .close(T, reading, fields, receipt)         -> transaction (the `out` record)
      .void(T, reason, operator, receipt)         -> transaction (a void record per record)
      .store_tare(plate, fields, weighing, receipt) -> the `tare` record
      .get(T)                                     -> Deferred[transaction | None]
      .listing(Filters)                           -> Deferred[list[transaction]], newest first
      .vehicle(plate)                             -> Deferred[vehicle]

    Interactions (`txn` a cursor in a database thread), for queries of one's own:
      views(txn, dialect, rules, ids)             transactions `ids` as the API shows them
      listing(txn, dialect, rules, filters)       ids from the index, then views
      stored_tare(txn, dialect, plate, before, now, rules)  the tare in force, or None
      rebuild(txn, dialect, rules) / sync(...)    the index from the records

A transaction is the JSON of `balanca.records.transaction.view`; refusals are RecordRefused
(status, code) raised inside the interaction, so nothing of a refused write is kept.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from balanca.reading import Reading, isotime, local_time
from balanca.records.guards import Refusal
from balanca.records.seal import Record
from balanca.records.transaction import Figures, Rules, expiry, figures, passes, state, view
from balanca.store import ledger
from balanca.store.idempotency import Receipt, keep_answer, receipt_cutoff
from balanca.store.recordbook import CAPTURE_KINDS, RecordBook, RecordRefused
from balanca.store.schema import Dialect, utc_text

NEWEST = 2**62
"""A record number above any: "every record so far"."""
BATCH = 1000
"""Transactions read together while rebuilding the index."""
READING_KEYS = (
    "scale", "run", "seq", "time", "weight", "unit", "decimals", "mode", "tare", "status",
    "source", "frame",
)  # fmt: skip
"""What a stored tare copies from the record whose weight it takes."""
PASS_KEYS = ("plate", "product", "party", "reference", "note")
"""What an `out` record copies from its transaction's `in` record."""
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


class Transactions:
    """Truck weighing on the record book: opens, closes, voids, stored tares, and reads.
    When the book starts, the index is brought in line with the records (`sync`)."""

    log = Logger()

    def __init__(self, book: RecordBook, rules: Rules) -> None:
        self.book, self.rules = book, rules
        book.at_start(self.sync)

    # Writes: each one database transaction, as the book's one writer.

    async def open(
        self,
        reading: Reading,
        fields: Mapping[str, Any],
        one_pass: bool = False,
        receipt: Receipt | None = None,
    ) -> dict[str, Any]:
        """Capture `reading` as the `in` record of a new transaction for `fields["plate"]`
        (or, `one_pass`, as its `out` record against the plate's stored tare)."""
        draft = self.book.capture_draft(reading, {**fields, "kind": "in"})
        answer: dict[str, Any] = await self._write(
            open_transaction, draft, one_pass, receipt=receipt
        )
        self.book.noted(reading.scale)
        return answer

    async def close(
        self,
        transaction_id: int,
        reading: Reading,
        fields: Mapping[str, Any],
        receipt: Receipt | None = None,
    ) -> dict[str, Any]:
        """Capture `reading` as the `out` record of transaction `transaction_id`."""
        draft = self.book.capture_draft(reading, {**fields, "kind": "out"})
        answer: dict[str, Any] = await self._write(
            close_transaction, transaction_id, draft, receipt=receipt
        )
        self.book.noted(reading.scale)
        return answer

    async def void(
        self,
        transaction_id: int,
        reason: str,
        operator: str | None,
        receipt: Receipt | None = None,
    ) -> dict[str, Any]:
        """Void every record of transaction `transaction_id`, in one database transaction."""
        draft = self.book.draft({"kind": "void", "reason": reason, "operator": operator})
        answer: dict[str, Any] = await self._write(
            void_transaction, transaction_id, draft, receipt=receipt
        )
        return answer

    async def store_tare(
        self,
        plate: str,
        fields: Mapping[str, Any],
        weighing: int | None,
        receipt: Receipt | None = None,
    ) -> Record:
        """Write a `tare` record for `plate`: the weight of record `weighing`, or (None) the
        typed-in `fields` (`weight`, `unit`, `decimals`, `reason`, `source: manual`)."""
        draft = self.book.draft({**fields, "kind": "tare", "plate": plate})
        signer, dialect = self.book.signer, self.book.dialect
        record: Record = await self.book.write(
            store_tare, dialect, signer, draft, weighing, uuid.uuid4().hex, receipt
        )
        return record

    # Reads.

    def get(self, transaction_id: int) -> Deferred[dict[str, Any] | None]:
        """Transaction `transaction_id` as the API shows it, or None."""
        return self.book.interact(get, self.book.dialect, self.rules, transaction_id)

    def listing(self, filters: Filters) -> Deferred[list[dict[str, Any]]]:
        """Transactions matching `filters`, newest first."""
        return self.book.interact(listing, self.book.dialect, self.rules, filters)

    def vehicle(self, plate: str) -> Deferred[dict[str, Any]]:
        """`GET /api/vehicles/PLATE`: its stored tare in force, open transaction and latest
        transactions."""
        now = local_time(self.book.clock.seconds())
        return self.book.interact(vehicle, self.book.dialect, self.rules, plate, now)

    async def sync(self) -> None:
        """Rebuild the index from the records if it disagrees with them (logged), as the
        book's one writer."""
        rebuilt = await self.book.write(sync, self.book.dialect, self.rules)
        if rebuilt is not None:
            self.log.info(
                "transactions: the index disagreed with the records; rebuilt it from them"
                " ({count} transactions)",
                count=rebuilt,
            )

    # Inside.

    async def _write(self, interaction: Any, *args: Any, receipt: Receipt | None) -> Any:
        """Run a write interaction (dialect, key, rules, `args`, a new uid, `receipt`)."""
        book = self.book
        uid = uuid.uuid4().hex
        return await book.write(
            interaction, book.dialect, book.signer, self.rules, *args, uid, receipt
        )


# Writes (interactions: one database transaction each, under the book's one writer).


def open_transaction(
    txn: Any,
    dialect: Dialect,
    key: Ed25519PrivateKey,
    rules: Rules,
    draft: Mapping[str, Any],
    one_pass: bool,
    uid: str,
    receipt: Receipt | None,
) -> dict[str, Any]:
    """Write the first record of a new transaction: the `in` record, or with `one_pass` an
    `out` record against the plate's stored tare. 409 `transaction_open` while the plate has
    one open, `no_stored_tare` (one pass) without a tare in force."""
    ledger.head(txn, dialect)  # locks the chain on MySQL first: what follows sees every append
    if (done := _done(txn, dialect, rules, uid)) is not None:
        return done
    plate, now = draft["plate"], datetime.fromisoformat(draft["captured"])
    txn.execute(dialect.sql("SELECT id FROM transactions WHERE open_plate = ?"), (plate,))
    if (row := txn.fetchone()) is not None:
        raise RecordRefused(
            409, "transaction_open", "transaction open", f"{plate} has transaction {row[0]} open"
        )
    txn.execute("SELECT MAX(transaction_id) FROM records")
    record = {**draft, "transaction": int(txn.fetchone()[0] or 0) + 1}
    if one_pass:
        tare = stored_tare(txn, dialect, plate, NEWEST, now, rules)
        if tare is None:
            raise RecordRefused(
                409, "no_stored_tare", "no stored tare", f"{plate} has no stored tare in force"
            )
        closing = _figures(record, tare, stored=True)
        record.update(kind="out", tare_record=tare["number"], **closing.sealed())
    return _written(txn, dialect, key, rules, [record], uid, receipt, None)


def close_transaction(
    txn: Any,
    dialect: Dialect,
    key: Ed25519PrivateKey,
    rules: Rules,
    transaction_id: int,
    draft: Mapping[str, Any],
    uid: str,
    receipt: Receipt | None,
) -> dict[str, Any]:
    """Write the `out` record of an open transaction: gross the larger weight, tare the
    smaller, net sealed in it. 404, 409 `transaction_closed`, `already_void`,
    `unit_mismatch`, `net_not_positive`."""
    ledger.head(txn, dialect)
    if (done := _done(txn, dialect, rules, uid)) is not None:
        return done
    records = _existing(txn, dialect, transaction_id)
    if (now := state(records)) != "open":
        code = "already_void" if now == "void" else "transaction_closed"
        raise RecordRefused(409, code, f"transaction {now}", f"transaction {transaction_id}")
    first = passes(records)[0]
    assert first is not None, "an open transaction has its in record"
    closing = _figures(draft, first)
    compared = stored_tare(
        txn, dialect, first["plate"], NEWEST, datetime.fromisoformat(draft["captured"]), rules
    )
    record = {
        **draft,
        **{k: first[k] for k in PASS_KEYS},
        "transaction": transaction_id,
        **closing.sealed(),
    }
    return _written(txn, dialect, key, rules, [record], uid, receipt, compared)


def void_transaction(
    txn: Any,
    dialect: Dialect,
    key: Ed25519PrivateKey,
    rules: Rules,
    transaction_id: int,
    draft: Mapping[str, Any],
    uid: str,
    receipt: Receipt | None,
) -> dict[str, Any]:
    """Write a void record for each record of a transaction. 404, 409 `already_void`."""
    ledger.head(txn, dialect)
    if (done := _done(txn, dialect, rules, uid)) is not None:
        return done
    records = _existing(txn, dialect, transaction_id)
    if state(records) == "void":
        raise RecordRefused(409, "already_void", "already void", f"transaction {transaction_id}")
    voids = [
        {**draft, "voids": r["number"], "transaction": transaction_id}
        for r in records
        if r["kind"] in ("in", "out")
    ]
    txn.execute(
        dialect.sql("SELECT compared_tare FROM transactions WHERE id = ?"), (transaction_id,)
    )
    row = txn.fetchone()
    compared = None if row is None or row[0] is None else ledger.get(txn, dialect, int(row[0]))
    return _written(txn, dialect, key, rules, voids, uid, receipt, compared)


def store_tare(
    txn: Any,
    dialect: Dialect,
    key: Ed25519PrivateKey,
    draft: Mapping[str, Any],
    weighing: int | None,
    uid: str,
    receipt: Receipt | None,
) -> Record:
    """Write a `tare` record: `draft` as it is (typed in), or with the reading's keys of
    record `weighing` (a capture of this plate or of none). 404, 409 `not_a_capture`,
    `already_void`, `plate_mismatch`."""
    record = dict(draft)
    if weighing is not None:
        source = ledger.get(txn, dialect, weighing)
        if source is None:
            raise RecordRefused(404, "not_found", "no such record", f"no record {weighing}")
        if source["kind"] not in CAPTURE_KINDS:
            raise RecordRefused(
                409, "not_a_capture", "not a capture", f"record {weighing} is a {source['kind']}"
            )
        if source["voided_by"] is not None:
            raise RecordRefused(409, "already_void", "record void", f"record {weighing}")
        if source["plate"] not in (None, draft["plate"]):
            raise RecordRefused(
                409, "plate_mismatch", "plate mismatch", f"record {weighing} is {source['plate']}"
            )
        record.update({k: source[k] for k in READING_KEYS})
    return ledger.append(txn, dialect, record, key, _utc(record), uid, receipt)


# Reads.


def get(txn: Any, dialect: Dialect, rules: Rules, transaction_id: int) -> dict[str, Any] | None:
    """Transaction `transaction_id` as the API shows it, or None."""
    found = views(txn, dialect, rules, [transaction_id])
    return found[0] if found else None


def views(txn: Any, dialect: Dialect, rules: Rules, ids: Sequence[int]) -> list[dict[str, Any]]:
    """The transactions `ids` (those that exist, in that order) as the API shows them."""
    if not ids:
        return []
    grouped = _records(txn, dialect, "r.transaction_id", ids)
    marks = ", ".join("?" * len(ids))
    txn.execute(
        dialect.sql(f"SELECT id, compared_tare FROM transactions WHERE id IN ({marks})"),
        tuple(ids),
    )
    compared_of = {int(i): int(n) for i, n in txn.fetchall() if n is not None}
    found = _records(txn, dialect, "r.number", sorted(set(compared_of.values())))
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
            rows.append(_index_row(transaction_id, records, compared))
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


# Inside.


def _done(txn: Any, dialect: Dialect, rules: Rules, uid: str) -> dict[str, Any] | None:
    """The transaction a write named `uid` already wrote (a retry after a lost connection
    whose first try committed), or None."""
    txn.execute(dialect.sql("SELECT number FROM record_captures WHERE uid = ?"), (uid,))
    if (row := txn.fetchone()) is None:
        return None
    record = ledger.get(txn, dialect, int(row[0]))
    assert record is not None and record["transaction"] is not None
    return get(txn, dialect, rules, record["transaction"])


def _existing(txn: Any, dialect: Dialect, transaction_id: int) -> list[Record]:
    records = _records(txn, dialect, "r.transaction_id", [transaction_id]).get(transaction_id)
    if not records:
        raise RecordRefused(
            404, "not_found", "no such transaction", f"no transaction {transaction_id}"
        )
    return records


def _records(
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


def _figures(draft: Mapping[str, Any], other: Mapping[str, Any], stored: bool = False) -> Figures:
    """The figures of a close of `draft` against `other` (the `in` record, or the stored
    tare); RecordRefused 409 when they cannot be."""
    found = figures(
        Decimal(draft["weight"]), draft["unit"], Decimal(other["weight"]), other["unit"], stored
    )
    if isinstance(found, Refusal):
        raise RecordRefused(409, found.code, found.error, found.detail)
    return found


def _written(
    txn: Any,
    dialect: Dialect,
    key: Ed25519PrivateKey,
    rules: Rules,
    drafts: Iterable[dict[str, Any]],
    uid: str,
    receipt: Receipt | None,
    compared: Record | None,
) -> dict[str, Any]:
    """Append `drafts` (records of one transaction), index the transaction, and keep the
    answer to `receipt` (201 and the transaction), all in this database transaction."""
    transaction_id, captured_utc = 0, ""
    for n, draft in enumerate(drafts):
        transaction_id, captured_utc = draft["transaction"], _utc(draft)
        name = uid if n == 0 else uuid.uuid5(uuid.UUID(uid), str(n)).hex
        ledger.append(txn, dialect, draft, key, captured_utc, name)
    records = _existing(txn, dialect, transaction_id)
    _index(txn, dialect, transaction_id, records, compared)
    answer = view(transaction_id, records, compared, rules)
    if receipt is not None:
        keep_answer(
            txn, dialect, receipt, (201, answer), captured_utc, receipt_cutoff(captured_utc)
        )
    return answer


def _index(
    txn: Any,
    dialect: Dialect,
    transaction_id: int,
    records: Sequence[Record],
    compared: Mapping[str, Any] | None,
) -> None:
    """Write the index row of a transaction from its records."""
    txn.execute(dialect.sql("DELETE FROM transactions WHERE id = ?"), (transaction_id,))
    txn.execute(dialect.sql(INSERT_INDEX), _index_row(transaction_id, records, compared))


def _index_row(
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
        _utc(head),
        None if last is None else _utc(last),
        max(r["number"] for r in records),
    )


def _utc(record: Mapping[str, Any]) -> str:
    return utc_text(datetime.fromisoformat(record["captured"]))
