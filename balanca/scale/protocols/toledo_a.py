"""Toledo "Protocolo A" (Prix price-computing scales), per PROTOCOLS-NEXT.md `toledo-a`;
polled with ENQ.

    STX S1 PPPPPP S2 TTTTTT UUUUUU CR CS        23 bytes,
    e.g. b'\\x02@001250\\x00000625000500\\r7'

- S1 (binary): bit 0 motion; bit 1 print pressed; bit 2 the frame carries the date, not a
  weight (rejected, `not-weight`); bit 3 out of range; bit 4 scale type; bit 5 price decimals;
  bit 6 totalisation allowed.
- `PPPPPP`: the weight, 6 digits, no point: 3 decimals, or 2 when S2 bit 3 is set (the frame
  decides; `decimals` is ignored). kg; no sign (negative weights are not representable).
- S2 (binary): bit 0 seventh price digit; bit 3 weight decimals (0: three, 1: two); bit 6 tare
  in use, the weight is net (no tare is sent); bits 1, 2, 4, 5 reserved.
- `TTTTTT` total price, `UUUUUU` price per kg: not part of a reading, ignored.
- CS: two's complement of the sum of STX through CR, so the frame sums to 0 mod 256.

Framing by length: S1, S2 and CS may equal STX or CR. After an STX come 22 more bytes with CR
at byte 22; if CR is not there, that STX was no frame start and the search goes on from the
next byte. An STX inside a frame never resynchronises the stream.

Sources: `frones/ACBr` `Fontes/ACBrSerial/ACBrBALToledo.pas` (`InterpretarProtocoloA`: layout,
both status bytes, checksum rule) and `Fontes/ACBrSerial/ACBrBALMagellan.pas` (same layout,
request `W`); `stoq/stoqdrivers` `stoqdrivers/scales/toledo/PrixIII.py` (Prix: 9600 8N1, ENQ).

Uncertain, to check on the bench:
- Out of range (S1 bit 3) reads as overload: without a sign over and under cannot be told
  apart, and the weight field's content then is not specified (it is not parsed).
- The checksum's width is not stated: the 8-bit sum is checked, and the 7-bit form of `toledo`
  (`sum(b & 0x7F) & 0x7F == 0`) is accepted too; neither is rejected (`checksum`).
- Protocol A's own line settings (9600 8N1 is the Prix line).
"""

from __future__ import annotations

from balanca.reading import Measurement, Mode
from balanca.scale.protocols.base import (
    MASK7,
    DecodeError,
    LengthFramer,
    WireProtocol,
    fixed_point,
    scaled_units,
)

STX, CR = 0x02, 0x0D
LENGTH = 23
MOTION, DATE, OUT_OF_RANGE, TOTALISATION = 0x01, 0x04, 0x08, 0x40
"""S1 bits."""
TWO_DECIMALS, NET = 0x08, 0x40
"""S2 bits."""


def checksum(body: bytes) -> int:
    """The CS byte for `body` (STX through CR): minus its sum, mod 256."""
    return -sum(body) & 0xFF


def _fits(candidate: bytes) -> bool:
    return candidate[21] == CR


def framer() -> LengthFramer:
    """A framer for Protocol A answers: STX and 22 more bytes, CR at byte 22."""
    return LengthFramer(b"\x02", b"\x02", (LENGTH,), _fits)


def decode(frame: bytes, decimals: int | None = None) -> Measurement:
    """Decode one answer; `decimals` is ignored (S2 says 2 or 3)."""
    if len(frame) != LENGTH or frame[0] != STX or frame[21] != CR:
        raise DecodeError("malformed", f"not a 23-byte STX ... CR CS frame: {frame!r}")
    if sum(frame) & 0xFF and sum(frame.translate(MASK7)) & 0x7F:
        raise DecodeError("checksum", f"CS {frame[22]:#04x} != {checksum(frame[:22]):#04x}")
    s1, s2 = frame[1], frame[8]
    if s1 & DATE:
        raise DecodeError("not-weight", "the frame carries the date")
    mode: Mode = "net" if s2 & NET else "gross"
    if s1 & OUT_OF_RANGE:
        return Measurement(None, stable=False, mode=mode, status="overload")
    digits = frame[2:8]
    if not digits.isdigit():
        raise DecodeError("malformed", f"weight not digits: {digits!r}")
    weight = fixed_point(int(digits), 2 if s2 & TWO_DECIMALS else 3)
    return Measurement(weight, stable=not s1 & MOTION, mode=mode)


def encode(m: Measurement) -> bytes:
    """The answer a Prix gives for `m` (kg, 2 or 3 decimals; prices zero). A negative weight
    or underload is sent as out of range (it reads back as overload); the tare is not sent."""
    if m.unit != "kg" or m.status == "error":
        raise ValueError(f"Protocol A frames carry a weight in kg or out of range, not {m}")
    out = m.status != "ok" or (m.weight is not None and m.weight < 0)
    places = 2
    units = 0
    if not out:
        if m.weight is None:
            raise ValueError("status ok needs a weight")
        places = 2 if -int(m.weight.as_tuple().exponent) == 2 else 3
        units = scaled_units(m.weight, places)
        if units >= 10**6:
            raise ValueError(f"{m.weight} does not fit 6 digits")
    s1 = TOTALISATION | MOTION * (not m.stable) | OUT_OF_RANGE * out
    s2 = TWO_DECIMALS * (places == 2) | NET * (m.mode == "net")
    body = bytes([STX, s1]) + b"%06d" % units + bytes([s2]) + b"000000" * 2 + b"\r"
    return body + bytes([checksum(body)])


PROTOCOL = WireProtocol(name="toledo-a", framer=framer, decode=decode, encode=encode, poll=b"\x05")
