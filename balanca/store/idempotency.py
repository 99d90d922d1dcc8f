"""Idempotency keys: a write sent again gets its first answer instead of acting twice.

DESIGN.md: a write's `Idempotency-Key` is scoped to the key and the path and kept in the
database for 24 hours, restarts included. The same key with the same body gets the first
final answer (2xx or 4xx, status and body); with another body it is 422; while the first is
still being answered, the second waits for that answer. A record's answer is written in the
same transaction as the record (see `ledger.append`), so a crash can never leave a record
without its answer, or an answer without its record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from balanca.store.schema import Dialect

KEEP = timedelta(hours=24)
MAX_KEY = 255
"""Longest key accepted (characters)."""

TRANSIENT = frozenset({408, 429})
"""4xx answers that say "not now" rather than "no": never kept for a key."""

Answer = tuple[int, Any]


@dataclass(frozen=True)
class Receipt:
    """One keyed write: where its answer is kept (`scope`) and what it asked (`body_hash`)."""

    scope: str
    body_hash: str

    @classmethod
    def of(cls, key: str, path: str, body: bytes) -> Receipt:
        """The receipt for `key` on `path` with request body `body`."""
        scope = hashlib.sha256(f"{key}\n{path}".encode()).hexdigest()
        return cls(scope, hashlib.sha256(body).hexdigest())


class KeyReused(Exception):
    """The key was used before on this path with another body (HTTP 422)."""


class Idempotency:
    """Answers kept by key: look one up, wait for one in flight, keep a final one."""

    def __init__(
        self, interact: Callable[..., Deferred[Any]], dialect: Dialect, clock: IReactorTime
    ):
        self.interact, self.dialect, self.clock = interact, dialect, clock
        self._in_flight: dict[str, tuple[str, list[Deferred[Answer]]]] = {}

    async def begin(self, receipt: Receipt) -> Answer | None:
        """The first answer for `receipt`'s key (waiting while it is being made), or None when
        this request is the first and must be answered, then `end`ed. KeyReused for a key
        used with another body."""
        flying = self._in_flight.get(receipt.scope)
        if flying is not None:
            if flying[0] != receipt.body_hash:
                raise KeyReused()
            waiter: Deferred[Answer] = Deferred()
            flying[1].append(waiter)
            return await waiter
        self._in_flight[receipt.scope] = (receipt.body_hash, [])
        try:
            kept = await self.interact(kept_answer, self.dialect, receipt.scope, self._cutoff())
        except BaseException:
            self._in_flight.pop(receipt.scope, None)
            raise
        if kept is None:
            return None
        self._in_flight.pop(receipt.scope)
        if kept[0] != receipt.body_hash:
            raise KeyReused()
        return kept[1], json.loads(kept[2])

    async def end(self, receipt: Receipt, answer: Answer, kept: bool) -> None:
        """The first request's answer: handed to those waiting, and kept for 24 h when final
        (`kept` says whether a record's transaction already wrote it)."""
        _, waiters = self._in_flight.pop(receipt.scope, ("", []))
        for waiter in waiters:
            waiter.callback(answer)
        status = answer[0]
        if not kept and (200 <= status < 300 or (400 <= status < 500 and status not in TRANSIENT)):
            await self.interact(
                keep_answer, self.dialect, receipt, answer, now_text(self.clock), self._cutoff()
            )

    def _cutoff(self) -> str:
        return receipt_cutoff(now_text(self.clock))


def now_text(clock: IReactorTime) -> str:
    """The clock's time as the UTC text `created_utc` holds."""
    return _utc_text(datetime.fromtimestamp(clock.seconds(), UTC))


def receipt_cutoff(now_utc: str) -> str:
    """The oldest `created_utc` still kept at `now_utc`."""
    return _utc_text(datetime.fromisoformat(now_utc) - KEEP)


def kept_answer(txn: Any, dialect: Dialect, scope: str, cutoff: str) -> tuple[str, int, str] | None:
    """(body_hash, status, answer) kept for `scope` since `cutoff`, or None."""
    txn.execute(
        dialect.sql(
            "SELECT body_hash, status, answer FROM idempotency WHERE scope = ? AND created_utc >= ?"
        ),
        (scope, cutoff),
    )
    row = txn.fetchone()
    return None if row is None else (str(row[0]), int(row[1]), str(row[2]))


def keep_answer(
    txn: Any, dialect: Dialect, receipt: Receipt, answer: Answer, now: str, cutoff: str
) -> None:
    """Keep `answer` for `receipt` (replacing an expired one), and forget expired answers."""
    txn.execute(dialect.sql("DELETE FROM idempotency WHERE created_utc < ?"), (cutoff,))
    raw = answer[1]  # an error answer's body comes already serialised
    body = raw.decode("utf-8") if isinstance(raw, bytes) else json.dumps(raw, ensure_ascii=False)
    txn.execute(
        dialect.sql(
            "INSERT INTO idempotency (scope, body_hash, status, answer, created_utc)"
            " VALUES (?, ?, ?, ?, ?)"
        ),
        (receipt.scope, receipt.body_hash, answer[0], body, now),
    )


def _utc_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")
