"""Scale input through real pseudo-terminals and a loopback TCP indicator: every protocol's
readings reach /api/weight, broken streams are survived, unplug and replug are recovered."""

from __future__ import annotations

import shutil
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import serial
from twisted.internet import defer, protocol, reactor, task
from twisted.internet.endpoints import TCP4ServerEndpoint

from balanca.reading import Measurement, Reply
from tests.base import ServiceTestCase, fetch
from tests.ptyscale import PtyScale
from tests.test_hub import captured_log

SAMPLES = {
    "toledo": Measurement(Decimal("12340"), "kg", True, "gross", Decimal("0")),
    "sics": Measurement(Decimal("100.00"), "g", True, "gross"),
    "ad": Measurement(Decimal("123.45"), "kg", True, "gross"),
    "prix": Measurement(Decimal("1.250"), "kg", True, "gross"),
    "mt8217": Measurement(Decimal("1.234"), "kg", True, "gross"),
}


def sleep(seconds: float) -> defer.Deferred[None]:
    return task.deferLater(reactor, seconds, lambda: None)


class SerialCase(ServiceTestCase):
    @defer.inlineCallbacks
    def weight(self) -> Any:
        response = yield fetch(self.url("/api/weight"))
        return response

    @defer.inlineCallbacks
    def wait_for(self, check: Any, timeout: float = 10) -> Any:
        """Poll /api/weight until `check(response)` holds."""
        deadline = reactor.seconds() + timeout
        while True:
            response = yield self.weight()
            if check(response):
                return response
            if reactor.seconds() > deadline:
                self.fail(f"gave up waiting; last answer {response.code} {response.body!r}")
            yield sleep(0.1)

    def pty(self, name: str) -> PtyScale:
        scale = PtyScale(name).plug()
        self.addCleanup(scale.unplug)
        return scale

    @defer.inlineCallbacks
    def feed(self, scale: PtyScale, m: Measurement, seconds: float) -> Any:
        """Play a continuous indicator for a while (polled ones answer by themselves)."""
        scale.measurement = m
        if scale.wire.poll is None:
            for _ in range(int(seconds / 0.05)):
                if scale.master is None:
                    return
                scale.send(m)
                yield sleep(0.05)
        else:
            yield sleep(seconds)


class EveryProtocol(SerialCase):
    @defer.inlineCallbacks
    def check_protocol(self, name: str) -> defer.Generator:
        scale = self.pty(name)
        yield self.start("--scale", scale.spec("poll=0.1"))
        sample = SAMPLES[name]
        feeding = self.feed(scale, sample, 3)
        response = yield self.wait_for(lambda r: r.code == 200)
        body = response.json()
        self.assertEqual(body["weight"], format(sample.weight, "f"))
        self.assertEqual(
            (body["unit"], body["stable"], body["source"]), (sample.unit, True, "serial")
        )
        yield feeding
        if scale.wire.poll is not None:
            self.assertIn(scale.wire.poll, scale.requests)

    def test_toledo_readings_reach_the_api(self) -> defer.Deferred[None]:
        return self.check_protocol("toledo")

    def test_sics_readings_reach_the_api_by_polling(self) -> defer.Deferred[None]:
        return self.check_protocol("sics")

    def test_ad_readings_reach_the_api(self) -> defer.Deferred[None]:
        return self.check_protocol("ad")

    def test_prix_readings_reach_the_api_by_polling_with_enq(self) -> defer.Deferred[None]:
        return self.check_protocol("prix")

    def test_mt8217_readings_reach_the_api_by_polling_with_w(self) -> defer.Deferred[None]:
        return self.check_protocol("mt8217")


class BrokenStreams(SerialCase):
    @defer.inlineCallbacks
    def test_split_frames_garbage_a_mid_frame_start_and_a_bad_checksum_are_survived(
        self,
    ) -> defer.Generator:
        scale = self.pty("toledo")
        yield self.start("--scale", scale.spec())
        good = scale.wire.encode(Measurement(Decimal("4560"), "kg", True, "gross", Decimal("0")))
        bad = good[:-1] + bytes([(good[-1] + 1) & 0x7F])
        scale.write(good[7:])  # starts mid-frame
        scale.write(b"\x00\xff noise \r\n")
        for chunk in (good[:3], good[3:10], good[10:]):
            scale.write(chunk)
            yield sleep(0.02)
        response = yield self.wait_for(lambda r: r.code == 200)
        self.assertEqual(response.json()["weight"], "4560")
        scale.write(bad)
        yield sleep(0.3)
        self.assertEqual(self.service.parts.scale.rejected["checksum"], 1)
        response = yield self.weight()
        self.assertEqual(response.json()["weight"], "4560")


