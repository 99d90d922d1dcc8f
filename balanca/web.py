"""The HTTP side: the resource tree (`/` live view, `/api`, `/ws`, `/metrics`) and the
request and site classes that add security headers, bound bodies and count requests."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from twisted.web import http
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site
from twisted.web.static import File

from balanca.api import MAX_BODY, NotFound
from balanca.security import SECURITY_HEADERS

ROUTES = {
    b"/api/time",
    b"/api/weight",
    b"/api/health",
    b"/api/tare",
    b"/api/zero",
    b"/api/weighings",
    b"/api/readings",
    b"/ws",
    b"/metrics",
    b"/",
}


def web_root() -> Path:
    """The live view's files: `web/` beside the package in a checkout, else the installed
    copy under `share/balanca/web`."""
    checkout = Path(__file__).resolve().parent.parent / "web"
    if (checkout / "index.html").exists():
        return checkout
    return Path(sys.prefix) / "share" / "balanca" / "web"


class BalancaRequest(Request):
    """A request that carries the security headers and keeps at most MAX_BODY body bytes."""

    body_too_large = False

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > MAX_BODY:
            self.body_too_large = True
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.body_too_large:
            return
        if self.content is not None and self.content.tell() + len(data) > MAX_BODY:
            self.body_too_large = True
            return
        super().handleContentChunk(data)

    def process(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.setHeader(name, value)
        super().process()


class StaticFiles(File):
    """`web/` without directory listings and with JSON 404s."""

    childNotFound = NotFound()  # type: ignore[assignment]  # any IResource serves

    def directoryListing(self) -> Resource:
        return self.childNotFound

    def createSimilarFile(self, path: str) -> File:
        f = super().createSimilarFile(path)
        f.__class__ = StaticFiles
        return f


class BalancaSite(Site):
    """A site that counts requests by route and status instead of writing an access log line
    per request (a kiosk polling `/api/weight` would flood it)."""

    requestFactory = BalancaRequest

    def __init__(self, resource: Resource, **kwargs: object) -> None:
        super().__init__(resource, **kwargs)  # type: ignore[arg-type]
        self.requests: Counter[tuple[str, int]] = Counter()

    def log(self, request: http.Request) -> None:
        path = request.path if request.path in ROUTES else b"other"
        self.requests[(path.decode(), request.code)] += 1


def site_tree(api: IResource, ws: IResource, metrics: IResource, root: Path) -> BalancaSite:
    """The site: static live view at `/`, with `/api`, `/ws` and `/metrics` beside it."""
    static = StaticFiles(str(root))
    static.putChild(b"api", api)
    static.putChild(b"ws", ws)
    static.putChild(b"metrics", metrics)
    site = BalancaSite(static, timeout=60)
    return site
