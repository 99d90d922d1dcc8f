"""Printed tickets as the driver and the site read them: the site's header, the sealed
figures with their exact digits, the records with their short hashes and the key, two copies
on A4 and one on 80 mm, both languages, CANCELADO on a voided one, every typed value
escaped, and the same tokens as reads (`?token=` too). Real pty scales, in process."""

from __future__ import annotations

import html
import re
import socket
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from twisted.internet import defer

from tests.base import fetch
from tests.test_exports import HOSTILE, SiteCase
from tests.test_scale_serial import sleep

SITE = """
[site]
name = "Cooperativa <Sul> & Filhos"
document = "12.345.678/0001-90"
address = "Rod. BR-116, km 42, Vacaria - RS"
phone = "(54) 3232-1000"
"""
PAYLOAD = '<img src=x onerror="document.title=1"><script>alert(1)</script>'


def text_of(page: bytes) -> str:
    """A page's text as a reader sees it: tags dropped, entities read, spaces collapsed."""
    body = page.decode("utf-8").partition("<body>")[2]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def local_pt(iso: str) -> str:
    """A time as a pt-BR ticket prints it."""
    return datetime.fromisoformat(iso).astimezone().strftime("%d/%m/%Y %H:%M:%S")


def site_config() -> str:
    folder = Path(tempfile.mkdtemp())
    (folder / "balanca.toml").write_text(SITE, encoding="utf-8")
    (folder / "operators").write_text("ana:tok-ana\n")
    return str(folder)


class PrintingCase(SiteCase):
    """A site with a `[site]` header and an operator, `ana`."""

    @defer.inlineCallbacks
    def start_printing(self, *extra: str) -> Any:
        folder = site_config()
        self.write_token = "tok-ana"
        yield self.start_site(
            "--config", f"{folder}/balanca.toml", "--operators-file", f"{folder}/operators", *extra
        )

    @defer.inlineCallbacks
    def ticket(self, path: str, code: int = 200) -> Any:
        response = yield fetch(self.url(path), headers={"Authorization": "Bearer tok-ana"})
        self.assertEqual(response.code, code, response.body[:500])
        self.assertEqual(response.header("Content-Type"), "text/html; charset=utf-8")
        return response


