"""The HTTP side: the resource tree (`/` live view, `/api`, `/ws`, `/metrics`) and the
channel, request and site classes that bound what a client may send, add the security
headers to every answer and count requests."""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterable
from io import BytesIO
from pathlib import Path
from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from twisted.web.static import File

from balanca.http.api import (
    MAX_BODY,
    STATUS_CODES,
    ApiError,
    Endpoint,
    NotFound,
    error_body,
    finish,
    require,
)
from balanca.http.fastsend import DirectChannel
from balanca.http.security import SECURITY_HEADERS, Access, RateLimiter, bearer

REQUEST_DEADLINE = 10.0
"""Seconds a client has from the first byte of a request to its last (line, headers, body)."""

ROUTES = {
    b"/api/time",
    b"/api/weight",
    b"/api/health",
    b"/api/tare",
    b"/api/zero",
    b"/api/clear-tare",
    b"/api/scales",
    b"/api/weighings",
    b"/api/readings",
    b"/api/weighings.csv",
    b"/api/transactions",
    b"/api/transactions.csv",
    b"/ws",
    b"/metrics",
    b"/",
}
TICKET_ROUTE = re.compile(rb"/tickets/(weighings|transactions)/[0-9]+")
"""A ticket, counted as `/tickets/KIND/N`."""
SCALE_ROUTE = re.compile(
    rb"/api/scales/[^/]+/(weight|health|tare|zero|clear-tare|weighings|transactions)"
)
"""A per-scale path, counted as `/api/scales/ID/...` (the id left out: no label per guess)."""


def route(path: bytes) -> str:
    """The route a request counts under in `/metrics`."""
    if path in ROUTES:
        return path.decode()
    if match := SCALE_ROUTE.fullmatch(path):
        return "/api/scales/ID/" + match.group(1).decode()
    if match := TICKET_ROUTE.fullmatch(path):
        return f"/tickets/{match.group(1).decode()}/N"
    return "other"


def web_root() -> Path:
    """The live view's files: `web/` beside the package in a checkout, else the installed
    copy under `share/balanca/web`."""
    checkout = Path(__file__).resolve().parents[2] / "web"
    if (checkout / "index.html").exists():
        return checkout
    return Path(sys.prefix) / "share" / "balanca" / "web"


