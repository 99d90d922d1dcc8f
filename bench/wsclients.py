"""Lean WebSocket clients for the benchmark: many connections in one process, one epoll loop.

A hand-rolled RFC 6455 client on non-blocking sockets and `select.epoll`, so that 250
connections x 20 messages/s cost little CPU next to the server under test. (An asyncio
`Protocol` version cost more CPU than the server: asyncio receives with a fresh 256 KiB
buffer per read, and its per-event machinery is heavy for 20,000 tiny messages a second.)

Receipt times are the kernel's: each socket has SO_TIMESTAMPNS set, and every `recvmsg`
returns when the data reached the socket, so time the client process spends waiting for a
core or working through other sockets is not charged to the server. The kernel stamp is
CLOCK_REALTIME; it is converted to CLOCK_MONOTONIC (which `run.py`'s pty writer uses) with an
offset measured at start. How late the client read each message after that (its "lag") is
recorded too, as a check that the clients keep up.

The clients answer pings (servers close connections that do not) and close frames, and can
offer permessage-deflate (`--deflate`), as browsers do. Each reading is mapped back to the
frame written into the pty: its weight is twice the writer's sequence number.

Protocol with the parent, on stdin/stdout:

1. connect `--count` clients (at most `--concurrency` handshakes at a time, 3 attempts each),
   then print `ready OK FAILED`;
2. record `(sequence, receipt time, lag)` for every reading until a line arrives on stdin
   (or stdin closes);
3. write the records to `--out` (pickle of a list of dicts, one per client) and exit.

    python bench/wsclients.py --url ws://127.0.0.1:8081/ --count 250 --out /tmp/c0.pickle
"""

from __future__ import annotations

import argparse
import base64
import errno
import os
import pickle
import re
import select
import socket
import struct
import sys
import time
import zlib
from array import array
from collections import deque
from typing import Any
from urllib.parse import urlsplit

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; SCM_TIMESTAMPNS has the same value
ANCILLARY = socket.CMSG_SPACE(16)  # one struct timespec
DEFLATE_TAIL = b"\x00\x00\xff\xff"
HANDSHAKE_TIMEOUT = 10.0
ATTEMPTS = 3
WEIGHT = re.compile(rb'"weight"\s*:\s*"?(-?[0-9.]+)')
NOT_READING = re.compile(rb'"type"\s*:\s*"(?!reading")')
SCRATCH = bytearray(256 * 1024)
"""The receive buffer every socket of the process reads into, before its bytes are parsed."""


