"""The live WebSocket stream on real loopback sockets: first reading at once, every reading in
order, keepalive drops, origins, tokens, and hostile frames."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.logger import formatEvent, globalLogPublisher

from tests.base import ServiceTestCase
from tests.hostile import Target, open_websocket
from tests.wsclient import connect, connect_silent


@defer.inlineCallbacks
def until(condition: Callable[[], bool], timeout: float, what: str) -> Any:
    """Wait for `condition`, looking every 20 ms; fail with `what` after `timeout` s."""
    deadline = reactor.seconds() + timeout
    while not condition():
        if reactor.seconds() > deadline:
            raise AssertionError(what)
        yield task.deferLater(reactor, 0.02, lambda: None)


def seqs(client) -> list[int]:
    return [m["seq"] for m in client.readings()]


class LiveCase(ServiceTestCase):
    def ws_url(self, host: str = "127.0.0.1", path: str = "/ws", index: int = 0) -> str:
        return self.url(path, host, index).replace("http://", "ws://")


class LiveStream(LiveCase):
    @defer.inlineCallbacks
    def test_clients_on_both_families_get_the_latest_reading_then_every_reading_in_order(
        self,
    ) -> defer.Generator:
        yield self.start("--scale", "simulator:rate=20", "--ws", "dualstack:0")
        yield task.deferLater(reactor, 0.5, lambda: None)
        clients = []
        for host in ("127.0.0.1", "::1"):
            clients.append((yield connect(self.ws_url(host))))
            clients.append((yield connect(self.ws_url(host, path="/any/path", index=1))))
        for client in clients:
            self.assertEqual(client.messages[0]["type"], "status")
            yield client.until(1)
            first = client.readings()[0]["seq"]
            self.assertGreater(first, 1, "the latest reading comes at once, not the next one")
            yield client.until(41)
            got = seqs(client)
            self.assertEqual(got, list(range(first, first + len(got))), "no gaps at 20/s")
            self.assertEqual(client.readings()[0]["source"], "simulator")
        health = yield self.fetch_json("/api/health")
        self.assertEqual(health["clients"], 4)
        for client in clients:
            client.sendClose()
            yield client.closed

    @defer.inlineCallbacks
    def fetch_json(self, path: str) -> defer.Generator:
        from tests.base import fetch

        response = yield fetch(self.url(path))
        return response.json()

    @defer.inlineCallbacks
    def test_a_peer_that_never_answers_pings_is_dropped_within_interval_plus_timeout(
        self,
    ) -> defer.Generator:
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        yield self.start("--ping-interval", "1", "--ping-timeout", "1")
        live = self.service.parts.live
        silent = yield connect_silent("::1", self.port())
        started = reactor.seconds()
        while live.keepalive_drops == 0 and reactor.seconds() - started < 10:
            yield task.deferLater(reactor, 0.05, lambda: None)
        elapsed = reactor.seconds() - started
        self.assertEqual(live.keepalive_drops, 1)
        self.assertLess(elapsed, 1 + 1 + 1.0)
        self.assertGreater(elapsed, 0.9, "a pong gets the whole timeout")
        self.assertEqual(len(live.clients), 0)
        drops = [formatEvent(e) for e in events if "did not answer a ping" in formatEvent(e)]
        self.assertEqual(len(drops), 1)
        self.assertRegex(drops[0], r"^WebSocket keepalive: \[::1\]:\d+ did not answer")
        self.assertTrue(GREP.search(drops[0]))
        silent.transport.abortConnection()

    @defer.inlineCallbacks
    def test_browsers_from_other_origins_are_refused_and_the_page_origin_is_accepted(
        self,
    ) -> defer.Generator:
        yield self.start("--allowed-origin", "https://*.example.com")
        own = f"http://127.0.0.1:{self.port()}"
        ok = yield connect(self.ws_url(), origin=own)
        ok.sendClose()
        allowed = yield connect(self.ws_url(), origin="https://kiosk.example.com")
        allowed.sendClose()
        no_origin = yield connect(self.ws_url())
        no_origin.sendClose()
        with self.assertRaises(ConnectionError):
            yield connect(self.ws_url(), origin="http://evil.test")

    @defer.inlineCallbacks
    def test_a_read_token_guards_the_stream(self) -> defer.Generator:
        import tempfile
        from pathlib import Path

        folder = Path(tempfile.mkdtemp())
        (folder / "read-token").write_text("letmein\n")
        (folder / "token").write_text("writer\n")
        yield self.start(
            "--read-token-file", str(folder / "read-token"), "--token-file", str(folder / "token")
        )
        with self.assertRaises(ConnectionError):
            yield connect(self.ws_url())
        client = yield connect(self.ws_url() + "?token=letmein")
        client.sendClose()
        yield client.closed

    @defer.inlineCallbacks
    def test_an_oversized_message_closes_that_client_and_others_keep_their_stream(
        self,
    ) -> defer.Generator:
        yield self.start("--scale", "simulator:rate=20")
        calm = yield connect(self.ws_url())
        rude = yield connect(self.ws_url("::1"))
        yield calm.until(2)
        rude.sendMessage(b"x" * 100_000)
        was_clean, code, reason = yield rude.closed
        self.assertEqual(code, 1009)
        before = len(calm.readings())
        yield calm.until(before + 10)
        calm.sendClose()
        yield calm.closed


GREP = re.compile("(WebSocket|keepalive|Nova conexão)")
"""The old operators' grep (README, "Logs")."""


