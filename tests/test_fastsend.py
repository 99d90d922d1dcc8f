"""The direct send path against the installed Twisted: whole frames go out at once, and a
peer that stops reading gets the rest through the transport, in order."""

from __future__ import annotations

import socket

from twisted.internet import defer, protocol, reactor, task
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase

from balanca.http import fastsend


class Accepted(protocol.Protocol):
    def connectionMade(self) -> None:
        self.factory.accepted.callback(self)  # type: ignore[attr-defined]


class DirectSend(TestCase):
    @defer.inlineCallbacks
    def setUp(self) -> defer.Generator:
        factory = protocol.Factory.forProtocol(Accepted)
        factory.accepted = defer.Deferred()  # type: ignore[attr-defined]
        self.port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.peer = socket.socket()
        self.peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.peer.setblocking(False)
        try:
            self.peer.connect(("127.0.0.1", self.port.getHost().port))
        except BlockingIOError:
            pass
        self.server = yield factory.accepted

    @defer.inlineCallbacks
    def tearDown(self) -> defer.Generator:
        self.peer.close()
        self.server.transport.abortConnection()
        yield self.port.stopListening()
        yield task.deferLater(reactor, 0, lambda: None)

    def read_all(self) -> bytes:
        data = b""
        while True:
            try:
                chunk = self.peer.recv(65536)
            except BlockingIOError:
                return data
            if not chunk:
                return data
            data += chunk

    def test_the_installed_twisted_has_what_the_fast_path_needs(self) -> None:
        self.assertTrue(fastsend.SUPPORTED)
        self.assertTrue(fastsend.idle(self.server.transport))

    @defer.inlineCallbacks
    def test_an_idle_connection_gets_the_frame_without_waiting_for_the_reactor(
        self,
    ) -> defer.Generator:
        self.assertTrue(fastsend.sender(self.server.transport)(b"frame-1"))
        yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(self.read_all(), b"frame-1")

    @defer.inlineCallbacks
    def test_a_peer_that_stops_reading_gets_everything_in_order_once_it_reads(
        self,
    ) -> defer.Generator:
        transport = self.server.transport
        transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        send = fastsend.sender(transport)
        sent = []
        went_through_transport = False
        for i in range(2000):
            message = b"%06d" % i + b"." * 250
            sent.append(message)
            if not send(message):
                went_through_transport = True
                self.assertFalse(fastsend.idle(transport))
            if went_through_transport and i > 100 and transport.producerPaused:
                break
        self.assertTrue(went_through_transport, "the kernel buffer never filled")
        received = b""
        expected = b"".join(sent)
        for _ in range(400):
            received += self.read_all()
            if len(received) >= len(expected):
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(received, expected)
        self.assertTrue(fastsend.idle(transport))
