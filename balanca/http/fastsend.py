"""Writing straight to a client's socket when nothing is queued before it: the WebSocket
broadcast's frames (live.py) and the HTTP answers of `DirectChannel` (site.py).

`transport.write` buffers every write for the next reactor turn, which costs two `epoll_ctl`
calls per client per message. When a plain TCP transport has nothing buffered, a direct
`send()` delivers the frame now; whatever the kernel does not take goes through
`transport.write` as usual, after which the transport owns ordering again. Anything that is
not a plain, idle `tcp.Connection` (TLS, a wrapper, a closing connection) takes the plain path.

This leans on `twisted.internet.abstract.FileDescriptor`'s buffer attributes; the test suite
checks them against the installed Twisted, and `SUPPORTED` turns the fast path off if they
are ever missing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import abstract, tcp
from twisted.internet.interfaces import IAddress, ISSLTransport
from twisted.web import http
from twisted.web.http_headers import Headers
from twisted.web.server import Request

SUPPORTED = all(
    hasattr(abstract.FileDescriptor, name) for name in ("dataBuffer", "offset", "producerPaused")
) and hasattr(tcp.Connection, "TLS")


def idle(transport: Any) -> bool:
    """`transport` is a plain TCP connection with no bytes waiting in its buffers."""
    return bool(
        SUPPORTED
        and isinstance(transport, tcp.Connection)
        and transport.connected
        and not transport.disconnecting
        and not transport.TLS
        and not transport._tempDataBuffer
        and len(transport.dataBuffer) == transport.offset
    )


def drained(transport: Any) -> bool:
    """Nothing written to `transport` waits to be sent: a plain TCP connection with empty
    buffers, or TLS over one (which this module never writes to directly) with no bytes held
    back for the handshake."""
    if idle(transport):
        return True
    inner = getattr(transport, "transport", None)
    held = getattr(transport, "_appSendBuffer", None)
    return ISSLTransport.providedBy(transport) and not held and idle(inner)


def sender(transport: Any) -> Callable[[bytes], bool]:
    """A function that sends bytes on `transport` and says whether they all went out now
    (True) or some wait in the transport's buffer (False). Made once per connection, so the
    per-message path is a few attribute checks and one `send()`."""
    if not (SUPPORTED and isinstance(transport, tcp.Connection)):

        def buffered(data: bytes) -> bool:
            transport.write(data)
            return False

        return buffered
    socket_send = transport.socket.send

    def direct(data: bytes) -> bool:
        if (
            transport._tempDataBuffer
            or len(transport.dataBuffer) != transport.offset
            or transport.disconnecting
            or not transport.connected
            or transport.TLS
        ):
            transport.write(data)
            return False
        try:
            sent = socket_send(data)
        except OSError:  # EAGAIN, or an error the transport's own write path will report
            sent = 0
        if sent == len(data):
            return True
        transport.write(data[sent:])
        return False

    return direct


class DirectChannel(http.HTTPChannel):
    """An HTTP connection that spares the reactor work per request.

    The answers it writes while it handles bytes it received (a request answered at once,
    as `GET /api/weight` is) are held and sent in one piece, straight to the socket, when
    the request is done (before the connection may close) or the bytes are handled: no
    `epoll_ctl` pair and no reactor turn per answer. Answers written later (from a Deferred,
    a producer) take Twisted's own path. It learns its two addresses once, not once per
    request as Twisted does (a `getsockname` and two address objects each).
    """

    every_answer = b""
    """Header lines (`Name: value\r\n` each) that every answer carries after its own,
    written out once (site.py: the security headers)."""
    _held: list[bytes] | None = None
    """Bytes of answers written while handling received bytes, not sent yet (None: not
    handling received bytes, so writes go to the transport)."""

    def connectionMade(self) -> None:
        super().connectionMade()
        self._send = sender(self.transport)
        self._host: IAddress = super().getHost()
        self._peer: IAddress = super().getPeer()

    def getHost(self) -> IAddress:
        """The connection's own address (it does not change while the connection is open)."""
        return self._host

    def getPeer(self) -> IAddress:
        """The client's address."""
        return self._peer

    def dataReceived(self, data: bytes) -> None:
        if self._held is not None:  # a pipelined request, handed back by requestDone
            super().dataReceived(data)
            return
        self._held = []
        try:
            super().dataReceived(data)
        finally:
            self.send_held()
            self._held = None

    def writeHeaders(
        self, version: bytes, code: bytes, reason: bytes, headers: Headers | Any
    ) -> None:
        """Twisted's status line and headers, then `every_answer`'s."""
        if not isinstance(headers, Headers):  # the (name, value) pairs Twisted also takes
            pairs, headers = headers, Headers()
            for name, value in pairs:
                headers.addRawHeader(name, value)
        lines = [version, b" ", code, b" ", reason, b"\r\n"]
        for name, values in headers.getAllRawHeaders():
            for value in values:
                lines += (name, b": ", value, b"\r\n")
        lines += (self.every_answer, b"\r\n")
        self.writeSequence(lines)

    def write(self, data: bytes) -> None:
        if self._held is None:
            super().write(data)
        else:
            self._held.append(data)

    def writeSequence(self, iovec: list[bytes]) -> None:
        if self._held is None:
            super().writeSequence(iovec)
        else:
            self._held += iovec

    def requestDone(self, request: Request) -> None:
        self.send_held()  # before the next pipelined answer, or the close
        super().requestDone(request)

    def loseConnection(self) -> None:
        self.send_held()
        super().loseConnection()

    def send_held(self) -> None:
        """Send what is held, straight to the socket when nothing waits before it."""
        if self._held:
            data = b"".join(self._held)
            self._held.clear()
            self._send(data)