def realtime_offset_ns() -> int:
    """CLOCK_REALTIME - CLOCK_MONOTONIC, in ns, from the tightest of a few paired readings."""
    best: tuple[int, int] | None = None
    for _ in range(20):
        m0 = time.monotonic_ns()
        r = time.time_ns()
        m1 = time.monotonic_ns()
        if best is None or m1 - m0 < best[0]:
            best = (m1 - m0, r - (m0 + m1) // 2)
    assert best is not None
    return best[1]


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A client-to-server frame (always masked), payload at most 125 bytes (control frames)."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload[:125]))
    return bytes([0x80 | opcode, 0x80 | len(body)]) + mask + body


def handshake_request(host: str, path: str, deflate: bool) -> bytes:
    """The HTTP upgrade request: no Origin header, like any non-browser client."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if deflate:
        lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Client:
    """One WebSocket connection that records each reading's sequence and receipt time."""

    def __init__(self, request: bytes, offset_ns: int) -> None:
        self.request = request
        self.offset_ns = offset_ns
        self.sock: socket.socket | None = None
        self.state = "idle"  # idle -> connecting -> upgrading -> open -> closed
        self.started = 0.0
        self.attempts = 0
        self.buf = bytearray()
        self.inflater: Any = None
        self.fragments: list[bytes] = []
        self.fragments_compressed = False
        self.seqs = array("q")
        self.times = array("d")
        self.lags = array("d")
        self.other_messages = 0
        self.error: str | None = None
        self.closed_at: float | None = None

    # -- connection -----------------------------------------------------------------------
    def connect(self, address: tuple[str, int]) -> socket.socket:
        """Start a non-blocking connect; the socket becomes writable when it is done."""
        self.attempts += 1
        self.state, self.started, self.buf = "connecting", time.monotonic(), bytearray()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        err = sock.connect_ex(address)
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            raise OSError(err, os.strerror(err))
        self.sock = sock
        return sock

    def connected(self) -> None:
        """The TCP connection is up (or failed): send the upgrade request."""
        assert self.sock is not None
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
        self.sock.sendall(self.request)  # small: fits in an empty socket buffer
        self.state = "upgrading"

    def close(self, reason: str | None = None) -> None:
        """Mark the connection closed (the swarm then releases its socket)."""
        if reason is not None:
            self.error = f"attempt {self.attempts}: {reason}"
        if self.state == "open":
            self.closed_at = time.monotonic()
        self.state = "closed"

    def was_open(self) -> bool:
        """Whether the upgrade ever succeeded."""
        return self.state == "open" or self.closed_at is not None

    # -- receiving ------------------------------------------------------------------------
    def readable(self) -> None:
        """Read what the socket has, with the kernel's receipt time, and handle it."""
        assert self.sock is not None
        try:
            n, ancillary, _, _ = self.sock.recvmsg_into([SCRATCH], ANCILLARY)
        except (BlockingIOError, InterruptedError):
            return
        now = time.monotonic()
        if n == 0:
            self.close(None if self.error else "closed by the server")
            return
        stamp = now
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                sec, nsec = struct.unpack_from("qq", data)
                stamp = (sec * 1_000_000_000 + nsec - self.offset_ns) / 1e9
        if not self.buf and self.state == "open" and self.single_text_frame(n, stamp, now - stamp):
            return
        self.buf += memoryview(SCRATCH)[:n]
        if self.state == "upgrading" and not self.upgrade():
            return
        self.parse_frames(stamp, now - stamp)

    def single_text_frame(self, n: int, stamp: float, lag: float) -> bool:
        """The usual case, handled without copies: the read is exactly one unfragmented text frame."""
        length, header = SCRATCH[1], 2
        if length == 126:
            length, header = (SCRATCH[2] << 8) | SCRATCH[3], 4
        if SCRATCH[0] != 0x81 or length == 127 or header + length != n:
            return False
        self.message(bytes(SCRATCH[header:n]), stamp, lag)
        return True

    def upgrade(self) -> bool:
        """Consume the handshake response once complete; True when upgraded."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[: end + 4]
        status = head.split("\r\n", 1)[0]
        if status.split()[1:2] != ["101"]:
            self.close(f"handshake refused: {status}")
            return False
        if "permessage-deflate" in head.lower():
            self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self.state = "open"
        return True

    def parse_frames(self, stamp: float, lag: float) -> None:
        """Handle every complete frame in the buffer (server frames are never masked)."""
        buf, pos, size = self.buf, 0, len(self.buf)
        while size - pos >= 2 and self.state == "open":
            b0, length, header = buf[pos], buf[pos + 1] & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, header = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, header = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if size - pos < header + length:
                break
            payload = bytes(buf[pos + header : pos + header + length])
            pos += header + length
            self.frame(b0, payload, stamp, lag)
        del buf[:pos]

    def frame(self, b0: int, payload: bytes, stamp: float, lag: float) -> None:
        """One frame: data frames build messages, control frames are answered."""
        opcode, fin, compressed = b0 & 0x0F, bool(b0 & 0x80), bool(b0 & 0x40)
        if opcode in (1, 2):
            self.fragments, self.fragments_compressed = [payload], compressed
        elif opcode == 0:
            self.fragments.append(payload)
        elif opcode == 9:
            self.send(masked_frame(0xA, payload))
            return
        elif opcode == 8:
            self.send(masked_frame(0x8, payload[:2]))
            self.close(f"close frame {payload[:2].hex()} {payload[2:]!r}")
            return
        else:
            return  # pong
        if fin:
            message = b"".join(self.fragments)
            if self.fragments_compressed:
                message = self.inflater.decompress(message + DEFLATE_TAIL)
            self.fragments = []
            self.message(message, stamp, lag)

    def message(self, text: bytes, stamp: float, lag: float) -> None:
        """Record a reading's sequence (its weight / 2) and receipt time; count the others."""
        found = None if NOT_READING.search(text) else WEIGHT.search(text)
        if found is None:
            self.other_messages += 1
            return
        self.seqs.append(int(float(found.group(1))) // 2)
        self.times.append(stamp)
        self.lags.append(lag)

    def send(self, data: bytes) -> None:
        """Write a small frame to the server unless the connection is gone."""
        if self.sock is not None:
            try:
                self.sock.send(data)
            except OSError:
                pass

    def record(self) -> dict[str, Any]:
        """What the parent needs from this client."""
        return {
            "seqs": self.seqs.tobytes(),
            "times": self.times.tobytes(),
            "lags": self.lags.tobytes(),
            "other_messages": self.other_messages,
            "opened": self.was_open(),
            "error": self.error,
            "closed_at": self.closed_at,
        }


class Swarm:
    """All the clients of this process and the epoll loop that drives them."""

    def __init__(self, url: str, count: int, concurrency: int, deflate: bool) -> None:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        self.address = (host, port)
        request = handshake_request(f"{host}:{port}", parts.path or "/", deflate)
        offset = realtime_offset_ns()
        self.clients = [Client(request, offset) for _ in range(count)]
        self.waiting = deque(self.clients)  # (re)connections to start
        self.retry_at: dict[Client, float] = {}
        self.concurrency = concurrency
        self.epoll = select.epoll()
        self.by_fd: dict[int, Client] = {}
        self.stdin = sys.stdin.fileno()
        self.stopping = False

    def connecting(self) -> int:
        """Connections still being set up."""
        return sum(1 for c in self.by_fd.values() if c.state in ("connecting", "upgrading"))

    def start_connections(self) -> None:
        """Keep up to `concurrency` handshakes in flight."""
        now = time.monotonic()
        for client, when in list(self.retry_at.items()):
            if when <= now:
                del self.retry_at[client]
                self.waiting.append(client)
        in_flight = self.connecting()
        while self.waiting and in_flight < self.concurrency:
            client = self.waiting.popleft()
            try:
                sock = client.connect(self.address)
            except OSError as exc:
                client.close(repr(exc))
                self.release(client)
                continue
            self.by_fd[sock.fileno()] = client
            self.epoll.register(sock.fileno(), select.EPOLLOUT)
            in_flight += 1

    def release(self, client: Client) -> None:
        """Forget a closed client's socket; retry if it never opened and has attempts left."""
        if client.sock is not None:
            fd = client.sock.fileno()
            self.epoll.unregister(fd)
            del self.by_fd[fd]
            client.sock.close()
            client.sock = None
        if not client.was_open() and client.attempts < ATTEMPTS:
            self.retry_at[client] = time.monotonic() + 0.5 * client.attempts

    def expire_handshakes(self) -> None:
        """Fail attempts that take longer than HANDSHAKE_TIMEOUT."""
        limit = time.monotonic() - HANDSHAKE_TIMEOUT
        for client in list(self.by_fd.values()):
            if client.state in ("connecting", "upgrading") and client.started < limit:
                client.close("handshake timeout")
                self.release(client)

    def handle(self, fd: int) -> None:
        """One epoll event on `fd`."""
        if fd == self.stdin:
            self.stopping = True
            return
        client = self.by_fd[fd]
        try:
            if client.state == "connecting":
                client.connected()
                self.epoll.modify(fd, select.EPOLLIN)
            else:
                client.readable()
        except OSError as exc:
            client.close(repr(exc))
        if client.state == "closed":
            self.release(client)

    def settled(self) -> bool:
        """Every client is open or out of attempts."""
        return not self.waiting and not self.retry_at and self.connecting() == 0

    def run(self) -> None:
        """Connect everyone, say `ready`, record until stdin says stop."""
        self.epoll.register(self.stdin, select.EPOLLIN)
        announced = False
        while not self.stopping:
            if not announced:
                self.start_connections()
                self.expire_handshakes()
                if self.settled():
                    opened = sum(1 for c in self.clients if c.state == "open")
                    print(f"ready {opened} {len(self.clients) - opened}", flush=True)
                    announced = True
            for fd, _ in self.epoll.poll(0.2 if not announced else 1.0):
                self.handle(fd)
        for client in self.clients:
            if client.sock is not None:
                client.sock.close()
        self.epoll.close()

    def records(self) -> list[dict[str, Any]]:
        """One record per client."""
        return [c.record() for c in self.clients]


def main(args: argparse.Namespace) -> None:
    """Run the swarm and write its records."""
    swarm = Swarm(args.url, args.count, args.concurrency, args.deflate)
    swarm.run()
    with open(args.out, "wb") as f:
        pickle.dump(swarm.records(), f)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line of a client process."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--concurrency", type=int, default=25, help="handshakes at a time")
    p.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
