"""Líder LD2052 (Brazilian indicator), per PROTOCOLS-NEXT.md `lider`; continuous output.

    SOH WWWWWW SP S STX         10 bytes, e.g. b'\\x01012.50 E\\x02'

- `WWWWWW`: the weight as displayed, digits and one decimal point (`012.50`); with no
  decimals shown the point comes last (`12340.`). Read as written, blanks stripped.
- `S`: `E` stable (*estável*), `I` unstable (*instável*); any other byte is rejected (`status`).
- The space before `S` is padding: a frame without it is read the same (lenient).
- STX ends the frame: frames start on SOH only. No unit (kg), no net/gross (gross), no tare,
  no checksum. Default line 2400 8N1.

Source: `frones/ACBr` `Fontes/ACBrSerial/ACBrBALLider.pas` (header comment: layout, `E`/`I`,
2400 8N1, "sends readings continuously, needs no command"). Unlike ACBr, spaces are not read as
zeros (that would add a decimal), and every frame is decoded, stable or not.

Not documented, to check on the bench: negative, overload, underload and error frames. A
leading `-` is read as a negative weight (lenient); any other weight that is not a number is
rejected (`malformed`).
"""

from __future__ import annotations

from balanca.reading import Measurement
from balanca.scale.protocols.base import (
    DecodeError,
    DelimitedFramer,
    LineSettings,
    WireProtocol,
    frame_text,
    parse_decimal,
    written,
)

SOH, STX = b"\x01", b"\x02"
_STABILITY = {"E": True, "I": False}


def framer() -> DelimitedFramer:
    """A framer for Líder frames: SOH to STX."""
    return DelimitedFramer(SOH, STX, resync=True)


def decode(frame: bytes, decimals: int | None = None) -> Measurement:
    """Decode one frame; `decimals` is ignored (the weight carries its decimal point)."""
    if frame[:1] != SOH or frame[-1:] != STX or len(frame) < 4:
        raise DecodeError("malformed", f"not SOH weight SP status STX: {frame!r}")
    text = frame_text(frame[1:-2])
    stable = _STABILITY.get(chr(frame[-2]))
    if stable is None:
        raise DecodeError("status", f"status byte {frame[-2:-1]!r}")
    return Measurement(parse_decimal(text), stable=stable)


def encode(m: Measurement) -> bytes:
    """The frame a Líder sends for `m` (a weight in kg, 6 characters with the point); its
    mode and tare are not sent."""
    if m.weight is None or m.status != "ok" or m.unit != "kg":
        raise ValueError(f"Líder frames carry only a weight in kg, not {m}")
    text = written(m.weight, 6, point=True)
    return SOH + f"{text} {'E' if m.stable else 'I'}".encode("ascii") + STX


PROTOCOL = WireProtocol(
    name="lider",
    framer=framer,
    decode=decode,
    encode=encode,
    line=LineSettings(baudrate=2400),
)
