"""Checking a long chain on every core: segments in worker processes, verdicts joined in order.

Ed25519 verification costs ~100 µs a record, so a million records take minutes on one core
and would hold the GIL that the reactor needs. Each segment is checked in a worker process
from the head before it (the previous segment's last record), which covers the link across
segments too; the first failing segment in number order gives the verdict.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future, ProcessPoolExecutor

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from balanca.records.key import raw_public
from balanca.records.seal import ChainCheck, Record, Verdict


def check_segment(head: Record | None, records: list[Record], public_raw: bytes) -> Verdict:
    """Check `records` as the chain's continuation after `head` (a worker's job)."""
    check = ChainCheck(Ed25519PublicKey.from_public_bytes(public_raw), head=head)
    check.add_all(records)
    return check.verdict()


class ParallelCheck:
    """Checks segments of one chain in worker processes, a bounded number in flight."""

    def __init__(
        self,
        public_key: Ed25519PublicKey,
        wait: Callable[[Future[Verdict]], Awaitable[Verdict]],
        workers: int | None = None,
    ) -> None:
        """`wait` turns a worker's future into something the caller can await (on a
        reactor: a Deferred fired from a thread)."""
        self.public_raw = raw_public(public_key)
        self.workers = workers or os.cpu_count() or 1
        self.wait = wait
        self._total = 0
        self._last: Record | None = None
        self._failed: Verdict | None = None

    async def run(self, segments: AsyncIterator[list[Record]]) -> Verdict:
        """The verdict on the whole chain, from its segments in number order; `records` counts
        every record, also those after the first bad one."""
        context = multiprocessing.get_context("spawn")  # no fork of a threaded reactor
        self._total, self._last, self._failed = 0, None, None
        head: Record | None = None
        in_flight: deque[Future[Verdict]] = deque()
        with ProcessPoolExecutor(self.workers, mp_context=context) as pool:
            try:
                async for records in segments:
                    self._total += len(records)
                    if self._failed is not None:
                        continue
                    in_flight.append(pool.submit(check_segment, head, records, self.public_raw))
                    head = records[-1]
                    while len(in_flight) > 2 * self.workers:
                        self._settle(await self.wait(in_flight.popleft()))
                while in_flight:
                    self._settle(await self.wait(in_flight.popleft()))
            finally:
                for future in in_flight:
                    future.cancel()
        if self._failed is not None:
            return Verdict(self._total, None, self._failed.first_bad, self._failed.problem)
        return Verdict(self._total, self._last)

    def _settle(self, verdict: Verdict) -> None:
        if self._failed is not None:
            return
        if not verdict.ok:
            self._failed = verdict
        elif verdict.last is not None:
            self._last = verdict.last
