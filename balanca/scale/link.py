"""Keeping the scale connected: open the transport, notice when it goes, reopen with backoff.

Serial ports, TCP endpoints and the simulator differ only in how they are opened; this
service treats each as an `Opener` and logs each change of state once, not every attempt.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from balanca.scale.scale import Scale, ScaleProtocol

Opener = Callable[[ScaleProtocol], object]
"""Connects a fresh scale protocol to the indicator: raises, or returns a Deferred that fails,
when it cannot."""

FIRST_DELAY = 0.5
MAX_DELAY = 10.0


def backoff(attempt: int) -> float:
    """Seconds to wait before reconnection attempt `attempt` (1, 2, ...): 0.5 s doubling to 10 s."""
    return min(MAX_DELAY, FIRST_DELAY * 2 ** (attempt - 1))


class ScaleLink(Service):
    """Keeps one scale connected for as long as the service runs."""

    log = Logger()

    def __init__(self, scale: Scale, opener: Opener, clock: IReactorTime, where: str) -> None:
        self.scale, self.opener, self.clock, self.where = scale, opener, clock, where
        self.reconnects = 0
        self._failures = 0
        self._retry: IDelayedCall | None = None
        self._protocol: ScaleProtocol | None = None
        self._opening: defer.Deferred[object] | None = None
        """An open in progress (with `protocol=auto`, detection may take seconds)."""
        self._announced: str | None = None

    def startService(self) -> None:
        super().startService()
        self._open()

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        if self._opening is not None and not self._opening.called:
            self._opening.cancel()
        protocol, self._protocol = self._protocol, None
        self.scale.hub.stop()
        self.log.info(
            "scale: stopped after {readings} readings this run",
            readings=self.scale.counters.readings,
        )
        if protocol is None or protocol.transport is None:
            return defer.succeed(None)
        lost = protocol.lost
        protocol.transport.loseConnection()
        return lost.addBoth(lambda _: None)

    def _open(self) -> None:
        self._retry = None
        protocol = self.scale.protocol()
        d = self._opening = defer.maybeDeferred(self.opener, protocol)
        d.addCallbacks(lambda _: self._opened(protocol), self._failed)

    def _opened(self, protocol: ScaleProtocol) -> None:
        if not self.running:
            if protocol.transport is not None:
                protocol.transport.loseConnection()
            return
        self._protocol = protocol
        if self._failures or self._announced is not None:
            self.reconnects += 1
        self._failures = 0
        self._announce("connected", f"scale connected: {self.where}")
        protocol.lost.addCallback(self._lost, protocol)

    def _lost(self, why: str, protocol: ScaleProtocol) -> None:
        if self._protocol is protocol:
            self._protocol = None
        if self.running:
            self._down(f"connection lost: {why}")

    def _failed(self, reason: Failure) -> None:
        if self.running:
            self._down(f"cannot open: {reason.getErrorMessage()}")

    def _down(self, why: str) -> None:
        self._failures += 1
        delay = backoff(self._failures)
        self.scale.hub.disconnected(f"{self.where}: {why}")
        self._announce(
            "disconnected", f"scale disconnected: {self.where}: {why}; retrying with backoff"
        )
        self.log.debug("scale: retrying {where} in {delay} s", where=self.where, delay=delay)
        self._retry = self.clock.callLater(delay, self._open)

    def _announce(self, state: str, message: str) -> None:
        """Log `message` when the link's state differs from the last one logged."""
        if state != self._announced:
            self._announced = state
            self.log.info("{message}", message=message)
