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

from typing import Any

from twisted.internet import abstract, tcp

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


def send(transport: Any, data: bytes) -> bool:
    """Send `data` on `transport`; True when it all went out now, False when some of it
    waits in the transport's buffer."""
    if idle(transport):
        try:
            sent = transport.socket.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            sent = 0  # the transport's own write path meets and reports the error
        if sent == len(data):
            return True
        data = data[sent:]
    transport.write(data)
    return False
