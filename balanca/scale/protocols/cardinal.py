"""Cardinal 738 scoreboard stream, per PROTOCOLS-NEXT.md `cardinal`; continuous. Also the
"Cardinal" stream format of Rice Lake (480/482/680/682/880/920i) and Fairbanks (FB6000)
indicators, meant for remote displays.

    CR POL WWWWWWW S SP UU SP M SP SP ETX       18 bytes, e.g. b'\\r+001234.  lb g  \\x03'

- CR starts the frame, ETX ends it. POL: `+` or `-`.
- Weight: six digits and the point, embedded when it has decimals (`0012.50`), after the last
  digit when not (`001234.`); leading zeros sent. Read as written.
- S: blank valid (stable), `m` motion (not stable), `o` over or under range (weight null:
  overload when `+`, underload when `-`, inferred as for `condec`); any other byte is rejected
  (`status`).
- UU: `lb`, `kg`, `g `, `t ` (metric ton: `t`), `tn` (short ton: `tn`), `oz`, or two blanks
  (kg). M: `g` gross, `n` net. Letters in either case (Fairbanks writes capitals).
- No tare, no checksum.

Decoded anchored at both ends: the weight is what lies between POL and S, whose position is
counted from the ETX. Blanks said to be constant are not checked (lenient). A CR in garbage
starts a candidate frame that the next CR or ETX settles.

Uncertain width: Rice Lake's 880 appendix configures seven digits, so 7 or 8 characters of
weight are accepted. Line settings are not given: 9600 8N1 assumed.

Sources: Rice Lake 880 manual §10.8.2; Rice Lake 680 Synergy Plus §11.3.2; Rice Lake 482;
Fairbanks FB6000 appendix I (URLs in PROTOCOLS-NEXT.md). Not the Cardinal 190's own
"scoreboard" format, which differs.
"""

from __future__ import annotations

from balanca.reading import Measurement, Mode
from balanca.scale.protocols.base import (
    DecodeError,
    DelimitedFramer,
    WireProtocol,
    out_of_range,
    parse_decimal,
    written,
)

CR, ETX = b"\r", b"\x03"
UNITS = {"lb": "lb", "kg": "kg", "g ": "g", "t ": "t", "tn": "tn", "oz": "oz", "  ": "kg"}
_CODES = {unit: code for code, unit in UNITS.items() if code != "  "}
_MODES: dict[str, Mode] = {"g": "gross", "n": "net"}
WIDTHS = (7, 8)
TAIL = 9
"""Bytes from the status byte to ETX."""


def framer() -> DelimitedFramer:
    """A framer for Cardinal frames: CR to ETX."""
    return DelimitedFramer(CR, ETX, resync=True)


def decode(frame: bytes, decimals: int | None = None) -> Measurement:
    """Decode one frame; `decimals` is ignored (the weight carries its decimal point)."""
    if frame[:1] != CR or frame[-1:] != ETX or len(frame) - 2 - TAIL not in WIDTHS:
        raise DecodeError("malformed", f"not CR POL weight S units mode ETX: {frame!r}")
    if not frame.isascii():
        raise DecodeError("malformed", f"not ASCII: {frame!r}")
    text = frame.decode("ascii")
    polarity, weight, tail = text[1], text[2:-TAIL], text[-TAIL:]
    status, unit, mode = tail[0].lower(), UNITS.get(tail[2:4].lower()), _MODES.get(tail[5].lower())
    if status not in " mo":
        raise DecodeError("status", f"status byte {status!r}")
    if polarity not in "+-" or unit is None or mode is None:
        raise DecodeError("malformed", f"polarity, unit or mode not known: {frame!r}")
    if status == "o":
        return Measurement(None, unit, False, mode, status=out_of_range(polarity))
    return Measurement(parse_decimal(polarity + weight), unit, status == " ", mode)


def encode(m: Measurement) -> bytes:
    """The frame a Cardinal-format indicator sends for `m` (7 characters of weight: six
    digits and the point); the tare is not sent."""
    code = _CODES.get(m.unit)
    if code is None or m.status == "error":
        raise ValueError(f"Cardinal frames carry no error and units {sorted(_CODES)}: {m}")
    negative = m.status == "underload" or (m.weight is not None and m.weight < 0)
    if m.status != "ok":
        status, weight = "o", "000000."
    elif m.weight is None:
        raise ValueError("status ok needs a weight")
    else:
        status, weight = " " if m.stable else "m", written(abs(m.weight), 7, point=True)
    mode = "n" if m.mode == "net" else "g"
    return f"\r{'-' if negative else '+'}{weight}{status} {code} {mode}  \x03".encode("ascii")


PROTOCOL = WireProtocol(name="cardinal", framer=framer, decode=decode, encode=encode)
