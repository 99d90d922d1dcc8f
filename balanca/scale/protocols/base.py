"""The shape every scale wire protocol fills in: framer, decoder, encoder and line defaults.

A protocol module holds pure code only (bytes in, values out). The scale protocol object in
`balanca.scale.scale` drives it from any byte transport: a serial port, a TCP connection or the
simulator.

What every decoder promises: weights and tares are exact `Decimal`s with the frame's own
decimals (plain digits, never exponent notation; `-0` reads as 0); a measurement without a
weight (overload, underload, error, "unstable" answers) is never `stable`; a frame that names
no unit reads as `kg`; anything else raises `DecodeError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from balanca.reading import Measurement, Reply, Status

MAX_BUFFER = 4096
"""Bytes a framer holds without finding a frame before it drops them (and counts it)."""


class DecodeError(ValueError):
    """A frame that cannot be decoded; `reason` is a short label for logs and metrics."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class FramerStats:
    """What a framer threw away: bytes outside frames and buffer overflows."""

    garbage_bytes: int = 0
    overflows: int = 0


class Framer(Protocol):
    """Finds whole frames in a byte stream that may start mid-frame, split or carry garbage."""

    stats: FramerStats

    def feed(self, data: bytes) -> list[bytes]:
        """Take more bytes; return the frames they complete, oldest first."""
        ...


class FramerBase:
    """The bookkeeping every framer shares: its stats and the `MAX_BUFFER` bound.

    Each run of more than `MAX_BUFFER` bytes without a frame counts as an overflow: garbage
    thrown away as it comes, or a partial frame that grew past the bound and was dropped.
    """

    def __init__(self) -> None:
        self.stats = FramerStats()
        self._quiet = 0
        """Garbage bytes since the last frame or overflow."""

    def _discard(self, count: int) -> None:
        """Throw away `count` bytes that belong to no frame."""
        self.stats.garbage_bytes += count
        self._quiet += count
        if self._quiet > MAX_BUFFER:
            self.stats.overflows += self._quiet // (MAX_BUFFER + 1)
            self._quiet %= MAX_BUFFER + 1

    def _framed(self) -> None:
        """A frame was found: the count of bytes without one starts again."""
        self._quiet = 0

    def _bounded(self, held: int) -> bool:
        """Whether `held` bytes of one (partial) frame are within the bound; if not, they are
        counted as dropped and the caller drops them."""
        if held <= MAX_BUFFER:
            return True
        self.stats.garbage_bytes += held
        self.stats.overflows += 1
        self._quiet = 0
        return False


class DelimitedFramer(FramerBase):
    """Frames that begin with one of the `starts` bytes and end with one of the `ends` bytes.

    Frames are emitted with their start and end bytes, as soon as the end byte arrives; where
    both CR and LF end frames, a CR LF that has arrived whole ends one frame. Bytes outside
    frames are garbage, except stray end bytes (blank lines, an LF that came after its CR).

    `resync`: start bytes never occur inside a frame (an STX protocol), so a start byte seen
    before the end byte begins a new frame and what came before it is garbage. Without it
    (line protocols, whose start letters also occur inside lines) a frame runs from the first
    start byte after the previous frame to the next end byte.
    """

    def __init__(self, starts: bytes, ends: bytes, *, resync: bool) -> None:
        super().__init__()
        self._starts = starts
        self._ends = ends
        self._start = re.compile(b"[" + re.escape(starts) + b"]")
        self._end = re.compile(b"[" + re.escape(ends) + b"]")
        self._resync = resync
        self._crlf = b"\r" in ends and b"\n" in ends
        self._pending = bytearray()
        """A partial frame: empty, or a start byte and bytes without an end byte."""

    def feed(self, data: bytes) -> list[bytes]:
        """Take more bytes; return the frames they complete, oldest first."""
        buf = self._pending
        scanned = len(buf)
        buf += data
        frames: list[bytes] = []
        pos = 0
        while True:
            if pos == scanned:  # no frame open: find the next start byte
                found = self._start.search(buf, pos)
                start = found.start() if found else len(buf)
                self._skip(buf, pos, start)
                pos = start
                if found is None:
                    break
                scanned = pos + 1
            end = self._end.search(buf, scanned)
            if end is None:
                if self._resync:
                    last = self._last_start(buf, scanned, len(buf))
                    if last > pos:
                        self._skip(buf, pos, last)
                        pos = last
                break
            if self._resync:
                last = self._last_start(buf, scanned, end.start())
                if last > pos:
                    self._skip(buf, pos, last)
                    pos = last
            stop = end.end()
            if buf[stop - 1 : stop + 1] == b"\r\n" and self._crlf:
                stop += 1
            if self._bounded(stop - pos):
                frames.append(bytes(buf[pos:stop]))
                self._framed()
            pos = scanned = stop
        del buf[:pos]
        if not self._bounded(len(buf)):
            buf.clear()
        return frames

    def _last_start(self, buf: bytearray, begin: int, end: int) -> int:
        """The index of the last start byte in `buf[begin:end]`, or -1."""
        return max(buf.rfind(b, begin, end) for b in self._starts)

    def _skip(self, buf: bytearray, begin: int, end: int) -> None:
        """Count `buf[begin:end]` as garbage, except end bytes between frames."""
        if end > begin:
            self._discard(len(buf[begin:end].translate(None, self._ends)))


