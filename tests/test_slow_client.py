"""A WebSocket client that stops reading costs the server a bounded amount of memory, and the
clients that keep reading get every reading."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from tests.base import fetch
from tests.child import Service
from tests.wsclient import connect, handshake


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1))


def stalled_client(port: int) -> socket.socket:
    """A WebSocket client with a tiny receive window that reads the handshake and no more."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.connect(("127.0.0.1", port))
    s.sendall(handshake(b"/ws", f"127.0.0.1:{port}".encode()))
    s.settimeout(5)
    assert b" 101 " in s.recv(1024).split(b"\r\n")[0]
    return s


@defer.inlineCallbacks
def until_skipped(base: str, count: int, timeout: float = 60) -> defer.Generator:
    """Wait until /metrics counts `count` skipped WebSocket messages (bounded)."""
    deadline = reactor.seconds() + timeout
    while True:
        metrics = (yield fetch(f"{base}/metrics")).body.decode()
        found = re.search(r"^balanca_websocket_messages_skipped_total (\S+)$", metrics, re.M)
        assert found is not None, "the metric is missing"
        if float(found.group(1)) >= count:
            return
        assert reactor.seconds() < deadline, f"fewer than {count} messages skipped"
        yield task.deferLater(reactor, 0.2, lambda: None)


class SlowClient(TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def test_a_stalled_client_leaves_memory_flat_and_a_hundred_readers_miss_nothing(
        self,
    ) -> defer.Generator:
        service = Service(
            "--scale", "simulator:rate=20", "--record", "none", "--ping-interval", "120"
        )
        service.start()
        self.addCleanup(service.close)
        server, port = service.process, service.port
        assert server is not None
        base = f"http://127.0.0.1:{port}"
        stalled = stalled_client(port)
        readers = []
        for _ in range(100):
            readers.append((yield connect(f"ws://127.0.0.1:{port}/ws")))
            self.addCleanup(readers[-1].transport.abortConnection)
        yield until_skipped(base, 1)  # the stalled client's socket is full
        before = rss_kib(server.pid)
        yield defer.gatherResults([reader.until(501, timeout=90) for reader in readers])
        after = rss_kib(server.pid)
        yield until_skipped(base, 300)
        self.assertLess(after - before, 4 * 1024, f"RSS grew from {before} to {after} KiB")
        for reader in readers:
            seqs = [m["seq"] for m in reader.readings()]
            self.assertGreater(len(seqs), 500)
            self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))
            reader.sendClose()
        yield defer.gatherResults([reader.closed for reader in readers])
        stalled.close()
