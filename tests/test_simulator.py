"""The simulator behaves like an indicator, through the scale's command path on an injected
clock: zero only within the zero range, tare only on a stable weight, clear-tare always; every
reply carries its code, over a simulated wire (MT-SICS) or without one (Toledo)."""

from __future__ import annotations

from decimal import Decimal

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from balanca.hub import Hub
from balanca.reading import Reply
from balanca.scale.protocols import PROTOCOLS
from balanca.scale.scale import Scale
from balanca.scale.simulator import CYCLE, PLATFORMS, SimulatedIndicator


def phase_start(name: str, occurrence: int = 0) -> float:
    """Seconds into the load cycle where phase `name` starts (its `occurrence`-th time)."""
    t, seen = 0.0, 0
    for phase, seconds in CYCLE:
        if phase == name:
            if seen == occurrence:
                return t
            seen += 1
        t += seconds
    raise ValueError(name)


class IndicatorCommands(TestCase):
    def connect(self, protocol: str) -> None:
        self.clock = Clock()
        self.hub = Hub(self.clock, stale_after=3)
        self.scale = Scale(PROTOCOLS[protocol], self.hub, self.clock, source="simulator")
        self.indicator = SimulatedIndicator(PROTOCOLS[protocol], self.clock, rate=10, seed=7)
        self.indicator.attach(self.scale.protocol())
        self.addCleanup(self.indicator.loseConnection)

    def at(self, phase: str, into: float = 0.5, occurrence: int = 0) -> None:
        """Move the clock to `into` seconds into `phase` of the first cycle."""
        self.clock.advance(phase_start(phase, occurrence) + into - self.clock.seconds())

    def command(self, name: str) -> Reply:
        replies: list[Reply] = []
        self.scale.command(name).addCallback(replies.append)
        self.clock.advance(0.05)  # the simulated line's delay, where the protocol replies
        self.assertEqual(len(replies), 1)
        return replies[0]

    def check_indicator(self, protocol: str, in_motion: str) -> Reply:
        """Walk the commands through a load cycle; return the zero refusal."""
        self.connect(protocol)
        platform = PLATFORMS[protocol]
        self.at("loaded")  # a stable load far outside the zero range
        self.assertGreater(self.indicator.load.gross()[0], platform.zero_range)
        refused = self.command("zero")
        self.assertEqual((refused.ok, refused.code), (False, "zero_out_of_range"))
        self.assertEqual(self.indicator.load.zero, 0)  # nothing changed
        tared = self.command("tare")
        self.assertEqual((tared.ok, tared.code), (True, "tared"))
        self.assertGreater(self.indicator.load.tare, 0)
        self.at("unloading")  # in motion
        moving = self.command("tare")
        self.assertEqual((moving.ok, moving.code), (False, in_motion))
        cleared = self.command("clear-tare")  # clearing the tare needs no stable weight
        self.assertEqual((cleared.ok, cleared.code), (True, "tare_cleared"))
        self.assertEqual(self.indicator.load.tare, 0)
        self.at("empty", occurrence=1)
        zeroed = self.command("zero")  # an empty platform is within the range
        self.assertEqual((zeroed.ok, zeroed.code), (True, "zeroed"))
        return refused

    def test_a_toledo_simulator_acts_as_an_indicator_without_a_wire_command(self) -> None:
        refused = self.check_indicator("toledo", "scale_in_motion")
        self.assertEqual(PLATFORMS["toledo"].zero_range, Decimal("900"))  # 2 % of 45 t
        self.assertIn("the zero range is ±900 kg", refused.text)

    def test_a_sics_simulator_answers_over_its_wire_with_the_balances_words(self) -> None:
        refused = self.check_indicator("sics", "scale_refused")  # "T I": the wire says no more
        self.assertEqual(refused.text, "Z + (above the permitted range)")
