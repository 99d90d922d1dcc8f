"""Sealed records over HTTP: captures, listings, one record, voids, the key and the check.

    POST /api/weighings            capture the lone scale's weight (DESIGN.md's guards)
    GET  /api/weighings            records, newest first (scale, plate, kind, since, until,
                                   limit, before)
    GET  /api/weighings/N          record N, exactly as sealed, with voided_by
    POST /api/weighings/N/void     {"reason"}: a void record
    GET  /api/weighings/key        the public key and its fingerprint
    GET  /api/weighings/verify     a check of every record now (200 either way)

A capture answers 201 only once its record is committed. Checks run in DESIGN.md's order:
401, 413, 400, then the Idempotency-Key (a retried write gets its first answer), then the
guards (409), then the rate limit (429).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from twisted.internet import defer
from twisted.web.resource import Resource
from twisted.web.server import Request

from balanca.http.api import (
    MAX_LIMIT,
    Answer,
    Api,
    ApiError,
    Endpoint,
    NotFound,
    query,
    query_int,
    query_time,
    scale_unavailable,
    text_field,
)
from balanca.http.keyed import KeyedEndpoint
from balanca.hub import Hub
from balanca.reading import Reading
from balanca.records.guards import Capture, refusal
from balanca.store import ledger
from balanca.store.idempotency import Receipt
from balanca.store.recordbook import RecordBook, RecordRefused
from balanca.store.schema import utc_text

CAPTURE_FIELDS = {"reference": 100, "note": 500, "plate": 10, "product": 100, "party": 100}
"""Text fields a capture takes, with their longest length."""
KINDS = ("weighing", "in", "out", "tare", "void")
LISTING_LIMITS = (50, MAX_LIMIT)
"""A listing's `limit=`: its default and its most."""
PLATE = re.compile(r"[A-Z0-9]{1,10}")


def normal_plate(text: str) -> str:
    """A plate as stored: upper-case, without spaces or dashes; 400 unless 1–10 letters and
    digits remain."""
    plate = re.sub(r"[\s-]", "", text).upper()
    if not PLATE.fullmatch(plate):
        raise ApiError(400, "bad plate", "a plate is 1 to 10 letters and digits")
    return plate


def capture_fields(body: Any) -> dict[str, Any]:
    """The fields of a capture request, checked (400 when malformed)."""
    if not isinstance(body, dict):
        raise ApiError(400, "malformed body", "expected a JSON object")
    unknown = set(body) - set(CAPTURE_FIELDS) - {"again"}
    if unknown:
        raise ApiError(400, "unknown fields", ", ".join(sorted(unknown)))
    fields: dict[str, Any] = {name: text_field(body, name, n) for name, n in CAPTURE_FIELDS.items()}
    if fields["plate"] is not None:
        fields["plate"] = normal_plate(fields["plate"])
    fields["again"] = flag(body, "again")
    return fields


def flag(body: dict[str, Any], name: str) -> bool:
    """Optional boolean field `name` of a JSON body (400 unless true or false)."""
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise ApiError(400, f"bad {name}", f"{name} must be true or false")
    return value


class KeyedWrite(KeyedEndpoint):
    """A records endpoint: keyed writes on the record book."""

    def __init__(self, api: Api, records: RecordBook) -> None:
        super().__init__(api)
        self.records = records


class WeighingsEndpoint(KeyedWrite):
    """`/api/weighings` (every scale's records; captures on the only scale) or
    `/api/scales/ID/weighings` (that scale's records and captures)."""

    def __init__(self, api: Api, records: RecordBook, scale_id: str | None = None) -> None:
        super().__init__(api, records)
        self.scale_id = scale_id

    def get(self, request: Request) -> defer.Deferred[Answer]:
        scale_id = self.scale_id or self.api.scale_query(request)
        d = self.records.listing(listing_filters(request, scale_id))
        return d.addCallback(lambda records: (200, {"weighings": records}))

    def post(self, request: Request, body: Any) -> defer.Deferred[Answer]:
        parts = self.api.scales[self.scale_id] if self.scale_id else self.api.lone(request)
        return capture(self, request, body, parts.hub)


class RecordsRoot(WeighingsEndpoint):
    """`/api/weighings` with one record (`/N`, `/N/void`), the key and the check under it."""

    isLeaf = False

    def __init__(self, api: Api, records: RecordBook) -> None:
        super().__init__(api, records)
        self.putChild(b"key", KeyEndpoint(api, records))
        self.putChild(b"verify", VerifyEndpoint(api, records))

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path.isdigit() and len(path) <= 18:
            return RecordEndpoint(self.api, self.records, int(path))
        return NotFound()


def listing_filters(
    request: Request, scale_id: str | None, limits: tuple[int, int] = LISTING_LIMITS
) -> ledger.Filters:
    """A listing's filters from its query (400 when one is malformed); `limits` as `window`'s."""
    kind = query(request, "kind")
    if kind is not None and kind not in KINDS:
        raise ApiError(400, "bad kind", f"kind is one of {', '.join(KINDS)}")
    return ledger.Filters(
        scale=scale_id, plate=query_plate(request), kind=kind, **window(request, limits)
    )