class LengthFramer(FramerBase):
    """Frames of fixed lengths that carry binary bytes (status bits, checksums): found by a
    `head` (a regex for their first bytes, the first of them one of `starts`) and checked by
    `fits`, never by delimiters alone.

    A head whose candidate frame (tried at each of `lengths`, shortest first) does not `fit`
    was no frame start: its first byte is garbage and the search goes on from the next byte,
    so a start byte inside a frame that fits never resynchronises the stream. `signals` are
    single bytes that mean something between frames (CAS's ACK and NAK): they come out as
    one-byte frames, in stream order.
    """

    def __init__(
        self,
        starts: bytes,
        head: bytes,
        lengths: tuple[int, ...],
        fits: Callable[[bytes], bool],
        signals: bytes = b"",
    ) -> None:
        super().__init__()
        self._head = re.compile(head)
        self._starts = starts
        self._lengths, self._fits = lengths, fits
        self._signals = signals
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Take more bytes; return the frames they complete, oldest first."""
        buf = self._buf
        buf += data
        frames: list[bytes] = []
        pos = 0
        while True:
            head = self._head.search(buf, pos)
            start = head.start() if head else self._tail(buf, pos)
            self._between(buf, pos, start, frames)
            pos = start
            if head is None:
                break
            length = self._frame_at(buf, start)
            if length is None:
                break
            if length == 0:
                self._discard(1)
                pos += 1
                continue
            frames.append(bytes(buf[start : start + length]))
            self._framed()
            pos = start + length
        del buf[:pos]
        return frames

    def _frame_at(self, buf: bytearray, start: int) -> int | None:
        """The length of the frame at `start`; 0 if none; None while more bytes may tell."""
        for length in self._lengths:
            if len(buf) < start + length:
                return None
            if self._fits(bytes(buf[start : start + length])):
                return length
        return 0

    def _tail(self, buf: bytearray, pos: int) -> int:
        """Where the bytes that may still begin a head start (a first byte at the very end)."""
        if len(buf) > pos and buf[-1] in self._starts:
            return len(buf) - 1
        return len(buf)

    def _between(self, buf: bytearray, begin: int, end: int, frames: list[bytes]) -> None:
        """Bytes between frames: signals become one-byte frames, the rest is garbage."""
        chunk = bytes(buf[begin:end])
        frames.extend(bytes([b]) for b in chunk if b in self._signals)
        self._discard(len(chunk.translate(None, self._signals)))


@dataclass(frozen=True)
class LineSettings:
    """A serial line's settings, as pyserial names them."""

    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1


LINE_7E1 = LineSettings(bytesize=7, parity="E")
"""9600 7E1: the usual line of the 7-bit protocols (bit 7 is parity)."""

