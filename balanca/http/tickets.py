"""Printed tickets: `GET /tickets/weighings/N` and `GET /tickets/transactions/T`.

An HTML page a browser prints as it is (no script): A4 with two copies on the sheet, one for
the driver and one for the site (`?paper=a4`, the default), or one copy on an 80 mm thermal
roll (`?paper=80mm`); pt-BR unless `?lang=en`. The header is the site's (`[site]`: name,
CNPJ, address, phone); then the ticket's number, plate, product, party, each pass (time,
scale, weight), gross, tare and net with the sealed digits and their unit, operator, scale,
the records it comes from with their short hashes and the signing key's fingerprint, so
that anyone can find and check them, and lines for the driver's and the weigher's
signatures. A voided ticket says CANCELADO (VOID) across it.

Every value is escaped where it is written (`Html`): a plate or a party typed as markup
prints as text. The stylesheet is `web/ticket.css` (the service's Content-Security-Policy
allows no inline style), with `@page` sizes for both papers.

Reads need the read token as usual; since a browser opens the ticket by its URL, `?token=`
is accepted too. Errors are HTML pages (404 for an unknown number).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlencode

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from balanca.config_file import Site
from balanca.http.api import Api, ApiError, presented_token, query, require
from balanca.http.language import Lang, decimal_text, language, local_text
from balanca.reading import isotime, local_time
from balanca.records.seal import Record
from balanca.store.condition import DatabaseUnavailable
from balanca.store.recordbook import RecordBook
from balanca.store.transactions import Transactions

Paper = Literal["a4", "80mm"]
SHORT_HASH = 12
"""Hex digits of a record's hash printed on a ticket."""

TEXTS: dict[Lang, dict[str, str]] = {
    "pt-BR": {
        "transaction": "Ticket de pesagem nº {n}",
        "record": "Registro de pesagem nº {n}",
        "copies": "1ª via — motorista|2ª via — empresa",
        "void": "CANCELADO",
        "voided": "Anulado pelo registro nº {n}: {reason}",
        "voids": "Anula o registro nº {n}: {reason}",
        "open": "EM ABERTO — aguardando a pesagem de saída",
        "document": "CNPJ",
        "phone": "Tel.",
        "plate": "Placa",
        "product": "Produto",
        "party": "Cliente/fornecedor",
        "reference": "Referência",
        "note": "Observação",
        "pass": "Pesagem",
        "when": "Data e hora",
        "scale": "Balança",
        "weight": "Peso",
        "record_no": "Registro",
        "weighing": "Pesagem",
        "in": "Entrada",
        "out": "Saída",
        "tare": "Tara",
        "gross": "Peso bruto",
        "net": "Peso líquido",
        "indicator_tare": "Tara do indicador",
        "stored_tare": "Tara armazenada: registro nº {n}, de {when}",
        "mismatch": "Tara divergente: fora da tolerância da tara armazenada do veículo",
        "part_of": "Parte do ticket de pesagem nº {n}",
        "operator": "Operador",
        "records": "Registros",
        "key": "Chave de assinatura",
        "printed": "Impresso em",
        "driver": "Motorista",
        "weigher": "Balanceiro",
        "print_hint": "Para imprimir: Ctrl+P.",
        "not_found": "Não encontrado",
        "unauthorized": "Acesso negado",
        "error": "Erro",
    },
    "en": {
        "transaction": "Weighing ticket no. {n}",
        "record": "Weighing record no. {n}",
        "copies": "Copy 1 — driver|Copy 2 — site",
        "void": "VOID",
        "voided": "Voided by record no. {n}: {reason}",
        "voids": "Voids record no. {n}: {reason}",
        "open": "OPEN — awaiting the exit weighing",
        "document": "CNPJ",
        "phone": "Phone",
        "plate": "Plate",
        "product": "Product",
        "party": "Party",
        "reference": "Reference",
        "note": "Note",
        "pass": "Weighing",
        "when": "Time",
        "scale": "Scale",
        "weight": "Weight",
        "record_no": "Record",
        "weighing": "Weighing",
        "in": "Entry",
        "out": "Exit",
        "tare": "Tare",
        "gross": "Gross",
        "net": "Net",
        "indicator_tare": "Indicator tare",
        "stored_tare": "Stored tare: record no. {n}, of {when}",
        "mismatch": "Tare mismatch: outside the tolerance of the vehicle's stored tare",
        "part_of": "Part of weighing ticket no. {n}",
        "operator": "Operator",
        "records": "Records",
        "key": "Signing key",
        "printed": "Printed",
        "driver": "Driver",
        "weigher": "Weigher",
        "print_hint": "To print: Ctrl+P.",
        "not_found": "Not found",
        "unauthorized": "Unauthorized",
        "error": "Error",
    },
}


class Html(str):
    """Markup that is safe as it is; anything else is escaped where it is written."""


