"""Condec / Consolidated Controls continuous string, per PROTOCOLS-NEXT.md `condec`; continuous.
Also Rice Lake's default stream (RLWS, "Consolidated Controls"), Transcell's "String format 2
(Condec continuous)" and the Trentin indicators' "Condec" protocol in Brazil.

    STX POL WWWWWWW U M S CR [LF]       14 bytes (15 with LF), e.g. b'\\x02    1234KG \\r\\n'

- POL: blank positive, `-` negative (`+` accepted, lenient).
- Weight: right-justified, leading zeros sent as blanks (`   0.50`); the point is in the data.
- U: `L` lb, `K` kg, `G` g, `O` oz, `T` tons (reported `t`: the manuals do not say short or
  metric). M: `G` gross, `N` net.
- S: blank valid, `Z` centre of zero (both stable); `M` motion (a weight, not stable); `O` over
  or under range (weight null: overload when POL is positive, underload when `-`, inferred: the
  sources say only "over/under range"); `I` invalid (status error); `P` pieces and `C` custom
  units (Transcell) are counts, not weights (rejected, `not-weight`); any other byte is
  rejected (`status`).
- Ends in CR LF, or CR alone (Rice Lake). No tare, no checksum. Letters are read in either
  case (lenient).

Decoded anchored at both ends: STX and POL at the front, U M S as the last three bytes before
CR. Uncertain width: Rice Lake and ACBr say 7 characters, Transcell draws `xxxxx.xx` (8): both
are accepted.

Sources: Transcell TI-500 manual p. 17 and TI-1680 p. 40; Rice Lake 680 Synergy Plus §11.3.1;
Rice Lake 480 Legend fig. 9-5; `frones/ACBr` `Fontes/ACBrSerial/ACBrBALTrentin.pas` (comment,
7-character weight). URLs in PROTOCOLS-NEXT.md. Line settings are not given: 9600 8N1 assumed.
"""

from __future__ import annotations

from balanca.reading import Measurement, Mode, Status
from balanca.scale.protocols.base import (
    DecodeError,
    DelimitedFramer,
    WireProtocol,
    out_of_range,
    parse_decimal,
    written,
)

STX = b"\x02"
UNITS = {"L": "lb", "K": "kg", "G": "g", "O": "oz", "T": "t"}
_LETTERS = {unit: letter for letter, unit in UNITS.items()}
_MODES: dict[str, Mode] = {"G": "gross", "N": "net"}
WIDTHS = (7, 8)


def framer() -> DelimitedFramer:
    """A framer for Condec strings: STX to CR (and its LF, when one follows)."""
    return DelimitedFramer(STX, b"\r\n", resync=True)


def decode(frame: bytes, decimals: int | None = None) -> Measurement:
    """Decode one string; `decimals` is ignored (the weight carries its decimal point)."""
    body = frame.removesuffix(b"\n").removesuffix(b"\r")
    if frame[:1] != STX or len(body) - 5 not in WIDTHS or not body.isascii():
        raise DecodeError("malformed", f"not STX POL weight U M S CR: {frame!r}")
    text = body[:-3].decode("ascii") + body[-3:].decode("ascii").upper()
    polarity, weight, unit, mode, status = text[1], text[2:-3], text[-3], text[-2], text[-1]
    if status in "PC":
        raise DecodeError("not-weight", f"status {status!r}: a count, not a weight")
    if status not in " ZMOI":
        raise DecodeError("status", f"status byte {status!r}")
    if polarity not in " +-" or unit not in UNITS or mode not in _MODES:
        raise DecodeError("malformed", f"polarity, unit or mode not known: {frame!r}")
    if status in "OI":
        problem: Status = "error" if status == "I" else out_of_range(polarity)
        return Measurement(None, UNITS[unit], False, _MODES[mode], status=problem)
    value = parse_decimal(polarity.strip() + weight.strip())
    return Measurement(value, UNITS[unit], status != "M", _MODES[mode])


def encode(m: Measurement) -> bytes:
    """The string a Condec-format indicator sends for `m` (7 characters of weight, 8 when it
    needs them), ending in CR LF; the tare is not sent."""
    letter = _LETTERS.get(m.unit)
    if letter is None:
        raise ValueError(f"Condec strings carry units {sorted(_LETTERS)}, not {m.unit!r}")
    negative = m.status == "underload" or (m.weight is not None and m.weight < 0)
    status = {"overload": "O", "underload": "O", "error": "I"}.get(m.status)
    if status is None:
        if m.weight is None:
            raise ValueError("status ok needs a weight")
        status = " " if m.stable else "M"
    text = " " * 7 if m.weight is None else written(abs(m.weight), 8, fill=" ").removeprefix(" ")
    mode = "N" if m.mode == "net" else "G"
    return f"\x02{'-' if negative else ' '}{text}{letter}{mode}{status}\r\n".encode("ascii")


PROTOCOL = WireProtocol(name="condec", framer=framer, decode=decode, encode=encode)
