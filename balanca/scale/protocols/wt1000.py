"""Weightech WT1000, per PROTOCOLS-NEXT.md `wt1000`; continuous, or one frame per ENQ.

    S,GGGGGGG,TTTTTTT,NNNNNNN CR LF     27 bytes, e.g. b'0,001.500,000.000,001.500\\r\\n'

- `S`: `0` stable, `1` unstable.
- Gross, tare and net: 7 characters each, with the decimal point and a `-` when negative
  (`001.500`, `-00.350`); blanks inside a field are padding (lenient). Decimals as written;
  no unit (kg).
- The weight is the net field, mode net, when the tare field is not zero; otherwise the gross
  field, mode gross. The tare is always reported (0 when none). The fields are not
  cross-checked (net = gross - tare is not enforced).

Framing: no start byte. The frame is the last 25 characters of a line before its CR LF (the
line starts at its first `0` or `1`; what comes before them on the line is garbage). A shorter
line (a start mid-frame) is rejected (`malformed`).

Polling: ENQ at every poll interval. A streaming indicator ignores it, one in demand mode
answers it; every frame is decoded, asked for or not.

Source: `frones/ACBr` `Fontes/ACBrSerial/ACBrBALWeightechWT1000.pas` (layout comment; ACBr
sends ENQ every 200 ms until a weight comes and reports the net field).

Not documented, to check on the bench: the line settings (9600 8N1 assumed), and overload,
underload and error frames (a field that is not a number is rejected, `malformed`).
"""

from __future__ import annotations

from decimal import Decimal

from balanca.reading import Measurement
from balanca.scale.protocols.base import (
    DecodeError,
    DelimitedFramer,
    WireProtocol,
    parse_decimal,
    written,
)

LENGTH = 25
"""Characters of a frame without its CR LF."""
_STABILITY = {"0": True, "1": False}


def framer() -> DelimitedFramer:
    """A framer for WT1000 lines: from a `0` or `1` to the line end."""
    return DelimitedFramer(b"01", b"\r\n", resync=False)


def decode(frame: bytes, decimals: int | None = None) -> Measurement:
    """Decode one line; `decimals` is ignored (the fields carry their decimal point)."""
    text = frame.rstrip(b"\r\n")[-LENGTH:].decode("ascii", "replace")
    fields = text.split(",")
    if len(text) != LENGTH or [len(f) for f in fields] != [1, 7, 7, 7]:
        raise DecodeError("malformed", f"not S,gross,tare,net: {text!r}")
    stable = _STABILITY.get(fields[0])
    if stable is None:
        raise DecodeError("status", f"stability {fields[0]!r}")
    gross, tare, net = (parse_decimal(f.replace(" ", "")) for f in fields[1:])
    if tare:
        return Measurement(net, stable=stable, mode="net", tare=tare)
    return Measurement(gross, stable=stable, tare=tare)


def encode(m: Measurement) -> bytes:
    """The line a WT1000 sends for `m`: a weight in kg with its tare (zero for gross), net
    mode when the tare is not zero; the gross field is net plus tare."""
    tare = m.tare
    if m.weight is None or m.status != "ok" or m.unit != "kg" or tare is None:
        raise ValueError(f"WT1000 frames carry a weight and a tare in kg, not {m}")
    if (m.mode == "net") != (tare != 0):
        raise ValueError(f"WT1000 frames are net exactly when the tare is not zero: {m}")
    fields = (m.weight + tare, tare, m.weight) if tare else (m.weight, tare, m.weight)
    text = ",".join(_field(v) for v in fields)
    return f"{'0' if m.stable else '1'},{text}\r\n".encode("ascii")


def _field(value: Decimal) -> str:
    """One 7-character field."""
    return written(value, 7)


PROTOCOL = WireProtocol(name="wt1000", framer=framer, decode=decode, encode=encode, poll=b"\x05")
