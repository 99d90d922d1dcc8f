"""Hostile clients for the security tests, over plain TCP or TLS, IPv4 or IPv6.

- `exchange` sends raw bytes on a new blocking socket and reads the whole answer: it runs in
  a thread (`deferToThread`), so that hypothesis can drive it while the service under test
  runs on the reactor, and it can send what no HTTP library would (`/../`, bad framing).
- `RawWebSocket` opens `/ws` by hand and then sends whatever frames a test builds with
  `client_frame`, while keeping every message and the close code the server sends.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, threads
from twisted.internet import ssl as twisted_ssl
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    connectProtocol,
    wrapClientTLS,
)
from twisted.internet.protocol import Protocol

CRLF = b"\r\n"


@dataclass(frozen=True)
class Target:
    """Where the service listens; with `cert` (the test's self-signed one) it speaks TLS."""

    host: str
    port: int
    cert: str | None = None

    @property
    def authority(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def origin(self) -> str:
        """The origin of a page this listener serves, as a browser would send it."""
        return f"{'https' if self.cert else 'http'}://{self.authority}"

    def connect(self, timeout: float) -> socket.socket:
        """A blocking socket to the service, TLS verified against `cert` when set."""
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        if self.cert is None:
            return sock
        context = ssl.create_default_context(cafile=self.cert)
        return context.wrap_socket(sock, server_hostname=self.host)

    def endpoint(self) -> Any:
        """A Twisted client endpoint to the service, TLS verified against `cert` when set."""
        family = TCP6ClientEndpoint if ":" in self.host else TCP4ClientEndpoint
        endpoint = family(reactor, self.host, self.port)
        if self.cert is None:
            return endpoint
        authority = twisted_ssl.Certificate.loadPEM(Path(self.cert).read_bytes())
        options = twisted_ssl.optionsForClientTLS(self.host, trustRoot=authority)
        return wrapClientTLS(options, endpoint)


@dataclass
class Answer:
    """An HTTP answer as it came off the wire (header names in lower case)."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_request(
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    *,
    chunked: bool = False,
    host: str = "balanca.test",
) -> bytes:
    """An HTTP/1.1 request that asks for the connection to close after its answer."""
    lines = [f"{method} {path} HTTP/1.1".encode("latin-1"), f"Host: {host}".encode()]
    lines += [f"{k}: {v}".encode("latin-1") for k, v in (headers or {}).items()]
    lines.append(b"Connection: close")
    if body is not None and chunked:
        lines.append(b"Transfer-Encoding: chunked")
        steps = range(0, len(body), 65536)
        body = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 65536]), body[i : i + 65536]) for i in steps
        )
        body += b"0\r\n\r\n"
    elif body is not None:
        lines.append(b"Content-Length: %d" % len(body))
    return CRLF.join(lines) + CRLF + CRLF + (body or b"")


def receive_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; socket.timeout if it never does."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def parse_answer(data: bytes) -> Answer:
    """The first final HTTP answer in `data` (past any `100 Continue`; chunked bodies
    decoded)."""
    head, _, rest = data.partition(CRLF + CRLF)
    if head.startswith(b"HTTP/1.1 100 "):
        return parse_answer(rest)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    assert status_line.startswith("HTTP/1.1 "), data[:200]
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        return Answer(int(status_line.split()[1]), headers, rest[: int(headers["content-length"])])
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size_line, _, rest = rest.partition(CRLF)
            size = int(size_line, 16)
            if size == 0:
                break
            body, rest = body + rest[:size], rest[size + 2 :]
        return Answer(int(status_line.split()[1]), headers, body)
    return Answer(int(status_line.split()[1]), headers, rest)


def exchange_now(target: Target, request: bytes, timeout: float = 10) -> Answer:
    """Send `request` on a new connection and read the answer (blocking)."""
    with target.connect(timeout) as sock:
        sock.sendall(request)
        return parse_answer(receive_all(sock))


def exchange(target: Target, request: bytes, timeout: float = 10) -> defer.Deferred[Answer]:
    """`exchange_now` in a thread: fires with the answer."""
    return threads.deferToThread(exchange_now, target, request, timeout)


def trickle_now(target: Target, pieces: list[bytes], pause: float) -> tuple[float, bytes]:
    """Send `pieces` `pause` seconds apart, as long as the server lets us; the seconds from
    connecting to the server closing, and what it sent."""
    started = time.monotonic()
    with target.connect(timeout=30) as sock:
        try:
            for piece in pieces:
                sock.sendall(piece)
                time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass
        received = receive_all(sock)
    return time.monotonic() - started, received


def trickle(target: Target, pieces: list[bytes], pause: float) -> defer.Deferred[Any]:
    return threads.deferToThread(trickle_now, target, pieces, pause)


def linger_now(target: Target, request: bytes) -> float:
    """Send `request`, read the whole answer, and then neither close nor answer a TLS
    close_notify: the seconds until the server cuts the connection anyway."""
    started = time.monotonic()
    with target.connect(timeout=10) as sock:
        sock.sendall(request)
        receive_all(sock)  # to the end of the answer: FIN, or TLS's close_notify
        with socket.socket(fileno=os.dup(sock.fileno())) as tcp:
            tcp.settimeout(10)
            try:
                tcp.recv(1)  # the TCP connection's own end
            except ConnectionResetError:
                pass
    return time.monotonic() - started


def linger(target: Target, request: bytes) -> defer.Deferred[float]:
    return threads.deferToThread(linger_now, target, request)


def client_frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, masked: bool = True
) -> bytes:
    """One WebSocket frame as a client sends it (masked, unless a test wants it wrong)."""
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    mask_bit = 0x80 if masked else 0
    size = len(payload)
    if size < 126:
        head = struct.pack(">BB", first, mask_bit | size)
    elif size < 65536:
        head = struct.pack(">BBH", first, mask_bit | 126, size)
    else:
        head = struct.pack(">BBQ", first, mask_bit | 127, size)
    if not masked:
        return head + payload
    key = os.urandom(4)
    mask = (key * (size // 4 + 1))[:size]
    return head + key + bytes(a ^ b for a, b in zip(payload, mask, strict=True))


TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 1, 2, 0, 8, 9, 10


@dataclass(eq=False)
class RawWebSocket(Protocol):
    """A hand-made WebSocket client: `opened` fires with the handshake's HTTP status, `closed`
    with the close code the server sent (None when it only dropped the connection)."""

    path: str
    host: str
    origin: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None

    def __post_init__(self) -> None:
        self.opened: defer.Deferred[int] = defer.Deferred()
        self.closed: defer.Deferred[int | None] = defer.Deferred()
        self._buffer = b""
        self.status = 0
        self.body = b""
        self._waiting: list[tuple[int, defer.Deferred[None]]] = []

    def connectionMade(self) -> None:
        headers = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Version": "13",
            **({"Origin": self.origin} if self.origin else {}),
            **self.headers,
        }
        request = http_request("GET", self.path, headers, host=self.host)
        self.transport.write(request.replace(b"Connection: close\r\n", b""))

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        if not self.opened.called:
            head, found, self._buffer = self._buffer.partition(CRLF + CRLF)
            if not found:
                self._buffer = head
                return
            self.status = int(head.split()[1])
            self.opened.callback(self.status)
        if self.status != 101:  # a refusal: its body is JSON, not frames
            self.body = self._buffer
            return
        while (frame := self._next_frame()) is not None:
            self._handle(*frame)

    def _next_frame(self) -> tuple[int, bytes] | None:
        if len(self._buffer) < 2:
            return None
        opcode, size, start = self._buffer[0] & 0x0F, self._buffer[1] & 0x7F, 2
        if size == 126:
            (size,), start = struct.unpack(">H", self._buffer[2:4]), 4
        elif size == 127:
            (size,), start = struct.unpack(">Q", self._buffer[2:10]), 10
        if len(self._buffer) < start + size:
            return None
        payload, self._buffer = self._buffer[start : start + size], self._buffer[start + size :]
        return opcode, payload

    def _handle(self, opcode: int, payload: bytes) -> None:
        if opcode == TEXT:
            self.messages.append(json.loads(payload))
            self._wake()
        elif opcode == PING:
            self.send(client_frame(PONG, payload))
        elif opcode == CLOSE:
            self.close_code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
            self.send(client_frame(CLOSE, payload[:2]))

    def send(self, data: bytes) -> None:
        self.transport.write(data)

    def close(self) -> defer.Deferred[int | None]:
        """Hang up (no closing handshake); fires once the connection is gone."""
        self.transport.loseConnection()
        return self.closed

    def connectionLost(self, reason: Any) -> None:
        if not self.opened.called:
            self.opened.callback(0)
        self.closed.callback(self.close_code)

    def readings(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == "reading"]

    def seqs(self) -> list[int]:
        return [m["seq"] for m in self.readings()]

    def until(self, count: int, timeout: float = 20) -> defer.Deferred[None]:
        """Fires once `count` readings have come."""
        d: defer.Deferred[None] = defer.Deferred()
        self._waiting.append((count, d))
        self._wake()
        return d.addTimeout(timeout, reactor)

    def _wake(self) -> None:
        have = len(self.readings())
        for entry in [e for e in self._waiting if have >= e[0]]:
            self._waiting.remove(entry)
            entry[1].callback(None)


@defer.inlineCallbacks
def open_websocket(
    target: Target,
    path: str = "/ws",
    origin: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """Connect a RawWebSocket and wait for the handshake's answer; fires with the client
    (`status` set: 101 when open)."""
    client = RawWebSocket(path, target.authority, origin, headers or {})
    yield connectProtocol(target.endpoint(), client)
    client.status = yield client.opened
    return client
