"""Printed tickets: `GET /tickets/weighings/N` and `GET /tickets/transactions/T`.

An HTML page a browser prints as it is (balanca.http.ticket_html writes it): A4 with two
copies on the sheet, one for the driver and one for the site (`?paper=a4`, the default), or
one copy on an 80 mm thermal roll (`?paper=80mm`); pt-BR unless `?lang=en`.

Reads need the read token as usual; since a browser opens the ticket by its URL, `?token=`
is accepted too. Errors are HTML pages (404 for an unknown number).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from balanca.config_file import Site
from balanca.http.api import Api, ApiError, presented_token, query, require
from balanca.http.language import Lang, language, local_text
from balanca.http.ticket_html import (
    TEXTS,
    Paper,
    Ticket,
    html_page,
    record_ticket,
    render,
    tag,
    transaction_ticket,
)
from balanca.reading import isotime, local_time
from balanca.store.condition import DatabaseUnavailable
from balanca.store.recordbook import RecordBook
from balanca.store.transactions import Transactions

Find = Callable[[int, Lang], Coroutine[Any, Any, "Ticket | None"]]
"""A ticket by its number, in a language; None when there is no such ticket."""


@dataclass(frozen=True)
class Printer:
    """What every ticket page needs: who may read, the site, the key, the clock."""

    api: Api
    site: Site
    book: RecordBook
    transactions: Transactions


class TicketsRoot(Resource):
    """`/tickets`: `/tickets/weighings/N` (a record) and `/tickets/transactions/T`."""

    def __init__(self, printer: Printer) -> None:
        super().__init__()
        self.printer = printer
        self.putChild(b"weighings", TicketKind(printer, self.weighing))
        self.putChild(b"transactions", TicketKind(printer, self.transaction))

    async def weighing(self, number: int, lang: Lang) -> Ticket | None:
        """The ticket of record `number`."""
        book = self.printer.book
        record = await book.get(number)
        if record is None:
            return None
        void = None if record["voided_by"] is None else await book.get(record["voided_by"])
        return record_ticket(record, void, lang)

    async def transaction(self, transaction_id: int, lang: Lang) -> Ticket | None:
        """The ticket of transaction `transaction_id`."""
        book = self.printer.book
        transaction = await self.printer.transactions.get(transaction_id)
        if transaction is None:
            return None
        last = transaction["out"] or {}
        tare = None if last.get("tare_record") is None else await book.get(last["tare_record"])
        voiding = sorted(
            {r["voided_by"] for r in (transaction["in"], last) if r and r.get("voided_by")}
        )
        voids = [v for n in voiding if (v := await book.get(n)) is not None]
        return transaction_ticket(transaction, tare, voids, lang)

    def getChild(self, path: bytes, request: Request) -> Resource:
        return not_found(request)

    def render(self, request: Request) -> bytes:
        return ErrorPage(404, "not_found", "/tickets").render(request)


class TicketKind(Resource):
    """`/tickets/KIND/`: one ticket page per number."""

    def __init__(self, printer: Printer, find: Find) -> None:
        super().__init__()
        self.printer, self.find = printer, find

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path.isdigit() and len(path) <= 18 and not request.postpath:
            return TicketPage(self.printer, self.find, int(path))
        return not_found(request)

    def render(self, request: Request) -> bytes:
        return not_found(request).render(request)


class TicketPage(Resource):
    """One ticket, as a page to print."""

    isLeaf = True
    log = Logger()

    def __init__(self, printer: Printer, find: Find, number: int) -> None:
        super().__init__()
        self.printer, self.find, self.number = printer, find, number

    def render(self, request: Request) -> bytes | int:
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"Allow", b"GET, HEAD")
            return ErrorPage(405, "error", "use GET").render(request)
        api = self.printer.api
        try:
            token = presented_token(request, in_query=True)
            require(request, api.access.may_read(token), "reads", api.limiter)
            lang, paper = language(request), paper_of(request)
        except ApiError as e:
            return ErrorPage(
                e.status, "unauthorized" if e.status == 401 else "error", e.detail
            ).render(request)
        d: defer.Deferred[Ticket | None] = defer.Deferred.fromCoroutine(
            self.find(self.number, lang)
        )
        d.addCallback(self._answer, request, lang, paper).addErrback(self._failed, request)
        return NOT_DONE_YET

    def _answer(self, ticket: Ticket | None, request: Request, lang: Lang, paper: Paper) -> None:
        if ticket is None:
            _send(request, 404, not_found(request).page(lang))
            return
        printer = self.printer
        printed = local_text(isotime(local_time(printer.api.clock.seconds())), lang)
        body = render(
            ticket, printer.site, printer.book.fingerprint, lang, paper, printed, links(request)
        )
        _send(request, 200, body)

    def _failed(self, failure: Failure, request: Request) -> None:
        if failure.check(DatabaseUnavailable):
            status, detail = 503, "the database cannot be reached or does not answer in time"
        else:
            self.log.failure("ticket {number} failed", failure, number=self.number)
            status, detail = 500, "see the service log"
        _send(request, status, ErrorPage(status, "error", detail).page("pt-BR"))


def paper_of(request: Request) -> Paper:
    """`?paper=`: `a4` (the default) or `80mm`; 400 for any other."""
    text = (query(request, "paper") or "a4").lower()
    if text in ("a4", "80mm"):
        return "a4" if text == "a4" else "80mm"
    raise ApiError(400, "bad paper", "paper is a4 or 80mm")


def links(request: Request) -> list[tuple[str, str]]:
    """The same ticket on the other paper and in the other language (screen only), keeping
    a `?token=` the page was opened with."""
    token = query(request, "token")
    choices = [("A4", {"paper": "a4"}), ("80 mm", {"paper": "80mm"}),
               ("Português", {"lang": "pt-BR"}), ("English", {"lang": "en"})]  # fmt: skip
    current = {k: v for k in ("paper", "lang") if (v := query(request, k))}
    return [
        (label, "?" + urlencode({**current, **choice, **({"token": token} if token else {})}))
        for label, choice in choices
    ]


class ErrorPage(Resource):
    """An error as a small HTML page (these are pages a person opened)."""

    isLeaf = True

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__()
        self.status, self.title, self.detail = status, title, detail

    def page(self, lang: Lang) -> bytes:
        """The error's page in `lang`."""
        title = f"{self.status} — {TEXTS[lang][self.title]}"
        return html_page(
            title, lang, "a4", [tag("main", tag("h1", title), tag("p", self.detail), cls="error")]
        )

    def render(self, request: Request) -> bytes:
        _headers(request, self.status)
        return self.page("pt-BR")


def not_found(request: Request) -> ErrorPage:
    """The 404 page of the path asked for."""
    return ErrorPage(404, "not_found", request.path.decode("utf-8", "replace"))


def _headers(request: Request, status: int) -> None:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")


def _send(request: Request, status: int, body: bytes) -> None:
    if getattr(request, "_disconnected", False) or request.finished:
        return
    _headers(request, status)
    request.write(body)
    request.finish()
