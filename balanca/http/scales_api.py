"""The API's scale endpoints and the `/api` tree (DESIGN.md, "HTTP API" and "Several scales").

Each endpoint acts on one scale: the one its path names (`/api/scales/ID/weight`), or for a
0.1 path (`/api/weight`) the only scale, with a 400 `scale_required` naming the ids when there
are several. `GET /api/scales` lists them in the order configured; `GET /api/health` covers
them all, and keeps 0.1's fields when there is one.
"""

from __future__ import annotations

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
    TimeEndpoint,
    query_int,
    query_time,
    scale_unavailable,
)
from balanca.http.exports import TransactionsCsv, WeighingsCsv
from balanca.http.keyed import KeyedEndpoint
from balanca.http.records import RecordsRoot, WeighingsEndpoint
from balanca.http.transactions import OpenEndpoint, TransactionsRoot, VehiclesRoot
from balanca.reading import Reply, isotime, local_time
from balanca.scales import ScaleParts
from balanca.store.idempotency import Receipt
from balanca.store.recordbook import RecordBook
from balanca.store.transactions import Transactions

COMMAND_CODES = {"tare": "tared", "zero": "zeroed", "clear-tare": "tare_cleared"}
"""The `code` of a command's success reply."""
HEALTH_FIELDS = ("id", "state", "link", "reason", "code", "age")
"""A scale's part of `/api/health`."""


class ScaleEndpoint(KeyedEndpoint):
    """An endpoint of one scale: `scale_id`'s, or (None) the only one."""

    def __init__(self, api: Api, scale_id: str | None = None) -> None:
        super().__init__(api)
        self.scale_id = scale_id

    def target(self, request: Request) -> ScaleParts:
        """The scale this request acts on."""
        if self.scale_id is None:
            return self.api.lone(request)
        return self.api.scales[self.scale_id]


def scale_health(parts: ScaleParts) -> dict[str, Any]:
    """A scale's state as `/api/health` lists it."""
    status = parts.hub.status()
    return {"id": parts.id, **{k: status[k] for k in HEALTH_FIELDS[1:]}}


def is_down(parts: ScaleParts) -> bool:
    """The scale is disconnected or stale: `/api/health` answers 503."""
    return parts.hub.state in ("disconnected", "stale")


class ScalesEndpoint(Endpoint):
    """`GET /api/scales`: every scale, in the order configured, with its latest reading."""

    def get(self, request: Request) -> Answer:
        scales = []
        for parts in self.api.scales.values():
            hub, latest = parts.hub, parts.hub.latest
            scales.append(
                {
                    **scale_health(parts),
                    "protocol": parts.scale.wire.name,  # with protocol=auto: as detected
                    "source": parts.spec.source,
                    "commands": parts.commands,
                    "reading": None if latest is None else latest.to_dict(),
                    "stale_after": hub.stale_after,
                }
            )
        return 200, {"scales": scales}


class WeightEndpoint(ScaleEndpoint):
    """`GET /api/weight`: the latest reading, from the bytes encoded once when it arrived."""

    def get(self, request: Request) -> Answer:
        hub = self.target(request).hub
        if hub.is_live() and hub.latest_json is not None:
            return 200, hub.latest_json
        last = None if hub.latest is None else hub.latest.to_dict()
        error = scale_unavailable(hub)
        return 503, {"error": error.error, "code": error.code, "detail": error.detail, "last": last}


class ScaleHealthEndpoint(ScaleEndpoint):
    """`GET /api/scales/ID/health` (and a lone scale's `/api/health` fields, as in 0.1): the
    scale, the database and the clients; 503 when something needs a look."""

    def get(self, request: Request) -> Answer:
        return one_scale_health(self.api, self.target(request))


def one_scale_health(api: Api, parts: ScaleParts) -> Answer:
    """0.1's health of one scale: `status`, `scale`, `database`, and `db`, now 0.2's object
    (state, code, backlog, oldest, ...) instead of 0.1's state word."""
    database = dict(api.store.health())
    db = database.pop("db")
    ok = not is_down(parts) and db == "ok" and api.records() != "broken"
    scale = parts.hub.status()
    scale["protocol"] = parts.scale.protocol_info  # with protocol=auto: what detection chose
    body = {
        "status": "ok" if ok else "degraded",
        "scale": scale,
        "db": database,
        "database": database,
        "clients": api.clients(),
        "time": isotime(local_time(api.clock.seconds())),
    }
    return (200 if ok else 503), body


