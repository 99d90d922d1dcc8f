"""The outbox: sealed records (and transactions) waiting for the broker's acknowledgement.

Functions that run inside a database interaction (`txn` a cursor). A message is queued in the
same transaction that writes what it carries, so nothing sealed is written without being
queued, and it leaves the outbox only once the broker has acknowledged it (PUBACK): the table
holds exactly what is still to be delivered, oldest first by `id`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from balanca.reading import json_bytes
from balanca.store import ledger
from balanca.store.schema import Dialect, utc_text

T = TypeVar("T")


class Message(NamedTuple):
    """One queued message: its place in the queue, topic (below the site's), the number of
    the record or transaction it carries, and the payload (JSON text)."""

    id: int
    topic: str
    number: int
    payload: str


def enqueue(
    txn: Any, dialect: Dialect, topic: str, number: int, value: Any, queued_utc: str
) -> None:
    """Queue `value` as JSON for `topic` (`records`, `transactions`)."""
    txn.execute(
        dialect.sql("INSERT INTO outbox (topic, number, payload, queued_utc) VALUES (?, ?, ?, ?)"),
        (topic, number, json_bytes(value).decode("utf-8"), queued_utc),
    )


def pending(txn: Any, dialect: Dialect, after: int, limit: int) -> list[Message]:
    """Up to `limit` messages queued after `after`, oldest first."""
    txn.execute(
        dialect.sql(
            "SELECT id, topic, number, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?"
        ),
        (after, limit),
    )
    return [Message(int(i), str(t), int(n), _text(p)) for i, t, n, p in txn.fetchall()]


def delivered(txn: Any, dialect: Dialect, ids: Sequence[int]) -> None:
    """Remove the messages the broker has acknowledged."""
    marks = ", ".join("?" * len(ids))
    txn.execute(dialect.sql(f"DELETE FROM outbox WHERE id IN ({marks})"), tuple(ids))


def depth(txn: Any) -> tuple[int, str | None]:
    """How many messages wait, and the oldest one's queued time (UTC text), or None."""
    txn.execute("SELECT COUNT(*), MIN(queued_utc) FROM outbox")
    count, oldest = txn.fetchone()
    return int(count), None if oldest is None else str(oldest)


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes | bytearray) else value


class Queue:
    """What the record book queues for the broker: every record an interaction writes, and
    each transaction it closes or voids (as `transaction(txn, id)` shows it), all within the
    interaction's own database transaction, so nothing sealed is written without being
    queued, whoever appends (a capture, a void, a transaction's passes)."""

    def __init__(
        self, dialect: Dialect, transaction: Callable[[Any, int], Any] | None = None
    ) -> None:
        self.dialect, self.transaction = dialect, transaction

    def wrap(self, interaction: Callable[..., T]) -> Callable[..., T]:
        """`interaction` (one that appends records), queueing what it wrote."""

        def queued(txn: Any, *args: Any) -> T:
            top = ledger.head(txn, self.dialect)
            result = interaction(txn, *args)
            self._queue_after(txn, 0 if top is None else top[0])
            return result

        return queued

    def _queue_after(self, txn: Any, after: int) -> None:
        ended: dict[int, str] = {}
        while written := ledger.batch(txn, self.dialect, after, 100):
            for record in written:
                queued_utc = utc_text(datetime.fromisoformat(record["captured"]))
                enqueue(txn, self.dialect, "records", record["number"], record, queued_utc)
                if record["transaction"] is not None and record["kind"] in ("out", "void"):
                    ended[int(record["transaction"])] = queued_utc  # closed, or voided
            after = written[-1]["number"]
        for transaction_id, queued_utc in ended.items():
            if self.transaction is not None:
                view = self.transaction(txn, transaction_id)
                enqueue(txn, self.dialect, "transactions", transaction_id, view, queued_utc)