def esc(value: object) -> Html:
    """`value` as text in HTML (markup passed through)."""
    return value if isinstance(value, Html) else Html(html.escape(str(value), quote=True))


def tag(name: str, *children: object, cls: str = "", **attrs: str) -> Html:
    """`<name class=cls attrs>children</name>`, every child and attribute escaped."""
    attributes = "".join(f' {k}="{esc(v)}"' for k, v in ({"class": cls} | attrs).items() if v)
    return Html(f"<{name}{attributes}>{''.join(esc(c) for c in children)}</{name}>")


@dataclass(frozen=True)
class Pass:
    """A weighing on the ticket: what it was (entry, exit...), and the record it is."""

    label: str
    record: Record


@dataclass
class Ticket:
    """What a ticket prints, in the words of its language (the header and seal aside)."""

    title: str
    fields: list[tuple[str, object]] = field(default_factory=list)
    passes: list[Pass] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    void: str | None = None
    """What voided it (a CANCELADO across the ticket), or None."""
    open: bool = False
    records: list[Record] = field(default_factory=list)
    """Every record the ticket stands on, in number order."""


def weight_text(value: str | Decimal | None, unit: str | None, lang: Lang) -> str:
    """A weight with its sealed digits and unit."""
    return "" if value is None else f"{decimal_text(value, lang)} {unit or ''}".strip()


def record_ticket(record: Record, void: Record | None, lang: Lang) -> Ticket:
    """The ticket of one record (`void`: the record that voided it, if any)."""
    t = TEXTS[lang]
    ticket = Ticket(t["record"].format(n=record["number"]), records=[record])
    ticket.fields = _fields(record, t)
    kind, unit = record["kind"], record["unit"]
    if kind == "void":
        ticket.notes.append(t["voids"].format(n=record["voids"], reason=record["reason"]))
    else:
        ticket.passes.append(Pass(t.get(kind, t["pass"]), record))
        ticket.figures = [(t[k], weight_text(v, unit, lang)) for k, v in _figures(record)]
    if record["transaction"] is not None:
        ticket.notes.append(t["part_of"].format(n=record["transaction"]))
    if void is not None:
        ticket.void = t["voided"].format(n=void["number"], reason=void["reason"])
        ticket.records.append(void)
    return ticket


def transaction_ticket(
    transaction: dict[str, Any], tare: Record | None, voids: Sequence[Record], lang: Lang
) -> Ticket:
    """The ticket of a transaction (`tare`: the stored tare a one-pass close used; `voids`:
    the records that voided it)."""
    t = TEXTS[lang]
    first, last = transaction["in"], transaction["out"]
    ticket = Ticket(
        t["transaction"].format(n=transaction["id"]), open=transaction["state"] == "open"
    )
    ticket.fields = _fields(transaction, t)
    ticket.passes = [Pass(t[k], r) for k, r in (("in", first), ("out", last)) if r is not None]
    unit = transaction["unit"]
    ticket.figures = [
        (t[k], weight_text(transaction[k], unit, lang))
        for k in ("gross", "tare", "net")
        if transaction[k] is not None
    ]
    if tare is not None:
        when = local_text(tare["time"] or tare["captured"], lang)
        ticket.notes.append(t["stored_tare"].format(n=tare["number"], when=when))
    if transaction["tare_mismatch"]:
        ticket.notes.append(t["mismatch"])
    if voids:
        ticket.void = t["voided"].format(n=voids[0]["number"], reason=voids[0]["reason"])
    stands_on = [r for r in (first, last, tare, *voids) if r is not None]
    ticket.records = sorted(stands_on, key=lambda r: int(r["number"]))
    return ticket


def _figures(record: Record) -> list[tuple[str, Decimal | str]]:
    """Gross, tare and net as the record has them: sealed in an `out` record; for a single
    weighing, from its weight and the indicator's tare by the indicator's mode."""
    weight, tare = record["weight"], record["tare"]
    if record["gross"] is not None and record["net"] is not None:
        gross, net = Decimal(record["gross"]), Decimal(record["net"])
        return [("gross", record["gross"]), ("tare", gross - net), ("net", record["net"])]
    if record["kind"] != "weighing" or weight is None:
        return [("weight", weight)] if weight is not None else []
    if tare is None:
        return [("net" if record["mode"] == "net" else "gross", weight)]
    if record["mode"] == "net":
        return [
            ("gross", Decimal(weight) + Decimal(tare)),
            ("indicator_tare", tare),
            ("net", weight),
        ]
    return [("gross", weight), ("indicator_tare", tare), ("net", Decimal(weight) - Decimal(tare))]


def _fields(source: Record | dict[str, Any], t: dict[str, str]) -> list[tuple[str, object]]:
    return [
        (t[k], source[k])
        for k in ("plate", "product", "party", "reference", "note")
        if source.get(k)
    ]


