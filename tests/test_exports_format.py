"""The pure parts of exports and tickets, value by value: cells a spreadsheet would run,
decimals in both languages, local times, totals per unit, and escaping on a ticket."""

from __future__ import annotations

import codecs
import csv
import io
from datetime import datetime
from decimal import Decimal

import pytest

from balanca.http.language import decimal_text, local_text
from balanca.http.sheets import TRANSACTIONS, WEIGHINGS, Totals, Writer, cell, neutral
from balanca.http.site import route
from balanca.http.ticket_html import esc, tag


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_starting_like_a_formula_gets_a_quote(start: str) -> None:
    assert neutral(f"{start}SUM(A1)") == f"'{start}SUM(A1)"
    assert cell(f"{start}1", "text", "en") == f"'{start}1"


def test_other_cells_are_left_as_they_are() -> None:
    for text in ("ABC1D23", "Soja 'boa'", " =espaço", "a=b", "", "1,5"):
        assert neutral(text) == text


def test_decimals_keep_their_digits_with_the_languages_mark() -> None:
    assert decimal_text("35420.50", "pt-BR") == "35420,50"
    assert decimal_text("35420.50", "en") == "35420.50"
    assert decimal_text(Decimal("0.000"), "pt-BR") == "0,000"
    assert decimal_text("12000", "pt-BR") == "12000"
    assert decimal_text(None, "en") == ""


def test_times_are_local_to_the_second() -> None:
    moment = datetime(2026, 12, 2, 10, 5, 7, 123456).astimezone()
    iso = moment.isoformat()
    assert local_text(iso) == "2026-12-02 10:05:07"
    assert local_text(iso, "pt-BR") == "02/12/2026 10:05:07"
    assert local_text(None) == ""


def test_kinds_states_and_flags_are_written_in_the_language() -> None:
    assert cell("void", "word", "pt-BR") == "anulação"
    assert cell("closed", "word", "en") == "closed"
    assert cell(False, "bool", "pt-BR") == "não"
    assert cell(True, "bool", "en") == "yes"
    assert cell(None, "int", "en") == ""


def test_totals_are_a_line_per_unit_sorted_with_exact_sums() -> None:
    totals = Totals(("weight", "net"))
    totals.add("kg", 1, {"weight": "10.5", "net": None})
    totals.add("g", 1, {"weight": "0.125"})
    totals.add("kg", 1, {"weight": "0.25", "net": "3"})
    lines = totals.lines(WEIGHINGS.columns, "pt-BR")
    keys = [c.key for c in WEIGHINGS.columns]
    assert [line[keys.index("unit")] for line in lines] == ["g", "kg"]
    g, kg = lines
    assert (kg[0], kg[1], kg[keys.index("weight")], kg[keys.index("net")]) == (
        "Total", "2", "10,75", "3",
    )  # fmt: skip
    assert (g[1], g[keys.index("weight")], g[keys.index("net")]) == ("1", "0,125", "")
    assert Totals(("gross",)).lines(TRANSACTIONS.columns, "en")[0][:2] == ["Total", "0"]


def test_a_writer_writes_a_bom_only_in_portuguese_and_crlf_always() -> None:
    pt, en = Writer(WEIGHINGS, "pt-BR"), Writer(WEIGHINGS, "en")
    assert pt.header().startswith(codecs.BOM_UTF8 + "Número;Tipo;".encode())
    assert en.header().startswith(b"Number,Kind,")
    assert pt.header().endswith(b"\r\n") and en.header().endswith(b"\r\n")
    record = dict.fromkeys(c.key for c in WEIGHINGS.columns)
    record.update(number=7, kind="weighing", weight="1.5", unit="kg", note='a "b";\nc',
                  captured="2026-12-02T10:00:00+00:00", voided_by=None)  # fmt: skip
    chunk = pt.page([record])
    assert chunk.rows == 1 and chunk.totals.units == {"kg": (1, {"weight": Decimal("1.5")})}
    (row,) = csv.reader(io.StringIO(chunk.data.decode(), newline=""), delimiter=";")
    assert row[0] == "7" and row[8] == "1,5" and 'a "b";\nc' in row


def test_ticket_markup_escapes_every_value_and_attribute() -> None:
    assert tag("p", "<b>&") == "<p>&lt;b&gt;&amp;</p>"
    assert tag("a", "x", href='?a=1&b="2"') == '<a href="?a=1&amp;b=&quot;2&quot;">x</a>'
    assert tag("div", tag("span", "<i>"), cls="c") == '<div class="c"><span>&lt;i&gt;</span></div>'
    assert esc(tag("b", "ok")) == "<b>ok</b>"  # markup passes through once made


def test_tickets_and_exports_are_counted_under_their_routes() -> None:
    assert route(b"/tickets/weighings/12") == "/tickets/weighings/N"
    assert route(b"/tickets/transactions/3") == "/tickets/transactions/N"
    assert route(b"/api/weighings.csv") == "/api/weighings.csv"
    assert route(b"/api/transactions.csv") == "/api/transactions.csv"
