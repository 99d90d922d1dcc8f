"""Checking the whole chain of records on every core, without slowing the reactor.

Ed25519 verification costs ~100 µs a record: a million records are minutes of CPU, which
must neither hold the GIL the reactor needs nor pass through the reactor's process. So the
chain is cut into ranges of numbers, and each range is checked by a worker process that reads
its records from the database itself, from the record before the range (the head it goes on
from: the link across ranges is checked too). Workers run at a lower priority than the
service. The lowest failing range gives the verdict, as if the chain were checked in order.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

from balanca.records.seal import ChainCheck, Verdict
from balanca.store import ledger
from balanca.store.pool import connect
from balanca.store.schema import DIALECTS

if TYPE_CHECKING:
    from balanca.store.spec import DatabaseSpec

RANGE = 20_000
"""Records a worker checks at a time."""
READ = 2_000
"""Records a worker reads at a time."""
NICE = 10
"""How much lower the workers' priority is than the service's."""


def check_range(spec: DatabaseSpec, public_raw: bytes, first: int, last: int) -> Verdict:
    """Check records `first` to `last`, going on from record `first - 1` (a worker's job)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    dialect = DIALECTS[spec.dialect]
    connection = connect(spec)
    try:
        cursor = connection.cursor()
        head = None if first == 1 else ledger.get(cursor, dialect, first - 1)
        check = ChainCheck(Ed25519PublicKey.from_public_bytes(public_raw), head=head)
        if first > 1 and head is None:
            return Verdict(0, None, first - 1, "gap")
        after = first - 1
        while after < last and check.problem is None:
            records = ledger.batch(cursor, dialect, after, min(READ, last - after))
            records = [r for r in records if r["number"] <= last]
            if not records:
                break
            check.add_all(records)
            after = records[-1]["number"]
        verdict = check.verdict()
        if verdict.ok and (verdict.last is None or verdict.last["number"] != last):
            return Verdict(verdict.records, None, after + 1, "gap")  # the range's end is missing
        return verdict
    finally:
        connection.close()


class ChainChecker:
    """Checks every record in worker processes, a bounded number of ranges in flight."""

    def __init__(
        self,
        spec: DatabaseSpec,
        public_raw: bytes,
        wait: Callable[[Future[Verdict]], Awaitable[Verdict]],
        workers: int | None = None,
    ) -> None:
        """`wait` turns a worker's future into something the caller can await (on a
        reactor: a Deferred fired from a thread)."""
        self.spec, self.public_raw, self.wait = spec, public_raw, wait
        self.workers = workers or os.cpu_count() or 1

    async def run(self, newest: int, count: int) -> Verdict:
        """The verdict on records 1 to `newest` (`count` of them in the database now)."""
        context = multiprocessing.get_context("spawn")  # no fork of a threaded reactor
        failed: Verdict | None = None
        last: dict[str, Any] | None = None
        in_flight: deque[Future[Verdict]] = deque()
        with ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=os.nice, initargs=(NICE,)
        ) as pool:
            try:
                for first in range(1, newest + 1, RANGE):
                    bounds = (first, min(first + RANGE - 1, newest))
                    in_flight.append(pool.submit(check_range, self.spec, self.public_raw, *bounds))
                    while len(in_flight) > 2 * self.workers and failed is None:
                        failed, last = _settle(await self.wait(in_flight.popleft()), last)
                    if failed is not None:
                        break
                while in_flight and failed is None:
                    failed, last = _settle(await self.wait(in_flight.popleft()), last)
            finally:
                for future in in_flight:
                    future.cancel()
        if failed is not None:
            return Verdict(count, None, failed.first_bad, failed.problem)
        return Verdict(count, last)


def _settle(
    verdict: Verdict, last: dict[str, Any] | None
) -> tuple[Verdict | None, dict[str, Any] | None]:
    if not verdict.ok:
        return verdict, last
    return None, verdict.last or last
