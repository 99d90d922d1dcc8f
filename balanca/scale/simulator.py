"""The built-in scale simulator: an indicator that speaks a real wire protocol.

It is a transport for `ScaleProtocol`: continuous protocols get a frame `rate` times a second,
polled ones get a frame for each poll request, commands are acted on (and answered where the
protocol answers). Its frames go through the same framer and decoder as a real scale's, and its
readings say `source: simulator`.

Loads come and go like on a real platform: stable zero, motion while a load is placed, the
load stable for a while, motion while it is taken off, stable zero again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from balanca.reading import Measurement, Reply
from balanca.scale.protocols.base import WireProtocol


@dataclass(frozen=True)
class Platform:
    """What the simulated scale weighs: unit, resolution and the range of loads."""

    unit: str
    step: Decimal
    low: int
    high: int
    """Loads are between `low` and `high` steps."""

    @property
    def zero_range(self) -> Decimal:
        """How far from the power-up zero a zero is allowed: 2 % of capacity, either way, as
        indicators have it (OIML R 76 allows up to 4 % for the zero-setting device)."""
        return (self.step * self.high * ZERO_RANGE).quantize(self.step)


PLATFORMS = {
    "toledo": Platform("kg", Decimal("10"), 50, 4500),  # a truck scale
    "ad": Platform("kg", Decimal("0.05"), 200, 12000),  # a floor scale
    "sics": Platform("g", Decimal("0.01"), 1000, 50000),  # a laboratory balance
    "prix": Platform("kg", Decimal("0.005"), 20, 3000),  # a retail counter scale
    "mt8217": Platform("kg", Decimal("0.005"), 20, 3000),
}

ZERO_RANGE = Decimal("0.02")
"""The share of capacity the zero may move from the power-up zero, either way."""

LINE_DELAY = 0.01
"""Seconds between a request and the indicator's answer (a short frame at 9600 baud)."""

# (phase, seconds): the first stable load arrives within 5 s, each load stays 8 s.
CYCLE = (("empty", 2.0), ("loading", 2.0), ("loaded", 8.0), ("unloading", 2.0), ("empty", 4.0))


def phase_at(t: float) -> tuple[str, float, float]:
    """The phase of the load cycle at `t` seconds into it: (phase, seconds into it, its length)."""
    for phase, seconds in CYCLE:
        if t < seconds:
            return phase, t, seconds
        t -= seconds
    return CYCLE[-1][0], CYCLE[-1][1], CYCLE[-1][1]


class Load:
    """The weight on the simulated platform over time."""

    def __init__(self, platform: Platform, clock: IReactorTime, rng: random.Random) -> None:
        self.platform, self.clock, self.rng = platform, clock, rng
        self.started = clock.seconds()
        self.zero = Decimal(0)
        self.tare = Decimal(0)
        self._target = Decimal(0)
        self._cycle = -1

    def gross(self) -> tuple[Decimal, bool]:
        """The gross weight now (already zeroed) and whether it is stable."""
        elapsed = self.clock.seconds() - self.started
        period = sum(seconds for _, seconds in CYCLE)
        cycle, t = divmod(elapsed, period)
        if cycle != self._cycle:
            self._cycle = int(cycle)
            p = self.platform
            self._target = p.step * self.rng.randint(p.low, p.high)
        phase, t, seconds = phase_at(t)
        if phase == "empty":
            return self._round(-self.zero), True
        if phase == "loaded":
            return self._round(self._target - self.zero), True
        share = Decimal(t / seconds).quantize(Decimal("0.01"))
        if phase == "unloading":
            share = 1 - share
        noise = self.platform.step * self.rng.randint(-3, 3)
        return self._round(self._target * share + noise - self.zero), False

    def measurement(self) -> Measurement:
        """What the indicator displays now."""
        gross, stable = self.gross()
        net = self.tare != 0
        return Measurement(
            weight=gross - self.tare,
            unit=self.platform.unit,
            stable=stable,
            mode="net" if net else "gross",
            tare=self.tare,
        )

    def act(self, command: str) -> Reply:
        """Tare, zero or clear the tare, as an indicator would: tare and zero only on a stable
        weight, zero only within the zero range around the power-up zero."""
        if command == "clear-tare":
            self.tare = Decimal(0)
            return Reply(command, True, "tare cleared", tare=self.tare)
        if command not in ("tare", "zero"):
            return Reply(command, False, f"unknown command {command}", code="scale_refused")
        gross, stable = self.gross()
        if not stable:
            return Reply(command, False, "in motion: not executed", code="scale_in_motion")
        if command == "tare":
            self.tare = gross if gross > 0 else Decimal(0)
            return Reply(command, True, "tared", tare=self.tare)
        offset, limit = self.zero + gross, self.platform.zero_range
        if abs(offset) > limit:
            unit = self.platform.unit
            return Reply(
                command,
                False,
                f"zero out of range: {offset} {unit} from the power-up zero, the zero range is "
                f"±{limit} {unit}",
                code="zero_out_of_range",
            )
        self.zero = offset
        return Reply(command, True, "zeroed")

    def _round(self, value: Decimal) -> Decimal:
        step = self.platform.step
        return ((value / step).to_integral_value() * step).quantize(step)


class SimulatedIndicator:
    """A transport carrying a simulated indicator's frames to a scale protocol."""

    disconnecting = False

    def __init__(
        self, wire: WireProtocol, clock: IReactorTime, rate: float, seed: int | None = None
    ) -> None:
        self.wire, self.clock, self.rate = wire, clock, rate
        self.load = Load(PLATFORMS[wire.name], clock, random.Random(seed))
        self.protocol: Any = None
        self._sender: LoopingCall | None = None
        self._commands = {request: name for name, request in wire.commands.items()}

    def attach(self, protocol: Any) -> None:
        """Connect `protocol` to this indicator and start talking."""
        self.protocol = protocol
        protocol.makeConnection(self)
        if self.wire.poll is None:
            self._sender = LoopingCall(self._send)
            self._sender.clock = self.clock
            self._sender.start(1 / self.rate, now=True)

    def write(self, data: bytes) -> None:
        """A request from the host: a poll or a command."""
        if data == self.wire.poll:
            self.clock.callLater(LINE_DELAY, self._send)
        elif data in self._commands:
            reply = self.load.act(self._commands[data])
            if self.wire.replies and self.wire.encode_reply is not None:
                self.clock.callLater(LINE_DELAY, self._deliver, self.wire.encode_reply(reply))

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def simulated_command(self, name: str) -> Reply:
        """A command for a protocol that has none on the wire (toledo, ad, prix)."""
        return self.load.act(name)

    def loseConnection(self) -> None:
        if self._sender is not None and self._sender.running:
            self._sender.stop()
        protocol, self.protocol = self.protocol, None
        if protocol is not None:
            self.clock.callLater(0, protocol.connectionLost, Failure(ConnectionDone()))

    def getPeer(self) -> str:
        return "simulator"

    def getHost(self) -> str:
        return "simulator"

    def _send(self) -> None:
        self._deliver(self.wire.encode(self.load.measurement()))

    def _deliver(self, frame: bytes) -> None:
        if self.protocol is not None:
            self.protocol.dataReceived(frame)
