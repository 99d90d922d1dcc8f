"""Truck weighing in the database: transactions and stored tares written as sealed records
(DESIGN.md, "Truck weighing"); the index and the reads are in `transaction_index`.

Every figure is in the records (`balanca.records.transaction` reads a transaction from
them). A transaction's id is 1 + the highest `transaction` of any record, taken inside the
append's database transaction under the record book's one writer, so ids are derived from
the records too. Each write appends its records and the transaction's index row in one
database transaction.

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

A transaction is the JSON of `balanca.records.transaction.view`; refusals are RecordRefused
(status, code) raised inside the interaction, so nothing of a refused write is kept.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from balanca.reading import Reading, local_time
from balanca.records.guards import Refusal
from balanca.records.seal import Record
from balanca.records.transaction import Figures, Rules, figures, passes, state, view
from balanca.store import ledger
from balanca.store.idempotency import Receipt, keep_answer, receipt_cutoff
from balanca.store.recordbook import CAPTURE_KINDS, RecordBook, RecordRefused
from balanca.store.schema import Dialect
from balanca.store.transaction_index import (
    NEWEST,
    Filters,
    captured_utc,
    get,
    grouped_records,
    listing,
    stored_tare,
    sync,
    vehicle,
    write_index,
)

READING_KEYS = (
    "scale", "run", "seq", "time", "weight", "unit", "decimals", "mode", "tare", "status",
    "source", "frame",
)  # fmt: skip
"""What a stored tare copies from the record whose weight it takes."""
PASS_KEYS = ("plate", "product", "party", "reference", "note")
"""What an `out` record copies from its transaction's `in` record."""


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
    return ledger.append(txn, dialect, record, key, captured_utc(record), uid, receipt)


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
    records = grouped_records(txn, dialect, "r.transaction_id", [transaction_id]).get(
        transaction_id
    )
    if not records:
        raise RecordRefused(
            404, "not_found", "no such transaction", f"no transaction {transaction_id}"
        )
    return records


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
    transaction_id, when = 0, ""
    for n, draft in enumerate(drafts):
        transaction_id, when = draft["transaction"], captured_utc(draft)
        name = uid if n == 0 else uuid.uuid5(uuid.UUID(uid), str(n)).hex
        ledger.append(txn, dialect, draft, key, when, name)
    records = _existing(txn, dialect, transaction_id)
    write_index(txn, dialect, transaction_id, records, compared)
    answer = view(transaction_id, records, compared, rules)
    if receipt is not None:
        keep_answer(txn, dialect, receipt, (201, answer), when, receipt_cutoff(when))
    return answer
