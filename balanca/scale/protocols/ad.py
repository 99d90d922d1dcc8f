"""A&D-style ASCII continuous output, per PROTOCOLS.md `ad` (A&D indicator manuals; also
Weightech WT3000, Libratek and many OEM indicators).

    H1,H2,SVVVVVVVUU CR LF      e.g. ST,GS,+0123.45kg

- `H1`: `ST` stable, `US` unstable, `OL` out of range (its sign tells overload `+` from
  underload `-`; the digits, usually blanks, are ignored).
- `H2`: `GS` gross, `NT` net, `TR` tare: the value is the tare on display, not a weight, so it
  reads as `tare` with no weight, mode `net` (a tare in use) and status `ok`.
- The data is read as tokens, not columns: an optional sign (none means `+`), the number with
  its decimal point (7 to 10 characters in all, zero- or blank-padded) and the unit (`kg`,
  `g`, `t`, `lb`, ...); a blank unit reads as `kg`.

Lines end in CR LF, CR or LF; a frame is a line from its first `S`, `U` or `O` (the first
letter of every header; what comes before is garbage) to its line end.
"""

from __future__ import annotations

import re
from decimal import Decimal

from balanca.reading import Measurement, Mode, Status
from balanca.scale.protocols.base import (
    DecodeError,
    DelimitedFramer,
    WireProtocol,
    frame_text,
    parse_decimal,
)

_DATA = re.compile(r" *([+-]?) *([0-9.]*) *([A-Za-z]*) *")
_MODES: dict[str, Mode] = {"GS": "gross", "NT": "net", "TR": "net"}


def framer() -> DelimitedFramer:
    """A framer for A&D lines."""
    return DelimitedFramer(b"SUO", b"\r\n", resync=False)


def decode(frame: bytes, decimals: int | None = None) -> Measurement:
    """Decode one line; `decimals` is ignored (the value carries its decimal point)."""
    text = frame_text(frame)
    fields = text.split(",")
    if len(fields) != 3:
        raise DecodeError("malformed", f"not H1,H2,data: {text!r}")
    stability, header, data = fields
    mode = _MODES.get(header)
    if stability not in ("ST", "US", "OL") or mode is None:
        raise DecodeError("unknown-status", text)
    parts = _DATA.fullmatch(data)
    if parts is None:
        raise DecodeError("malformed", f"not sign, number, unit: {data!r}")
    sign, number, unit = parts.groups()
    unit = unit or "kg"
    if stability == "OL":
        status: Status = "underload" if sign == "-" else "overload"
        return Measurement(None, unit, False, mode, status=status)
    value = parse_decimal(sign + number)
    if header == "TR":
        return Measurement(None, unit, False, mode, tare=value)
    return Measurement(value, unit, stability == "ST", mode)


def encode(m: Measurement) -> bytes:
    """The line an A&D indicator sends for `m`: a tare display (`TR`) when `m` has a tare and
    no weight; otherwise a gross/net weight, whose tare is not sent."""
    if len(m.unit) > 2 or not m.unit.isalpha():
        raise ValueError(f"not an A&D unit: {m.unit!r}")
    if m.status in ("overload", "underload"):
        if m.weight is not None:
            raise ValueError(f"status {m.status} with weight {m.weight}")
        sign = "-" if m.status == "underload" else "+"
        return _line("OL", "NT" if m.mode == "net" else "GS", sign + " " * 7, m.unit)
    if m.status != "ok":
        raise ValueError(f"A&D frames cannot say status {m.status}")
    if m.weight is None:
        if m.tare is None:
            raise ValueError("neither a weight nor a tare")
        return _line("ST" if m.stable else "US", "TR", _value(m.tare), m.unit)
    return _line(
        "ST" if m.stable else "US", "NT" if m.mode == "net" else "GS", _value(m.weight), m.unit
    )


def _value(value: Decimal) -> str:
    """A signed, zero-padded value of at least 8 characters (`+0123.45`)."""
    text = format(value, "f")
    sign = "-" if text.startswith("-") else "+"
    return sign + text.lstrip("-").rjust(7, "0")


def _line(stability: str, header: str, data: str, unit: str) -> bytes:
    """One line, the unit right-aligned in 2 characters."""
    return f"{stability},{header},{data}{unit:>2}\r\n".encode("ascii")


PROTOCOL = WireProtocol(name="ad", framer=framer, decode=decode, encode=encode)
