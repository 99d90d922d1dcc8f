"""Toledo Prix / Filizola retail scales, per PROTOCOLS.md `prix` (Toledo Brasil Prix manuals).

The host sends ENQ (0x05); the scale answers one frame, ended by ETX or (some models) CR:

    STX ddddd ETX       5 digits, kilograms with 3 decimals (the `decimals` option overrides)
    STX IIIII ETX       unstable: no weight
    STX NNNNN ETX       negative: underload
    STX SSSSS ETX       overload
    STX +PPP,PPP ETX    self-checkout models above 30 kg: 6 digits, the comma is the decimal
                        point (3 decimals, whatever `decimals` says); `+III,III` unstable,
                        `-III,III` negative (underload), `+SSS,SSS` overload

A weight answer is a stable weight (in motion the scale answers `IIIII`).
"""

from __future__ import annotations

import re

from balanca.reading import Measurement
from balanca.scale.protocols.base import (
    DecodeError,
    DelimitedFramer,
    WireProtocol,
    fixed_point,
    parse_decimal,
    scaled_units,
)

DECIMALS = 3
_CHECKOUT = re.compile(rb"([+-])(\d{3}),(\d{3})")
_UNSTABLE = Measurement(None, stable=False)
_UNDERLOAD = Measurement(None, stable=False, status="underload")
_OVERLOAD = Measurement(None, stable=False, status="overload")
_SPECIAL = {
    b"IIIII": _UNSTABLE,
    b"NNNNN": _UNDERLOAD,
    b"SSSSS": _OVERLOAD,
    b"+III,III": _UNSTABLE,
    b"-III,III": _UNDERLOAD,
    b"+SSS,SSS": _OVERLOAD,
}


def framer() -> DelimitedFramer:
    """A framer for Prix answers."""
    return DelimitedFramer(b"\x02", b"\x03\r", resync=True)


def decode(frame: bytes, decimals: int | None = None) -> Measurement:
    """Decode one answer; `decimals` places the point in the 5-digit form (default 3)."""
    if frame[:1] != b"\x02" or frame[-1:] not in (b"\x03", b"\r") or len(frame) < 2:
        raise DecodeError("malformed", f"not STX ... ETX/CR: {frame!r}")
    body = frame[1:-1]
    special = _SPECIAL.get(body)
    if special is not None:
        return special
    if len(body) == 5 and body.isdigit():
        return Measurement(fixed_point(int(body), DECIMALS if decimals is None else decimals))
    checkout = _CHECKOUT.fullmatch(body)
    if checkout is None:
        raise DecodeError("malformed", f"not a Prix answer: {body!r}")
    sign, whole, fraction = (part.decode("ascii") for part in checkout.groups())
    return Measurement(parse_decimal(f"{sign}{whole}.{fraction}"))


def encode(m: Measurement) -> bytes:
    """The answer a Prix gives for `m` (a weight in kg with at most 3 decimals): `IIIII` when
    not stable, `NNNNN` when negative; the self-checkout form from 100 kg up."""
    if m.unit != "kg":
        raise ValueError(f"Prix scales weigh in kg, not {m.unit!r}")
    if m.status == "error":
        raise ValueError("Prix scales have no error answer")
    if m.status == "overload":
        return b"\x02SSSSS\x03"
    if m.status == "underload" or (m.weight is not None and m.weight < 0):
        return b"\x02NNNNN\x03"
    if m.weight is None or not m.stable:
        return b"\x02IIIII\x03"
    units = scaled_units(m.weight, DECIMALS)
    if units < 10**5:
        return b"\x02%05d\x03" % units
    if units < 10**6:
        return b"\x02+%03d,%03d\x03" % divmod(units, 1000)
    raise ValueError(f"{m.weight} kg is beyond a Prix scale")


PROTOCOL = WireProtocol(
    name="prix",
    framer=framer,
    decode=decode,
    encode=encode,
    poll=b"\x05",
)
