"""The direct send path against the installed Twisted: whole frames go out at once, and a
peer that stops reading gets the rest through the transport, in order; HTTP answers are the
bytes Twisted's own channel sends."""

from __future__ import annotations

import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import abstract, defer, protocol, reactor, task, tcp
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.trial.unittest import TestCase
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from twisted.web.static import Data, File

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


class Collect(protocol.Protocol):
    """A raw HTTP client: sends its bytes, keeps what comes back until the server closes."""

    def __init__(self, request: bytes) -> None:
        self.request, self.received = request, b""
        self.closed: defer.Deferred[bytes] = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.request)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: object = None) -> None:
        self.closed.callback(self.received)


def without_date(answers: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]*", b"", answers)


class Later(Resource):
    """Answers from the reactor's next turn, not while the request is handled."""

    isLeaf = True

    def render_GET(self, request: Request) -> int:
        def answer() -> None:
            request.setHeader(b"Content-Type", b"text/plain")
            request.write(b"later")
            request.finish()

        reactor.callLater(0, answer)  # type: ignore[attr-defined]
        return NOT_DONE_YET


class Stamped(fastsend.DirectChannel):
    every_answer = b"X-Stamp: 1\r\n"


GET = b"GET /%s HTTP/1.1\r\nHost: balanca.test\r\n\r\n"
LAST = b"GET /%s HTTP/1.1\r\nHost: balanca.test\r\nConnection: close\r\n\r\n"
BIG = b"".join(b"%08d\n" % i for i in range(800_000))  # 7.2 MB, more than socket buffers


class Answers(TestCase):
    """`DirectChannel` answers with the bytes Twisted's own channel sends, straight to the
    socket when it answers at once."""

    @defer.inlineCallbacks
    def setUp(self) -> defer.Generator:
        root = Resource()
        root.putChild(b"small", Data(b'{"weight": "1.00"}', "application/json"))
        root.putChild(b"big", Data(BIG, "text/plain"))
        folder = Path(tempfile.mkdtemp(prefix="balanca-fastsend-"))
        self.addCleanup(shutil.rmtree, folder)
        (folder / "big.txt").write_bytes(BIG)
        root.putChild(b"files", File(str(folder)))
        root.putChild(b"later", Later())
        self.ports: dict[str, Any] = {}
        channels = {
            "twisted": http.HTTPChannel,
            "direct": fastsend.DirectChannel,
            "stamped": Stamped,
        }
        for name, channel in channels.items():
            site = Site(root)
            site.protocol = channel  # type: ignore[assignment]
            self.ports[name] = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
                site
            )
            self.addCleanup(self.ports[name].stopListening)
        self.started_writing = 0
        self.patch(
            abstract.FileDescriptor,
            "startWriting",
            self._count(abstract.FileDescriptor.startWriting),
        )

    def _count(self, start_writing: Any) -> Any:
        def counted(transport: abstract.FileDescriptor) -> None:
            if isinstance(transport, tcp.Server) and not fastsend.idle(transport):
                self.started_writing += 1  # to send buffered bytes (not to close)
            start_writing(transport)

        return counted

    @defer.inlineCallbacks
    def exchange(self, name: str, request: bytes) -> defer.Generator:
        client = Collect(request)
        yield TCP4ClientEndpoint(reactor, "127.0.0.1", self.ports[name].getHost().port).connect(
            protocol.Factory.forProtocol(lambda: client)
        )
        answers = yield client.closed
        return without_date(answers)

    @defer.inlineCallbacks
    def test_answers_are_twisted_own_and_go_out_without_the_reactor(self) -> defer.Generator:
        """Keep-alive requests, pipelined ones, a HEAD and a 404, then `Connection: close`."""
        request = (
            GET % b"small"
            + GET % b"small" + GET.replace(b"GET", b"HEAD") % b"small" + GET % b"nothing"
            + LAST % b"small"
        )  # fmt: skip
        expected = yield self.exchange("twisted", request)
        self.assertEqual(expected.count(b"HTTP/1.1 "), 5)
        self.started_writing = 0
        answers = yield self.exchange("direct", request)
        self.assertEqual(answers, expected)
        self.assertEqual(self.started_writing, 0, "an answer waited for the reactor")

    @defer.inlineCallbacks
    def test_an_http_1_0_answer_arrives_whole_before_the_close(self) -> defer.Generator:
        request = b"GET /small HTTP/1.0\r\n\r\n"
        expected = yield self.exchange("twisted", request)
        answers = yield self.exchange("direct", request)
        self.assertEqual(answers, expected)
        self.assertTrue(answers.endswith(b'{"weight": "1.00"}'), answers)

    @defer.inlineCallbacks
    def test_answers_larger_than_the_socket_takes_arrive_whole_and_in_order(
        self,
    ) -> defer.Generator:
        """What the kernel does not take goes through the transport; a file comes from a
        producer, on Twisted's own path."""
        for big in (b"big", b"files/big.txt"):
            request = GET % big + LAST % b"small"
            expected = yield self.exchange("twisted", request)
            self.started_writing = 0
            answers = yield self.exchange("direct", request)
            self.assertEqual(answers.count(BIG), 1)
            self.assertEqual(answers, expected)
            self.assertGreater(self.started_writing, 0, "the socket took it all: too small")

    @defer.inlineCallbacks
    def test_every_answer_carries_the_channel_own_headers(self) -> defer.Generator:
        """Answered at once or later, a HEAD and a 404 too."""
        request = (
            GET % b"small" + GET % b"later" + GET.replace(b"GET", b"HEAD") % b"small"
            + LAST % b"nothing"
        )  # fmt: skip
        expected = yield self.exchange("twisted", request)
        answers = yield self.exchange("stamped", request)
        self.assertEqual(answers.count(b"X-Stamp: 1\r\n\r\n"), 4)
        self.assertEqual(answers.replace(b"X-Stamp: 1\r\n", b""), expected)
        self.assertIn(b"X-Stamp: 1\r\n\r\n5\r\nlater", answers)  # chunked: no length
