"""Truck weighing, pure: a transaction's figures, and the transaction as its sealed records
show it (DESIGN.md, "Truck weighing: transactions, stored tares, tickets").

A transaction is the records that carry its number in their `transaction` key: an `in`
record (the first pass; none in a one-pass weighing), an `out` record (the second pass, or
the one pass) and, once voided, a `void` record for each of those. Its figures are sealed in
the `out` record: `gross` and `net`, with as many decimals as the more precise of the two
weights; its tare is `gross - net` (the lighter pass, or the stored tare that the `out`
record's `tare_record` names). A record's own `tare` key stays what it is in every record:
the indicator's tare in the reading it was captured from.

Stored tares are `tare` records of a plate; the newest that is not void is the vehicle's
tare until it expires (`--tare-days` after it was captured).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from balanca.reading import decimal_text
from balanca.records.guards import Refusal
from balanca.records.seal import Record

State = Literal["open", "closed", "void"]


@dataclass(frozen=True)
class Rules:
    """The site's rules for stored tares."""

    tare_days: float = 90.0
    """A stored tare expires this many days after it was captured."""
    tolerance: Decimal = Decimal(10)
    """A closing tare further than this many percent from the stored tare is flagged."""


@dataclass(frozen=True)
class Figures:
    """A closed transaction's weights, exact, with the decimals of the more precise pass."""

    gross: Decimal
    tare: Decimal
    net: Decimal

    def sealed(self) -> dict[str, str]:
        """The keys an `out` record seals: `gross` and `net` as decimal strings."""
        return {"gross": format(self.gross, "f"), "net": format(self.net, "f")}


def figures(
    weight: Decimal, unit: str, other: Decimal, other_unit: str, stored: bool = False
) -> Figures | Refusal:
    """The figures of a close: gross the larger weight and tare the smaller (`stored`: gross
    is `weight`, the pass, and tare is `other`, the stored tare); a Refusal for units that
    differ or a net that is not above 0."""
    if unit != other_unit:
        return Refusal(
            "unit_mismatch", "unit mismatch", f"one weight is in {unit}, the other in {other_unit}"
        )
    places = max(decimals(weight), decimals(other))
    gross, tare = (weight, other) if stored else (max(weight, other), min(weight, other))
    gross, tare = at(gross, places), at(tare, places)
    net = gross - tare
    if net <= 0:
        return Refusal(
            "net_not_positive", "net not positive", f"gross {gross} less tare {tare} is {net}"
        )
    return Figures(gross, tare, net)


def decimals(value: Decimal) -> int:
    """How many decimals `value` is written with."""
    return max(0, -int(value.as_tuple().exponent))


def at(value: Decimal, places: int) -> Decimal:
    """`value` written with `places` decimals (exact: only zeros are added)."""
    return value.quantize(Decimal(1).scaleb(-places))


def expiry(tare: Mapping[str, Any], rules: Rules) -> datetime:
    """When a stored tare record expires."""
    return datetime.fromisoformat(tare["captured"]) + timedelta(days=rules.tare_days)


def unexpired(tare: Mapping[str, Any] | None, rules: Rules, now: datetime) -> bool:
    """`tare` is a stored tare still in force at `now`."""
    return tare is not None and now < expiry(tare, rules)


def mismatch(tare: Decimal, stored: Decimal, rules: Rules) -> bool:
    """A closing tare further than the tolerance (percent of the stored tare) from it."""
    return abs(tare - stored) * 100 > rules.tolerance * stored


def state(records: Iterable[Mapping[str, Any]]) -> State:
    """A transaction's state from its records: `void` once any is voided, `closed` with an
    `out` record, else `open`."""
    kinds = set()
    for record in records:
        if record["kind"] == "void" or record["voided_by"] is not None:
            return "void"
        kinds.add(record["kind"])
    return "closed" if "out" in kinds else "open"


def passes(records: Iterable[Record]) -> tuple[Record | None, Record | None]:
    """A transaction's (`in`, `out`) records, either None when missing."""
    by_kind = {r["kind"]: r for r in records if r["kind"] in ("in", "out")}
    return by_kind.get("in"), by_kind.get("out")


def view(
    transaction_id: int,
    records: Iterable[Record],
    compared: Mapping[str, Any] | None,
    rules: Rules,
) -> dict[str, Any]:
    """The transaction as `GET /api/transactions/T` shows it, from its records (with their
    `voided_by`) and the stored tare a two-pass close was compared with (or None)."""
    records = list(records)
    first, last = passes(records)
    head = first or last
    assert head is not None, f"transaction {transaction_id} has an in or an out record"
    gross = tare = net = None
    source: str | None = None
    flagged = False
    if last is not None:
        gross, net = Decimal(last["gross"]), Decimal(last["net"])
        tare = gross - net
        source = "weighing" if last["tare_record"] is None else "stored"
        if compared is not None and compared["unit"] == last["unit"]:
            flagged = mismatch(tare, Decimal(compared["weight"]), rules)
    return {
        "id": transaction_id,
        "plate": head["plate"],
        "state": state(records),
        "in": first,
        "out": last,
        "gross": decimal_text(gross),
        "tare": decimal_text(tare),
        "net": decimal_text(net),
        "unit": head["unit"],
        "tare_source": source,
        "tare_mismatch": flagged,
        "product": head["product"],
        "party": head["party"],
        "reference": head["reference"],
        "note": head["note"],
        "opened": head["captured"],
        "closed": None if last is None else last["captured"],
    }
