"""Capture guards: the rules a weight must pass before it becomes a record (DESIGN.md).

Each guard is a small named check that returns a `Refusal` or None; `refusal()` runs them in
DESIGN.md's order. A new rule is a new function and a row in `GUARDS`, not another `if` in a
handler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from balanca.reading import Reading


@dataclass(frozen=True)
class Capture:
    """What the guards look at: the scale's state and latest reading, and the request."""

    state: str
    """The scale's state: `waiting`, `live`, `stale` or `disconnected`."""
    reading: Reading | None
    min_weight: Decimal
    emptied: bool
    """The scale has shown a stable weight at or below its minimum since its last capture
    (True when it has no capture yet)."""
    again: bool = False
    """The request says this is the same load on purpose."""


@dataclass(frozen=True)
class Refusal:
    """Why a capture is refused: a machine `code` and English words (HTTP 409)."""

    code: str
    error: str
    detail: str


Guard = Callable[[Capture], Refusal | None]


def live(capture: Capture) -> Refusal | None:
    """The scale is sending fresh readings."""
    if capture.state != "live" or capture.reading is None:
        return Refusal("scale_not_live", "scale not live", f"the scale is {capture.state}")
    return None


def stable(capture: Capture) -> Refusal | None:
    """The weight has settled."""
    assert capture.reading is not None
    if not capture.reading.stable:
        return Refusal("scale_in_motion", "scale in motion", "a capture needs a stable weight")
    return None


def status_ok(capture: Capture) -> Refusal | None:
    """The indicator reports a valid weight (not overload, underload or an error)."""
    assert capture.reading is not None
    if capture.reading.status != "ok" or capture.reading.weight is None:
        return Refusal(
            "scale_status", "scale status", f"the scale reports {capture.reading.status}"
        )
    return None


def above_minimum(capture: Capture) -> Refusal | None:
    """The weight is above zero and at least the scale's minimum."""
    assert capture.reading is not None and capture.reading.weight is not None
    weight = capture.reading.weight
    if weight <= 0 or weight < capture.min_weight:
        return Refusal(
            "below_minimum",
            "below minimum",
            f"{weight} {capture.reading.unit} is not above 0 and at least"
            f" {capture.min_weight} {capture.reading.unit}",
        )
    return None


def new_load(capture: Capture) -> Refusal | None:
    """The scale was emptied since its last capture, or the request says `again`."""
    if capture.emptied or capture.again:
        return None
    return Refusal(
        "same_load",
        "same load",
        "the scale has not been emptied since its last capture; send again: true to capture"
        " the same load once more",
    )


GUARDS: tuple[Guard, ...] = (live, stable, status_ok, above_minimum, new_load)


def refusal(capture: Capture) -> Refusal | None:
    """The first guard that refuses the capture, in DESIGN.md's order, or None."""
    for guard in GUARDS:
        if (refused := guard(capture)) is not None:
            return refused
    return None


def empties(reading: Reading, min_weight: Decimal) -> bool:
    """A reading that counts as an empty scale for the same-load rule: stable, valid, and at
    most the minimum (at most zero when the minimum is 0)."""
    return (
        reading.stable
        and reading.status == "ok"
        and reading.weight is not None
        and (reading.weight <= 0 if min_weight == 0 else reading.weight < min_weight)
    )