class Arrivals:
    """A hub subscriber that notes when each reading arrived (reactor time)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def reading(self, reading: Any, payload: bytes) -> None:
        self.times.append(reactor.seconds())

    def status(self, payload: bytes) -> None:
        pass

    def first_after(self, moment: float) -> float | None:
        """Seconds from `moment` to the first reading after it."""
        return next((t - moment for t in self.times if t >= moment), None)


class Replug(SerialCase):
    """Unplug and replug on a real pty behind a symlink, as udev's /dev/serial/by-id links:
    the unplug is named, the replug is picked up by the directory watch within a second, not
    by the backoff."""

    BOUND = 2.0
    """Seconds from the device's appearance to its first reading (1 s promised, CI slack)."""

    @defer.inlineCallbacks
    def until(self, check: Any, timeout: float = 10) -> Any:
        """Wait until `check()` holds, looking every 20 ms."""
        deadline = reactor.seconds() + timeout
        while not check():
            if reactor.seconds() > deadline:
                self.fail(f"gave up waiting for {check}")
            yield sleep(0.02)

    def scale_status(self) -> dict[str, Any]:
        return self.service.parts.hub.status()

    def backoff_is_long(self) -> bool:
        """The link's next attempt is at least 2 s away: only the watch can be quick now."""
        wait = self.service.parts.link.next_retry
        return wait is not None and wait >= self.BOUND

    @defer.inlineCallbacks
    def replug_and_measure(self, scale: PtyScale, arrivals: Arrivals, weight: str) -> Any:
        """Wait for the backoff to grow, plug the device, and return seconds to a reading."""
        yield self.until(self.backoff_is_long, timeout=15)
        scale.plug()
        plugged = reactor.seconds()
        feeding = self.feed(scale, Measurement(Decimal(weight), "kg", True, "gross"), 3)
        yield self.until(lambda: arrivals.first_after(plugged) is not None, timeout=5)
        elapsed = arrivals.first_after(plugged)
        assert elapsed is not None
        print(f"\nreplug: first reading {elapsed * 1000:.0f} ms after the device appeared")
        self.assertLess(elapsed, self.BOUND)
        self.assertEqual(self.service.parts.hub.latest.weight, Decimal(weight))  # type: ignore[union-attr]
        scale.unplug()
        yield feeding

    @defer.inlineCallbacks
    def test_an_unplug_is_named_and_a_replug_reads_again_within_a_second(
        self,
    ) -> defer.Generator:
        log = captured_log(self)
        scale = self.pty("ad")
        yield self.start("--scale", scale.spec())
        arrivals = Arrivals()
        self.service.parts.hub.subscribe(arrivals)
        feeding = self.feed(scale, SAMPLES["ad"], 1)
        yield self.wait_for(lambda r: r.code == 200)
        yield feeding
        scale.unplug()
        yield self.until(lambda: self.scale_status()["state"] == "disconnected")
        status = self.scale_status()
        self.assertEqual(
            (status["code"], status["reason"]), ("device_removed", f"device removed: {scale.link}")
        )
        response = yield self.weight()
        self.assertEqual(response.code, 503)
        health = (yield fetch(self.url("/api/health"))).json()["scale"]
        self.assertEqual((health["state"], health["code"]), ("disconnected", "device_removed"))
        yield self.replug_and_measure(scale, arrivals, "222.20")
        self.assertEqual(self.scale_status()["code"], "device_removed")  # not "not found"
        states = [line for line in log if "scale state:" in line or "scale:" in line]
        self.assertEqual(
            [line.rsplit("[", 1)[-1] for line in states if line.startswith("scale state:")],
            ["waiting]", "live]", "device_removed]", "live]", "device_removed]"],
            states,
        )
        self.assertFalse([line for line in log if "retrying" in line or "cleanly" in line], log)

    @defer.inlineCallbacks
    def test_a_device_missing_at_start_is_read_within_a_second_of_appearing(
        self,
    ) -> defer.Generator:
        scale = PtyScale("ad")
        self.addCleanup(scale.unplug)
        yield self.start("--scale", scale.spec())
        arrivals = Arrivals()
        self.service.parts.hub.subscribe(arrivals)
        status = self.scale_status()
        self.assertEqual(
            (status["state"], status["code"], status["reason"]),
            ("disconnected", "device_not_found", f"device not found: {scale.link}"),
        )
        yield self.replug_and_measure(scale, arrivals, "12.00")

    @defer.inlineCallbacks
    def test_a_device_whose_directory_appears_later_and_goes_again_is_read_quickly(
        self,
    ) -> defer.Generator:
        root = Path(tempfile.mkdtemp(prefix="balanca-dev-"))
        by_id = root / "serial" / "by-id"
        scale = PtyScale("ad", link=by_id / "usb-scale-if00")
        self.addCleanup(scale.unplug)
        yield self.start("--scale", scale.spec())
        arrivals = Arrivals()
        self.service.parts.hub.subscribe(arrivals)
        self.assertEqual(self.scale_status()["code"], "device_not_found")
        yield self.replug_and_measure(scale, arrivals, "1.00")
        yield self.until(lambda: self.scale_status()["code"] == "device_removed")
        shutil.rmtree(root / "serial")  # udev removes /dev/serial when the last adapter goes
        yield self.replug_and_measure(scale, arrivals, "2.00")


