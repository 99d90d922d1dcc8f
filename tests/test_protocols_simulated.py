"""Every protocol has a simulated platform: `--scale simulator:protocol=NAME` reads through the
same framer and decoder as a real indicator, polls (CAS's two steps included) answered."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from balanca.hub import Hub
from balanca.reading import Reading
from balanca.scale.protocols import PROTOCOLS
from balanca.scale.scale import Scale
from balanca.scale.simulator import SimulatedIndicator


class Recorder:
    """A hub subscriber that keeps the readings."""

    def __init__(self, readings: list[Reading]) -> None:
        self.readings = readings

    def reading(self, reading: Reading, payload: bytes) -> None:
        self.readings.append(reading)

    def status(self, payload: bytes) -> None:
        pass


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_a_simulated_scale_of_every_protocol_gives_readings_and_rejects_none(name: str) -> None:
    clock = Clock()
    hub = Hub(clock, 5)
    readings: list[Reading] = []
    hub.subscribe(Recorder(readings))
    scale = Scale(PROTOCOLS[name], hub, clock, source="simulator")
    SimulatedIndicator(scale.wire, clock, 10, seed=7).attach(scale.protocol())
    clock.pump([0.05] * 400)  # 20 s: a whole load cycle
    assert len(readings) >= 90 and not scale.rejected and not scale.counters.missing_replies
    assert any(r.stable and r.weight for r in readings)
    assert any(not r.stable for r in readings)
