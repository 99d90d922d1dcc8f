"""The shape every scale wire protocol fills in: framer, decoder, encoder and line defaults.

A protocol module holds pure code only (bytes in, values out). The scale protocol object in
`balanca.scale` drives it from any byte transport: a serial port, a TCP connection or the
simulator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from balanca.reading import Measurement, Reply

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


@dataclass(frozen=True)
class LineSettings:
    """A serial line's settings, as pyserial names them."""

    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1


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
    """Frames say whether the weight is stable; if not, a software filter decides."""
    poll: bytes | None = None
    """The request that makes a polled scale answer one frame; None for continuous output."""
    commands: Mapping[str, bytes] = field(default_factory=dict)
    """Command name (`tare`, `zero`, `clear-tare`) to the bytes that ask the scale for it."""
    replies: bool = False
    """The scale answers commands with a frame that decodes to a `Reply`."""
    encode_reply: Callable[[Reply], bytes] | None = None
    """The frame a scale sends for a command reply (for the simulator), where it sends one."""
