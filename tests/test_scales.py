"""Several scales in one service on real ptys: each reaches its own paths, and one that is
unplugged, floods garbage at line speed or stops answering polls never gaps or delays the
others (a WebSocket client that follows another sees its `seq` run on, on time)."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from autobahn.twisted.websocket import connectWS
from twisted.internet import defer, reactor, task

from balanca.reading import Measurement
from tests.base import fetch
from tests.ptyscale import PtyScale
from tests.test_scale_serial import SerialCase
from tests.wsclient import Collector, CollectorFactory


class Timed(Collector):
    """A WebSocket client that notes when each message arrived."""

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        super().onMessage(payload, isBinary)
        self.messages[-1]["arrived"] = reactor.seconds()


def follow(url: str) -> defer.Deferred[Timed]:
    """Open a timed WebSocket client on `url`."""
    factory = CollectorFactory(url)
    factory.protocol = Timed
    factory.setProtocolOptions(autoPingInterval=0)
    connectWS(factory)
    return factory.ready  # type: ignore[return-value]


class Feeder:
    """Plays a continuous indicator on a pty: frame k carries the weight k, and when it was
    written is noted, so a client can tell each reading's latency."""

    def __init__(self, scale: PtyScale, rate: float = 20) -> None:
        self.scale, self.sent_at, self.k = scale, dict[int, float](), 0
        self.loop = task.LoopingCall(self.send)
        self.loop.start(1 / rate)

    def send(self) -> None:
        if self.scale.master is None:
            return
        self.k += 1
        self.sent_at[self.k] = reactor.seconds()
        self.scale.send(Measurement(Decimal(self.k), "kg", True, "gross", Decimal(0)))

    def stop(self) -> None:
        if self.loop.running:
            self.loop.stop()


def wait_until(check: Callable[[], Any], timeout: float = 15) -> defer.Deferred[Any]:
    """Fire once `check()` is true (looked at every 20 ms); fail after `timeout` seconds."""

    @defer.inlineCallbacks
    def waiting() -> Any:
        deadline = reactor.seconds() + timeout
        while not (result := check()):
            if reactor.seconds() > deadline:
                raise AssertionError(f"condition not met within {timeout} s: {check}")
            yield task.deferLater(reactor, 0.02, lambda: None)
        return result

    return waiting()


