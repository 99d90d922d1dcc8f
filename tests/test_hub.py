"""The hub: latest reading, staleness on an injected clock, fan-out to subscribers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from twisted.internet import defer, reactor
from twisted.internet.task import Clock, deferLater
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from balanca.hub import Hub
from balanca.reading import Reading
from tests.base import ServiceTestCase, fetch


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
        self.assertEqual(
            [(s["state"], s["code"]) for s in self.recorder.statuses],
            [("waiting", "waiting"), ("live", "live"), ("disconnected", "connection_lost")],
        )

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


class Raising(Recorder):
    name = "raising"

    def reading(self, r: Reading, payload: bytes) -> None:
        raise RuntimeError("boom")

    def status(self, payload: bytes) -> None:
        raise KeyError("status")


def captured_log(case: TestCase) -> list[str]:
    """The text of every log event from now to the end of the test."""
    lines: list[str] = []

    def observe(event: LogEvent) -> None:
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    case.addCleanup(globalLogPublisher.removeObserver, observe)
    return lines


class StateCodesAndLog(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.hub = Hub(self.clock, stale_after=3)
        self.log = captured_log(self)

    def states(self) -> list[str]:
        return [line for line in self.log if line.startswith("scale state:")]

    def test_every_state_has_its_code_in_the_status(self) -> None:
        self.assertEqual(
            (self.hub.status()["state"], self.hub.status()["code"]), ("waiting", "connecting")
        )
        self.hub.connected()
        self.assertEqual(self.hub.status()["code"], "waiting")
        self.hub.publish(reading(1))
        self.assertEqual(self.hub.status()["code"], "live")
        self.clock.advance(3.1)
        self.assertEqual((self.hub.state, self.hub.code), ("stale", "no_frames"))
        self.hub.disconnected("device removed: /dev/ttyUSB0", "device_removed")
        self.assertEqual(
            (self.hub.status()["state"], self.hub.status()["code"], self.hub.status()["reason"]),
            ("disconnected", "device_removed", "device removed: /dev/ttyUSB0"),
        )

    def test_each_change_is_logged_once_in_the_contract_format(self) -> None:
        self.hub.connected()
        self.hub.publish(reading(1))
        self.hub.publish(reading(2))
        self.hub.disconnected("device removed: /dev/ttyUSB0", "device_removed")
        self.hub.disconnected("device removed: /dev/ttyUSB0", "device_removed")
        self.hub.disconnected("device not found: /dev/ttyUSB0", "device_not_found")
        self.assertEqual(
            self.states(),
            [
                "scale state: default waiting (connected, waiting for the first frame) [waiting]",
                "scale state: default live (readings arriving) [live]",
                "scale state: default disconnected (device removed: /dev/ttyUSB0) [device_removed]",
                "scale state: default disconnected (device not found: /dev/ttyUSB0) "
                "[device_not_found]",
            ],
        )

    def test_a_link_that_keeps_dropping_before_a_frame_is_logged_once_until_a_reading(
        self,
    ) -> None:
        statuses = Recorder()
        self.hub.subscribe(statuses)
        for _ in range(5):
            self.hub.connected()
            self.hub.disconnected("connection lost: tcp:gw:4001", "connection_lost")
        self.assertEqual(
            self.states(),
            [
                "scale state: default waiting (connected, waiting for the first frame) [waiting]",
                "scale state: default disconnected (connection lost: tcp:gw:4001) "
                "[connection_lost]",
            ],
        )
        self.assertEqual(len(statuses.statuses), 10)  # clients still hear every change
        self.hub.connected()
        self.hub.publish(reading(1))
        self.hub.disconnected("connection lost: tcp:gw:4001", "connection_lost")
        self.assertEqual(
            [line.split(" (")[0] for line in self.states()[2:]],
            ["scale state: default live", "scale state: default disconnected"],
        )


class SubscriberFailures(TestCase):
    def test_a_raising_subscriber_between_two_good_ones_starves_neither_and_is_counted(
        self,
    ) -> None:
        log = captured_log(self)
        hub = Hub(Clock(), stale_after=3)
        first, raising, last = Recorder(), Raising(), Recorder()
        for subscriber in (first, raising, last):
            hub.subscribe(subscriber)
        hub.connected()
        for seq in range(1, 4):
            hub.publish(reading(seq))  # raises nothing into the caller
        self.assertEqual([r.seq for r, _ in first.readings], [1, 2, 3])
        self.assertEqual([r.seq for r, _ in last.readings], [1, 2, 3])
        self.assertEqual(len(last.statuses), 2)
        self.assertEqual(hub.subscriber_failures["raising"], 5)  # 3 readings, 2 statuses
        failures = [line for line in log if "subscriber raising failed" in line]
        self.assertEqual(len(failures), 2, failures)  # once per kind: reading, status
        self.assertTrue(any("a reading (RuntimeError)" in line for line in failures), failures)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError, KeyError)), 2)


class SubscriberFailuresInService(ServiceTestCase):
    @defer.inlineCallbacks
    def test_a_failing_subscriber_is_counted_in_metrics_and_the_scale_reads_on(
        self,
    ) -> defer.Generator:
        from tests.test_metrics import Scrape

        yield self.start("--scale", "simulator:rate=20")
        hub = self.service.parts.hub
        hub.subscribe(Raising())
        before = hub.readings
        for _ in range(100):
            response = yield fetch(self.url("/metrics"))
            scrape = Scrape(response.body.decode())
            failures = scrape.value("balanca_subscriber_failures_total", subscriber="raising")
            if failures and hub.readings >= before + 5:
                break
            yield deferLater(reactor, 0.05, lambda: None)
        self.assertGreaterEqual(failures or 0, 5)
        self.assertEqual(self.service.parts.link.reconnects, 0)  # the connection never dropped
        self.assertEqual((yield fetch(self.url("/api/weight"))).code, 200)
        self.flushLoggedErrors(RuntimeError, KeyError)
