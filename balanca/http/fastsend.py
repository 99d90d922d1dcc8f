"""Writing a broadcast frame straight to a client's socket when nothing is queued before it.

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
from twisted.internet.interfaces import ISSLTransport

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
