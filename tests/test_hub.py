"""The hub: latest reading, staleness on an injected clock, fan-out to subscribers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from balanca.hub import Hub
from balanca.reading import Reading


def reading(seq: int, weight: str | None = "12.50") -> Reading:
    return Reading(
        "default",
        seq,
        datetime(2025, 10, 30, 13, 38, 15, 835260, tzinfo=UTC),
        "serial",
        None if weight is None else Decimal(weight),
        "kg",
        True,
        "gross",
        Decimal("0.00"),
        "ok",
    )


class Recorder:
    def __init__(self) -> None:
        self.readings: list[tuple[Reading, bytes]] = []
        self.statuses: list[dict] = []

    def reading(self, r: Reading, payload: bytes) -> None:
        self.readings.append((r, payload))

    def status(self, payload: bytes) -> None:
        self.statuses.append(json.loads(payload))


class HubBehaviour(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.hub = Hub(self.clock, stale_after=3)
        self.recorder = Recorder()
        self.hub.subscribe(self.recorder)

    def test_a_reading_is_kept_encoded_once_and_fanned_out(self) -> None:
        self.hub.connected()
        r = reading(1)
        self.hub.publish(r)
        self.assertTrue(self.hub.is_live())
        self.assertIs(self.hub.latest, r)
        self.assertIs(self.recorder.readings[0][1], self.hub.latest_json)
        body = json.loads(self.hub.latest_json or b"")
        self.assertEqual(body["weight"], "12.50")
        self.assertEqual(body["time"], "2025-10-30T13:38:15.835260+00:00")

    def test_the_latest_reading_goes_stale_after_the_configured_silence(self) -> None:
        self.hub.connected()
        self.hub.publish(reading(1))
        self.clock.advance(2.9)
        self.assertTrue(self.hub.is_live())
        self.hub.publish(reading(2))
        self.clock.advance(2.9)
        self.assertTrue(self.hub.is_live())
        self.clock.advance(0.2)
        self.assertEqual(self.hub.state, "stale")
        self.assertEqual(self.recorder.statuses[-1]["state"], "stale")
        self.hub.publish(reading(3))
        self.assertEqual(self.hub.state, "live")

    def test_a_disconnect_makes_the_reading_never_live_again_until_a_new_one(self) -> None:
        self.hub.connected()
        self.hub.publish(reading(1))
        self.hub.disconnected("/dev/ttyUSB0: connection lost")
        self.assertFalse(self.hub.is_live())
        self.assertEqual(self.recorder.statuses[-1]["state"], "disconnected")
        self.hub.connected()
        self.assertFalse(self.hub.is_live())
        self.hub.publish(reading(2))
        self.assertTrue(self.hub.is_live())

    def test_each_state_change_is_announced_once(self) -> None:
        self.hub.connected()
        for seq in range(1, 5):
            self.hub.publish(reading(seq))
        self.hub.disconnected("gone")
        self.hub.disconnected("still gone")
        self.assertEqual([s["state"] for s in self.recorder.statuses], ["live", "disconnected"])

    def test_a_waiting_scale_goes_stale_when_no_frame_ever_comes(self) -> None:
        self.hub.connected()
        self.assertEqual(self.hub.state, "waiting")
        self.clock.advance(3.1)
        self.assertEqual(self.hub.state, "stale")

    def test_the_reading_json_has_the_design_shape(self) -> None:
        r = reading(7, None)
        body = r.to_dict()
        self.assertEqual(
            list(body),
            [
                "type",
                "scale",
                "seq",
                "weight",
                "unit",
                "stable",
                "mode",
                "tare",
                "status",
                "source",
                "time",
            ],
        )
        self.assertIsNone(body["weight"])
        self.assertEqual(Reading.to_dict(reading(1, "123400"))["weight"], "123400")
        self.assertEqual(Reading.to_dict(reading(1, "1.2E+3"))["weight"], "1200")
