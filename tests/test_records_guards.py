"""Capture guards: each refusal has its code, and they are checked in DESIGN.md's order."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from twisted.trial.unittest import TestCase

from balanca.reading import Reading
from balanca.records.guards import Capture, empties, refusal


def reading(weight: str | None = "1500.0", **fields: Any) -> Reading:
    values: dict[str, Any] = dict(
        scale="truck",
        seq=1,
        time=datetime(2025, 10, 30, tzinfo=UTC),
        source="serial",
        weight=None if weight is None else Decimal(weight),
        unit="kg",
        stable=True,
        mode="gross",
        tare=None,
        status="ok",
    )
    values.update(fields)
    return Reading(**values)


def code(**fields: Any) -> str | None:
    values: dict[str, Any] = dict(
        state="live", reading=reading(), min_weight=Decimal("20"), emptied=True
    )
    values.update(fields)
    refused = refusal(Capture(**values))
    return None if refused is None else refused.code


class CaptureGuards(TestCase):
    def test_a_live_stable_valid_weight_on_an_emptied_scale_is_captured(self) -> None:
        self.assertIsNone(code())

    def test_each_rule_refuses_with_its_code(self) -> None:
        self.assertEqual(code(state="stale"), "scale_not_live")
        self.assertEqual(code(state="live", reading=None), "scale_not_live")
        self.assertEqual(code(reading=reading(stable=False)), "scale_in_motion")
        self.assertEqual(code(reading=reading(None, status="overload")), "scale_status")
        self.assertEqual(code(reading=reading("19.9")), "below_minimum")
        self.assertEqual(code(reading=reading("0.0"), min_weight=Decimal(0)), "below_minimum")
        self.assertEqual(code(reading=reading("-5.0"), min_weight=Decimal(0)), "below_minimum")
        self.assertEqual(code(emptied=False), "same_load")

    def test_again_lets_the_same_load_through_and_nothing_else(self) -> None:
        self.assertIsNone(code(emptied=False, again=True))
        self.assertEqual(code(emptied=False, again=True, reading=reading("1")), "below_minimum")

    def test_rules_are_checked_in_designs_order(self) -> None:
        everything_wrong = dict(state="stale", reading=reading("1", stable=False), emptied=False)
        self.assertEqual(code(**everything_wrong), "scale_not_live")
        self.assertEqual(code(**{**everything_wrong, "state": "live"}), "scale_in_motion")
        self.assertEqual(
            code(reading=reading("1", status="underload"), emptied=False), "scale_status"
        )
        self.assertEqual(code(reading=reading("1"), emptied=False), "below_minimum")

    def test_an_empty_scale_is_a_stable_weight_below_the_minimum_or_at_most_zero(self) -> None:
        self.assertTrue(empties(reading("19.9"), Decimal(20)))
        self.assertFalse(empties(reading("20.0"), Decimal(20)))
        self.assertFalse(empties(reading("5.0", stable=False), Decimal(20)))
        self.assertTrue(empties(reading("0.0"), Decimal(0)))
        self.assertTrue(empties(reading("-0.5"), Decimal(0)))
        self.assertFalse(empties(reading("0.5"), Decimal(0)))
        self.assertFalse(empties(reading(None, status="error"), Decimal(0)))
