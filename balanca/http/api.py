"""The JSON HTTP API (`/api/...`): what every endpoint shares (errors, checks, queries).

The endpoints that read and act on scales are in `scales_api.py`, which builds the tree.

Every answer is JSON; errors are `{"error": ..., "code": ..., "detail": ...}` with their status
code, checked in DESIGN.md's order: 401 token (429 first for a place that keeps failing it),
413 body size, 400 malformed, 409/503 scale state, 429 rate limit. `code` is the stable machine
key the page translates (README, "Errors"); `error` and `detail` are short English, never the
text of an exception (that goes to the log).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from balanca.http.security import Access, RateLimiter, bearer
from balanca.hub import Hub
from balanca.reading import isotime, json_bytes, local_time
from balanca.scale.scale import CommandError
from balanca.store.idempotency import Idempotency
from balanca.store.store import DatabaseUnavailable

if TYPE_CHECKING:
    from balanca.scales import ScaleParts

MAX_BODY = 16 * 1024
MAX_LIMIT = 1000
HANDLERS = ((b"GET", "get"), (b"HEAD", "get"), (b"POST", "post"), (b"PUT", "put"))
"""Each method an endpoint may answer, and the name of its handler."""
WRITES = (b"POST", b"PUT")
"""Methods that write: they need the write token and spend the write budget."""
Answer = tuple[int, "dict[str, Any] | list[Any] | bytes"]


STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden_origin",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    429: "rate_limited",
    431: "headers_too_large",
    500: "internal_error",
    501: "command_unsupported",
    503: "scale_disconnected",
    504: "command_timeout",
}
"""The `code` of an error that names none: what its status alone says."""
COMMAND_CODES = {"tare": "tared", "zero": "zeroed", "clear-tare": "tare_cleared"}
"""The `code` of a command's success reply."""
SCALE_STATE_CODES = {"waiting": "no_reading", "stale": "scale_stale"}
"""The `code` of a 503 for a scale that is not live, by its state (else scale_disconnected)."""
DB_DETAILS = {
    "db_unavailable": "the database cannot be reached or does not answer in time",
    "db_error": "the database refused the write",
}