def bare_answer(
    status: int,
    phrase: bytes,
    error: str,
    detail: str,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> bytes:
    """A whole JSON error response that ends the connection, for a channel (or a refused
    WebSocket handshake) to write when it has no request to answer through."""
    body = error_body(error, detail, STATUS_CODES.get(status, "bad_request"))
    head = [
        b"HTTP/1.1 %d %s" % (status, phrase),
        b"Content-Type: application/json",
        b"Content-Length: %d" % len(body),
        b"Connection: close",
        *(name + b": " + value for name, value in (*SECURITY_HEADERS.items(), *headers)),
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class DeadlineChannel(DirectChannel):
    """An HTTP connection whose every request must arrive whole (request line, headers and
    body) within `site.request_deadline` seconds of its start, or is answered 408 and closed:
    a client cannot hold a connection by sending a header a byte at a time (slowloris). The
    clock starts when the connection opens and then when the next request's first bytes or
    line arrive, so the quiet time between keep-alive requests stays the idle timeout's
    business; it stops once a request is in, so a WebSocket upgraded from it runs on.

    A connection closing after its last answer is cut when the idle timeout has passed: a
    TLS peer that never sends its close_notify cannot keep it open.

    The deadline is checked by one pending call that stays scheduled when a request comes in
    on time and looks again when it fires, so a stream of keep-alive requests does not make
    and cancel a timer each."""

    site: BalancaSite
    every_answer = b"".join(
        name + b": " + value + b"\r\n" for name, value in SECURITY_HEADERS.items()
    )
    """The security headers, on every answer (`bare_answer` adds them to the channel's own)."""
    abortTimeout = 3
    """Seconds a refused or timed-out peer has to let the connection close before it is cut
    (TLS waits for the peer's close_notify, which a slowloris never sends); Twisted's default
    is 15."""
    _deadline: float | None = None
    """When the request being read must be in by (None: none is being read)."""
    _check: IDelayedCall | None = None
    """The pending look at `_deadline`."""
    _cut: IDelayedCall | None = None
    """When this closing connection is cut if it is not gone."""
    _awaiting = True
    """Waiting for a request or reading one (not handling one)."""
    _closing = False
    """Given up on (timed out, or sent garbage): what else comes is not read."""

    def connectionMade(self) -> None:
        super().connectionMade()
        self._start()

    def dataReceived(self, data: bytes) -> None:
        if self._closing:  # TLS still hands over data until the peer's close_notify
            return
        if self._awaiting:
            self._start()
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self._awaiting:  # also the lines of a request pipelined behind the previous one
            self._start()
        super().lineReceived(line)

    def allContentReceived(self) -> None:
        self._awaiting = False
        self._stop()
        super().allContentReceived()
        if self.transport is None:  # a WebSocket took the connection (autobahn's resource)
            self._cancel_calls()

    def requestDone(self, request: Request) -> None:
        self._awaiting = True
        super().requestDone(request)
        if not self.persistent:  # answered and closing, but a TLS peer may never let go
            self._cut_after(self.site.timeOut or self.abortTimeout)

    def timeoutConnection(self) -> None:
        self._closing = True
        self._stop()
        super().timeoutConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._stop()
        self._cancel_calls()
        super().connectionLost(reason)

    def _respondToBadRequestAndDisconnect(self) -> None:
        """Twisted's answer to a request it cannot parse, as JSON with the security headers."""
        self._refuse(400, b"Bad Request", "bad request", "the HTTP request is malformed")

    def lineLengthExceeded(self, line: bytes) -> None:
        """A request line or header over 16 KiB (Twisted would hang up without a word)."""
        self._refuse(
            431,
            b"Request Header Fields Too Large",
            "request too large",
            f"a request line or header takes at most {self.MAX_LENGTH} bytes",
        )

    def _refuse(self, status: int, phrase: bytes, error: str, detail: str) -> None:
        """Answer with an error of the channel's own, and close."""
        self.write(bare_answer(status, phrase, error, detail))  # after any answer still held
        self.loseConnection()
        self._cut_after(self.abortTimeout)

    def _cut_after(self, grace: float) -> None:
        """The connection is closing: read nothing more, and cut it if it is not gone `grace`
        seconds from now (a TLS peer may never send the close_notify its close waits for)."""
        self._closing = True
        self._stop()
        self.setTimeout(None)
        if self._cut is None:
            self._cut = self.callLater(grace, self.forceAbortClient)

    def _start(self) -> None:
        if self._deadline is None:
            self._deadline = self.site.reactor.seconds() + self.site.request_deadline
            if self._check is None:
                self._check = self.callLater(self.site.request_deadline, self._look)

    def _stop(self) -> None:
        self._deadline = None

    def _cancel_calls(self) -> None:
        for call in (self._check, self._cut):
            if call is not None and call.active():
                call.cancel()
        self._check = self._cut = None

    def _look(self) -> None:
        """The deadline's pending call: 408 if the request being read is late, a later look
        if one is being read in time, nothing if none is."""
        self._check = None
        if self._deadline is None:
            return
        left = self._deadline - self.site.reactor.seconds()
        if left > 0:
            self._check = self.callLater(left, self._look)
            return
        self._deadline = None
        self._refuse(
            408,
            b"Request Timeout",
            "request timeout",
            f"a request must arrive whole within {self.site.request_deadline:g} s",
        )


class BalancaRequest(Request):
    """A request that keeps at most MAX_BODY body bytes; a larger body is read and dropped,
    and the request answered 413."""

    body_too_large = False

    def gotLength(self, length: int | None) -> None:
        self.body_too_large = length is not None and length > MAX_BODY
        self.content = BytesIO()  # never a temporary file: there is little to keep

    def handleContentChunk(self, data: bytes) -> None:
        if self.body_too_large:
            return
        if self.content is not None and self.content.tell() + len(data) > MAX_BODY:
            self.body_too_large = True
            return
        super().handleContentChunk(data)

    def setLastModified(self, when: float) -> int | None:
        """Twisted's, ignoring an `If-Modified-Since` it cannot read (`;` made it raise an
        IndexError, a 500): the full answer is what a malformed condition gets."""
        since = self.requestHeaders.getRawHeaders(b"If-Modified-Since")
        if since and not _http_date(since[0]):
            self.requestHeaders.removeHeader(b"If-Modified-Since")
        return super().setLastModified(when)  # type: ignore[no-any-return]

    def render(self, resrc: IResource) -> None:
        if self.body_too_large and not isinstance(resrc, Endpoint):
            resrc = Refusal(ApiError(413, "body too large", f"at most {MAX_BODY} bytes"))
        super().render(resrc)


def _http_date(value: bytes) -> bool:
    """`value` (up to a `;`, as Twisted reads it) is an HTTP date Twisted can parse."""
    try:
        http.stringToDatetime(value.split(b";", 1)[0])
    except (ValueError, IndexError, KeyError, OverflowError):
        return False
    return True


class Refusal(Resource):
    """Answers any request with one API error."""

    isLeaf = True

    def __init__(self, error: ApiError) -> None:
        super().__init__()
        self.error = error

    def render(self, request: Request) -> int:
        finish(request, *self.error.answer())
        return NOT_DONE_YET


class ReadGuard(Resource):
    """A leaf resource that only readers may get: with a read token set, requests need it (or
    the write token) as `Authorization: Bearer`, or get a 401."""

    isLeaf = True

    def __init__(self, resource: IResource, access: Access, limiter: RateLimiter) -> None:
        super().__init__()
        self.resource, self.access, self.limiter = resource, access, limiter

    def render(self, request: Request) -> bytes | int:
        token = bearer(request.getHeader(b"Authorization"))
        try:
            require(request, self.access.may_read(token), "reads", self.limiter)
        except ApiError as e:
            finish(request, *e.answer())
            return NOT_DONE_YET
        return self.resource.render(request)  # type: ignore[no-any-return]


class StaticFiles(File):
    """`web/` without directory listings and with JSON 404s. Twisted's File refuses names
    that leave the directory (`..`, an encoded `/`); names it cannot take (not UTF-8, or with
    a NUL) are not found either, instead of an error."""

    childNotFound = NotFound()  # type: ignore[assignment]  # any IResource serves
    contentTypes = {
        **File.contentTypes,
        ".html": "text/html; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
    }

    def render(self, request: Request) -> bytes | int:
        """GET and HEAD; any other method is a JSON 405 (Twisted's is an HTML page)."""
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"Allow", b"GET, HEAD")
            finish(request, *ApiError(405, "method not allowed", "use GET, HEAD").answer())
            return NOT_DONE_YET
        return super().render(request)  # type: ignore[no-any-return]

    def render_GET(self, request: Request) -> bytes | int:
        """Serve the file; browsers revalidate it, so an upgrade never mixes old and new."""
        request.setHeader(b"Cache-Control", b"no-cache")
        return super().render_GET(request)  # type: ignore[no-any-return]

    render_HEAD = render_GET

    def getChild(self, path: bytes, request: Request) -> Resource:
        try:
            name = path.decode("utf-8")
        except UnicodeDecodeError:
            return self.childNotFound
        if "\0" in name:
            return self.childNotFound
        return super().getChild(path, request)  # type: ignore[no-any-return]

    def directoryListing(self) -> Resource:
        return self.childNotFound

    def createSimilarFile(self, path: str) -> File:
        f = super().createSimilarFile(path)
        f.__class__ = StaticFiles
        return f


class BalancaSite(Site):
    """A site whose connections have a request deadline, that leaves bodies alone (the API
    reads JSON; Twisted's form parsing is surface an attacker could use, and it raises on
    some Content-Type headers), and that counts requests by route and status instead of
    writing an access log line per request (a kiosk polling `/api/weight` would flood it)."""

    protocol = DeadlineChannel  # type: ignore[assignment]
    requestFactory = BalancaRequest
    request_deadline = REQUEST_DEADLINE

    def __init__(self, resource: Resource, **kwargs: object) -> None:
        super().__init__(resource, parsePOSTFormSubmission=False, **kwargs)  # type: ignore[arg-type]
        self.requests: Counter[tuple[str, int]] = Counter()

    def log(self, request: http.Request) -> None:
        self.requests[(route(request.path), request.code)] += 1


def site_tree(
    api: IResource,
    ws: IResource,
    metrics: IResource,
    root: Path,
    access: Access,
    limiter: RateLimiter,
    reactor: Any,
    tickets: IResource | None = None,
) -> BalancaSite:
    """The site: the live view's files at `/`, public so that the page can load and ask for a
    token, with `/api`, `/ws`, `/metrics` (a read) and `/tickets` (printed tickets, reads
    that check their own token) beside it; failed authentications spend from `limiter`; time
    runs on `reactor`."""
    static = StaticFiles(str(root))
    static.putChild(b"api", api)
    if tickets is not None:
        static.putChild(b"tickets", tickets)
    static.putChild(b"ws", ws)
    static.putChild(b"metrics", ReadGuard(metrics, access, limiter))
    return BalancaSite(static, timeout=60, reactor=reactor)
