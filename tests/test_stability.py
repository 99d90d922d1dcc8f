"""The software stability filter for indicators whose frames carry no stability flag."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balanca.reading import Measurement
from balanca.scale.stability import StabilityFilter


def weights(f: StabilityFilter, *values: str | None, unit: str = "kg") -> list[bool]:
    """The stable flag the filter gives each weight in turn."""
    return [
        f.update(Measurement(None if v is None else Decimal(v), unit, stable=False)).stable
        for v in values
    ]


def test_a_weight_is_stable_only_once_n_readings_agree() -> None:
    f = StabilityFilter(3, Decimal("0.02"))
    assert weights(f, "10.00", "10.01", "10.02", "10.00") == [False, False, True, True]


def test_a_reading_outside_the_tolerance_is_unstable_until_it_leaves_the_window() -> None:
    f = StabilityFilter(3, Decimal("0.02"))
    assert weights(f, "10.00", "10.00", "10.00", "10.05", "10.05", "10.05") == [
        False,
        False,
        True,
        False,
        False,
        True,
    ]


def test_a_spread_equal_to_the_tolerance_is_stable() -> None:
    assert weights(StabilityFilter(2, Decimal("0.5")), "1.0", "1.5") == [False, True]


def test_a_zero_tolerance_needs_identical_weights() -> None:
    f = StabilityFilter(2, Decimal(0))
    assert weights(f, "1.00", "1.00", "1.01", "1.01") == [False, True, False, True]


def test_a_reading_without_weight_is_unstable_and_starts_the_count_again() -> None:
    f = StabilityFilter(2, Decimal("0.1"))
    assert weights(f, "5.0", "5.0", None, "5.0", "5.0") == [False, True, False, False, True]


def test_a_change_of_unit_starts_the_count_again() -> None:
    f = StabilityFilter(2, Decimal("0.1"))
    assert weights(f, "5.0", "5.0") == [False, True]
    assert weights(f, "5.0", unit="lb") == [False]
    assert weights(f, "5.0", unit="lb") == [True]


def test_a_count_of_one_makes_every_weight_stable() -> None:
    assert weights(StabilityFilter(1, Decimal(0)), "1", "2", None, "3") == [True, True, False, True]


def test_the_frames_own_stable_flag_is_ignored() -> None:
    f = StabilityFilter(2, Decimal(0))
    assert not f.update(Measurement(Decimal(1), stable=True)).stable
    assert f.update(Measurement(Decimal(1), stable=False)).stable


def test_the_rest_of_the_measurement_is_kept() -> None:
    m = Measurement(Decimal("1.5"), "lb", False, "net", Decimal("0.5"), "ok")
    f = StabilityFilter(1, Decimal(0))
    assert f.update(m) == Measurement(Decimal("1.5"), "lb", True, "net", Decimal("0.5"), "ok")


def test_negative_weights_are_compared_by_value() -> None:
    assert weights(StabilityFilter(2, Decimal("0.1")), "-0.05", "0.05") == [False, True]


@pytest.mark.parametrize(("count", "tolerance"), [(0, "0"), (-1, "1"), (2, "-0.1")])
def test_a_count_below_one_or_a_negative_tolerance_is_refused(count: int, tolerance: str) -> None:
    with pytest.raises(ValueError):
        StabilityFilter(count, Decimal(tolerance))
