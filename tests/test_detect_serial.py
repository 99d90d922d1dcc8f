"""`protocol=auto` through the whole service on real pseudo-terminals: every family is
detected (polled ones answer the probes, CAS with its ACK step) and then read like the named
protocol; an ambiguous and an unknown stream are reported as such; the detector never writes a
never-send byte; a replug detects again."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.logger import formatEvent, globalLogPublisher

from balanca.reading import Measurement
from balanca.scale.detect import NEVER_SEND, WATCH_LINES, WATCH_SECONDS
from balanca.scale.protocols import PROTOCOLS
from tests.base import fetch
from tests.ptyscale import PtyScale
from tests.test_scale_serial import SAMPLES, Indicator, SerialCase, sleep


class AutoCase(SerialCase):
    @defer.inlineCallbacks
    def health(self) -> Any:
        response = yield fetch(self.url("/api/health"))
        return response.json()

    @defer.inlineCallbacks
    def wait_health(self, check: Any, timeout: float = 30) -> Any:
        """Poll /api/health until `check(body)` holds; the body."""
        response = yield self.wait_for(lambda r: check(r.json()), timeout, "/api/health")
        return response.json()

    @defer.inlineCallbacks
    def stream(self, scale: PtyScale, frame: bytes, seconds: float) -> Any:
        """Write `frame` every 50 ms for a while (a continuous indicator)."""
        for _ in range(int(seconds / 0.05)):
            if scale.master is None:
                return
            scale.write(frame)
            yield sleep(0.05)

    @defer.inlineCallbacks
    def check_detects(self, name: str, *options: str) -> defer.Generator:
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        scale = self.pty(name)
        scale.measurement = SAMPLES[name]
        yield self.start("--scale", scale.spec(*options, protocol="auto"))
        feeding = None
        if scale.wire.poll is None:
            feeding = self.stream(scale, scale.wire.encode(SAMPLES[name]), 25)
        response = yield self.wait_for(lambda r: r.code == 200, timeout=25)
        sample = SAMPLES[name]
        self.assertEqual(response.json()["weight"], format(sample.weight, "f"))
        body = yield self.health()
        chosen = body["scale"]["protocol"]
        self.assertEqual((chosen["protocol"], chosen["state"]), (name, "detected"))
        self.assertIn(chosen["line"], ("9600 8N1", "9600 7E1"))
        self.assertIn("3 frames", chosen["detail"])
        metrics = yield fetch(self.url("/metrics"))
        self.assertIn(
            f'balanca_scale_protocol_info{{line="{chosen["line"]}",protocol="{name}",'
            'scale="default",state="detected"} 1.0',
            metrics.body.decode(),
        )
        self.assertIs(self.service.parts.scale.wire, PROTOCOLS[name])
        detected = [formatEvent(e) for e in events if "detected protocol" in formatEvent(e)]
        self.assertEqual(
            detected, [f"scale: detected protocol {name} at {chosen['line']} ({chosen['detail']})"]
        )
        if feeding is not None:
            scale.unplug()
            yield feeding


def _detects(name: str) -> Any:
    def test(self: AutoCase) -> defer.Deferred[None]:
        return self.check_detects(name)

    test.__name__ = f"test_{name.replace('-', '_')}_is_detected_and_then_read"
    return test


class EveryFamily(AutoCase):
    locals().update({_detects(n).__name__: _detects(n) for n in sorted(PROTOCOLS)})


class Reports(AutoCase):
    timeout = 90

    @defer.inlineCallbacks
    def refused(self, stream: bytes, words: str) -> Any:
        """Stream `stream` at a restricted line until health's reason holds `words`: no
        reading is served meanwhile. Fires with that health body."""
        scale = self.pty("lider")
        yield self.start("--scale", scale.spec("baudrate=9600", protocol="auto"))
        feeding = self.stream(scale, stream, 8)
        body = yield self.wait_health(lambda b: words in b["scale"]["reason"])
        self.assertEqual(body["scale"]["state"], "disconnected")
        self.assertEqual((yield self.weight()).code, 503)
        scale.unplug()
        yield feeding
        return body

    @defer.inlineCallbacks
    def test_two_families_in_one_stream_are_reported_ambiguous_and_no_reading_is_served(
        self,
    ) -> defer.Generator:
        both = PROTOCOLS["lider"].encode(SAMPLES["lider"]) + PROTOCOLS["cardinal"].encode(
            SAMPLES["cardinal"]
        )
        yield self.refused(both, "ambiguous: cardinal or lider; set protocol=")

    @defer.inlineCallbacks
    def test_an_unknown_stream_is_reported_with_its_byte_count_and_a_hex_sample(
        self,
    ) -> defer.Generator:
        body = yield self.refused(b"hello, world\r\n", "no protocol recognised")
        self.assertRegex(
            body["scale"]["reason"],
            r"no protocol recognised \(\d+ bytes seen: 68 65 6c 6c 6f 2c",
        )

    @defer.inlineCallbacks
    def test_a_whole_detection_writes_only_the_safe_probes(self) -> defer.Generator:
        scale = self.pty("prix")  # polled: a thread reads (and records) all the host writes
        scale.measurement = None  # and never answers
        yield self.start("--scale", scale.spec(protocol="auto"))
        yield sleep(WATCH_SECONDS * len(WATCH_LINES) - 1)
        self.assertEqual(bytes(scale.received), b"")  # listen before probing
        body = yield self.wait_health(lambda b: "no protocol recognised" in b["scale"]["reason"])
        self.assertIn("(0 bytes seen: nothing)", body["scale"]["reason"])
        written = bytes(scale.received)
        self.assertEqual(written[: len(b"\x05SI\r\nW")], b"\x05SI\r\nW")
        for never in NEVER_SEND:
            self.assertNotIn(never, written)

    @defer.inlineCallbacks
    def test_a_replug_detects_again(self) -> defer.Generator:
        scale = self.pty("epelsa")
        yield self.start("--scale", scale.spec(protocol="auto"))
        feeding = self.stream(scale, PROTOCOLS["epelsa"].encode(SAMPLES["epelsa"]), 2)
        yield self.wait_for(lambda r: r.code == 200)
        yield feeding
        scale.unplug()
        yield self.wait_for(lambda r: r.code == 503, timeout=5)
        scale.plug()
        condec = Measurement(SAMPLES["condec"].weight, "kg")
        feeding = self.stream(scale, PROTOCOLS["condec"].encode(condec), 15)
        yield self.wait_health(lambda b: b["scale"]["protocol"]["protocol"] == "condec")
        response = yield self.wait_for(lambda r: r.code == 200 and r.json()["weight"] == "1234")
        self.assertTrue(response.json()["stable"])
        scale.unplug()
        yield feeding

    @defer.inlineCallbacks
    def test_frames_rejected_for_seconds_after_detection_make_it_detect_again(
        self,
    ) -> defer.Generator:
        scale = self.pty("condec")
        yield self.start("--scale", scale.spec(protocol="auto"))
        condec = Measurement(SAMPLES["condec"].weight, "kg")
        yield self.stream(scale, PROTOCOLS["condec"].encode(condec), 1)
        body = yield self.health()
        self.assertEqual(body["scale"]["protocol"]["protocol"], "condec")
        feeding = self.stream(scale, PROTOCOLS["epelsa"].encode(SAMPLES["epelsa"]), 15)
        yield self.wait_health(lambda b: b["scale"]["protocol"]["protocol"] == "epelsa", 15)
        self.assertGreater(self.service.parts.scale.rejected["malformed"], 0)
        yield self.wait_for(lambda r: r.code == 200 and r.json()["weight"] == "-0.450")
        self.assertEqual(self.service.parts.link.reconnects, 1)
        scale.unplug()
        yield feeding


class OverTCP(AutoCase):
    @defer.inlineCallbacks
    def test_an_indicator_over_tcp_is_detected_without_line_settings(self) -> defer.Generator:
        factory = protocol.Factory.forProtocol(Indicator)
        factory.connections = []  # type: ignore[attr-defined]
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        yield self.start("--scale", f"tcp:127.0.0.1:{port.getHost().port}:protocol=auto")
        response = yield self.wait_for(lambda r: r.code == 200)
        self.assertEqual((response.json()["weight"], response.json()["source"]), ("123.45", "tcp"))
        body = yield self.health()
        self.assertEqual(
            {k: body["scale"]["protocol"][k] for k in ("protocol", "state", "line")},
            {"protocol": "ad", "state": "detected", "line": "TCP"},
        )
