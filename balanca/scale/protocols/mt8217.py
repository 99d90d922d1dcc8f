"""Mettler-Toledo 8217 / ECR protocol, per PROTOCOLS.md `mt8217` (Mettler-Toledo 8217 POS scale
manual; the protocol Odoo's IoT box uses).

The host sends `W`; the scale answers one frame:

    STX WW.WWW [N] CR     weight in kg (3 decimals); `N` marks a net weight
    STX WW.WW [N] CR      weight in lb (2 decimals), also `STX 0WW.WW CR`
    STX ? <status> CR     no weight: in motion, negative or over capacity

Status byte: bit 0 motion, bit 1 over capacity (overload), bit 2 under zero (underload),
bit 3 outside the zero-capture range (status `error`), bit 4 center of zero, bit 5 net,
bit 6 always 1 (not checked), bit 7 parity (ignored, as on every byte of this 7-bit protocol).
A status answer carries no unit: it reads as `kg`. Commands `Z` zero, `T` tare, `C` clear tare.
"""

from __future__ import annotations

import re

from balanca.reading import Measurement, Status
from balanca.scale.protocols.base import (
    LINE_7E1,
    MASK7,
    DecodeError,
    DelimitedFramer,
    WireProtocol,
    parse_decimal,
    scaled_units,
)

_WEIGHT = re.compile(rb"(\d{1,3}\.(\d{2,3}))(N?)")
_UNITS = {2: "lb", 3: "kg"}
_PLACES = {"lb": 2, "kg": 3}
MOTION, OVER, UNDER, OUTSIDE_ZERO, NET, ALWAYS = 0x01, 0x02, 0x04, 0x08, 0x20, 0x40
"""Status byte bits (bit 4, center of zero, says nothing balanca reports)."""


def framer() -> DelimitedFramer:
    """A framer for 8217 answers."""
    return DelimitedFramer(b"\x02", b"\r", resync=True)


def decode(frame: bytes, decimals: int | None = None) -> Measurement:
    """Decode one answer; `decimals` is ignored (the answer carries its decimal point)."""
    f = frame.translate(MASK7)
    if f[:1] != b"\x02" or f[-1:] != b"\r" or len(f) < 2:
        raise DecodeError("malformed", f"not STX ... CR: {frame!r}")
    body = f[1:-1]
    if body[:1] == b"?":
        if len(body) != 2:
            raise DecodeError("malformed", f"not ? and one status byte: {frame!r}")
        return _status(body[1])
    weight = _WEIGHT.fullmatch(body)
    if weight is None:
        raise DecodeError("malformed", f"not a weight: {body!r}")
    value, places, net = weight.groups()
    return Measurement(
        parse_decimal(value.decode("ascii")),
        _UNITS[len(places)],
        mode="net" if net else "gross",
    )


def _status(byte: int) -> Measurement:
    """A status answer."""
    status: Status = "ok"
    if byte & OVER:
        status = "overload"
    elif byte & UNDER:
        status = "underload"
    elif byte & OUTSIDE_ZERO:
        status = "error"
    return Measurement(None, stable=False, mode="net" if byte & NET else "gross", status=status)


def encode(m: Measurement) -> bytes:
    """The answer an 8217 gives for `m`: the weight when stable, in range and not negative
    (kg with 3 decimals, lb with 2, below 100), else a status answer."""
    places = _PLACES.get(m.unit)
    if places is None:
        raise ValueError(f"8217 scales weigh in kg or lb, not {m.unit!r}")
    net = m.mode == "net"
    negative = m.status == "underload" or (m.weight is not None and m.weight < 0)
    if m.weight is None or negative or not m.stable or m.status != "ok":
        byte = ALWAYS | NET * net | MOTION * (not m.stable) | UNDER * negative
        byte |= OVER * (m.status == "overload") | OUTSIDE_ZERO * (m.status == "error")
        return b"\x02?" + bytes([byte]) + b"\r"
    whole, fraction = divmod(scaled_units(m.weight, places), 10**places)
    if whole >= 100:
        raise ValueError(f"{m.weight} {m.unit} is beyond an 8217 scale")
    return b"\x02%02d.%0*d%s\r" % (whole, places, fraction, b"N" if net else b"")


PROTOCOL = WireProtocol(
    name="mt8217",
    framer=framer,
    decode=decode,
    encode=encode,
    line=LINE_7E1,
    seven_bit=True,
    poll=b"W",
    commands={"tare": b"T", "zero": b"Z", "clear-tare": b"C"},
)