class Catchup(LiveCase):
    @defer.inlineCallbacks
    def test_a_client_that_skipped_a_change_of_state_gets_it_when_its_socket_drains(
        self,
    ) -> defer.Generator:
        yield self.start("--scale", "simulator:rate=100")
        live, hub = self.service.parts.live, self.service.parts.hub
        client = yield open_websocket(Target("127.0.0.1", self.port()))
        client.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        client.transport.pauseProducing()  # a slow reader: it reads nothing for now
        yield until(lambda: live.skipped > 0, 30, "the reader never fell behind")
        yield self.service.parts.link.stopService()
        hub.disconnected("device removed: /dev/ttyUSB0")  # skipped: its socket is full
        skipped = live.skipped
        self.assertEqual(hub.state, "disconnected")
        client.transport.resumeProducing()

        def last_status() -> str | None:
            statuses = [m["state"] for m in client.messages if m["type"] == "status"]
            return statuses[-1] if statuses else None

        yield until(lambda: last_status() == "disconnected", 10, "the news never came")
        self.assertGreater(skipped, 0)
        self.assertFalse(any(c.missed for c in live.clients))
        yield client.close()


class Logs(LiveCase):
    @defer.inlineCallbacks
    def test_connections_and_disconnections_are_logged_with_the_close_reason_in_words(
        self,
    ) -> defer.Generator:
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        yield self.start()
        live = self.service.parts.live
        polite = yield connect(self.ws_url())
        polite.sendClose(1000)
        yield polite.closed
        quiet = yield connect(self.ws_url())
        quiet.sendClose()
        yield quiet.closed
        rude = yield connect(self.ws_url("::1"))
        rude.transport.abortConnection()
        yield rude.closed
        yield until(lambda: not live.clients, 10, "the server never saw them go")
        lines = [formatEvent(e) for e in events]
        grepped = [line for line in lines if GREP.search(line)]
        self.assertEqual(sum("Nova conexão WebSocket" in line for line in grepped), 3, grepped)
        self.assertTrue(any("keepalive: ping every 30 s" in line for line in grepped), grepped)
        closes = [line for line in grepped if "WebSocket disconnected" in line]
        self.assertEqual(len(closes), 3, grepped)
        self.assertRegex(closes[0], r"127\.0\.0\.1\]:\d+ \(1000, normal closure\); 0 clients$")
        self.assertRegex(closes[1], r"\(1005, no status code\); 0 clients$")
        self.assertRegex(closes[2], r"\[::1\]:\d+ \(1006, abnormal closure, no close frame")
