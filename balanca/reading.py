"""What a scale says, as values: a decoded measurement and the stamped reading served to clients.

A decoder turns one frame into a `Measurement` (or a `Reply` to a command); the scale protocol
stamps a measurement with the scale's name, the run's sequence number, the source and the time,
which makes a `Reading`. Weights stay `Decimal` with the scale's own decimals from wire to JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

Status = Literal["ok", "overload", "underload", "error"]
Mode = Literal["gross", "net"]
Source = Literal["serial", "tcp", "simulator"]


@dataclass(frozen=True, slots=True)
class Measurement:
    """One decoded frame: what the indicator displayed, before balanca stamps it."""

    weight: Decimal | None
    unit: str = "kg"
    stable: bool = True
    mode: Mode = "gross"
    tare: Decimal | None = None
    status: Status = "ok"


@dataclass(frozen=True, slots=True)
class Reply:
    """A scale's answer to a command (tare, zero): whether it was done, and its own words."""

    command: str
    ok: bool
    text: str
    tare: Decimal | None = None
    code: str = ""
    """A machine key for the outcome (`tared`, `zeroed`, `tare_cleared`, `scale_refused`,
    `zero_out_of_range`, ...); empty until the decoder or the scale knows it."""


@dataclass(frozen=True, slots=True)
class Reading:
    """A measurement stamped by balanca: the unit of everything served and stored."""

    scale: str
    seq: int
    time: datetime
    source: Source
    weight: Decimal | None
    unit: str
    stable: bool
    mode: Mode
    tare: Decimal | None
    status: Status
    frame: bytes = b""
    """The bytes of the frame it was decoded from, exactly as received (kept in records)."""

    @classmethod
    def stamp(
        cls,
        m: Measurement,
        *,
        scale: str,
        seq: int,
        time: datetime,
        source: Source,
        frame: bytes = b"",
    ) -> Reading:
        """Make the reading for measurement `m`, decoded from `frame`."""
        return cls(
            scale, seq, time, source, m.weight, m.unit, m.stable, m.mode, m.tare, m.status, frame
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of DESIGN.md, weights as exact decimal strings."""
        return {
            "type": "reading",
            "scale": self.scale,
            "seq": self.seq,
            "weight": decimal_text(self.weight),
            "unit": self.unit,
            "stable": self.stable,
            "mode": self.mode,
            "tare": decimal_text(self.tare),
            "status": self.status,
            "source": self.source,
            "time": isotime(self.time),
        }

    def to_json(self) -> bytes:
        """The reading as compact UTF-8 JSON, encoded once and shared by every consumer."""
        return json_bytes(self.to_dict())


def decimal_text(value: Decimal | None) -> str | None:
    """`value` as plain positional text with its own decimals (never exponent notation)."""
    return None if value is None else format(value, "f")


def isotime(moment: datetime) -> str:
    """ISO 8601 with microseconds and a `±HH:MM` offset, never `Z`."""
    return moment.isoformat(timespec="microseconds")


def local_time(seconds: float) -> datetime:
    """The local wall-clock time for POSIX `seconds` (as `IReactorTime.seconds()` gives)."""
    return datetime.fromtimestamp(seconds, tz=UTC).astimezone()


def json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