class ScalesOnPtys(SerialCase):
    timeout = 90

    def feeder(self, scale: PtyScale) -> Feeder:
        feeder = Feeder(scale)
        self.addCleanup(feeder.stop)
        return feeder

    @defer.inlineCallbacks
    def scales(self) -> Any:
        response = yield fetch(self.url("/api/scales"))
        return {s["id"]: s for s in response.json()["scales"]}

    @defer.inlineCallbacks
    def until_state(self, scale_id: str, state: str, timeout: float = 15) -> Any:
        deadline = reactor.seconds() + timeout
        while True:
            scales = yield self.scales()
            if scales[scale_id]["state"] == state:
                return scales[scale_id]
            if reactor.seconds() > deadline:
                self.fail(f"{scale_id} never {state}: {scales[scale_id]}")
            yield task.deferLater(reactor, 0.05, lambda: None)

    def followed(self, client: Timed, scale_id: str, feeder: Feeder) -> list[tuple[int, float]]:
        """(seq, latency) of each reading of `scale_id` the client got."""
        return [
            (m["seq"], m["arrived"] - feeder.sent_at[int(Decimal(m["weight"]))])
            for m in client.readings()
            if m["scale"] == scale_id
        ]

    def assert_no_gap(self, seqs: list[int]) -> None:
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))

    @defer.inlineCallbacks
    def check_several(self, count: int) -> defer.Generator:
        ptys = [self.pty("toledo") for _ in range(count)]
        ids = [f"s{i}" for i in range(count)]
        args = [a for i, p in zip(ids, ptys, strict=True) for a in ("--scale", f"{i}={p.spec()}")]
        yield self.start(*args)
        for i, p in enumerate(ptys):
            p.measurement = Measurement(Decimal(100 * (i + 1)), "kg", True, "gross", Decimal(0))
        loop = task.LoopingCall(lambda: [p.send(p.measurement) for p in ptys])  # type: ignore[arg-type]
        loop.start(0.05)
        self.addCleanup(loop.stop)
        for i, scale_id in enumerate(ids):
            yield self.until_state(scale_id, "live")
            response = yield fetch(self.url(f"/api/scales/{scale_id}/weight"))
            self.assertEqual((response.code, response.json()["scale"]), (200, scale_id))
            self.assertEqual(response.json()["weight"], str(100 * (i + 1)))
        scales = yield self.scales()
        self.assertEqual(list(scales), ids)
        self.assertEqual({s["source"] for s in scales.values()}, {"serial"})
        response = yield fetch(self.url("/api/weight"))
        self.assertEqual((response.code, response.json()["code"]), (400, "scale_required"))
        self.assertIn(", ".join(ids), response.json()["detail"])

    def test_two_scales_on_ptys_each_answer_at_their_own_paths(self) -> defer.Deferred[None]:
        return self.check_several(2)

    def test_four_scales_on_ptys_each_answer_at_their_own_paths(self) -> defer.Deferred[None]:
        return self.check_several(4)

    @defer.inlineCallbacks
    def test_unplugging_one_scale_neither_gaps_nor_delays_another_and_a_replug_brings_it_back(
        self,
    ) -> defer.Generator:
        a, b = self.pty("toledo"), self.pty("toledo")
        yield self.start("--scale", f"a={a.spec()}", "--scale", f"b={b.spec()}")
        feed_a, feed_b = self.feeder(a), self.feeder(b)
        client = yield follow(self.url("/ws?scale=b").replace("http", "ws", 1))
        self.addCleanup(client.transport.loseConnection)
        yield wait_until(lambda: len(self.followed(client, "b", feed_b)) >= 40)
        before = self.followed(client, "b", feed_b)
        a.unplug()
        unplugged = yield self.until_state("a", "disconnected")
        self.assertEqual(unplugged["code"], "device_removed")
        yield wait_until(lambda: len(self.followed(client, "b", feed_b)) >= len(before) + 40)
        during = self.followed(client, "b", feed_b)[len(before) :]
        a.plug()
        yield self.until_state("a", "live")
        yield wait_until(lambda: len(self.followed(client, "b", feed_b)) >= len(before) + 80)
        feed_a.stop()
        every = self.followed(client, "b", feed_b)
        self.assert_no_gap([seq for seq, _ in every])
        self.assertEqual({m["scale"] for m in client.messages}, {"b"})  # it follows b only
        calm = statistics.median(latency for _, latency in before)
        unplugged_latency = statistics.median(latency for _, latency in during)
        self.assertLess(unplugged_latency, calm + 0.05, (calm, unplugged_latency))
        self.assertLess(max(latency for _, latency in during), 0.5)

    @defer.inlineCallbacks
    def test_a_scale_flooding_garbage_at_9600_baud_does_not_gap_another(self) -> defer.Generator:
        a, b = self.pty("toledo"), self.pty("toledo")
        yield self.start("--scale", f"a={a.spec()}", "--scale", f"b={b.spec()}")
        feed_b = self.feeder(b)
        client = yield follow(self.url("/ws").replace("http", "ws", 1))
        self.addCleanup(client.transport.loseConnection)
        yield wait_until(lambda: len(self.followed(client, "b", feed_b)) >= 20)
        before = len(self.followed(client, "b", feed_b))
        flood = task.LoopingCall(lambda: a.write(os.urandom(48)))  # 960 bytes/s: 9600 8N1
        flood.start(0.05)
        self.addCleanup(lambda: flood.running and flood.stop())
        yield wait_until(lambda: len(self.followed(client, "b", feed_b)) >= before + 60)
        flood.stop()
        every = self.followed(client, "b", feed_b)
        self.assert_no_gap([seq for seq, _ in every])
        calm = statistics.median(latency for _, latency in every[:before])
        flooded = statistics.median(latency for _, latency in every[before:])
        self.assertLess(flooded, calm + 0.05, (calm, flooded))
        scrape = (yield fetch(self.url("/metrics"))).body.decode()
        garbage = [
            line for line in scrape.splitlines()
            if line.startswith('balanca_framer_garbage_bytes_total{scale="a"}')
        ]  # fmt: skip
        self.assertGreater(float(garbage[0].split()[-1]), 1000)
        self.assertIn('balanca_framer_garbage_bytes_total{scale="b"} 0.0', scrape)

    @defer.inlineCallbacks
    def test_a_polled_scale_that_stops_answering_goes_stale_alone_and_comes_back(
        self,
    ) -> defer.Generator:
        a, b = self.pty("sics"), self.pty("toledo")
        a.measurement = Measurement(Decimal("10.00"), "g", True, "gross")
        yield self.start(
            "--stale-after", "1", "--scale", f"a={a.spec('poll=0.1')}", "--scale", f"b={b.spec()}"
        )
        feed_b = self.feeder(b)
        client = yield follow(self.url("/ws?scale=b&scale=a").replace("http", "ws", 1))
        self.addCleanup(client.transport.loseConnection)
        yield self.until_state("a", "live")
        yield wait_until(lambda: len(self.followed(client, "b", feed_b)) >= 10)
        a.measurement = None  # the indicator stops answering polls
        stale = yield self.until_state("a", "stale")
        self.assertEqual(stale["code"], "no_frames")
        self.assertEqual((yield self.scales())["b"]["state"], "live")
        health = yield fetch(self.url("/api/health"))
        self.assertEqual(health.code, 503)
        a.measurement = Measurement(Decimal("12.00"), "g", True, "gross")
        yield self.until_state("a", "live")
        yield wait_until(lambda: len(self.followed(client, "b", feed_b)) >= 60)
        self.assert_no_gap([seq for seq, _ in self.followed(client, "b", feed_b)])
        states = [
            m["state"] for m in client.messages if m["type"] == "status" and m["scale"] == "a"
        ]
        self.assertIn("stale", states)
        scrape = (yield fetch(self.url("/metrics"))).body.decode()
        self.assertNotIn('balanca_scale_missing_replies_total{scale="a"} 0.0', scrape)
        self.assertIn('balanca_scale_missing_replies_total{scale="b"} 0.0', scrape)
