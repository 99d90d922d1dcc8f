"""The record book: sealed records written one at a time, and the chain watched as it grows.

One writer per service: appends go through one lock, so numbers follow each other and each
record links to the one before. The whole chain is checked at start (in worker processes, off
the reactor thread) and every record again as it is written; a broken chain turns the book
`broken` for `/api/health` and the metrics until a check passes again.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, DeferredLock
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python.failure import Failure

from balanca.reading import Reading, isotime, local_time
from balanca.records.guards import empties
from balanca.records.key import fingerprint, key_info, raw_public
from balanca.records.seal import ChainCheck, Record, Verdict
from balanca.store import ledger, outbox
from balanca.store.chaincheck import ChainChecker
from balanca.store.idempotency import Receipt
from balanca.store.schema import DIALECTS, Dialect, utc_text

if TYPE_CHECKING:
    from balanca.store.spec import DatabaseSpec

CAPTURE_KINDS = ("weighing", "in", "out")
SEGMENT = 5000
"""Records read and checked together after a write."""
RETRY = 2.0
"""Seconds between attempts to check the chain while the database is away at start."""

Interact = Callable[..., Deferred[Any]]
"""Runs an interaction in a database thread (the store's, retried once on a lost link)."""
State = Literal["checking", "ok", "broken"]
T = TypeVar("T")


class RecordRefused(Exception):
    """A record operation refused for what the records say: `status` and a machine `code`."""

    def __init__(self, status: int, code: str, error: str, detail: str = "") -> None:
        super().__init__(error)
        self.status, self.code, self.error, self.detail = status, code, error, detail


class RecordBook(Service):
    """Sealed records: append, read, void, and the chain's state."""

    log = Logger()

    def __init__(
        self,
        interact: Interact,
        spec: DatabaseSpec,
        load_key: Callable[[], Ed25519PrivateKey],
        clock: IReactorTime,
        run: str,
        min_weights: Mapping[str, Decimal],
        workers: int | None = None,
    ) -> None:
        """`load_key` gives the signing key when the book starts (after twistd has dropped
        privileges, so the key file is the service user's); `run` names this start of the
        service (kept in captures); `min_weights` maps each scale to its capture minimum."""
        self.run = run
        self.interact, self.spec, self.load_key, self.clock = interact, spec, load_key, clock
        self.dialect = DIALECTS[spec.dialect]
        self.min_weights = dict(min_weights)
        self.key: Ed25519PrivateKey | None = None
        self.public: dict[str, Any] = {}
        """`GET /api/weighings/key`'s answer, once started."""
        self.fingerprint = ""
        self.workers = workers
        self.state: State = "checking"
        self.verdict: Verdict | None = None
        self._verified: Record | None = None
        """The newest record checked so far (the head the next check goes on from)."""
        self._appending = DeferredLock()
        self._checking = DeferredLock()
        self._captured: dict[str, bool] = {}
        """Per scale: whether it has a capture (known once asked, then kept up to date)."""
        self._retry: Deferred[None] | None = None
        """The wait before the next try to check the chain while the database is away."""
        self._emptied: dict[str, bool] = {}
        """Per scale: an empty scale was seen since its last capture in this run."""
        self.outbox: outbox.Queue | None = None
        """With fleet publishing on: where what the book writes is queued for the broker."""
        self._at_start: list[Callable[[], Awaitable[None]]] = []

    def startService(self) -> None:
        self.key = self.load_key()
        self.public = key_info(self.key.public_key())
        self.fingerprint = fingerprint(self.key.public_key())
        super().startService()
        self._checking.run(lambda: Deferred.fromCoroutine(self._check_at_start()))

    def at_start(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` at start once the chain is checked (both tried again while the database
        is away): for what is kept beside the records and must agree with them."""
        self._at_start.append(work)

    @property
    def signer(self) -> Ed25519PrivateKey:
        """The signing key (the book has started)."""
        assert self.key is not None, "the record book signs once started"
        return self.key

    def stopService(self) -> None:
        super().stopService()
        if self._retry is not None:
            self._retry.cancel()

    def min_weight(self, scale: str) -> Decimal:
        """The capture minimum of `scale` (0 unless configured)."""
        return self.min_weights.get(scale, Decimal(0))

    # Records in.

    async def capture(
        self, reading: Reading, fields: Mapping[str, Any], receipt: Receipt | None = None
    ) -> Record:
        """Seal a capture of `reading` (kind and request fields in `fields`) and write it,
        with the answer to `receipt`'s Idempotency-Key in the same transaction."""
        draft = self.capture_draft(reading, fields)
        record: Record = await self.write(ledger.append, *self._sealing(draft, receipt))
        self.noted(reading.scale)
        return record

    def capture_draft(self, reading: Reading, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The draft of a capture of `reading`: the reading's keys, and `fields` (kind and
        the request's fields)."""
        assert reading.weight is not None
        return self.draft(
            fields,
            scale=reading.scale,
            run=self.run,
            seq=reading.seq,
            time=isotime(reading.time),
            weight=format(reading.weight, "f"),
            unit=reading.unit,
            decimals=max(0, -int(reading.weight.as_tuple().exponent)),
            mode=reading.mode,
            tare=None if reading.tare is None else format(reading.tare, "f"),
            status=reading.status,
            source=reading.source,
            frame=reading.frame.hex() if reading.frame else None,
            again=bool(fields.get("again", False)),
        )

    def noted(self, scale: str) -> None:
        """A capture on `scale` was written: the same-load rule waits for it to be emptied."""
        self._captured[scale] = True
        self._emptied[scale] = False

    async def write(self, interaction: Callable[..., T], *args: Any) -> T:
        """Run `interaction(txn, *args)`, a database interaction that appends records with
        `ledger.append`, as the book's one writer; the chain check then covers them."""
        return await self._appending.run(
            lambda: Deferred.fromCoroutine(self._locked_write(interaction, *args))
        )

    async def void(
        self, number: int, reason: str, operator: str | None, receipt: Receipt | None = None
    ) -> Record:
        """Write a void record for record `number`; RecordRefused when it cannot be voided."""

        async def checked() -> Record:
            target = await self.interact(ledger.get, self.dialect, number)
            if target is None:
                raise RecordRefused(404, "not_found", "no such record", f"no record {number}")
            if target["kind"] == "void" or target["voided_by"] is not None:
                raise RecordRefused(409, "already_void", "already void", f"record {number}")
            if target["transaction"] is not None:
                raise RecordRefused(
                    409,
                    "part_of_transaction",
                    "part of a transaction",
                    f"void transaction {target['transaction']} instead",
                )
            draft = self.draft(
                {"kind": "void", "voids": number, "reason": reason, "operator": operator}
            )
            return await self._locked_write(ledger.append, *self._sealing(draft, receipt))

        return await self._appending.run(lambda: Deferred.fromCoroutine(checked()))

    # Records out.

    def get(self, number: int) -> Deferred[Record | None]:
        """Record `number`, or None."""
        return self.interact(ledger.get, self.dialect, number)

    def listing(self, filters: ledger.Filters) -> Deferred[list[Record]]:
        """Records matching `filters`, newest first."""
        return self.interact(ledger.listing, self.dialect, filters)

    async def verify(self) -> Verdict:
        """A check of every record in the database now, which also updates the book's state."""
        return await self._checking.run(lambda: Deferred.fromCoroutine(self._check_all()))

    # The same-load rule.

    def reading(self, reading: Reading, payload: bytes) -> None:
        """Hub subscriber: note an empty scale for the same-load rule."""
        if empties(reading, self.min_weight(reading.scale)):
            self._emptied[reading.scale] = True

    def status(self, payload: bytes) -> None:
        """Hub subscriber: states do not matter here."""

    async def emptied(self, scale: str) -> bool:
        """Whether a capture on `scale` passes the same-load rule without `again`."""
        if scale not in self._captured:
            self._captured[scale] = await self.interact(_has_capture, self.dialect, scale)
        return not self._captured[scale] or self._emptied.get(scale, False)

    def draft(self, fields: Mapping[str, Any], **values: Any) -> dict[str, Any]:
        """Every key of a record to be sealed, empty unless given."""
        draft = dict.fromkeys(
            k for k in ledger.STORED_KEYS if k not in ("number", *ledger.SEAL_KEYS)
        )
        draft.update({k: v for k, v in fields.items() if k in draft})
        draft.update(values)
        draft["captured"] = isotime(local_time(self.clock.seconds()))
        return draft

    # Inside.

    def _queued(self, interaction: Callable[..., T]) -> Callable[..., T]:
        """`interaction`, queueing what it writes in the outbox when publishing is on."""
        return interaction if self.outbox is None else self.outbox.wrap(interaction)

    async def _locked_write(self, interaction: Callable[..., T], *args: Any) -> T:
        """`write`, for a caller that holds the one-writer lock already."""
        result: T = await self.interact(self._queued(interaction), *args)
        self._check_soon()
        return result

    def _sealing(self, draft: dict[str, Any], receipt: Receipt | None) -> tuple[Any, ...]:
        """`ledger.append`'s arguments after the cursor, for one `draft` and its receipt."""
        captured_utc = utc_text(datetime.fromisoformat(draft["captured"]))
        return (self.dialect, draft, self.signer, captured_utc, uuid.uuid4().hex, receipt)

    def _check_soon(self) -> None:
        """Check the records just written, after any check under way. A database that fails
        meanwhile, or a stop, leaves them to the next check (logged, never raised)."""
        checked = self._checking.run(lambda: Deferred.fromCoroutine(self._check_new()))
        checked.addErrback(self._not_checked)

    def _not_checked(self, failure: Failure) -> None:
        self.log.info("records: newest records not checked yet ({error})", error=failure.value)

    async def _check_at_start(self) -> None:
        while self.running:
            try:
                sealed = await self.interact(ledger.seal_legacy, self.dialect, self.signer)
                if sealed:
                    self.log.info(
                        "records: sealed the {count} weighings recorded by 0.1 as records 1 to"
                        " {count}, in id order",
                        count=sealed,
                    )
                verdict = await self._check_all()
                for work in self._at_start:
                    await work()
            except Exception as error:  # the database is away: try again shortly
                if not self.running:
                    return  # stopped while it was being checked
                self.log.info("records: chain not checked yet ({error})", error=error)
                self._retry = deferLater(self.clock, RETRY, lambda: None)
                try:
                    await self._retry
                except CancelledError:
                    return
                finally:
                    self._retry = None
                continue
            if verdict.ok:
                self.log.info(
                    "records: chain of {count} records checked, key {fingerprint}",
                    count=verdict.records, fingerprint=self.fingerprint,
                )  # fmt: skip
            return

    async def _check_all(self) -> Verdict:
        newest, count = await self.interact(ledger.extent)
        checker = ChainChecker(
            self.spec,
            raw_public(self.signer.public_key()),
            lambda f: deferToThread(f.result),
            self.workers,
        )
        verdict = await checker.run(newest, count)
        if verdict.ok and self._verified is not None and newest < self._verified["number"]:
            verdict = Verdict(count, None, newest + 1, "gap")  # the newest records were removed
        self._judge(verdict)
        if verdict.ok:
            self._verified = verdict.last
        return verdict

    async def _check_new(self) -> None:
        if not self.running or self.state == "broken" or self.verdict is None:
            return  # a broken chain stays broken until a whole check passes; none yet: at start
        after = 0 if self._verified is None else self._verified["number"]
        records = await self.interact(ledger.batch, self.dialect, after, SEGMENT)
        check = ChainCheck(self.signer.public_key(), head=self._verified)
        check.add_all(records)
        verdict = check.verdict()
        self._judge(verdict)
        if verdict.ok and verdict.last is not None:
            self._verified = verdict.last

    def _judge(self, verdict: Verdict) -> None:
        self.verdict = verdict
        state: State = "ok" if verdict.ok else "broken"
        if state == "broken" and self.state != "broken":
            self.log.error(
                "records: chain BROKEN at record {number}: {problem}",
                number=verdict.first_bad, problem=verdict.problem,
            )  # fmt: skip
        elif state == "ok" and self.state == "broken":
            self.log.info("records: chain whole again")
        self.state = state


def _has_capture(txn: Any, dialect: Dialect, scale: str) -> bool:
    kinds = ", ".join(f"'{k}'" for k in CAPTURE_KINDS)
    txn.execute(
        dialect.sql(f"SELECT 1 FROM records WHERE scale = ? AND kind IN ({kinds}) LIMIT 1"),
        (scale,),
    )
    return txn.fetchone() is not None
