"""A small, faithful re-creation of the old scale stack that balanca replaces (benchmark only).

The old system was hand-made from the standard library and the `websockets` package, in one
process with three kinds of threads:

- a serial thread: pyserial reads the indicator, a simple decoder of its own turns toledo
  frames into a dict, which becomes the global "latest reading";
- an HTTP thread: `http.server.ThreadingHTTPServer` (a thread per connection, HTTP/1.0 by
  default, one request log line per request) answers `GET /api/weight` with `json.dumps` of
  the latest dict, re-encoded for every request;
- the asyncio main thread: a `websockets` server with the library's defaults (keepalive ping
  every 20 s, per-message deflate offered to clients that ask, write buffer limits) keeps a
  set of connections and broadcasts each reading as JSON text.

Broadcast: by default the plain hand-made loop that predates `websockets.broadcast` (added in
websockets 10) and that most tutorials of the time show: `for ws in clients: await ws.send(msg)`,
scheduled from the serial thread with `asyncio.run_coroutine_threadsafe`. `--broadcast helper`
uses `websockets.broadcast` instead (fire-and-forget, skips clients whose buffers are full).

Everything binds to loopback only: HTTP on 127.0.0.1, WebSocket on 127.0.0.1 and ::1.

    python bench/oldstack.py --serial /dev/pts/5 --http-port 8080 --ws-port 8081
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import serial
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

STX = 0x02
CR = 0x0D
FRAME_LEN = 18  # STX SWA SWB SWC WWWWWW TTTTTT CR CHK

latest: dict[str, Any] = {}
"""The latest reading, shared by the serial and HTTP threads (the old code's global)."""
latest_lock = threading.Lock()
clients: set[ServerConnection] = set()
"""Open WebSocket connections, touched only from the asyncio thread."""
ACCESS_LOG = True
"""Write a log line per HTTP request, as the old system did (`--no-access-log`: none)."""


def decode_toledo(frame: bytes) -> dict[str, Any] | None:
    """Decode one 18-byte toledo frame into the old reading dict, or None if it is bad."""
    if len(frame) != FRAME_LEN or frame[0] != STX or frame[16] != CR:
        return None
    if sum(frame) & 0x7F:
        return None  # checksum: the 7-bit sum of all 18 bytes is 0 mod 128
    swa, swb = frame[1], frame[2]
    digits, tare_digits = frame[4:10].decode("ascii"), frame[10:16].decode("ascii")
    if not (digits.isdigit() and tare_digits.isdigit()):
        return None
    places = (swa & 0x07) - 2  # 000 -> x100, 001 -> x10, 010 -> units, 011 -> 1 decimal ...
    negative = bool(swb & 0x02)
    return {
        "type": "reading",
        "weight": scaled(digits, places, negative),
        "tare": scaled(tare_digits, places, False),
        "unit": "kg" if swb & 0x10 else "lb",
        "stable": not swb & 0x08,
        "mode": "net" if swb & 0x01 else "gross",
        "status": "overload" if swb & 0x04 else "ok",
        "time": datetime.now().astimezone().isoformat(),
    }


def scaled(digits: str, places: int, negative: bool) -> str:
    """Weight text from the frame digits and the decimal places coded in SWA."""
    value = int(digits)
    if places <= 0:
        text = str(value * 10**-places)
    else:
        text = f"{value // 10**places}.{value % 10**places:0{places}d}"
    return "-" + text if negative else text


def frames(buf: bytearray) -> Iterator[bytes]:
    """Take every complete frame out of `buf`, dropping bytes before each STX."""
    while True:
        start = buf.find(STX)
        if start < 0:
            buf.clear()
            return
        if len(buf) - start < FRAME_LEN:
            del buf[:start]
            return
        yield bytes(buf[start : start + FRAME_LEN])
        del buf[: start + FRAME_LEN]


def serial_loop(device: str, on_reading: Callable[[dict[str, Any]], None]) -> None:
    """Read the scale forever (serial thread): 9600 7E1, every byte masked to 7 bits."""
    port = serial.Serial(device, 9600, bytesize=7, parity="E", stopbits=1, timeout=1)
    buf = bytearray()
    seq = 0
    while True:
        chunk = port.read(port.in_waiting or 1)
        buf += bytes(b & 0x7F for b in chunk)
        for frame in frames(buf):
            reading = decode_toledo(frame)
            if reading is not None:
                seq += 1
                reading["seq"] = seq
                on_reading(reading)


class WeightHandler(BaseHTTPRequestHandler):
    """`GET /api/weight`: the latest reading, re-encoded for every request."""

    def do_GET(self) -> None:
        if self.path != "/api/weight":
            self.reply(404, {"error": "not found"})
            return
        with latest_lock:
            reading = dict(latest)
        if reading:
            self.reply(200, reading)
        else:
            self.reply(503, {"error": "no reading yet"})

    def reply(self, code: int, body: dict[str, Any]) -> None:
        """Send `body` as JSON with status `code`."""
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One access log line per request on stderr (the old system's), unless turned off."""
        if ACCESS_LOG:
            super().log_request(code, size)


async def ws_handler(ws: ServerConnection) -> None:
    """Keep the connection in `clients` until it closes."""
    clients.add(ws)
    try:
        await ws.wait_closed()
    finally:
        clients.discard(ws)


async def send_to_all(message: str) -> None:
    """The old hand-made broadcast: await each client's send in turn."""
    for ws in list(clients):
        try:
            await ws.send(message)
        except ConnectionClosed:
            pass


def publisher(loop: asyncio.AbstractEventLoop, mode: str) -> Callable[[dict[str, Any]], None]:
    """The serial thread's callback: store the reading, hand its JSON to the asyncio thread."""

    def publish(reading: dict[str, Any]) -> None:
        with latest_lock:
            latest.clear()
            latest.update(reading)
        message = json.dumps(reading)
        if mode == "loop":
            asyncio.run_coroutine_threadsafe(send_to_all(message), loop)
        else:
            loop.call_soon_threadsafe(lambda: broadcast(clients, message))

    return publish


async def main(args: argparse.Namespace) -> None:
    """Start the HTTP and serial threads, then serve WebSocket clients until killed."""
    http = ThreadingHTTPServer(("127.0.0.1", args.http_port), WeightHandler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    publish = publisher(asyncio.get_running_loop(), args.broadcast)
    threading.Thread(target=serial_loop, args=(args.serial, publish), daemon=True).start()
    hosts = ["127.0.0.1", "::1"]  # loop.create_server takes a list of hosts
    async with serve(ws_handler, hosts, args.ws_port) as server:  # type: ignore[arg-type]
        await server.serve_forever()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line of the old stack."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--serial", required=True, help="serial device (a pty slave path)")
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--ws-port", type=int, required=True)
    p.add_argument("--broadcast", choices=("loop", "helper"), default="loop")
    p.add_argument("--no-access-log", dest="access_log", action="store_false",
                   help="no log line per HTTP request (the old stack as its kindest rival)")  # fmt: skip
    return p.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    ACCESS_LOG = arguments.access_log
    asyncio.run(main(arguments))
