"""A software stability filter, for indicators whose frames carry no stability flag.

Peers call a weight stable when the last few readings agree; `StabilityFilter` does that with
N readings within a tolerance (PROTOCOLS.md, "Stability without a flag").
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from decimal import Decimal

from balanca.reading import Measurement


class StabilityFilter:
    """Marks a measurement stable when the last `count` weights, in one unit, lie within
    `tolerance` of each other (max - min <= tolerance).

    The frame's own `stable` flag is ignored (these frames have none worth trusting). A
    measurement without a weight is never stable and starts the count again; so does a change
    of unit.
    """

    def __init__(self, count: int, tolerance: Decimal) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        if tolerance < 0:
            raise ValueError(f"tolerance must not be negative, not {tolerance}")
        self.count = count
        self.tolerance = tolerance
        self._weights: deque[Decimal] = deque(maxlen=count)
        self._unit: str | None = None

    def update(self, m: Measurement) -> Measurement:
        """`m` with `stable` set by the filter, taking `m` as the newest reading."""
        if m.weight is None:
            self._weights.clear()
            return replace(m, stable=False)
        if m.unit != self._unit:
            self._weights.clear()
            self._unit = m.unit
        self._weights.append(m.weight)
        stable = (
            len(self._weights) == self.count
            and max(self._weights) - min(self._weights) <= self.tolerance
        )
        return replace(m, stable=stable)