def query_plate(request: Request) -> str | None:
    """The `plate=` query parameter as stored (400 when it is not a plate), or None."""
    plate = query(request, "plate")
    return None if plate is None else normal_plate(plate)


def window(request: Request, limits: tuple[int, int] = LISTING_LIMITS) -> dict[str, Any]:
    """What every listing's query takes besides its own filters (400 when malformed):
    `since_utc` and `until_utc` (from `since`, `until`), `before` and `limit` (`limits`: its
    default and its most)."""
    since, until = query_time(request, "since"), query_time(request, "until")
    return {
        "since_utc": None if since is None else utc_text(since),
        "until_utc": None if until is None else utc_text(until),
        "before": query_int(request, "before", None, 1, 2**63 - 1),
        "limit": query_int(request, "limit", limits[0], 1, limits[1]) or limits[0],
    }


def capture(endpoint: KeyedWrite, request: Request, body: Any, hub: Hub) -> defer.Deferred[Answer]:
    """Capture `hub`'s scale's current weight as a `weighing` record (201 once committed)."""
    fields = capture_fields(body)
    operator = endpoint.operator(request)

    async def act(receipt: Receipt | None) -> Answer:
        reading = await guarded(endpoint, request, hub, fields["again"])
        record = await endpoint.records.capture(
            reading, {**fields, "kind": "weighing", "operator": operator}, receipt
        )
        return 201, record

    return endpoint.keyed(request, act)


async def guarded(endpoint: KeyedWrite, request: Request, hub: Hub, again: bool) -> Reading:
    """The reading a capture on `hub`'s scale takes (a weighing, an `in` or an `out`), once
    it has passed the capture guards (409) and the rate limit (429)."""
    book, reading = endpoint.records, hub.latest
    capture = Capture(hub.state, reading, book.min_weight(hub.scale), emptied=True, again=again)
    refused = refusal(capture)  # the scale's own state first: it needs no database
    if refused is None and not again and not await book.emptied(hub.scale):
        refused = refusal(replace(capture, emptied=False))
    if refused is not None:
        if refused.code == "scale_not_live":
            raise scale_unavailable(hub, 409)
        raise ApiError(409, refused.error, refused.detail, refused.code)
    endpoint.limit(request)
    assert reading is not None
    return reading


def void_reason(body: Any) -> str:
    """The reason of a void request `{"reason": "..."}` (400 unless 1 to 500 characters)."""
    if not isinstance(body, dict) or set(body) - {"reason"}:
        raise ApiError(400, "malformed body", 'expected {"reason": "..."}')
    reason = text_field(body, "reason", 500)
    if not reason or not reason.strip():
        raise ApiError(400, "reason required", "a void needs a reason (1 to 500 characters)")
    return reason


class RecordEndpoint(KeyedWrite):
    """`GET /api/weighings/N`: one record, exactly as sealed."""

    isLeaf = False

    def __init__(self, api: Api, records: RecordBook, number: int) -> None:
        super().__init__(api, records)
        self.number = number
        self.putChild(b"void", VoidEndpoint(api, records, number))

    def get(self, request: Request) -> defer.Deferred[Answer]:
        def answer(record: dict[str, Any] | None) -> Answer:
            if record is None:
                raise ApiError(404, "no such record", f"no record {self.number}")
            return 200, record

        return self.records.get(self.number).addCallback(answer)


class VoidEndpoint(KeyedWrite):
    """`POST /api/weighings/N/void` `{"reason"}`: a void record for record N."""

    def __init__(self, api: Api, records: RecordBook, number: int) -> None:
        super().__init__(api, records)
        self.number = number

    def post(self, request: Request, body: Any) -> defer.Deferred[Answer]:
        reason = void_reason(body)
        operator = self.operator(request)

        async def act(receipt: Receipt | None) -> Answer:
            self.limit(request)
            try:
                record = await self.records.void(self.number, reason, operator, receipt)
            except RecordRefused as e:
                raise ApiError(e.status, e.error, e.detail, e.code) from None
            return 201, record

        return self.keyed(request, act)


class KeyEndpoint(Endpoint):
    """`GET /api/weighings/key`: the public key that checks every record's signature."""

    def __init__(self, api: Api, records: RecordBook) -> None:
        super().__init__(api)
        self.records = records

    def get(self, request: Request) -> Answer:
        return 200, self.records.public


class VerifyEndpoint(Endpoint):
    """`GET /api/weighings/verify`: a check of every record in the database now."""

    def __init__(self, api: Api, records: RecordBook) -> None:
        super().__init__(api)
        self.records = records

    def get(self, request: Request) -> defer.Deferred[Answer]:
        d = defer.Deferred.fromCoroutine(self.records.verify())
        return d.addCallback(lambda verdict: (200, verdict.to_json()))
