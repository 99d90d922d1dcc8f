"""Which wire protocol do these bytes speak? Every family's own framer and decoder read the
same bytes, and a family is named only on strong evidence (pure: bytes in, a verdict out).

`protocol=auto` (balanca.scale.detect) feeds a `Sniffer` what it hears while it watches and
probes a line; `balanca-probe` prints the same verdict.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from balanca.scale.protocols.base import MASK7, DecodeError, Framer, LineSettings, WireProtocol

FRAMES_NEEDED = 3
EVIDENCE = {"cas": "BCC ok", "toledo-a": "checksum ok"}
"""What a family's decoder has verified beyond the layout, for the log line."""


def line_text(line: LineSettings | None) -> str:
    """`9600 8N1`; `TCP` where there is no line."""
    if line is None:
        return "TCP"
    return f"{line.baudrate} {line.bytesize}{line.parity}{line.stopbits:g}"


@dataclass
class Fit:
    """How one family reads the bytes seen: its framer, and its decoded frames in a row."""

    wire: WireProtocol
    framer: Framer
    run: int = 0
    decoded: int = 0


class Sniffer:
    """Every family's framer and decoder reading the same bytes (pure: bytes in, verdict out)."""

    def __init__(self, wires: Iterable[WireProtocol]) -> None:
        self.fits = {w.name: Fit(w, w.framer()) for w in wires}

    def feed(self, data: bytes) -> list[tuple[WireProtocol, bytes]]:
        """Read more bytes; return the steps of two-step polls seen (CAS's ACK), by family."""
        steps = []
        for fit in self.fits.values():
            wire = fit.wire
            for frame in fit.framer.feed(data.translate(MASK7) if wire.seven_bit else data):
                if frame in wire.steps:
                    steps.append((wire, frame))
                    continue
                try:
                    wire.decode(frame, None)
                except DecodeError:
                    fit.run = 0
                else:
                    fit.run += 1
                    fit.decoded += 1
        return steps

    def decoded(self) -> int:
        """Frames decoded so far, under any family."""
        return sum(f.decoded for f in self.fits.values())

    def verdict(self, final: bool) -> Verdict | None:
        """A family that fits alone, or an ambiguity; None while more bytes may tell (and,
        when `final`, when nothing fits). A family fits with `FRAMES_NEEDED` frames in a row;
        any other family that decoded some of the same bytes makes it wait, and at the end
        (`final`) makes it ambiguous."""
        fitting = sorted(n for n, f in self.fits.items() if f.run >= FRAMES_NEEDED)
        partial = sorted(n for n, f in self.fits.items() if f.decoded and n not in fitting)
        if len(fitting) > 1 or (fitting and partial and final):
            return Verdict(None, f"ambiguous: {' or '.join(fitting + partial)}; set protocol=")
        if len(fitting) == 1 and not partial:
            name = fitting[0]
            checked = EVIDENCE.get(name)
            frames = f"{self.fits[name].run} frames"
            return Verdict(name, f"{frames}, {checked}" if checked else frames)
        return None


@dataclass(frozen=True)
class Verdict:
    """What detection found: `family` (None when it found none) and the words for it."""

    family: str | None
    text: str
    line: LineSettings | None = None
