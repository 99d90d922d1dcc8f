"""Truck weighing over HTTP: transactions, vehicles and their stored tares (DESIGN.md).

    POST /api/scales/ID/transactions   {"plate", "product"?, "party"?, "reference"?, "note"?,
                                       "stored_tare"?, "again"?}: the `in` record (or, with a
                                       stored tare, the one pass) of a new transaction
    GET  /api/transactions             transactions, newest first (state, plate, since,
                                       until, limit, before)
    GET  /api/transactions/T           transaction T
    POST /api/transactions/T/close     {"scale"?, "again"?}: the `out` record
    POST /api/transactions/T/void      {"reason"}: a void record for each of its records
    GET  /api/vehicles/PLATE           its stored tare in force, open transaction, latest
                                       transactions
    PUT  /api/vehicles/PLATE/tare      {"weighing": N, "reason"?} or {"tare", "unit",
                                       "reason"}: a `tare` record

Writes answer 201 with the transaction (the tare: its record), once committed; checks run as
for every capture (401, 413, 400, the Idempotency-Key, the guards' 409s, 429), then what the
records say (404, 409 `transaction_open`, `no_stored_tare`, `transaction_closed`,
`already_void`, `unit_mismatch`, `net_not_positive`, `not_a_capture`, `plate_mismatch`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import unquote

from twisted.internet import defer
from twisted.web.resource import Resource
from twisted.web.server import Request

from balanca.http.api import (
    Answer,
    Api,
    ApiError,
    NotFound,
    query,
    text_field,
)
from balanca.http.records import (
    LISTING_LIMITS,
    KeyedWrite,
    capture_fields,
    flag,
    guarded,
    normal_plate,
    query_plate,
    void_reason,
    window,
)
from balanca.store.idempotency import Receipt
from balanca.store.recordbook import RecordBook, RecordRefused
from balanca.store.schema import MAX_DECIMALS, MAX_INTEGER_DIGITS
from balanca.store.transaction_index import Filters
from balanca.store.transactions import Transactions

T = TypeVar("T")
STATES = ("open", "closed", "void")
WEIGHT = re.compile(rf"[0-9]{{1,{MAX_INTEGER_DIGITS}}}(\.[0-9]{{1,{MAX_DECIMALS}}})?")
"""A typed-in tare: digits, and a point with up to six decimals."""
UNIT = re.compile(r"[A-Za-z]{1,16}")


async def answered(write: Awaitable[T]) -> T:
    """`write`'s result; what the records refuse as its JSON error."""
    try:
        return await write
    except RecordRefused as e:
        raise ApiError(e.status, e.error, e.detail, e.code) from None


class TransactionWrite(KeyedWrite):
    """An endpoint of truck weighing: keyed writes through the transactions."""

    def __init__(self, api: Api, records: RecordBook, transactions: Transactions) -> None:
        super().__init__(api, records)
        self.transactions = transactions


class OpenEndpoint(TransactionWrite):
    """`POST /api/scales/ID/transactions`: open a transaction with an `in` record, or weigh
    once against the plate's stored tare (`"stored_tare": true`)."""

    def __init__(
        self, api: Api, records: RecordBook, transactions: Transactions, scale_id: str
    ) -> None:
        super().__init__(api, records, transactions)
        self.scale_id = scale_id

    def post(self, request: Request, body: Any) -> defer.Deferred[Answer]:
        if not isinstance(body, dict):
            raise ApiError(400, "malformed body", "expected a JSON object")
        one_pass = flag(body, "stored_tare")
        fields = capture_fields({k: v for k, v in body.items() if k != "stored_tare"})
        if fields["plate"] is None:
            raise ApiError(400, "plate required", "a transaction needs the vehicle's plate")
        fields["operator"] = self.operator(request)
        hub = self.api.scales[self.scale_id].hub

        async def act(receipt: Receipt | None) -> Answer:
            reading = await guarded(self, request, hub, fields["again"])
            opened = self.transactions.open(reading, fields, one_pass, receipt)
            return 201, await answered(opened)

        return self.keyed(request, act)


class TransactionsRoot(TransactionWrite):
    """`GET /api/transactions`: transactions, newest first; one of them under it."""

    isLeaf = False

    def get(self, request: Request) -> defer.Deferred[Answer]:
        d = self.transactions.listing(transaction_filters(request))
        return d.addCallback(lambda found: (200, {"transactions": found}))

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path.isdigit() and len(path) <= 18:
            parts = (self.api, self.records, self.transactions, int(path))
            one = TransactionEndpoint(*parts)
            one.putChild(b"close", CloseEndpoint(*parts))
            one.putChild(b"void", VoidEndpoint(*parts))
            return one
        return NotFound()


def transaction_filters(request: Request, limits: tuple[int, int] = LISTING_LIMITS) -> Filters:
    """A listing's filters from its query (400 when one is malformed); `limits` as `window`'s."""
    wanted = query(request, "state")
    if wanted is not None and wanted not in STATES:
        raise ApiError(400, "bad state", f"state is one of {', '.join(STATES)}")
    return Filters(state=wanted, plate=query_plate(request), **window(request, limits))


class OneTransaction(TransactionWrite):
    """An endpoint of transaction `transaction_id`."""

    def __init__(
        self, api: Api, records: RecordBook, transactions: Transactions, transaction_id: int
    ) -> None:
        super().__init__(api, records, transactions)
        self.id = transaction_id


class TransactionEndpoint(OneTransaction):
    """`GET /api/transactions/T`."""

    isLeaf = False

    def get(self, request: Request) -> defer.Deferred[Answer]:
        def answer(found: dict[str, Any] | None) -> Answer:
            if found is None:
                raise ApiError(404, "no such transaction", f"no transaction {self.id}")
            return 200, found

        return self.transactions.get(self.id).addCallback(answer)