def render(
    ticket: Ticket,
    site: Site,
    fingerprint: str,
    lang: Lang,
    paper: Paper,
    printed: str,
    links: Sequence[tuple[str, str]],
) -> bytes:
    """The ticket's whole page: two copies on A4, one on 80 mm."""
    t = TEXTS[lang]
    copies = t["copies"].split("|") if paper == "a4" else [""]
    body = [
        tag(
            "nav",
            *(tag("a", text, href=href) for text, href in links),
            t["print_hint"],
            cls="screen",
        ),
        *(_copy(ticket, site, fingerprint, lang, via, printed) for via in copies),
    ]
    return _page(ticket.title, lang, paper, body)


def _page(title: str, lang: Lang, paper: Paper, body: Iterable[Html]) -> bytes:
    head = (
        '<meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{tag('title', title)}"
        '<link rel="stylesheet" href="../../ticket.css">'
        '<link rel="icon" href="data:,">'
    )
    page = f'<!doctype html><html lang="{esc(lang)}" class="paper-{esc(paper)}"><head>{head}</head>'
    return (page + tag("body", *body) + "</html>").encode("utf-8")


def _copy(ticket: Ticket, site: Site, fingerprint: str, lang: Lang, via: str, printed: str) -> Html:
    t = TEXTS[lang]
    header = tag(
        "header",
        tag("h1", site.name or site.id),
        *(
            tag("p", f"{label} {value}".strip())
            for label, value in (
                (t["document"], site.document),
                ("", site.address),
                (t["phone"], site.phone),
            )
            if value
        ),  # fmt: skip
        cls="site",
    )
    parts: list[object] = [header, tag("h2", ticket.title)]
    if via:
        parts.append(tag("p", via, cls="via"))
    if ticket.void is not None:
        parts.append(tag("div", tag("strong", t["void"]), tag("p", ticket.void), cls="void"))
    if ticket.open:
        parts.append(tag("p", t["open"], cls="open"))
    if ticket.fields:
        parts.append(_pairs(ticket.fields, "fields"))
    if ticket.passes:
        parts.append(_passes(ticket.passes, lang))
    if ticket.figures:
        parts.append(_pairs(ticket.figures, "figures"))
    parts += [tag("p", note, cls="note") for note in ticket.notes]
    operators = _distinct(r["operator"] for r in ticket.records)
    scales = _distinct(p.record["scale"] for p in ticket.passes)
    seal: list[tuple[str, object]] = [(t["operator"], operators), (t["scale"], scales)]
    seal.append((t["records"], Html("<br>".join(
        esc(f"nº {r['number']} · {r['hash'][:SHORT_HASH]}") for r in ticket.records
    ))))  # fmt: skip
    seal += [(t["key"], fingerprint), (t["printed"], printed)]
    parts.append(_pairs([(k, v) for k, v in seal if v], "seal"))
    parts.append(tag(
        "div",
        *(tag("div", tag("span", t[who]), cls="line") for who in ("driver", "weigher")),
        cls="signatures",
    ))  # fmt: skip
    return tag("article", *parts, cls="ticket" + (" voided" if ticket.void else ""))


def _pairs(pairs: Iterable[tuple[str, object]], cls: str) -> Html:
    return tag("dl", *(Html(tag("dt", k) + tag("dd", v)) for k, v in pairs), cls=cls)


def _passes(passes: Sequence[Pass], lang: Lang) -> Html:
    t = TEXTS[lang]
    head = tag(
        "tr", tag("th", ""), *(tag("th", t[k]) for k in ("when", "scale", "weight", "record_no"))
    )
    rows = [
        tag(
            "tr",
            tag("th", p.label),
            *(
                tag("td", cell)
                for cell in (
                    local_text(p.record["time"] or p.record["captured"], lang),
                    p.record["scale"] or "",
                    weight_text(p.record["weight"], p.record["unit"], lang),
                    f"nº {p.record['number']}",
                )
            ),
        )  # fmt: skip
        for p in passes
    ]
    return tag("table", tag("thead", head), tag("tbody", *rows), cls="passes")


def _distinct(values: Iterable[str | None]) -> str:
    return ", ".join(dict.fromkeys(v for v in values if v))


# The resources.

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
        return ErrorPage(404, "not_found", request.path.decode("utf-8", "replace"))

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
        return ErrorPage(404, "not_found", request.path.decode("utf-8", "replace"))

    def render(self, request: Request) -> bytes:
        return ErrorPage(404, "not_found", request.path.decode("utf-8", "replace")).render(request)


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
            detail = request.path.decode("utf-8", "replace")
            _send(request, 404, ErrorPage(404, "not_found", detail).page(lang))
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
        title = f"{self.status} — {TEXTS[lang][self.title]}"
        return _page(
            title, lang, "a4", [tag("main", tag("h1", title), tag("p", self.detail), cls="error")]
        )

    def render(self, request: Request) -> bytes:
        _headers(request, self.status)
        return self.page("pt-BR")


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
