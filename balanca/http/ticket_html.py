"""A printed ticket, pure: the records it stands on in, its words in pt-BR or English (a
`Ticket`), then the HTML page a browser prints as it is (no script): two copies on A4, one
on an 80 mm roll.

The header is the site's (`[site]`: name, CNPJ, address, phone); then the ticket's number,
plate, product, party, each pass (time, scale, weight), gross, tare and net with the sealed
digits and their unit, operator, scale, the records it comes from with their short hashes
and the signing key's fingerprint, so that anyone can find and check them, and lines for
the driver's and the weigher's signatures. A voided ticket says CANCELADO (VOID) across it.

Every value is escaped where it is written (`Html`): a plate or a party typed as markup
prints as text. The stylesheet is `web/ticket.css` (the service's Content-Security-Policy
allows no inline style), with `@page` sizes for both papers.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from balanca.config_file import Site
from balanca.http.language import Lang, decimal_text, local_text
from balanca.records.seal import Record

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
    return html_page(ticket.title, lang, paper, body)


def html_page(title: str, lang: Lang, paper: Paper, body: Iterable[Html]) -> bytes:
    """A whole page around `body` (a ticket's copies, or an error), with the ticket stylesheet."""
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