class CloseEndpoint(OneTransaction):
    """`POST /api/transactions/T/close` `{"scale"?, "again"?}`: the `out` record, on any
    scale (`scale` may be left out when there is one)."""

    def post(self, request: Request, body: Any) -> defer.Deferred[Answer]:
        if not isinstance(body, dict) or set(body) - {"scale", "again"}:
            raise ApiError(400, "malformed body", 'expected {"scale"?: ID, "again"?: bool}')
        again, scale_id = flag(body, "again"), body.get("scale")
        ids = ", ".join(self.api.scales)
        if scale_id is None and len(self.api.scales) > 1:
            raise ApiError(
                400, "scale required", f"say which scale weighs: one of {ids}", "scale_required"
            )
        if scale_id is not None and (
            not isinstance(scale_id, str) or scale_id not in self.api.scales
        ):
            raise ApiError(400, "unknown scale", f"scale must be one of: {ids}")
        parts = self.api.scales[scale_id] if scale_id else next(iter(self.api.scales.values()))
        fields = {"again": again, "operator": self.operator(request)}

        async def act(receipt: Receipt | None) -> Answer:
            reading = await guarded(self, request, parts.hub, again)
            closed = self.transactions.close(self.id, reading, fields, receipt)
            return 201, await answered(closed)

        return self.keyed(request, act)


class VoidEndpoint(OneTransaction):
    """`POST /api/transactions/T/void` `{"reason"}`: every record of T voided at once."""

    def post(self, request: Request, body: Any) -> defer.Deferred[Answer]:
        reason, operator = void_reason(body), self.operator(request)

        async def act(receipt: Receipt | None) -> Answer:
            self.limit(request)
            return 201, await answered(self.transactions.void(self.id, reason, operator, receipt))

        return self.keyed(request, act)


class VehiclesRoot(NotFound):
    """`/api/vehicles/PLATE` and `/api/vehicles/PLATE/tare`."""

    def __init__(self, api: Api, records: RecordBook, transactions: Transactions) -> None:
        super().__init__()
        self.parts = (api, records, transactions)

    def getChild(self, path: bytes, request: Request) -> Resource:
        plate = unquote(path.decode("utf-8", "replace"))
        vehicle = VehicleEndpoint(*self.parts, plate)
        vehicle.putChild(b"tare", TareEndpoint(*self.parts, plate))
        return vehicle


class PlateEndpoint(TransactionWrite):
    """An endpoint of one vehicle."""

    def __init__(
        self, api: Api, records: RecordBook, transactions: Transactions, plate: str
    ) -> None:
        super().__init__(api, records, transactions)
        self.given = plate
        """The plate as the path gives it: checked when answering, so a bad one is a 400."""

    @property
    def plate(self) -> str:
        """The plate as stored (400 when it is not one)."""
        return normal_plate(self.given)


class VehicleEndpoint(PlateEndpoint):
    """`GET /api/vehicles/PLATE`: the plate, its stored tare in force (or null) and when it
    expires, its open transaction's id (or null), its ten latest transactions."""

    isLeaf = False

    def get(self, request: Request) -> defer.Deferred[Answer]:
        d = self.transactions.vehicle(self.plate)
        return d.addCallback(lambda vehicle: (200, vehicle))


class TareEndpoint(PlateEndpoint):
    """`PUT /api/vehicles/PLATE/tare`: store a tare, from a record's weight
    (`{"weighing": N}`) or typed in (`{"tare": "12340", "unit": "kg", "reason": "..."}`)."""

    def put(self, request: Request, body: Any) -> defer.Deferred[Answer]:
        plate = self.plate
        weighing, fields = tare_request(body)
        fields["operator"] = self.operator(request)

        async def act(receipt: Receipt | None) -> Answer:
            self.limit(request)
            stored = self.transactions.store_tare(plate, fields, weighing, receipt)
            return 201, await answered(stored)

        return self.keyed(request, act)


def tare_request(body: Any) -> tuple[int | None, dict[str, Any]]:
    """A stored tare request: (record number, fields) from a record's weight, or (None,
    fields) typed in; 400 when malformed."""
    if not isinstance(body, dict):
        raise ApiError(400, "malformed body", "expected a JSON object")
    if "weighing" in body:
        if set(body) - {"weighing", "reason"}:
            raise ApiError(400, "unknown fields", ", ".join(sorted(set(body) - {"weighing"})))
        number = body["weighing"]
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number < 2**63:
            raise ApiError(400, "bad weighing", "weighing must be a record number")
        return number, {"reason": text_field(body, "reason", 500)}
    if set(body) - {"tare", "unit", "reason"}:
        raise ApiError(400, "unknown fields", ", ".join(sorted(set(body) - {"tare", "unit"})))
    tare, unit = body.get("tare"), body.get("unit")
    if not isinstance(tare, str) or not WEIGHT.fullmatch(tare) or not tare.strip("0."):
        raise ApiError(400, "bad tare", 'tare is a weight above 0 as a decimal string ("12340")')
    if not isinstance(unit, str) or not UNIT.fullmatch(unit):
        raise ApiError(400, "bad unit", "unit is the scale's unit (kg, t, lb, ...)")
    reason = text_field(body, "reason", 500)
    if not reason or not reason.strip():
        raise ApiError(
            400, "reason required", "a typed-in tare needs a reason (1 to 500 characters)"
        )
    return None, {
        "weight": tare,
        "unit": unit,
        "decimals": len(tare.partition(".")[2]),
        "reason": reason,
        "source": "manual",
    }
