"""Epelsa retail scales in "Auto" mode, per PROTOCOLS-NEXT.md `epelsa`; continuous output.

    STX S WWWWWWW CR ETX        11 bytes, e.g. b'\\x02A -0.450\\r\\x03'

- `S`: `A` stable, `!` in transition (unstable), `I` "initial weight"; any other byte is
  rejected (`status`).
- `WWWWWWW`: blanks, `-` when negative, digits and the point (`  0.000`); read as written.
- CR is data; ETX ends the frame. No unit (kg), no net/gross (gross), no tare, no checksum.
  Default line 9600 8N1.

Source: `pywebdriver/pywebdriver` `pywebdriver/plugins/scale_protocols/epelsa.py` (docstring
and examples; the driver reads STX...ETX at 9600 8N1).

Uncertain, to check on the bench: what `I` means (its weight is reported, not stable), and how
overload, net and tare show (not documented).
"""

from __future__ import annotations

from balanca.reading import Measurement
from balanca.scale.protocols.base import (
    DecodeError,
    DelimitedFramer,
    WireProtocol,
    frame_text,
    parse_decimal,
    written,
)

STX, END = b"\x02", b"\r\x03"
_STABILITY = {"A": True, "!": False, "I": False}


def framer() -> DelimitedFramer:
    """A framer for Epelsa frames: STX to ETX."""
    return DelimitedFramer(STX, b"\x03", resync=True)


def decode(frame: bytes, decimals: int | None = None) -> Measurement:
    """Decode one frame; `decimals` is ignored (the weight carries its decimal point)."""
    if frame[:1] != STX or frame[-2:] != END or len(frame) < 5:
        raise DecodeError("malformed", f"not STX status weight CR ETX: {frame!r}")
    stable = _STABILITY.get(chr(frame[1]))
    if stable is None:
        raise DecodeError("status", f"status byte {frame[1:2]!r}")
    return Measurement(parse_decimal(frame_text(frame[2:-2])), stable=stable)


def encode(m: Measurement) -> bytes:
    """The frame an Epelsa sends for `m` (a weight in kg): `A` stable, `!` unstable; its mode
    and tare are not sent."""
    if m.weight is None or m.status != "ok" or m.unit != "kg":
        raise ValueError(f"Epelsa frames carry only a weight in kg, not {m}")
    text = written(m.weight, 7, fill=" ")
    return STX + f"{'A' if m.stable else '!'}{text}".encode("ascii") + END


PROTOCOL = WireProtocol(name="epelsa", framer=framer, decode=decode, encode=encode)
