"""WebSocket test clients: an Autobahn client that keeps every message, and a raw one that
completes the handshake and then never reads or answers again."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol, connectWS
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol


class Collector(WebSocketClientProtocol):
    """Keeps every JSON message; `until(n)` fires once it has n readings."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []
        self.opened: defer.Deferred[None] = defer.Deferred()
        self.closed: defer.Deferred[tuple[bool, int | None, str | None]] = defer.Deferred()
        self._waiting: list[tuple[int, defer.Deferred[None]]] = []

    def onOpen(self) -> None:
        self.opened.callback(None)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.messages.append(json.loads(payload))
        count = len(self.readings())
        for entry in list(self._waiting):
            if count >= entry[0]:
                self._waiting.remove(entry)
                entry[1].callback(None)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if not self.opened.called:
            self.opened.errback(ConnectionError(f"refused: {code} {reason}"))
        self.closed.callback((wasClean, code, reason))

    def readings(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == "reading"]

    def until(self, readings: int, timeout: float = 20) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        if len(self.readings()) >= readings:
            d.callback(None)
            return d
        self._waiting.append((readings, d))
        return d.addTimeout(timeout, reactor)


class CollectorFactory(WebSocketClientFactory):
    """Builds one Collector and fires `ready` with it once its handshake is done."""

    protocol = Collector

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ready: defer.Deferred[Collector] = defer.Deferred()

    def buildProtocol(self, addr: Any) -> Collector:
        client = super().buildProtocol(addr)
        client.opened.addCallback(lambda _: client).chainDeferred(self.ready)
        return client

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.ready.errback(reason)


def connect(
    url: str, origin: str | None = None, headers: dict[str, str] | None = None
) -> defer.Deferred[Collector]:
    """Open a WebSocket to `url`; fires with the open client (errback when refused)."""
    factory = CollectorFactory(url, origin=origin, headers=headers or {})
    factory.setProtocolOptions(autoPingInterval=0)
    connectWS(factory)
    return factory.ready


def handshake(path: bytes, host: bytes) -> bytes:
    """A client's WebSocket opening handshake."""
    key = base64.b64encode(os.urandom(16))
    return (
        b"GET " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: "
        + key
        + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )


class Silent(Protocol):
    """A peer that sends a WebSocket handshake and then neither reads nor answers pings."""

    def __init__(self, path: bytes, host: bytes) -> None:
        self.path, self.host = path, host
        self.received = b""
        self.lost: defer.Deferred[None] = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(handshake(self.path, self.host))

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if b"\r\n\r\n" in self.received and b" 101 " in self.received.split(b"\r\n")[0]:
            self.transport.pauseProducing()  # stop reading: pings go unanswered

    def connectionLost(self, reason: Any) -> None:
        self.lost.callback(None)


def connect_silent(host: str, port: int, path: bytes = b"/ws") -> defer.Deferred[Silent]:
    endpoint = (TCP6ClientEndpoint if ":" in host else TCP4ClientEndpoint)(reactor, host, port)
    literal = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return connectProtocol(endpoint, Silent(path, literal.encode()))
