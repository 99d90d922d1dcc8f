"""Mettler-Toledo Standard Continuous Output (Toledo Brasil "P03"), per PROTOCOLS.md `toledo`.

    STX SWA SWB SWC WWWWWW TTTTTT CR [CHK]      17 bytes, or 18 with the checksum
    STX SWA SWB SWC WWWWWW CR [CHK]             "short" form without tare: 11 or 12 bytes

From Mettler-Toledo's indicator manuals (continuous output). `WWWWWW`/`TTTTTT` are the
displayed weight and the tare, 6 ASCII digits, unsigned, no decimal point; 60-80 t Brazilian
indicators send a space and 5 digits (leading blanks are read as zeros). CHK makes the 7-bit sum
of the frame 0 mod 128. Status words (bit 7 is parity and is ignored; bits 5 and 6 of SWA and
SWC, documented as always 1 and 0, are not checked):

- SWA bits 2..0: decimal point, `000` ×100 ... `010` none ... `111` 5 decimals; bits 4..3 the
  increment (1, 2, 5), which does not change the value and is ignored.
- SWB bit 0 net, bit 1 negative, bit 2 out of range (underload when negative), bit 3 motion,
  bit 4 kg (else lb), bit 6 power-up not zeroed: the digits are no weight then, so the frame
  reads as status `error` with no weight.
- SWC bits 2..0: unit code, `000` kg/lb per SWB bit 4, `001` g (Mettler's grams bit),
  `010` t, `011` oz (Ohaus); other codes raise `DecodeError("unknown-unit")`. Bit 3 (print
  request) and bit 4 (expanded display) are ignored.

Framing: the CHK byte is optional, may take any 7-bit value (STX and CR included), and only
the byte after CR tells whether a stream carries it. `ToledoFramer` learns that from the
stream; see its docstring.
"""

from __future__ import annotations

from decimal import Decimal

from balanca.reading import Measurement, Mode, Status
from balanca.scale.protocols.base import (
    LINE_7E1,
    MASK7,
    DecodeError,
    FramerBase,
    WireProtocol,
    fixed_point,
    scaled_units,
)

STX = 0x02
CR = 0x0D
SHORT = 11
"""Length of a frame without tare (and without CHK)."""
FULL = 17
"""Length of a frame with tare (and without CHK)."""
_FIELD_BYTES = b"0123456789 "

_UNIT_CODES = {1: "g", 2: "t", 3: "oz"}
_CODE_OF_UNIT = {"g": 1, "t": 2, "oz": 3}


def checksum(frame: bytes | bytearray) -> int:
    """The CHK byte for `frame` (STX to CR): minus the 7-bit sum of its bytes, mod 128."""
    return -sum(frame.translate(MASK7)) & 0x7F


def _is_field(chunk: bytes | bytearray) -> bool:
    """Whether `chunk` holds only digits and blanks (the weight and tare fields)."""
    return not chunk.translate(None, _FIELD_BYTES)


def frame_length(buf: bytes | bytearray, start: int) -> int | None:
    """The length (`SHORT` or `FULL`, CHK excluded) of the frame whose STX is at `start`;
    0 if none is there; None while the bytes so far could still be a frame's beginning."""
    weight = buf[start + 4 : start + 10]
    if not _is_field(weight):
        return 0
    if len(buf) <= start + 10:
        return None
    if buf[start + 10] == CR:
        return SHORT
    tare = buf[start + 10 : start + 16]
    if not _is_field(tare):
        return 0
    if len(buf) <= start + 16:
        return None
    return FULL if buf[start + 16] == CR else 0


class ToledoFramer(FramerBase):
    """Finds Toledo frames: an STX with its CR 11 or 17 bytes on, digits or blanks between.

    Whether a CHK byte follows CR is learned from the stream. The byte after a frame votes:
    equal to the frame's checksum (and not STX) says "CHK"; an STX that is not the checksum
    says "no CHK"; anything else (a bad CHK, garbage) or an STX that is also the checksum does
    not vote. The first vote decides; two contrary votes in a row change the decision.

    - Carrying CHK (or not yet known): a frame is emitted when the byte after its CR arrives,
      which on a CHK stream comes right after CR, so no latency. It is emitted with that byte
      as its CHK (for `decode` to check) unless the stream is known not to carry CHK; a byte
      that may start the next frame (STX) is also scanned as a start.
    - Known not to carry CHK: a frame is emitted at its CR, without waiting for the next frame;
      the byte that follows still votes, and is swallowed if it is that frame's CHK.

    So until the first vote (normally the first frame), a stream without CHK waits for the
    next frame's STX, and a lone frame followed by something else is taken as a bad checksum.
    """

    def __init__(self) -> None:
        super().__init__()
        self._buf = bytearray()
        self._carries_chk: bool | None = None
        self._doubts = 0
        self._emitted_chk: int | None = None
        """Checksum of a frame emitted at its CR whose next byte has not been seen yet."""

    def feed(self, data: bytes) -> list[bytes]:
        """Take more bytes; return the frames they complete, oldest first."""
        buf = self._buf
        buf += data
        frames: list[bytes] = []
        pos = 0
        while pos < len(buf):
            if self._emitted_chk is not None:
                after, chk, self._emitted_chk = buf[pos], self._emitted_chk, None
                if self._vote(after, chk) and after == chk:
                    pos += 1  # that frame's CHK after all
                    continue
            start = buf.find(STX, pos)
            if start < 0:
                self._discard(len(buf) - pos)
                pos = len(buf)
                break
            self._discard(start - pos)
            pos = start
            length = frame_length(buf, start)
            if length is None:
                break
            if length == 0:
                self._discard(1)
                pos += 1
                continue
            end = start + length
            chk = checksum(buf[start:end])
            if end < len(buf):
                after = buf[end]
                self._vote(after, chk)
                with_chk = self._carries_chk is not False or after == chk
                frames.append(bytes(buf[start : end + with_chk]))
                # Scan `after` again if it may start the next frame (unless surely our CHK).
                may_start = after == STX and not (after == chk and self._carries_chk)
                pos = end + 1 if with_chk and not may_start else end
            elif self._carries_chk is False:
                frames.append(bytes(buf[start:end]))
                self._emitted_chk = chk
                pos = end
            else:
                break  # wait for the byte after CR
            self._framed()
        del buf[:pos]
        return frames

    def _vote(self, after: int, chk: int) -> bool:
        """Let the byte `after` a frame with checksum `chk` vote; return whether it did."""
        if after == STX and chk == STX or after not in (STX, chk):
            return False
        says_chk = after == chk
        if self._carries_chk is None or self._carries_chk == says_chk:
            self._carries_chk, self._doubts = says_chk, 0
        else:
            self._doubts += 1
            if self._doubts == 2:
                self._carries_chk, self._doubts = says_chk, 0
        return True


