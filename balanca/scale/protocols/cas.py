"""CAS ECR protocol (CAS PD-II "type 6", SW-II, CAS-M, Ohaus Aviator), per PROTOCOLS-NEXT.md
`cas`; polled in two steps: host ENQ, scale ACK (NAK: not ready), host DC1, scale frame.

    SOH STX STA SIGN W5 W4 W3 W2 W1 W0 U1 U0 BCC ETX EOT     15 bytes,
    e.g. b'\\x01\\x02S 01.234kge\\x03\\x04'

- SOH 0x01 (r_keeper also saw 0x81: accepted), STX.
- STA: `S` stable, `U` unstable; `F` (Pinnacle: out of range or not zeroed at power-up) with a
  numeric weight is status error. Any other byte is rejected (`status`).
- SIGN: blank zero or positive, `-` negative, `F` overload; `+` is read as positive (lenient).
- Weight: 6 characters with the point (`01.234`), read as written; all `F` on overload.
  r_keeper documents 7 characters (a 16-byte frame): fields are found from the end, so 6 or 7
  are accepted.
- Unit: 2 characters (`kg`, `lb`, any case), reported lower-case. No net/gross (gross), no tare.
- BCC: XOR of STA through U0.

Framing by length: after SOH STX, ETX EOT must close the frame at bytes 14-15 (or 15-16), or
that SOH was no frame start. BCC is data and may be any byte. ACK and NAK between frames are
protocol bytes: they come out of the framer as one-byte frames, and ACK makes the host send
DC1 (`WireProtocol.steps`).

Commands (Mertech, Pinnacle): zero `<ZK>` TAB, tare `<TK>` TAB; no reply is documented.

Sources: CAS PD-II manual p. 23; CAS SW-II p. 15; Ohaus Aviator 7000 service manual p. 36;
Mertech CAS-M (docs.mertech.ru); r_keeper scale drivers (docs.rkeeper.ru); the AP-1 protocol
document (9600 8N1, BCC); Pinnacle OS2CX p. 19. URLs in PROTOCOLS-NEXT.md.

Uncertain, to check on the bench: the BCC's range. Ohaus words it "all characters except STX
and ETX", Pinnacle "the 12 bytes before it" (SOH and STX included). Only the STA..U0 rule is
checked (accepting the others would let single-digit errors through); a frame that fails it is
rejected (`checksum`), and the log line says when it would have passed under a variant.
Not this family: the 22-byte continuous "CAS format" of CAS CI-series indicators.
"""

from __future__ import annotations

from functools import reduce
from operator import xor

from balanca.reading import Measurement
from balanca.scale.protocols.base import (
    DecodeError,
    LengthFramer,
    WireProtocol,
    frame_text,
    parse_decimal,
    written,
)

ENQ, ACK, NAK, DC1 = b"\x05", b"\x06", b"\x15", b"\x11"
SOH, STX, END = b"\x01", b"\x02", b"\x03\x04"
LENGTHS = (15, 16)
_STABILITY = {"S": True, "U": False}


def bcc(data: bytes) -> int:
    """The XOR of `data`'s bytes."""
    return reduce(xor, data, 0)


def _fits(candidate: bytes) -> bool:
    return candidate[-2:] == END


def framer() -> LengthFramer:
    """A framer for CAS answers: SOH STX and ETX EOT 15 or 16 bytes on; ACK and NAK alone."""
    return LengthFramer(b"\x01\x81", rb"[\x01\x81]\x02", LENGTHS, _fits, signals=ACK + NAK)


def decode(frame: bytes, decimals: int | None = None) -> Measurement:
    """Decode one answer; `decimals` is ignored (the weight carries its decimal point)."""
    if len(frame) not in LENGTHS or frame[0] not in (0x01, 0x81) or frame[1:2] != STX:
        raise DecodeError("malformed", f"not SOH STX ... BCC ETX EOT: {frame!r}")
    if frame[-2:] != END:
        raise DecodeError("malformed", f"not SOH STX ... BCC ETX EOT: {frame!r}")
    data, check = frame[2:-3], frame[-3]
    if bcc(data) != check:
        raise DecodeError("checksum", f"BCC {check:#04x} != {bcc(data):#04x}{_variant(frame)}")
    sta, sign, weight, unit = chr(data[0]), chr(data[1]), data[2:-2], frame_text(data[-2:])
    unit = unit.lower() or "kg"
    if sign == "F" or b"F" in weight:
        return Measurement(None, unit, False, status="overload")
    if sign not in " +-":
        raise DecodeError("malformed", f"sign {sign!r}")
    value = parse_decimal(sign.strip() + frame_text(weight))
    if sta == "F":
        return Measurement(None, unit, False, status="error")
    stable = _STABILITY.get(sta)
    if stable is None:
        raise DecodeError("status", f"STA {sta!r}")
    return Measurement(value, unit, stable)


def _variant(frame: bytes) -> str:
    """Which documented BCC variant, if any, the frame's BCC matches (for the log line)."""
    check = frame[-3]
    if bcc(frame[:-3]) == check:
        return " (it matches Pinnacle's XOR of the 12 bytes before it)"
    if bcc(frame[:1] + frame[2:-3]) == check:
        return " (it matches Ohaus's XOR of all but STX and ETX)"
    return ""


def encode(m: Measurement) -> bytes:
    """The answer a CAS scale gives for `m` (a weight, 6 characters with the point): `F`
    overload, STA `F` error; underload is not representable; mode and tare are not sent."""
    if len(m.unit) != 2 or m.status == "underload":
        raise ValueError(f"CAS frames carry a weight or overload and a 2-letter unit: {m}")
    if m.status == "overload":
        sta, sign, weight = "U", "F", "FFFFFF"
    elif m.status == "error":
        sta, sign, weight = "F", " ", "00.000"
    elif m.weight is None:
        raise ValueError("status ok needs a weight")
    else:
        sta, sign, weight = "S" if m.stable else "U", "-" if m.weight < 0 else " ", ""
        weight = written(abs(m.weight), 6)
    data = f"{sta}{sign}{weight}{m.unit}".encode("ascii")
    return SOH + STX + data + bytes([bcc(data)]) + END


PROTOCOL = WireProtocol(
    name="cas",
    framer=framer,
    decode=decode,
    encode=encode,
    poll=ENQ,
    commands={"zero": b"<ZK>\t", "tare": b"<TK>\t"},
    steps={ACK: DC1, NAK: b""},
)
