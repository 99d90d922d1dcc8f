"""The live WebSocket stream on real loopback sockets: first reading at once, every reading in
order, keepalive drops, origins, tokens, and hostile frames."""

from __future__ import annotations

from twisted.internet import defer, reactor, task

from tests.base import ServiceTestCase
from tests.wsclient import connect, connect_silent


def seqs(client) -> list[int]:
    return [m["seq"] for m in client.readings()]


class LiveStream(ServiceTestCase):
    def ws_url(self, host: str = "127.0.0.1", path: str = "/ws", index: int = 0) -> str:
        return self.url(path, host, index).replace("http://", "ws://")

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

        token = Path(tempfile.mkdtemp(), "read-token")
        token.write_text("letmein\n")
        yield self.start("--read-token-file", str(token))
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
        self.assertIn(code, (1009, 1006))
        before = len(calm.readings())
        yield calm.until(before + 10)
        calm.sendClose()
        yield calm.closed
