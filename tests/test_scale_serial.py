"""Scale input through real pseudo-terminals and a loopback TCP indicator: every protocol's
readings reach /api/weight, broken streams are survived, unplug and replug are recovered."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from twisted.internet import defer, protocol, reactor, task
from twisted.internet.endpoints import TCP4ServerEndpoint

from balanca.reading import Measurement, Reply
from tests.base import ServiceTestCase, fetch
from tests.ptyscale import PtyScale

SAMPLES = {
    "toledo": Measurement(Decimal("12340"), "kg", True, "gross", Decimal("0")),
    "sics": Measurement(Decimal("100.00"), "g", True, "gross"),
    "ad": Measurement(Decimal("123.45"), "kg", True, "gross"),
    "prix": Measurement(Decimal("1.250"), "kg", True, "gross"),
    "mt8217": Measurement(Decimal("1.234"), "kg", True, "gross"),
    "lider": Measurement(Decimal("12.50"), "kg", True, "gross"),
    "wt1000": Measurement(Decimal("1.500"), "kg", True, "gross", Decimal("0.000")),
    "wt27r": Measurement(Decimal("12340"), "kg", True, "gross", Decimal("0")),
    "toledo-a": Measurement(Decimal("1.250"), "kg", True, "gross"),
    "cas": Measurement(Decimal("1.234"), "kg", True, "gross"),
    "condec": Measurement(Decimal("1234"), "kg", True, "gross"),
    "cardinal": Measurement(Decimal("1234"), "lb", True, "gross"),
    "epelsa": Measurement(Decimal("-0.450"), "kg", True, "gross"),
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
        return scale

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

    def test_lider_readings_reach_the_api(self) -> defer.Deferred[None]:
        return self.check_protocol("lider")

    def test_wt1000_readings_reach_the_api_by_polling_with_enq(self) -> defer.Deferred[None]:
        return self.check_protocol("wt1000")

    def test_wt27r_readings_reach_the_api_by_polling_with_enq(self) -> defer.Deferred[None]:
        return self.check_protocol("wt27r")

    def test_toledo_a_readings_reach_the_api_by_polling_with_enq(self) -> defer.Deferred[None]:
        return self.check_protocol("toledo-a")

    @defer.inlineCallbacks
    def test_cas_readings_reach_the_api_by_enq_ack_then_dc1(self) -> defer.Generator:
        scale = yield self.check_protocol("cas")
        self.assertIn(b"\x11", scale.requests)  # DC1: sent only after the scale's ACK

    def test_condec_readings_reach_the_api(self) -> defer.Deferred[None]:
        return self.check_protocol("condec")

    def test_cardinal_readings_reach_the_api(self) -> defer.Deferred[None]:
        return self.check_protocol("cardinal")

    def test_epelsa_readings_reach_the_api(self) -> defer.Deferred[None]:
        return self.check_protocol("epelsa")


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


class Unplug(SerialCase):
    @defer.inlineCallbacks
    def test_unplug_marks_the_reading_stale_and_replug_brings_it_back(self) -> defer.Generator:
        scale = self.pty("ad")
        yield self.start("--scale", scale.spec())
        sample = SAMPLES["ad"]
        feeding = self.feed(scale, sample, 1.5)
        yield self.wait_for(lambda r: r.code == 200)
        yield feeding
        scale.unplug()
        response = yield self.wait_for(lambda r: r.code == 503, timeout=5)
        self.assertIn("disconnected", response.json()["error"])
        health = yield fetch(self.url("/api/health"))
        self.assertEqual(health.code, 503)
        self.assertEqual(health.json()["scale"]["state"], "disconnected")
        yield sleep(2)
        scale.plug()
        feeding = self.feed(scale, Measurement(Decimal("222.20"), "kg", True, "gross"), 12)
        response = yield self.wait_for(
            lambda r: r.code == 200 and r.json()["weight"] == "222.20", timeout=12
        )
        self.assertTrue(response.json()["stable"])
        scale.unplug()
        yield feeding

    @defer.inlineCallbacks
    def test_a_device_missing_at_start_is_picked_up_when_it_appears(self) -> defer.Generator:
        scale = PtyScale("ad")
        self.addCleanup(scale.unplug)
        yield self.start("--scale", scale.spec())
        health = yield fetch(self.url("/api/health"))
        self.assertEqual(health.json()["scale"]["state"], "disconnected")
        yield sleep(1)
        scale.plug()
        feeding = self.feed(scale, SAMPLES["ad"], 12)
        yield self.wait_for(lambda r: r.code == 200, timeout=12)
        scale.unplug()
        yield feeding


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
        self.assertTrue(response.json()["ok"])
        self.assertIn(scale.wire.commands["tare"], scale.requests)

    @defer.inlineCallbacks
    def test_a_protocol_without_commands_answers_501(self) -> defer.Generator:
        scale = self.pty("toledo")
        yield self.start("--scale", scale.spec())
        feeding = self.feed(scale, SAMPLES["toledo"], 1)
        yield self.wait_for(lambda r: r.code == 200)
        response = yield fetch(self.url("/api/zero"), method=b"POST")
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
        from twisted.logger import formatEvent, globalLogPublisher

        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
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
        warnings = [formatEvent(e) for e in events if "port settings look wrong" in formatEvent(e)]
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