class ApiError(Exception):
    """An error answer: status code, a short `error` and a `detail` for people, and the
    machine `code` (by default the one its status stands for)."""

    def __init__(self, status: int, error: str, detail: str = "", code: str | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.detail = status, error, detail
        self.code = code or STATUS_CODES.get(status, "internal_error")

    def answer(self) -> Answer:
        """The JSON error answer: status code and body."""
        return self.status, error_body(self.error, self.detail, self.code)


class StoreQueries(Protocol):
    """The store, as the API uses it."""

    def readings(
        self, since: datetime | None, until: datetime | None, limit: int, scale: str | None
    ) -> defer.Deferred[list[dict[str, Any]]]:
        """Recorded readings of `scale` (None: of all) between `since` and `until`, newest
        first."""
        ...

    def health(self) -> dict[str, Any]:
        """The database's state and backlog."""
        ...


@dataclass
class Api:
    """What the API resources read from and act on."""

    clock: IReactorTime
    scales: Mapping[str, ScaleParts]
    """Each scale's objects by id, in the order configured."""
    store: StoreQueries
    clients: Callable[[], int]
    access: Access
    limiter: RateLimiter
    records: Callable[[], str] = lambda: "ok"
    """The sealed records' state: `ok`, or `broken` once a check fails."""
    keys: Idempotency | None = None
    """Where writes' `Idempotency-Key` answers are kept (None: keys are not honoured)."""
    mqtt: Callable[[], dict[str, Any]] = lambda: {"state": "off", "outbox": 0, "oldest": None}
    """Fleet publishing's state for `/api/health` (off unless `--mqtt`)."""

    def lone(self, request: Request) -> ScaleParts:
        """The only scale, for a 0.1 path; with several, 400 `scale_required` naming the ids
        and the path to use instead."""
        if len(self.scales) == 1:
            return next(iter(self.scales.values()))
        path = request.path.decode("utf-8", "replace").removeprefix("/api/")
        ids = ", ".join(self.scales)
        raise ApiError(
            400,
            "scale required",
            f"this service reads several scales ({ids}): use /api/scales/ID/{path}",
            "scale_required",
        )

    def scale_query(self, request: Request) -> str | None:
        """The `scale=` query parameter, checked against the configured ids (400 otherwise);
        None when absent."""
        scale_id = query(request, "scale")
        if scale_id is None or scale_id in self.scales:
            return scale_id
        ids = ", ".join(self.scales)
        raise ApiError(400, "unknown scale", f"scale must be one of: {ids}", "bad_request")


def error_body(error: str, detail: str = "", code: str = "internal_error") -> bytes:
    """The JSON body of an error answer."""
    return json_bytes({"error": error, "code": code, "detail": detail})


def scale_unavailable(hub: Hub, status: int = 503) -> ApiError:
    """The error for a scale that is not live: 503 with what its state says, or (a capture)
    409 `scale_not_live`."""
    code = SCALE_STATE_CODES.get(hub.state, "scale_disconnected") if status == 503 else None
    return ApiError(status, f"scale {hub.state}", hub.reason, code or "scale_not_live")


def finish(request: Request, status: int, body: dict[str, Any] | list[Any] | bytes) -> None:
    """Write a JSON answer, unless the client has gone or an answer is under way (streamed by
    the endpoint itself: an export)."""
    if getattr(request, "_disconnected", False) or request.finished or request.startedWriting:
        return
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Cache-Control", b"no-store")
    data = body if isinstance(body, bytes) else json_bytes(body)
    request.setHeader(b"Content-Length", b"%d" % len(data))  # whole, not chunked
    request.write(data)
    request.finish()


def require(request: Request, allowed: bool, what: str, limiter: RateLimiter) -> None:
    """Refuse the request unless `allowed`: 401 with a Bearer challenge, each refusal spending
    from the client's write budget, so that a place that keeps guessing gets 429."""
    if allowed:
        return
    if not limiter.allow(request.getClientAddress()):
        raise rate_limited()
    request.setHeader(b"WWW-Authenticate", b'Bearer realm="balanca"')
    raise ApiError(401, "unauthorized", f"{what} need Authorization: Bearer TOKEN")


def presented_token(request: Request, in_query: bool = False) -> str | None:
    """The token a request presents: `Authorization: Bearer`, else (where `in_query`: a page or
    a download a browser opens by its URL, which cannot carry a header) `?token=`."""
    token = bearer(request.getHeader(b"Authorization"))
    return query(request, "token") if token is None and in_query else token


def rate_limited() -> ApiError:
    """The 429 of a client that spent its budget."""
    return ApiError(429, "too many requests", "writes and failed authentications are limited")


class Endpoint(Resource):
    """A leaf of the API: runs the common checks, then `get` or `post`."""

    isLeaf = True
    public = False
    """Reads need no token even when a read token is set."""
    token_in_query = False
    """A read may carry its token as `?token=` (a URL a browser opens itself)."""
    log = Logger()

    def __init__(self, api: Api) -> None:
        super().__init__()
        self.api = api
        own = {
            name
            for cls in type(self).__mro__
            if issubclass(cls, Endpoint) and cls is not Endpoint
            for name in vars(cls)
        }
        self.methods = [m for m, name in HANDLERS if name in own]
        """The methods this endpoint answers: those whose handler its class (or a class it
        extends) defines."""

    def get(self, request: Request) -> Answer | defer.Deferred[Answer]:
        """Answer a GET (endpoints that serve reads override this)."""
        raise NotImplementedError

    def post(self, request: Request, body: Any) -> Answer | defer.Deferred[Answer]:
        """Answer a POST with its parsed JSON body (endpoints that take writes override this)."""
        raise NotImplementedError

    def put(self, request: Request, body: Any) -> Answer | defer.Deferred[Answer]:
        """Answer a PUT with its parsed JSON body (endpoints that replace a thing)."""
        raise NotImplementedError

    def render(self, request: Request) -> bytes | int:
        try:
            answer = self._dispatch(request)
        except ApiError as e:
            answer = e.answer()
        if isinstance(answer, defer.Deferred):
            answer.addErrback(self._failed).addCallback(lambda a: finish(request, *a))
            return NOT_DONE_YET
        finish(request, *answer)
        return NOT_DONE_YET

    def _dispatch(self, request: Request) -> Answer | defer.Deferred[Answer]:
        if any(request.postpath or ()):
            raise ApiError(404, "not found", request.path.decode("utf-8", "replace"))
        allowed = self.methods
        if request.method not in allowed:
            request.setHeader(b"Allow", b", ".join(allowed))
            raise ApiError(
                405, "method not allowed", f"use {', '.join(m.decode() for m in allowed)}"
            )
        access = self.api.access
        token = presented_token(request, self.token_in_query and request.method not in WRITES)
        if request.method in WRITES:
            require(request, access.may_write(token), "writes", self.api.limiter)
        elif not self.public:
            require(request, access.may_read(token), "reads", self.api.limiter)
        if getattr(request, "body_too_large", False):
            raise ApiError(413, "body too large", f"at most {MAX_BODY} bytes")
        if request.method == b"POST":
            return self.post(request, parse_body(request))
        if request.method == b"PUT":
            return self.put(request, parse_body(request))
        return self.get(request)

    def limit(self, request: Request) -> None:
        """Spend one write from the client's rate budget (the last check before acting)."""
        if not self.api.limiter.allow(request.getClientAddress()):
            raise rate_limited()

    def _failed(self, failure: Failure) -> Answer:
        if failure.check(ApiError):
            return cast(ApiError, failure.value).answer()
        if failure.check(CommandError):
            e = cast(CommandError, failure.value)
            code = getattr(e, "code", None) or STATUS_CODES.get(e.status, "scale_refused")
            return e.status, error_body(e.error, e.detail, code)
        code = getattr(failure.value, "code", None)
        if failure.check(DatabaseUnavailable) or code in DB_DETAILS:
            code = code if code in DB_DETAILS else "db_unavailable"
            self.log.warn(
                "API {endpoint}: database: {error}",
                endpoint=type(self).__name__,
                error=failure.getErrorMessage(),
            )
            return 503, error_body("database unavailable", DB_DETAILS[code], code)
        self.log.failure("API request failed", failure)
        return 500, error_body("internal error", "see the service log")


def parse_body(request: Request) -> Any:
    """The JSON body of a write (empty means `{}`); 400 when malformed."""
    raw = request.content.read() if request.content is not None else b""
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        raise ApiError(400, "malformed JSON", "the body is not valid JSON") from None


def query(request: Request, name: str) -> str | None:
    """The last value of query parameter `name`, or None."""
    values = request.args.get(name.encode())
    return values[-1].decode("utf-8", "replace") if values else None


def query_int(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    """Query parameter `name` as a whole number from `low` to `high` (400 otherwise)."""
    text = query(request, name)
    if text is None or text == "":
        return default
    digits = text.isascii() and text.isdigit() and len(text) <= len(str(high))
    if not digits or not low <= int(text) <= high:
        raise ApiError(400, f"bad {name}", f"{name} must be a whole number from {low} to {high}")
    return int(text)


def query_time(request: Request, name: str) -> datetime | None:
    """Query parameter `name` as an aware ISO 8601 time (400 otherwise)."""
    text = query(request, name)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
        return (moment if moment.tzinfo else moment.astimezone()).astimezone(UTC)
    except (ValueError, OverflowError):  # not a time, or one with no UTC equivalent
        raise ApiError(400, f"bad {name}", f"{name} must be an ISO 8601 time") from None


class TimeEndpoint(Endpoint):
    """`GET /api/time`: the service's clock, as readings are stamped. Public: it tells
    nothing about the scale, and monitors can see the service answer without a token."""

    public = True

    def get(self, request: Request) -> Answer:
        return 200, {"time": isotime(local_time(self.api.clock.seconds()))}


def text_field(body: dict[str, Any], name: str, limit: int) -> str | None:
    """Optional string field `name` of a JSON body, at most `limit` characters (400 otherwise)."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or not _is_unicode(value):
        raise ApiError(400, f"bad {name}", f"{name} must be a string of at most {limit} characters")
    return value


def _is_unicode(text: str) -> bool:
    """`text` holds no unpaired surrogate (JSON's `"\\ud800"`), so it can be stored."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class NotFound(Resource):
    """A JSON 404 for any path it does not hold."""

    def getChild(self, path: bytes, request: Request) -> Resource:
        return self

    def render(self, request: Request) -> bytes:
        request.setResponseCode(404)
        request.setHeader(b"Content-Type", b"application/json")
        return error_body("not found", request.path.decode("utf-8", "replace"), "not_found")
