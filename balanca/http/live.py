"""Live readings over WebSocket (Autobahn): `/ws` on every HTTP listener and `--ws` listeners.

The protocol is one-way: on connect a client gets the scale's status and the latest reading,
then every reading and every change of status, each as one JSON text message (DESIGN.md).
Clients send nothing but control frames; messages they send are ignored. A client that breaks
the rules is closed with the close code that says why (1009 a message over 4 KiB, 1007 text
that is not UTF-8, 1002 a protocol error), and nobody else notices.

Who may connect: a browser only from the page's own origin or an `--allowed-origin` (a
non-browser client sends no Origin), and, with a read token, only with it as `?token=` (all
a browser can send) or `Authorization: Bearer`.

Each message is framed once for all clients. A client whose socket cannot keep up has
messages skipped (counted); as soon as its socket drains (the transport resumes it, or a check
every DRAIN_CHECK seconds sees its buffers empty) it gets the current status and the newest
reading, so a skipped change of state is never lost. One that stops answering pings is
dropped by the keepalive.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import PreparedMessage
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime, ISSLTransport
from twisted.logger import Logger
from zope.interface import implementer

from balanca.endpoints import address_text
from balanca.http import fastsend
from balanca.http.security import Access, RateLimiter, bearer
from balanca.http.site import bare_answer
from balanca.hub import Hub
from balanca.reading import Reading, json_bytes

log = Logger(namespace="balanca.http.live")
"""balanca's own lines; Autobahn keeps its `self.log`, which drops debug events at info level."""

MAX_CLIENT_MESSAGE = 4096
MAX_HANDSHAKE = 64 * 1024
"""Bytes of opening handshake a `--ws` listener buffers (twisted.web bounds `/ws`'s)."""
OPEN = WebSocketServerProtocol.STATE_OPEN
DRAIN_CHECK = 0.1
"""Seconds between looks at the socket of a client that skipped messages while its transport
did not pause it (its backlog stayed under the transport's own limit)."""
CLOSE_REASONS = {
    1000: "normal closure",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status code",
    1006: "abnormal closure, no close frame",
    1007: "invalid UTF-8 text",
    1008: "policy violation",
    1009: "message too big",
    1010: "missing extension",
    1011: "server error",
    1012: "service restart",
    1013: "try again later",
    1015: "TLS handshake failure",
}
"""RFC 6455's close codes in words, for the log."""
SEND_BUFFER = 16 * 1024
"""Kernel send buffer per client (Linux doubles it): bounds what a stalled client holds in the
kernel, so that the skip-and-catch-up logic below, not socket memory, absorbs slow clients."""


def frame(payload: bytes) -> bytes:
    """The WebSocket text frame for `payload`, as a server sends it (unmasked)."""
    return PreparedMessage(payload, False, False, True).payloadHybi


