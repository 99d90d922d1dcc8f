"""The scale link on an injected clock: a gateway that accepts and drops at once is retried with
a growing backoff and logged once per backoff step; a connection that delivered a frame (or
stayed up) starts the backoff again; open failures are named with their codes."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from twisted.internet import error
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.trial.unittest import TestCase

from balanca.hub import Hub
from balanca.reading import Measurement
from balanca.scale.link import OpenFailed, ScaleLink
from balanca.scale.protocols import PROTOCOLS
from balanca.scale.scale import Scale, ScaleProtocol
from tests.test_hub import captured_log

FRAME = PROTOCOLS["ad"].encode(Measurement(Decimal("1.00"), "kg", True, "gross"))


def run_for(clock: Clock, seconds: float) -> None:
    """Advance `clock` by `seconds`, stopping at each timer on the way."""
    end = clock.seconds() + seconds
    while True:
        due = [c.getTime() for c in clock.getDelayedCalls() if c.getTime() <= end]
        if not due:
            break
        clock.advance(max(0.0, min(due) - clock.seconds()))
    clock.advance(end - clock.seconds())


class Gateway:
    """A serial-to-Ethernet gateway on the test's clock: accepts, then drops at once; the
    next connections may follow `plans` instead: (seconds up, frames sent) each."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.opened: list[float] = []
        self.dropped: list[float] = []
        self.plans: list[tuple[float, int]] = []
        self.refuse: Exception | None = None

    def __call__(self, protocol: ScaleProtocol) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.opened.append(self.clock.seconds())
        up, frames = self.plans.pop(0) if self.plans else (0.0, 0)
        transport = StringTransportWithDisconnection()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        for _ in range(frames):
            protocol.dataReceived(FRAME)
        self.clock.callLater(up, self.drop, transport)

    def drop(self, transport: StringTransportWithDisconnection) -> None:
        if transport.connected:
            self.dropped.append(self.clock.seconds())
            transport.loseConnection()

    def waits(self) -> list[float]:
        """Seconds from each drop to the next open."""
        return [round(b - a, 3) for a, b in zip(self.dropped, self.opened[1:], strict=False)]


class Backoff(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.hub = Hub(self.clock, stale_after=3)
        self.scale = Scale(PROTOCOLS["ad"], self.hub, self.clock, source="tcp")
        self.gateway = Gateway(self.clock)
        self.link = ScaleLink(self.scale, self.gateway, self.clock, "tcp:gw:4001")
        self.log = captured_log(self)
        self.link.startService()
        self.addCleanup(self.link.stopService)

    def run_for(self, seconds: float) -> None:
        run_for(self.clock, seconds)

    def test_a_gateway_that_accepts_and_drops_is_retried_with_a_growing_backoff(self) -> None:
        self.run_for(60)
        self.assertEqual(self.gateway.waits()[:8], [0.5, 1, 2, 4, 8, 10, 10, 10])
        flapping = [line for line in self.log if "dropped" in line and "before any frame" in line]
        self.assertEqual(
            [line.rsplit("retrying in ", 1)[1] for line in flapping],
            ["1 s", "2 s", "4 s", "8 s", "10 s"],
        )
        states = [line for line in self.log if line.startswith("scale state:")]
        self.assertEqual(len(states), 2, states)  # waiting once, disconnected once
        self.assertEqual((self.hub.state, self.hub.code), ("disconnected", "connection_lost"))

    def test_a_connection_that_delivered_a_frame_starts_the_backoff_again(self) -> None:
        self.run_for(20)  # flapping: the next wait is 10 s
        self.gateway.plans = [(0.0, 1)]  # the next connection delivers a frame, then drops
        self.run_for(20)
        self.assertEqual(self.gateway.waits()[4:9], [8, 10, 0.5, 1, 2])
        self.assertEqual(self.link.reconnects, len(self.gateway.opened) - 1)

    def test_a_connection_that_stayed_up_starts_the_backoff_again(self) -> None:
        self.run_for(20)
        self.gateway.plans = [(6.0, 0)]  # the next connection stays up 6 s without a frame
        self.run_for(20)
        self.assertEqual(self.gateway.waits()[4:9], [8, 10, 0.5, 1, 2])

    def test_open_failures_are_named_with_their_codes_and_not_logged_again(self) -> None:
        self.link.stopService()
        self.gateway.refuse = error.ConnectionRefusedError()
        link = ScaleLink(self.scale, self.gateway, self.clock, "tcp:gw:4001")
        del self.log[:]
        link.startService()
        self.addCleanup(link.stopService)
        self.assertEqual(
            (self.hub.state, self.hub.code, self.hub.reason),
            ("disconnected", "connection_refused", "connection refused: tcp:gw:4001"),
        )
        self.run_for(30)
        self.gateway.refuse = OpenFailed("device busy: held by another process", "device_busy")
        self.run_for(11)
        self.assertEqual(self.hub.code, "device_busy")
        states = [line for line in self.log if line.startswith("scale state:")]
        self.assertEqual(
            [line.rsplit("[", 1)[1] for line in states], ["connection_refused]", "device_busy]"]
        )
        self.assertFalse([line for line in self.log if "retrying" in line])


class Plug:
    """A device file the test plugs and unplugs (the link's `Device`)."""

    def __init__(self) -> None:
        self.here = True
        self.appeared: Callable[[], None] | None = None

    def present(self) -> bool:
        return self.here

    def watch(self, appeared: Callable[[], None]) -> None:
        self.appeared = appeared

    def stop(self) -> None:
        self.appeared = None


class DeviceLink(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.hub = Hub(self.clock, stale_after=3)
        scale = Scale(PROTOCOLS["ad"], self.hub, self.clock, source="serial")
        self.gateway = Gateway(self.clock)
        self.device = Plug()
        self.link = ScaleLink(scale, self.gateway, self.clock, "/dev/ttyUSB0", self.device)
        self.link.startService()
        self.addCleanup(self.link.stopService)

    def test_a_device_gone_after_its_read_error_is_named_removed_and_reopened_when_it_appears(
        self,
    ) -> None:
        self.gateway.plans = [(1.0, 1)]
        self.clock.advance(1.0)  # the read error comes while the device file is still there
        self.assertEqual(self.hub.code, "connection_lost")
        self.device.here = False
        self.gateway.refuse = OpenFailed("device not found: /dev/ttyUSB0", "device_not_found")
        self.clock.advance(0.5)
        self.assertEqual(
            (self.hub.code, self.hub.reason), ("device_removed", "device removed: /dev/ttyUSB0")
        )
        run_for(self.clock, 30)
        self.assertEqual(self.hub.code, "device_removed")  # not "not found" while it is away
        self.assertGreaterEqual(self.link.next_retry or 0, 5)
        self.device.here, self.gateway.refuse = True, None
        opened = len(self.gateway.opened)
        assert self.device.appeared is not None
        self.device.appeared()  # inotify: at once, not at the next retry
        self.assertEqual(len(self.gateway.opened), opened + 1)

    def test_a_device_missing_at_start_is_not_found(self) -> None:
        self.link.stopService()
        self.gateway.refuse = OpenFailed("device not found: /dev/ttyUSB0", "device_not_found")
        link = ScaleLink(self.link.scale, self.gateway, self.clock, "/dev/ttyUSB0", Plug())
        link.startService()
        self.addCleanup(link.stopService)
        self.assertEqual(self.hub.code, "device_not_found")