class ExclusiveOpen(SerialCase):
    @defer.inlineCallbacks
    def test_a_port_held_by_another_process_is_named_busy_and_taken_when_freed(
        self,
    ) -> defer.Generator:
        scale = self.pty("ad")
        other = serial.Serial(str(scale.link), exclusive=True)  # another balanca, say
        yield self.start("--scale", scale.spec())
        status = self.service.parts.hub.status()
        self.assertEqual(
            (status["state"], status["code"], status["reason"]),
            ("disconnected", "device_busy", f"device busy: held by another process: {scale.link}"),
        )
        other.close()
        feeding = self.feed(scale, SAMPLES["ad"], 6)
        yield self.wait_for(lambda r: r.code == 200, timeout=6)  # by backoff: a close is no event
        yield feeding

    @defer.inlineCallbacks
    def test_balanca_holds_its_port_so_a_second_opener_is_refused(self) -> defer.Generator:
        scale = self.pty("ad")
        yield self.start("--scale", scale.spec())
        feeding = self.feed(scale, SAMPLES["ad"], 1)
        yield self.wait_for(lambda r: r.code == 200)
        yield feeding
        with self.assertRaises(serial.SerialException) as caught:
            serial.Serial(str(scale.link), exclusive=True)
        self.assertIn("lock", str(caught.exception))


class Commands(SerialCase):
    @defer.inlineCallbacks
    def test_tare_goes_to_a_sics_scale_and_its_reply_comes_back(self) -> defer.Generator:
        scale = self.pty("sics")
        scale.measurement = SAMPLES["sics"]
        scale.replies["tare"] = Reply("tare", True, "T S 100.00 g", Decimal("100.00"))
        yield self.start("--scale", scale.spec())
        yield self.wait_for(lambda r: r.code == 200)
        response = yield fetch(self.url("/api/tare"), method=b"POST")
        self.assertEqual(response.code, 200, response.body)
        self.assertEqual((response.json()["ok"], response.json()["code"]), (True, "tared"))
        self.assertIn(scale.wire.commands["tare"], scale.requests)

    @defer.inlineCallbacks
    def test_sics_refusals_answer_the_command_at_once_with_the_balances_reason(
        self,
    ) -> defer.Generator:
        scale = self.pty("sics")
        scale.measurement = SAMPLES["sics"]
        yield self.start("--scale", scale.spec())
        yield self.wait_for(lambda r: r.code == 200)
        cases = [
            ("tare", b"EL\r\n", "scale_refused", "EL (logical error"),
            ("zero", b"ES\r\n", "scale_refused", "ES (syntax error"),
            ("tare", b"ET\r\n", "scale_refused", "ET (transmission error"),
            ("tare", b"T I\r\n", "scale_refused", "T I (not executable now)"),
            ("zero", b"Z I\r\n", "scale_refused", "Z I (not executable now)"),
            ("tare", b"T +\r\n", "scale_refused", "T + (above"),
            ("zero", b"Z +\r\n", "zero_out_of_range", "Z + (above the permitted range)"),
            ("zero", b"Z -\r\n", "zero_out_of_range", "Z - (below the permitted range)"),
        ]
        for command, answer, code, words in cases:
            scale.answers = {command: answer}
            asked = reactor.seconds()
            response = yield fetch(self.url(f"/api/{command}"), method=b"POST")
            elapsed = reactor.seconds() - asked
            self.assertEqual(response.code, 409, (answer, response.body))
            body = response.json()
            self.assertEqual((body["ok"], body["code"]), (False, code), answer)
            self.assertTrue(body["detail"].startswith(words), (answer, body))
            self.assertLess(elapsed, 1.0, answer)  # answered, not timed out after 2 s

    @defer.inlineCallbacks
    def test_clear_tare_goes_to_a_sics_scale_as_tac(self) -> defer.Generator:
        scale = self.pty("sics")
        scale.measurement = SAMPLES["sics"]
        scale.replies["clear-tare"] = Reply("clear-tare", True, "")
        yield self.start("--scale", scale.spec())
        yield self.wait_for(lambda r: r.code == 200)
        response = yield fetch(self.url("/api/clear-tare"), method=b"POST")
        self.assertEqual(response.code, 200, response.body)
        self.assertEqual(
            (response.json()["command"], response.json()["code"]), ("clear-tare", "tare_cleared")
        )
        self.assertIn(b"TAC\r\n", scale.requests)

    @defer.inlineCallbacks
    def test_a_protocol_without_commands_answers_501(self) -> defer.Generator:
        scale = self.pty("toledo")
        yield self.start("--scale", scale.spec())
        feeding = self.feed(scale, SAMPLES["toledo"], 1)
        yield self.wait_for(lambda r: r.code == 200)
        for command in ("zero", "clear-tare"):
            response = yield fetch(self.url(f"/api/{command}"), method=b"POST")
            self.assertEqual(response.code, 501)
            self.assertEqual(response.json()["error"], "not supported")
        yield feeding

    @defer.inlineCallbacks
    def test_commands_answer_503_while_the_scale_is_disconnected(self) -> defer.Generator:
        scale = PtyScale("sics")
        yield self.start("--scale", scale.spec())
        response = yield fetch(self.url("/api/tare"), method=b"POST")
        self.assertEqual(response.code, 503)


