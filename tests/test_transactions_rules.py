"""Truck weighing's pure rules (figures exact to the more precise pass, the tolerance, the
state read from records) and its options (`--tare-days`, `--tare-tolerance`: command line,
environment, configuration file, usage errors)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from twisted.python import usage
from twisted.trial.unittest import TestCase

from balanca.records.guards import Refusal
from balanca.records.transaction import Figures, Rules, expiry, figures, mismatch, state
from tests.test_options_config import config, parse


def record(kind: str, voided_by: int | None = None) -> dict[str, Any]:
    return {"kind": kind, "voided_by": voided_by}


class Figuring(TestCase):
    def test_gross_is_the_heavier_pass_and_decimals_are_the_more_precise_passs(self) -> None:
        for weight, other, expected in (
            ("12.345", "4.2", ("12.345", "4.200", "8.145")),
            ("4.2", "12.345", ("12.345", "4.200", "8.145")),
            ("41230", "14150", ("41230", "14150", "27080")),
            ("0.001", "0.0005", ("0.0010", "0.0005", "0.0005")),
            ("999999999999.999999", "0.000001", ("999999999999.999999", "0.000001",
                                                  "999999999999.999998")),
        ):  # fmt: skip
            found = figures(Decimal(weight), "t", Decimal(other), "t")
            assert isinstance(found, Figures)
            texts = (format(found.gross, "f"), format(found.tare, "f"), format(found.net, "f"))
            self.assertEqual(texts, expected)
            self.assertEqual(found.sealed(), {"gross": expected[0], "net": expected[2]})

    def test_a_one_pass_keeps_the_pass_as_gross_and_the_stored_tare_as_tare(self) -> None:
        found = figures(Decimal("40100"), "kg", Decimal("14100.5"), "kg", stored=True)
        self.assertEqual(found, Figures(Decimal("40100.0"), Decimal("14100.5"), Decimal("25999.5")))
        lighter = figures(Decimal("12000"), "kg", Decimal("14100"), "kg", stored=True)
        self.assertEqual(getattr(lighter, "code", None), "net_not_positive")

    def test_units_that_differ_and_a_net_of_zero_are_refused(self) -> None:
        self.assertEqual(
            figures(Decimal("20"), "t", Decimal("5000"), "kg"),
            Refusal("unit_mismatch", "unit mismatch", "one weight is in t, the other in kg"),
        )
        same = figures(Decimal("20.0"), "t", Decimal("20.000"), "t")
        self.assertEqual(getattr(same, "code", None), "net_not_positive")

    def test_the_tolerance_is_a_percent_of_the_stored_tare_and_its_edge_passes(self) -> None:
        rules = Rules(tolerance=Decimal(10))
        self.assertFalse(mismatch(Decimal("11000"), Decimal("10000"), rules))
        self.assertFalse(mismatch(Decimal("9000"), Decimal("10000"), rules))
        self.assertTrue(mismatch(Decimal("11000.1"), Decimal("10000"), rules))
        self.assertTrue(mismatch(Decimal("8999"), Decimal("10000"), rules))
        self.assertTrue(mismatch(Decimal("10001"), Decimal("10000"), Rules(tolerance=Decimal(0))))

    def test_a_transactions_state_comes_from_its_records(self) -> None:
        self.assertEqual(state([record("in")]), "open")
        self.assertEqual(state([record("in"), record("out")]), "closed")
        self.assertEqual(state([record("out")]), "closed")  # one pass
        self.assertEqual(state([record("in", 3), record("void")]), "void")

    def test_a_stored_tare_expires_tare_days_after_it_was_captured(self) -> None:
        tare = {"captured": "2026-01-31T23:00:00.000000-03:00"}
        self.assertEqual(
            expiry(tare, Rules(tare_days=90)),
            datetime.fromisoformat(tare["captured"]) + timedelta(days=90),
        )


class TareOptions(TestCase):
    def test_defaults_are_90_days_and_10_percent(self) -> None:
        self.assertEqual(parse().rules, Rules(90.0, Decimal(10)))

    def test_the_command_line_the_environment_and_the_file_set_them(self) -> None:
        self.assertEqual(
            parse("--tare-days", "30", "--tare-tolerance", "2.5").rules, Rules(30.0, Decimal("2.5"))
        )
        env = {"BALANCA_TARE_DAYS": "7", "BALANCA_TARE_TOLERANCE": "0"}
        self.assertEqual(parse(env=env).rules, Rules(7.0, Decimal(0)))
        path = config("tare-days = 45\ntare-tolerance = 5\n")
        self.assertEqual(parse("--config", path).rules, Rules(45.0, Decimal(5)))
        self.assertEqual(parse("--config", path, "--tare-days", "60").rules.tare_days, 60.0)

    def test_bad_values_are_usage_errors_that_say_what_to_fix(self) -> None:
        for args, words in (
            (["--tare-days", "0"], "--tare-days must be above 0"),
            (["--tare-days", "soon"], "--tare-days must be a number"),
            (["--tare-tolerance", "-1"], "--tare-tolerance must be a decimal number of at least 0"),
            (["--tare-tolerance", "ten"], "--tare-tolerance must be a decimal number"),
        ):
            with self.assertRaises(usage.UsageError, msg=args) as raised:
                parse(*args)
            self.assertIn(words, str(raised.exception))
        path = config("tare-days = -3\n")
        with self.assertRaises(usage.UsageError) as raised:
            parse("--config", path)
        self.assertIn(f"{path}: key 'tare-days'", str(raised.exception))