def decode(frame: bytes, decimals: int | None = None) -> Measurement:
    """Decode one frame (STX to CR, with or without CHK); `decimals` is ignored (the frame
    carries its decimal point)."""
    f = frame.translate(MASK7)
    length = frame_length(f, 0) if f[:1] == b"\x02" else 0
    if not length or len(f) > length + 1:
        raise DecodeError("malformed", f"not a Toledo frame: {frame!r}")
    if len(f) == length + 1 and f[length] != checksum(f[:length]):
        raise DecodeError("checksum", f"CHK {f[length]:#04x} != {checksum(f[:length]):#04x}")
    swa, swb, swc = f[1], f[2], f[3]
    places = (swa & 0b111) - 2
    tare = fixed_point(_digits(f[10:16]), places) if length == FULL else None
    unit = _UNIT_CODES.get(swc & 0b111) if swc & 0b111 else "kg" if swb & 0x10 else "lb"
    if unit is None:
        raise DecodeError("unknown-unit", f"SWC unit code {swc & 0b111:03b}")
    mode: Mode = "net" if swb & 0x01 else "gross"
    negative = bool(swb & 0x02)
    status: Status = "ok"
    if swb & 0x40:
        status = "error"
    elif swb & 0x04:
        status = "underload" if negative else "overload"
    if status != "ok":
        return Measurement(None, unit, False, mode, tare, status)
    units = _digits(f[4:10])
    weight = fixed_point(-units if negative else units, places)
    return Measurement(weight, unit, not swb & 0x08, mode, tare, status)


def _digits(field: bytes) -> int:
    """A weight or tare field: digits, perhaps after blanks."""
    digits = field.lstrip(b" ")
    if not digits.isdigit():
        raise DecodeError("malformed", f"not digits: {field!r}")
    return int(digits)


def encode(m: Measurement) -> bytes:
    """The frame, with CHK, that an indicator sends for `m`: short form when `m.tare` is None.

    Decimals follow the weight's (or, without a weight, the tare's) exponent; a weight of
    None needs status overload, underload or error.
    """
    reference = m.weight if m.weight is not None else m.tare
    places = -int(reference.as_tuple().exponent) if reference is not None else 0
    if not -2 <= places <= 5:
        raise ValueError(f"Toledo frames carry -2..5 decimals, not {places}")
    if (m.weight is None) == (m.status == "ok"):
        raise ValueError(f"status {m.status} with weight {m.weight}")
    code = _CODE_OF_UNIT.get(m.unit, 0)
    if not code and m.unit not in ("kg", "lb"):
        raise ValueError(f"Toledo frames cannot say unit {m.unit!r}")
    negative = m.status == "underload" or (m.weight is not None and m.weight < 0)
    swa = 0x20 | 0b01 << 3 | (places + 2)
    swb = (
        0x20
        | (m.mode == "net")
        | negative << 1
        | (m.status in ("overload", "underload")) << 2
        | (not m.stable) << 3
        | (m.unit in ("kg", "g", "t")) << 4
        | (m.status == "error") << 6
    )
    body = bytes([STX, swa, swb, 0x20 | code]) + _field(m.weight, places)
    if m.tare is not None:
        body += _field(m.tare, places)
    body += b"\r"
    return body + bytes([checksum(body)])


def _field(value: Decimal | None, places: int) -> bytes:
    """`value` as 6 digits with `places` decimals (zeros for None)."""
    units = abs(scaled_units(value, places)) if value is not None else 0
    if units >= 10**6:
        raise ValueError(f"{value} does not fit 6 digits")
    return b"%06d" % units


PROTOCOL = WireProtocol(
    name="toledo",
    framer=ToledoFramer,
    decode=decode,
    encode=encode,
    line=LINE_7E1,
    seven_bit=True,
)