class Indicator(protocol.Protocol):
    """A network indicator: streams A&D frames while connected."""

    def connectionMade(self) -> None:
        from balanca.scale.protocols import PROTOCOLS

        frame = PROTOCOLS["ad"].encode(SAMPLES["ad"])
        self.sender = task.LoopingCall(self.transport.write, frame)
        self.sender.start(0.05)
        self.factory.connections.append(self)  # type: ignore[attr-defined]

    def connectionLost(self, reason: Any) -> None:
        if self.sender.running:
            self.sender.stop()


class OverTCP(SerialCase):
    @defer.inlineCallbacks
    def test_an_indicator_behind_a_serial_to_ethernet_converter_is_read_and_reconnected(
        self,
    ) -> defer.Generator:
        factory = protocol.Factory.forProtocol(Indicator)
        factory.connections = []  # type: ignore[attr-defined]
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        yield self.start("--scale", f"tcp:127.0.0.1:{port.getHost().port}:protocol=ad")
        response = yield self.wait_for(lambda r: r.code == 200)
        self.assertEqual((response.json()["weight"], response.json()["source"]), ("123.45", "tcp"))
        factory.connections[0].transport.loseConnection()  # type: ignore[attr-defined]
        yield self.wait_for(lambda r: r.code == 503, timeout=5)
        yield self.wait_for(lambda r: r.code == 200, timeout=10)
        self.assertEqual(self.service.parts.link.reconnects, 1)


class LineFaults(SerialCase):
    @defer.inlineCallbacks
    def test_a_7e1_scale_read_as_8n1_is_decoded_and_the_port_settings_are_questioned_once(
        self,
    ) -> defer.Generator:
        log = captured_log(self)
        scale = self.pty("toledo")
        yield self.start("--scale", scale.spec("bytesize=8", "parity=N"))
        frame = scale.wire.encode(SAMPLES["toledo"])
        with_parity = bytes(b | 0x80 if bin(b).count("1") % 2 else b for b in frame)  # even parity
        self.assertNotEqual(with_parity, frame)
        for _ in range(10):
            scale.write(with_parity)
            yield sleep(0.05)
        response = yield self.wait_for(lambda r: r.code == 200)
        self.assertEqual(response.json()["weight"], "12340")
        warnings = [line for line in log if "port settings look wrong" in line]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertGreater(self.service.parts.scale.counters.high_bit_bytes, 0)

    @defer.inlineCallbacks
    def test_a_polled_scale_that_stops_answering_is_counted_and_never_read_as_zero(
        self,
    ) -> defer.Generator:
        scale = self.pty("prix")
        scale.measurement = SAMPLES["prix"]
        yield self.start("--scale", scale.spec("poll=0.1"), "--stale-after", "1")
        yield self.wait_for(lambda r: r.code == 200)
        scale.measurement = None  # the scale hears the polls and says nothing
        response = yield self.wait_for(lambda r: r.code == 503, timeout=5)
        self.assertEqual(response.json()["last"]["weight"], "1.250")
        yield sleep(1.5)
        self.assertGreaterEqual(self.service.parts.scale.counters.missing_replies, 5)
        self.assertEqual((yield self.weight()).code, 503)

    @defer.inlineCallbacks
    def test_the_software_stability_filter_decides_when_asked_for(self) -> defer.Generator:
        scale = self.pty("ad")
        yield self.start("--scale", scale.spec("stable=3", "tolerance=0.05"))
        stable = [False]
        for weight in ("100.00", "100.50", "100.45", "100.48", "100.47"):
            scale.send(Measurement(Decimal(weight), "kg", True, "gross"))  # frames all say ST
            response = yield self.wait_for(
                lambda r, w=weight: r.code == 200 and r.json()["weight"] == w
            )
            stable.append(response.json()["stable"])
        self.assertEqual(stable[1:], [False, False, False, True, True])
