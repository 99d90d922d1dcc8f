"""Keeping the scale connected: open the transport, notice when it goes, reopen with backoff.

Serial ports, TCP endpoints and the simulator differ only in how they are opened; this
service treats each as an `Opener`. A serial device also has a `Device`: it names why it is
gone (removed, not found, busy) and wakes the link as soon as the device appears, so the
backoff is only the fallback. The hub logs each change of state once; the link adds one line
per backoff step while a connection flaps (opens, then drops before any frame).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.application.service import Service
from twisted.internet import defer, error
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from balanca.hub import Code
from balanca.scale.scale import Scale, ScaleProtocol

Opener = Callable[[ScaleProtocol], object]
"""Connects a fresh scale protocol to the indicator: raises, or returns a Deferred that fails,
when it cannot (an `OpenFailed` says why in words and a code)."""

FIRST_DELAY = 0.5
MAX_DELAY = 10.0
SETTLED = 5.0
"""Seconds a connection must stay up, when it delivers no frame, to count as a good one (and
start the backoff again from `FIRST_DELAY` when it drops)."""


def backoff(attempt: int) -> float:
    """Seconds to wait before reconnection attempt `attempt` (1, 2, ...): 0.5 s doubling to 10 s."""
    return min(MAX_DELAY, FIRST_DELAY * 2 ** (attempt - 1))


class OpenFailed(Exception):
    """The transport cannot be opened: `reason` in words, `code` for machines."""

    def __init__(self, reason: str, code: Code) -> None:
        super().__init__(reason)
        self.reason, self.code = reason, code


class Device(Protocol):
    """A device file behind the link (a serial port): says whether it is there, and calls back
    when it may have appeared."""

    def present(self) -> bool:
        """The device file exists now."""
        ...

    def watch(self, appeared: Callable[[], None]) -> None:
        """Call `appeared` whenever the device file may have (re)appeared."""
        ...

    def stop(self) -> None:
        """Stop watching."""
        ...


class ScaleLink(Service):
    """Keeps one scale connected for as long as the service runs."""

    log = Logger()

    def __init__(
        self,
        scale: Scale,
        opener: Opener,
        clock: IReactorTime,
        where: str,
        device: Device | None = None,
    ) -> None:
        self.scale, self.opener, self.clock, self.where = scale, opener, clock, where
        self.device = device
        self.reconnects = 0
        self._failures = 0
        self._retry: IDelayedCall | None = None
        self._protocol: ScaleProtocol | None = None
        self._opening: defer.Deferred[object] | None = None
        """An open in progress (with `protocol=auto`, detection may take seconds)."""
        self._opened_at = 0.0
        self._ever_opened = False
        self._flap_delay: float | None = None
        """The delay last logged for a flapping connection (one line per backoff step)."""

    @property
    def next_retry(self) -> float | None:
        """Seconds until the next attempt to open, or None when none is due."""
        if self._retry is None or not self._retry.active():
            return None
        return max(0.0, self._retry.getTime() - self.clock.seconds())

    def startService(self) -> None:
        super().startService()
        if self.device is not None:
            self.device.watch(self._appeared)
        self._open()

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        if self.device is not None:
            self.device.stop()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        if self._opening is not None and not self._opening.called:
            self._opening.cancel()
        protocol, self._protocol = self._protocol, None
        self.log.info(
            "scale {scale}: stopped after {readings} readings this run",
            scale=self.scale.hub.scale,
            readings=self.scale.counters.readings,
        )
        if protocol is None or protocol.transport is None:
            self.scale.hub.stop()
            return defer.succeed(None)
        lost = protocol.lost
        protocol.transport.loseConnection()
        # Frames read until the port is closed restart the hub's stale timer: stop it after.
        return lost.addBoth(lambda _: self.scale.hub.stop())

    def _appeared(self) -> None:
        """The device may be back: open it now instead of at the next retry."""
        if self.running and self._retry is not None and self._retry.active():
            self._retry.cancel()
            self._open()

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
        self._opened_at = self.clock.seconds()
        if self._ever_opened or self._failures:
            self.reconnects += 1
        self._ever_opened = True
        protocol.lost.addCallback(self._lost, protocol)

    def _lost(self, why: str, protocol: ScaleProtocol) -> None:
        if self._protocol is protocol:
            self._protocol = None
        if not self.running:
            return
        flapped = not protocol.delivered and self.clock.seconds() - self._opened_at < SETTLED
        if not flapped:
            self._failures = 0
            self._flap_delay = None
        if self.device is not None and not self.device.present():
            self._down(f"device removed: {self.where}", "device_removed", flapped)
        else:
            self._down(f"connection lost: {self.where}: {why}", "connection_lost", flapped)

    def _failed(self, reason: Failure) -> None:
        if not self.running:
            return
        if reason.check(OpenFailed):
            e = reason.value
            assert isinstance(e, OpenFailed)
            if e.code == "device_not_found" and self._ever_opened:
                # It was here: removed (also when it vanished only after the read error).
                self._down(f"device removed: {self.where}", "device_removed")
            else:
                self._down(e.reason, e.code)
        elif reason.check(error.ConnectionRefusedError):
            self._down(f"connection refused: {self.where}", "connection_refused")
        else:
            self._down(f"cannot open {self.where}: {reason.getErrorMessage()}", "open_failed")

    def _down(self, why: str, code: Code, flapped: bool = False) -> None:
        self._failures += 1
        delay = backoff(self._failures)
        self.scale.hub.disconnected(why, code)
        if flapped and self._failures > 1 and delay != self._flap_delay:
            self._flap_delay = delay
            self.log.info(
                "scale link: {scale} dropped {count} times in a row before any frame ({why}); "
                "retrying in {delay:g} s",
                scale=self.scale.hub.scale,
                count=self._failures,
                why=why,
                delay=delay,
            )
        self._retry = self.clock.callLater(delay, self._open)
