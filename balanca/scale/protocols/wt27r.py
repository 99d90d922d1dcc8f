"""Weightech WT27R-ETH, per PROTOCOLS-NEXT.md `wt27r`; polled with ENQ, usually over TCP.

    SM,UU,B:±GGGGGG,T:TTTTTT,L:±NNNNNN CR LF     36 bytes,
    e.g. b'EB,kg,B: 012340,T:000000,L: 012340\\r\\n'

- `S`: `E` stable, `I` unstable. `M`: what the display shows, `B` gross (*bruto*), `L` net
  (*líquido*): the weight is the `B:` field (mode gross) or the `L:` field (mode net), signed.
- `UU`: the unit (`kg`), blanks stripped, lower case; reported as sent (ACBr divides by 1000
  when it is not `kg`; balanca does not convert).
- The tare (`T:`) is always reported.
- Digits carry no point: whole units unless `decimals=N` places it (ACBr reads whole kg); a
  field that does carry a point is read as written.
- Gross digits `999999`: overload (ACBr); `-999999`: underload (not documented, inferred).

Parsed by the separators (`,` and `B:`/`T:`/`L:`), not by column: the sign of a positive
value is uncertain (a blank in the source; `+` or nothing are accepted too). What comes before
the `E`/`I` that starts a well-formed frame on the line is garbage; a line with no such frame
is rejected (`malformed`). Frames that arrive unasked are decoded too (whether the indicator
also streams is not documented).

Source: `frones/ACBr` `Fontes/ACBrSerial/ACBrBALWeightechWT27R_ETH.pas` (byte-by-byte comment;
`I` unstable, `-` negative, `999999` overload; its own sample
`EB,kg,B:-000000,T:000000,L:-000000` is a negative zero).

To check on the bench: the serial line settings (9600 8N1 assumed), the positive sign, and
whether it streams.
"""

from __future__ import annotations

import re
from decimal import Decimal

from balanca.reading import Measurement, Mode
from balanca.scale.protocols.base import (
    DecodeError,
    DelimitedFramer,
    WireProtocol,
    fixed_point,
    frame_text,
    out_of_range,
    parse_decimal,
    scaled_units,
)

_VALUE = rb"([ +-]?)([0-9.]+)"
_FRAME = re.compile(
    rb"([EI])([BL]),([ A-Za-z]{2}),B:" + _VALUE + rb",T:" + _VALUE + rb",L:" + _VALUE + rb"\s*\Z"
)
_MODES: dict[bytes, Mode] = {b"B": "gross", b"L": "net"}
OVER = b"999999"


def framer() -> DelimitedFramer:
    """A framer for WT27R lines: from an `E` or `I` to the line end."""
    return DelimitedFramer(b"EI", b"\r\n", resync=False)


def decode(frame: bytes, decimals: int | None = None) -> Measurement:
    """Decode one line; `decimals` places the point in fields that carry none (default 0)."""
    match = _FRAME.search(frame)
    if match is None:
        raise DecodeError("malformed", f"not SM,UU,B:...,T:...,L:...: {frame!r}")
    stability, shown, unit, *values = match.groups()
    gross_sign, gross, tare_sign, tare, net_sign, net = values
    mode = _MODES[shown]
    unit_text = frame_text(unit).lower() or "kg"
    tare_value = _value(tare_sign, tare, decimals)
    if gross == OVER:
        status = out_of_range(gross_sign.decode("ascii"))
        return Measurement(None, unit_text, False, mode, tare_value, status)
    sign, digits = (gross_sign, gross) if mode == "gross" else (net_sign, net)
    weight = _value(sign, digits, decimals)
    return Measurement(weight, unit_text, stability == b"E", mode, tare_value)


def _value(sign: bytes, digits: bytes, decimals: int | None) -> Decimal:
    """A signed field: as written when it has a point, else `decimals` places it."""
    if b"." in digits:
        return parse_decimal((sign + digits).decode("ascii").strip())
    value = fixed_point(int(digits), decimals or 0)
    return -value if sign == b"-" and value else value


def encode(m: Measurement) -> bytes:
    """The line a WT27R sends for `m`: whole units (no decimals), the tare always present;
    the field not shown is the other one of gross = net + tare."""
    if (
        m.tare is None
        or m.tare < 0
        or len(m.unit) > 2
        or not m.unit.isalpha()
        or m.status == "error"
    ):
        raise ValueError(f"WT27R frames carry a weight or out of range, a tare and a unit: {m}")
    if m.status == "ok":
        if m.weight is None:
            raise ValueError("status ok needs a weight")
        gross = m.weight if m.mode == "gross" else m.weight + m.tare
        net = gross - m.tare
        fields = (_field(gross), _field(net))
    else:
        over = ("-" if m.status == "underload" else " ") + OVER.decode("ascii")
        fields = (over, over)
    flag = ("E" if m.stable else "I") + ("B" if m.mode == "gross" else "L")
    return f"{flag},{m.unit:>2},B:{fields[0]},T:{_field(m.tare)[1:]},L:{fields[1]}\r\n".encode(
        "ascii"
    )


def _field(value: Decimal) -> str:
    """A sign (blank or `-`) and 6 digits."""
    units = scaled_units(value, 0)
    if abs(units) >= 10**6 - 1:
        raise ValueError(f"{value} does not fit 6 digits")
    return f"{'-' if units < 0 else ' '}{abs(units):06d}"


PROTOCOL = WireProtocol(name="wt27r", framer=framer, decode=decode, encode=encode, poll=b"\x05")