Decoder = Callable[[bytes, "int | None"], "Measurement | Reply"]
"""`decode(frame, decimals)`: one frame to a value; raises `DecodeError`. `decimals` overrides
the decimals of protocols whose frames do not carry them (None: the protocol's default)."""


@dataclass(frozen=True)
class WireProtocol:
    """Everything balanca knows about one scale wire protocol."""

    name: str
    framer: Callable[[], Framer]
    decode: Decoder
    encode: Callable[[Measurement], bytes]
    """The frame an indicator sends for a measurement (the simulator and tests use it)."""
    line: LineSettings = LineSettings()
    seven_bit: bool = False
    """Bit 7 is parity on this protocol's line: mask it off before framing."""
    flags_stability: bool = True
    """Frames say whether the weight is stable; a protocol without that flag gets the software
    filter by default, any other only when `stable=N` asks for it."""
    poll: bytes | None = None
    """The request that makes a polled scale answer one frame; None for continuous output."""
    commands: Mapping[str, bytes] = field(default_factory=dict)
    """Command name (`tare`, `zero`, `clear-tare`) to the bytes that ask the scale for it."""
    replies: bool = False
    """The scale answers commands with a frame that decodes to a `Reply`."""
    encode_reply: Callable[[Reply], bytes] | None = None
    """The frame a scale sends for a command reply (for the simulator), where it sends one."""
    steps: Mapping[bytes, bytes] = field(default_factory=dict)
    """A polled request in steps (CAS: ENQ, then ACK from the scale, then DC1): a one-byte
    frame from the scale to what the host sends next (empty: nothing, ask at the next poll)."""


MASK7 = bytes(range(128)) * 2
"""`frame.translate(MASK7)` clears bit 7 (parity on a 7-bit line) of every byte."""

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def fixed_point(units: int, decimals: int) -> Decimal:
    """`units` × 10^-`decimals`, written with exactly `decimals` places.

    A negative `decimals` multiplies (`fixed_point(1234, -2)` is `Decimal("123400")`), so the
    value always prints as plain digits, never in exponent notation.
    """
    if decimals <= 0:
        return Decimal(units * 10**-decimals)
    return Decimal(units).scaleb(-decimals)


def scaled_units(value: Decimal, decimals: int) -> int:
    """The integer `value` × 10^`decimals`; `ValueError` when that is not a whole number."""
    units = value.scaleb(decimals)
    if units != units.to_integral_value():
        raise ValueError(f"{value} has more than {decimals} decimals")
    return int(units)


def parse_decimal(text: str) -> Decimal:
    """A signed decimal number as the scale wrote it (`-012.50`), exact; `-0` reads as 0."""
    if not _NUMBER.fullmatch(text):
        raise DecodeError("malformed", f"not a number: {text!r}")
    value = Decimal(text)
    return value.copy_abs() if value.is_zero() else value


def written(value: Decimal, width: int, *, fill: str = "0", point: bool = False) -> str:
    """`value` as an indicator writes it into a `width`-character field: its own decimals,
    a trailing point when it has none and `point` asks for one (`1234.`), padded on the left
    with `fill`; a `-` leads (before zeros, after blanks). `ValueError` when it does not fit."""
    text = format(abs(value), "f")
    if point and "." not in text:
        text += "."
    sign = "-" if value < 0 else ""
    field = sign + text.rjust(width - len(sign), "0") if fill == "0" else (sign + text).rjust(width)
    if len(field) > width:
        raise ValueError(f"{value} does not fit {width} characters")
    return field


def out_of_range(polarity: str) -> Status:
    """What an "over/under range" flag means with this polarity: underload when `-`."""
    return "underload" if polarity == "-" else "overload"


def frame_text(frame: bytes) -> str:
    """An ASCII frame as text without surrounding blanks and line ends."""
    try:
        return frame.decode("ascii").strip()
    except UnicodeDecodeError:
        raise DecodeError("malformed", f"not ASCII: {frame!r}") from None