class HealthEndpoint(Endpoint):
    """`GET /api/health` (DESIGN.md's 0.2 shape): every scale, the database, records, MQTT and
    clients; with a lone scale also 0.1's fields. 503 while any scale is disconnected or
    stale, the database is degraded or the records are broken."""

    def get(self, request: Request) -> Answer:
        scales = list(self.api.scales.values())
        if len(scales) == 1:
            status, body = one_scale_health(self.api, scales[0])
            assert isinstance(body, dict)
        else:
            database = dict(self.api.store.health())
            ok = database.pop("db") == "ok" and not any(is_down(p) for p in scales)
            ok = ok and self.api.records() != "broken"
            status = 200 if ok else 503
            body = {
                "status": "ok" if ok else "degraded",
                "db": database,
                "clients": self.api.clients(),
                "time": isotime(local_time(self.api.clock.seconds())),
            }
        records = "broken" if self.api.records() == "broken" else "ok"
        body.update(scales=[scale_health(p) for p in scales], records=records, mqtt=self.api.mqtt())
        return status, body


class CommandEndpoint(ScaleEndpoint):
    """`POST /api/tare`, `/api/zero`, `/api/clear-tare` (and under `/api/scales/ID/`): the
    command, through the scale's protocol."""

    def __init__(self, api: Api, name: str, scale_id: str | None = None) -> None:
        super().__init__(api, scale_id)
        self.name = name

    def post(self, request: Request, body: Any) -> defer.Deferred[Answer]:
        parts = self.target(request)

        async def act(receipt: Receipt | None) -> Answer:
            hub = parts.hub
            if hub.link != "connected":
                raise ApiError(503, f"scale {hub.link}", hub.reason, "scale_disconnected")
            self.limit(request)
            return self._answer(await parts.scale.command(self.name))

        return self.keyed(request, act)

    def _answer(self, reply: Reply) -> Answer:
        default = COMMAND_CODES.get(self.name, "done") if reply.ok else "scale_refused"
        code = reply.code or default  # the scale's own code where it has one
        body = {"command": self.name, "ok": reply.ok, "reply": reply.text, "code": code}
        if reply.ok:
            return 200, body
        return 409, {**body, "error": "command refused", "detail": reply.text}


class ReadingsEndpoint(Endpoint):
    """`GET /api/readings?since=&until=&limit=&scale=`: recorded readings, newest first."""

    def get(self, request: Request) -> defer.Deferred[Answer]:
        since, until = query_time(request, "since"), query_time(request, "until")
        limit = query_int(request, "limit", 100, 1, MAX_LIMIT) or 100
        d = self.api.store.readings(since, until, limit, self.api.scale_query(request))
        return d.addCallback(lambda rows: (200, {"readings": rows}))


def scale_children(api: Api, scale_id: str | None) -> dict[bytes, Resource]:
    """The endpoints of one scale (`scale_id`), or of the only one (None) at 0.1's paths."""
    return {
        b"weight": WeightEndpoint(api, scale_id),
        b"tare": CommandEndpoint(api, "tare", scale_id),
        b"zero": CommandEndpoint(api, "zero", scale_id),
        b"clear-tare": CommandEndpoint(api, "clear-tare", scale_id),
    }


class ScalesRoot(Resource):
    """`/api/scales`: the list, and under it each scale's endpoints (a JSON 404 for an
    unknown id or path)."""

    def __init__(self, api: Api, records: RecordBook, transactions: Transactions) -> None:
        super().__init__()
        self.listing = ScalesEndpoint(api)
        for scale_id in api.scales:
            one = NotFound()
            for name, child in scale_children(api, scale_id).items():
                one.putChild(name, child)
            one.putChild(b"health", ScaleHealthEndpoint(api, scale_id))
            one.putChild(b"weighings", WeighingsEndpoint(api, records, scale_id))
            one.putChild(b"transactions", OpenEndpoint(api, records, transactions, scale_id))
            self.putChild(scale_id.encode(), one)

    def getChild(self, path: bytes, request: Request) -> Resource:
        return self.listing if path == b"" else NotFound()

    def render(self, request: Request) -> Any:
        return self.listing.render(request)


def api_tree(api: Api, records: RecordBook, transactions: Transactions) -> Resource:
    """The `/api` resource with its children."""
    root = NotFound()
    children: dict[bytes, Resource] = {
        b"time": TimeEndpoint(api),
        b"health": HealthEndpoint(api),
        b"readings": ReadingsEndpoint(api),
        b"scales": ScalesRoot(api, records, transactions),
        b"weighings": RecordsRoot(api, records),
        b"weighings.csv": WeighingsCsv(api, records),
        b"transactions": TransactionsRoot(api, records, transactions),
        b"transactions.csv": TransactionsCsv(api, records, transactions),
        b"vehicles": VehiclesRoot(api, records, transactions),
        **scale_children(api, None),
    }
    for name, child in children.items():
        root.putChild(name, child)
    return root