class Tickets(PrintingCase):
    @defer.inlineCallbacks
    def test_a_weighing_ticket_prints_the_site_the_sealed_figures_and_the_seal(
        self,
    ) -> defer.Generator:
        yield self.start_printing()
        ana = {"Authorization": "Bearer tok-ana"}
        record = yield self.capture(
            "truck", "35420.5", "kg", ana, plate="abc-1d23", product="Soja", party="Coop Norte"
        )
        key = (yield fetch(self.url("/api/weighings/key"), headers=ana)).json()
        page = yield self.ticket("/tickets/weighings/1")
        text = text_of(page.body)
        for expected in (
            "Cooperativa <Sul> & Filhos",
            "CNPJ 12.345.678/0001-90",
            "Rod. BR-116, km 42, Vacaria - RS",
            "Tel. (54) 3232-1000",
            "Registro de pesagem nº 1",
            "Placa ABC1D23",
            "Produto Soja",
            "Cliente/fornecedor Coop Norte",
            "truck 35420,5 kg nº 1",  # the pass: time, scale, weight, record
            "Peso bruto 35420,5 kg",
            "Peso líquido 35420,5 kg",
            "Operador ana",
            "Balança truck",
            f"nº 1 · {record['hash'][:12]}",
            f"Chave de assinatura {key['fingerprint']}",
            "Motorista",
            "Balanceiro",
        ):
            self.assertEqual(text.count(expected), 2, expected)  # two copies on the sheet
        self.assertIn("1ª via — motorista", text)
        self.assertIn("2ª via — empresa", text)
        self.assertNotIn(record["hash"][:13], text)  # the short hash: 12 digits
        self.assertIn('href="../../ticket.css"', page.body.decode())
        thermal = text_of((yield self.ticket("/tickets/weighings/1?paper=80mm")).body)
        self.assertEqual(thermal.count("Peso líquido 35420,5 kg"), 1)  # one copy on the roll
        self.assertNotIn("via", thermal)
        english = text_of((yield self.ticket("/tickets/weighings/1?lang=en&paper=80mm")).body)
        for expected in ("Weighing record no. 1", "Plate ABC1D23", "Gross 35420.5 kg",
                         "Net 35420.5 kg", "Signing key sha256:", "Driver", "Weigher"):  # fmt: skip
            self.assertIn(expected, english)

    @defer.inlineCallbacks
    def test_a_voided_weighing_says_cancelado_with_its_void_record(self) -> defer.Generator:
        yield self.start_printing()
        ana = {"Authorization": "Bearer tok-ana"}
        yield self.capture("lab", "12.345", "g", ana, reference="lote 7")
        plain = text_of((yield self.ticket("/tickets/weighings/1")).body)
        self.assertNotIn("CANCELADO", plain)
        void = yield fetch(
            self.url("/api/weighings/1/void"),
            b"POST",
            b'{"reason": "amostra trocada"}',
            {"Content-Type": "application/json", **ana},
        )
        self.assertEqual(void.code, 201)
        text = text_of((yield self.ticket("/tickets/weighings/1")).body)
        self.assertEqual(text.count("CANCELADO"), 2)
        self.assertIn("Anulado pelo registro nº 2: amostra trocada", text)
        self.assertIn(f"nº 2 · {void.json()['hash'][:12]}", text)
        english = text_of((yield self.ticket("/tickets/weighings/1?lang=en")).body)
        self.assertIn("VOID Voided by record no. 2: amostra trocada", english)
        of_void = text_of((yield self.ticket("/tickets/weighings/2")).body)
        self.assertIn("Anula o registro nº 1: amostra trocada", of_void)

    @defer.inlineCallbacks
    def test_every_typed_value_is_escaped(self) -> defer.Generator:
        yield self.start_printing()
        ana = {"Authorization": "Bearer tok-ana"}
        yield self.capture(
            "truck", "1000.0", "kg", ana, party=PAYLOAD, product=PAYLOAD, note=PAYLOAD
        )
        page = (yield self.ticket("/tickets/weighings/1")).body.decode()
        self.assertNotIn("<script", page)
        self.assertNotIn("<img", page)
        self.assertEqual(page.count(html.escape(PAYLOAD)), 6)  # party, product, note; twice
        self.assertIn("Cooperativa &lt;Sul&gt; &amp; Filhos", page)
        self.assertEqual(text_of(page.encode()).count(PAYLOAD), 6)

    @defer.inlineCallbacks
    def test_unknown_tickets_and_bad_queries_are_html_pages(self) -> defer.Generator:
        yield self.start_printing()
        for path, code in (
            ("/tickets/weighings/1", 404),
            ("/tickets/weighings/x", 404),
            ("/tickets/weighings/1/more", 404),
            ("/tickets/nothing/1", 404),
            ("/tickets", 404),
            ("/tickets/weighings/1?paper=a3", 400),
            ("/tickets/weighings/1?lang=fr", 400),
        ):
            response = yield self.ticket(path, code)
            self.assertIn(f"{code} — ", text_of(response.body), path)
        posted = yield fetch(self.url("/tickets/weighings/1"), b"POST", b"")
        self.assertEqual(posted.code, 405)

    @defer.inlineCallbacks
    def test_tickets_take_the_read_token_from_the_header_or_the_query(self) -> defer.Generator:
        folder = site_config()
        Path(folder, "read").write_text("leitura\n")
        yield self.start_printing("--read-token-file", f"{folder}/read")
        yield self.capture("truck", "1000.0", "kg", {"Authorization": "Bearer tok-ana"})
        for path, headers, code in (
            ("/tickets/weighings/1", {}, 401),
            ("/tickets/weighings/1?token=errado", {}, 401),
            ("/tickets/weighings/1?token=leitura", {}, 200),
            ("/tickets/weighings/1", {"Authorization": "Bearer leitura"}, 200),
            ("/tickets/weighings/1", {"Authorization": "Bearer tok-ana"}, 200),
        ):
            response = yield fetch(self.url(path), headers=headers)
            self.assertEqual(response.code, code, (path, headers))
            self.assertEqual(response.header("Content-Type"), "text/html; charset=utf-8")
        refused = yield fetch(self.url("/tickets/weighings/1"))
        self.assertEqual(refused.header("WWW-Authenticate"), 'Bearer realm="balanca"')
        self.assertIn("401 — Acesso negado", text_of(refused.body))
        page = (yield fetch(self.url("/tickets/weighings/1?token=leitura&lang=en"))).body
        self.assertIn('href="?lang=en&amp;paper=80mm&amp;token=leitura"', page.decode())