@implementer(IPushProducer)
class LiveProtocol(WebSocketServerProtocol):
    """One WebSocket client of the live stream."""

    factory: LiveFactory
    send_now: Callable[[bytes], bool]
    """Sends a frame, directly to the socket when it can (set when the connection opens)."""

    def __init__(self) -> None:
        super().__init__()
        self.queued = 0
        self.skipped = 0
        self.paused = False
        self.missed = False
        self.ping_timed_out = False
        self.address = "?"
        self._drain_check: IDelayedCall | None = None

    def onConnect(self, request: ConnectionRequest) -> None:
        self.address = address_text(self.transport.getPeer())  # type: ignore[union-attr]
        access = self.factory.access
        origin = request.headers.get("origin")
        secure = ISSLTransport.providedBy(self.transport)
        if not access.origin_allowed(origin, request.headers.get("host"), secure):
            log.warn(
                "WebSocket refused from {peer}: origin {origin} is not allowed",
                peer=self.address,
                origin=origin,
            )
            raise ConnectionDeny(403, "origin not allowed")
        token = (
            bearer(request.headers.get("authorization")) or request.params.get("token", [None])[-1]
        )
        if not access.may_read(token):
            limiter = self.factory.limiter
            if limiter is not None and not limiter.allow(self.transport.getPeer()):  # type: ignore[union-attr]
                log.info("WebSocket refused from {peer}: too many failed tokens", peer=self.address)
                raise ConnectionDeny(429, "too many requests")
            log.info("WebSocket refused from {peer}: no valid read token", peer=self.address)
            raise ConnectionDeny(401, "token required")

    def sendHttpErrorResponse(
        self, code: int, reason: str, responseHeaders: list[tuple[str, str]] | None = None
    ) -> None:
        """A refused handshake's answer: JSON with its `code`, as the API's errors (Autobahn
        sends a bare status line)."""
        headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in responseHeaders or ()]
        phrase = reason.encode("latin-1", "replace")
        self.sendData(bare_answer(code, phrase, reason, f"WebSocket refused: {reason}", headers))

    def dataReceived(self, data: bytes) -> None:
        if self.state == self.STATE_CONNECTING and len(self.data) + len(data) > MAX_HANDSHAKE:
            self.failHandshake("opening handshake too large", 431)
            return
        super().dataReceived(data)

    def onOpen(self) -> None:
        transport = self.transport
        producer = getattr(transport, "producer", None)
        if producer is not None and producer is not self:
            transport.unregisterProducer()  # type: ignore[union-attr]  # twisted.web's channel
        transport.registerProducer(self, True)  # type: ignore[union-attr]
        sock = getattr(transport, "socket", None)
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        self.send_now = fastsend.sender(transport)
        self.factory.join(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """Clients have nothing to say on this stream; what they send is ignored."""

    def onAutoPingTimeout(self) -> None:
        self.ping_timed_out = True
        super().onAutoPingTimeout()

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self._drain_check is not None and self._drain_check.active():
            self._drain_check.cancel()
        self._drain_check = None
        self.factory.leave(self, code, reason)

    def push(self, data: bytes) -> bool:
        """Send one framed message; False when it is skipped because this client cannot
        keep up (or is not open)."""
        if self.state != OPEN:
            return False
        if self.paused or self.queued >= self.factory.max_queue:
            if self.paused or not fastsend.drained(self.transport):
                self._skip()
                return False
            self.queued = 0
            if self.missed:  # drained since it skipped: the news, which includes `data`
                self.catch_up()
                return False
        if self.send_queue:  # Autobahn's own queue (never used for broadcasts) keeps order
            self.transport.write(data)  # type: ignore[union-attr]
            self.queued += 1
        elif self.send_now(data):
            self.queued = 0
        else:
            self.queued += 1
        return True

    def _skip(self) -> None:
        """Skip a message; watch for the socket to drain unless the transport paused this
        client (then its resume is the signal)."""
        self.skipped += 1
        self.factory.skipped += 1
        self.missed = True
        if not self.paused and self._drain_check is None:
            self._drain_check = self.factory.reactor.callLater(DRAIN_CHECK, self._check_drained)

    def _check_drained(self) -> None:
        self._drain_check = None
        if self.state != OPEN or not self.missed or self.paused:
            return
        if fastsend.drained(self.transport):
            self.queued = 0
            self.catch_up()
        else:
            self._drain_check = self.factory.reactor.callLater(DRAIN_CHECK, self._check_drained)

    def catch_up(self) -> None:
        """Send what was skipped: the current status and the newest reading."""
        self.missed = False
        for data in self.factory.current():
            self.factory.sent += self.push(data)

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self.queued = 0
        if self.missed:
            self.catch_up()

    def stopProducing(self) -> None:
        self.paused = True


class LiveFactory(WebSocketServerFactory):
    """The live stream's clients, fed by the hub (it is a hub subscriber)."""

    protocol = LiveProtocol  # type: ignore[assignment]

    def __init__(
        self,
        hub: Hub,
        access: Access,
        *,
        ping_interval: float = 30,
        ping_timeout: float = 10,
        max_queue: int = 32,
        limiter: RateLimiter | None = None,
        reactor: IReactorTime | None = None,
    ) -> None:
        super().__init__(reactor=reactor)
        self.hub, self.access, self.max_queue = hub, access, max_queue
        self.limiter = limiter
        """Where failed read tokens are counted (the API's write budget)."""
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        self.clients: set[LiveProtocol] = set()
        self.connections = 0
        self.sent = 0
        self.skipped = 0
        self.keepalive_drops = 0
        self._reading_frame: bytes | None = None
        self.setProtocolOptions(
            autoPingInterval=ping_interval,
            autoPingTimeout=ping_timeout,
            autoPingSize=12,
            maxMessagePayloadSize=MAX_CLIENT_MESSAGE,
            maxFramePayloadSize=MAX_CLIENT_MESSAGE,
            openHandshakeTimeout=10,
            closeHandshakeTimeout=2,
            webStatus=False,
            failByDrop=False,  # close with a code that says why (then drop after 2 s)
        )
        hub.subscribe(self)

    def current(self) -> list[bytes]:
        """What a client gets on connect: the status as of now (its `age` included), then
        the latest reading if any."""
        frames = [frame(json_bytes(self.hub.status()))]
        if self._reading_frame is not None:
            frames.append(self._reading_frame)
        return frames

    def join(self, client: LiveProtocol) -> None:
        """A client opened: count it, log it, send it the status and the latest reading."""
        self.clients.add(client)
        self.connections += 1
        log.info(
            "Nova conexão WebSocket (new WebSocket connection) from {peer}; {count} clients",
            peer=client.address,
            count=len(self.clients),
        )
        for data in self.current():
            self.sent += client.push(data)

    def leave(self, client: LiveProtocol, code: int | None, reason: str | None) -> None:
        """A client went: log how (a keepalive drop or a close) and the clients left."""
        if client not in self.clients:
            return
        self.clients.discard(client)
        if client.ping_timed_out:
            self.keepalive_drops += 1
            log.info(
                "WebSocket keepalive: {peer} did not answer a ping within {timeout:g} s, "
                "dropped; {count} clients",
                peer=client.address,
                timeout=self.ping_timeout,
                count=len(self.clients),
            )
        else:
            log.info(
                "WebSocket disconnected: {peer} ({code}, {words}{reason}); {count} clients",
                peer=client.address,
                code=code or 1005,  # RFC 6455: 1005 stands for a close frame without a code
                words=CLOSE_REASONS.get(code or 1005, "unknown code"),
                reason=f": {reason}" if reason else "",
                count=len(self.clients),
            )

    def reading(self, reading: Reading, payload: bytes) -> None:
        """Hub subscriber: frame the reading once and push it to every client."""
        self._reading_frame = frame(payload)
        self.broadcast(self._reading_frame)

    def status(self, payload: bytes) -> None:
        """Hub subscriber: push a change of the scale's state to every client."""
        self.broadcast(frame(payload))

    def broadcast(self, data: bytes) -> None:
        """Push one framed message to every client."""
        self.sent += sum(client.push(data) for client in self.clients)
