"""What printed tickets and CSV exports share: the language a request asks for, and the words,
numbers and times written in it.

Weights are written with the very digits sealed in the record (a decimal comma in pt-BR, no
thousands separators), never rounded or re-parsed as floats; times are the service's local
wall-clock time to the second.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from twisted.web.server import Request

from balanca.http.api import ApiError, query

Lang = Literal["pt-BR", "en"]
LANGS: tuple[Lang, ...] = ("pt-BR", "en")

WORDS: dict[Lang, dict[str, str]] = {
    "pt-BR": {
        "weighing": "pesagem",
        "in": "entrada",
        "out": "saída",
        "tare": "tara",
        "void": "anulação",
        "open": "aberta",
        "closed": "fechada",
        "gross": "bruto",
        "net": "líquido",
        "stored": "armazenada",
        "yes": "sim",
        "no": "não",
        "total": "Total",
    },
    "en": {
        "weighing": "weighing",
        "in": "in",
        "out": "out",
        "tare": "tare",
        "void": "void",
        "open": "open",
        "closed": "closed",
        "gross": "gross",
        "net": "net",
        "stored": "stored",
        "yes": "yes",
        "no": "no",
        "total": "Total",
    },
}
"""Values written out in each language (kinds, states, modes, tare sources, booleans)."""


def language(request: Request) -> Lang:
    """`?lang=` (pt-BR by default; `pt` and `pt-br` too); 400 for any other."""
    text = query(request, "lang")
    if text is None or text.lower() in ("pt-br", "pt"):
        return "pt-BR"
    if text.lower() == "en":
        return "en"
    raise ApiError(400, "bad lang", "lang is pt-BR or en")


def word(value: str | None, lang: Lang) -> str:
    """`value` (a kind, state, mode...) in `lang`, or as it is when it has no translation."""
    return "" if value is None else WORDS[lang].get(value, value)


def decimal_text(value: str | Decimal | None, lang: Lang) -> str:
    """A weight with its exact digits, with `lang`'s decimal mark ("" for none)."""
    if value is None:
        return ""
    text = format(value, "f") if isinstance(value, Decimal) else value
    return text.replace(".", ",") if lang == "pt-BR" else text


def local_text(iso: str | None, lang: Lang | None = None) -> str:
    """An ISO 8601 time as the service's local `YYYY-MM-DD HH:MM:SS` (with `lang` "pt-BR":
    `DD/MM/YYYY HH:MM:SS`, as a Brazilian reads a printed date); "" for none."""
    if not iso:
        return ""
    moment = datetime.fromisoformat(iso).astimezone()
    return moment.strftime("%d/%m/%Y %H:%M:%S" if lang == "pt-BR" else "%Y-%m-%d %H:%M:%S")