class TransactionTickets(PrintingCase):
    @defer.inlineCallbacks
    def test_a_transaction_ticket_prints_both_passes_and_the_sealed_figures(
        self,
    ) -> defer.Generator:
        yield self.start_printing()
        ana = {"Authorization": "Bearer tok-ana"}
        found = yield self.capture_trucks(ana)
        one = found[1]
        text = text_of((yield self.ticket("/tickets/transactions/1")).body)
        entry, exit_ = one["in"], one["out"]
        for expected in (
            "Ticket de pesagem nº 1",
            "Placa AAA1111",
            f"Cliente/fornecedor {HOSTILE['party']}",
            f"Entrada {local_pt(entry['time'])} truck 14980,0 kg nº {entry['number']}",
            f"Saída {local_pt(exit_['time'])} truck 45000,5 kg nº {exit_['number']}",
            "Peso bruto 45000,5 kg Tara 14980,0 kg Peso líquido 30020,5 kg",
            "Operador ana",
            f"nº {entry['number']} · {entry['hash'][:12]}",
            f"nº {exit_['number']} · {exit_['hash'][:12]}",
        ):
            self.assertEqual(text.count(expected), 2, expected)
        self.assertNotIn("CANCELADO", text)
        english = text_of((yield self.ticket("/tickets/transactions/1?lang=en")).body)
        self.assertIn("Gross 45000.5 kg Tare 14980.0 kg Net 30020.5 kg", english)
        self.assertIn("Weighing ticket no. 1", english)

    @defer.inlineCallbacks
    def test_one_pass_open_and_void_transactions_say_so(self) -> defer.Generator:
        yield self.start_printing()
        found = yield self.capture_trucks({"Authorization": "Bearer tok-ana"})
        tare = found[2]["out"]["tare_record"]
        one_pass = text_of((yield self.ticket("/tickets/transactions/2?paper=80mm")).body)
        self.assertIn("Peso bruto 40000,0 kg Tara 15000,0 kg Peso líquido 25000,0 kg", one_pass)
        self.assertIn(f"Tara armazenada: registro nº {tare}", one_pass)
        self.assertNotIn("Entrada", one_pass)  # one pass: no entry
        opened = text_of((yield self.ticket("/tickets/transactions/3")).body)
        self.assertIn("EM ABERTO", opened)
        self.assertNotIn("Peso líquido", opened)
        void = yield fetch(self.url("/api/transactions/4"))
        voided_by = void.json()["in"]["voided_by"]
        text = text_of((yield self.ticket("/tickets/transactions/4")).body)
        self.assertEqual(text.count("CANCELADO"), 2)
        self.assertIn(f"Anulado pelo registro nº {voided_by}: pesou errado", text)
        english = text_of((yield self.ticket("/tickets/transactions/4?lang=en")).body)
        self.assertIn("VOID", english)
        record = text_of(
            (yield self.ticket(f"/tickets/weighings/{found[1]['out']['number']}")).body
        )
        self.assertIn("Parte do ticket de pesagem nº 1", record)
        yield self.ticket("/tickets/transactions/99", 404)

    @defer.inlineCallbacks
    def test_a_reader_gone_before_the_ticket_is_ready_leaves_no_error(self) -> defer.Generator:
        yield self.start_printing()
        yield self.capture("truck", "1000.0", "kg", {"Authorization": "Bearer tok-ana"})
        for path in ("/tickets/weighings/1", "/tickets/weighings/9", "/tickets/transactions/1"):
            client = socket.create_connection(("127.0.0.1", self.port()))
            client.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            client.close()
        yield sleep(0.5)  # trial fails the test if the service logged an error meanwhile
        yield self.ticket("/tickets/weighings/1")

    @defer.inlineCallbacks
    def test_a_closing_tare_far_from_the_stored_one_says_tara_divergente(self) -> defer.Generator:
        yield self.start_printing()
        ana = {"Authorization": "Bearer tok-ana"}
        stored = yield self.send("/api/vehicles/MIS1234/tare",
                                 {"tare": "10000.0", "unit": "kg", "reason": "aferida"},
                                 ana, b"PUT")  # fmt: skip
        self.assertEqual(stored.code, 201, stored.body)
        opening = "/api/scales/{scale}/transactions"
        opened = yield self.capture("truck", "38000.0", "kg", ana, opening, plate="MIS1234")
        closing = f"/api/transactions/{opened['id']}/close"
        closed = yield self.capture("truck", "20000.0", "kg", ana, closing, scale="truck")
        self.assertTrue(closed["tare_mismatch"])
        text = text_of((yield self.ticket(f"/tickets/transactions/{opened['id']}")).body)
        self.assertEqual(text.count("Tara divergente"), 2)
        self.assertIn("Peso bruto 38000,0 kg Tara 20000,0 kg Peso líquido 18000,0 kg", text)
        english = text_of((yield self.ticket(f"/tickets/transactions/{opened['id']}?lang=en")).body)
        self.assertIn("Tare mismatch", english)
        csv_text = (yield fetch(self.url("/api/transactions.csv?lang=en"))).body.decode()
        self.assertIn(",38000.0,20000.0,18000.0,kg,weighing,yes,", csv_text)
