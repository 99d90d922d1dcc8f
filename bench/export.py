"""Streaming a long CSV export as a bench line: fill a database with N closed truck
transactions (default 1,000,000: an `in` and an `out` record each, and the transactions
index), start balanca on it, and download `GET /api/transactions.csv` whole over loopback,
measuring rows/s, the server's resident memory before and during the stream (sampled every
20 ms from /proc: a stream read page by page stays flat), and `GET /api/weight` meanwhile;
then read the file back with the csv module and check every row and the totals.

    python bench/run.py --export [--export-count 1000000] [--export-sealed] [--export-mysql]

The rows are written straight into the tables, in the shape the service writes them. Sealing
two million records (Ed25519 and the canonical JSON's SHA-256) costs minutes on two cores and
the service's check at start as long again, and the export reads no seal; so by default each
record carries a unique placeholder hash and no signature (the service says the chain is
broken, which the export does not look at). `--export-sealed` chains and signs them for real
and waits for the check at start before streaming. `--export-mysql` fills a MariaDB database
on 127.0.0.1:3306 (root, no password) instead of SQLite.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import http.client
import io
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from records import TWISTD, Probe, _answers, _free_port, _sign, _wait  # noqa: E402

from balanca.records.key import load_or_create  # noqa: E402
from balanca.records.seal import GENESIS, record_hash  # noqa: E402
from balanca.store import ledger, schema  # noqa: E402
from balanca.store.transaction_index import INDEX_COLUMNS  # noqa: E402

CHUNK = 10_000
"""Transactions written per database transaction while filling."""
START = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
PRODUCTS = ("Soja em grão", "Milho", "Trigo", "Farelo de soja", "Calcário")
SAMPLE = 0.02


def transaction(k: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Transaction `k`'s `in` and `out` records (numbers 2k-1 and 2k), unsealed."""
    opened = START + timedelta(seconds=60 * k)
    closed = opened + timedelta(seconds=40)
    tare = Decimal(12000 + k % 3001) + Decimal("0.5")
    gross = tare + Decimal(20000 + (k * 7) % 15000)
    fields = {
        "plate": f"BEN{k % 10000:04d}",
        "product": PRODUCTS[k % len(PRODUCTS)],
        "party": f"Cooperante {k % 997}",
        "reference": f"NF-e {100000 + k}",
        "transaction": k,
        "operator": "bench",
    }
    first = _record(2 * k - 1, "in", tare, opened, fields)
    last = _record(2 * k, "out", gross, closed, fields)
    last.update(gross=format(gross, "f"), net=format(gross - tare, "f"))
    return first, last


def _record(
    number: int, kind: str, weight: Decimal, when: datetime, fields: dict[str, Any]
) -> dict[str, Any]:
    record: dict[str, Any] = dict.fromkeys(ledger.STORED_KEYS)
    moment = when.astimezone().isoformat(timespec="microseconds")
    record.update(
        fields,
        number=number,
        kind=kind,
        scale="truck",
        run="bench",
        seq=number,
        time=moment,
        captured=moment,
        weight=format(weight, "f"),
        unit="kg",
        decimals=1,
        mode="gross",
        tare="0.0",
        status="ok",
        source="serial",
        frame="0220202031323334352e350d",
        again=False,
    )
    return record


def chunks(count: int) -> Iterator[list[tuple[dict[str, Any], dict[str, Any]]]]:
    for first in range(1, count + 1, CHUNK):
        yield [transaction(k) for k in range(first, min(first + CHUNK, count + 1))]


def fill(connect: Any, dialect: schema.Dialect, key_path: Path, count: int, sealed: bool) -> float:
    """Write `count` closed transactions into the empty database `connect()` opens; seconds
    taken."""
    started = time.monotonic()
    connection = connect()
    cursor = connection.cursor()
    schema.migrate(cursor, dialect)
    connection.commit()
    columns = [*ledger.COLUMNS.values(), "captured_utc"]
    insert = dialect.sql(
        f"INSERT INTO records ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    )
    index = dialect.sql(
        f"INSERT INTO transactions ({', '.join(INDEX_COLUMNS)})"
        f" VALUES ({', '.join('?' * len(INDEX_COLUMNS))})"
    )
    prev = GENESIS
    pool = ProcessPoolExecutor(os.cpu_count() or 1) if sealed else None
    try:
        for chunk in chunks(count):
            records = [r for pair in chunk for r in pair]
            for record in records:
                record["prev"] = prev
                if sealed:
                    record["hash"] = prev = record_hash(record)
                else:
                    record["hash"] = prev = hashlib.sha256(b"%d" % record["number"]).hexdigest()
                    record["signature"] = "unsealed"
            if pool is not None:
                halves = [[r["hash"] for r in records[i::2]] for i in range(2)]
                signed = list(pool.map(_sign, [(str(key_path), h) for h in halves]))
                for i, record in enumerate(records):
                    record["signature"] = signed[i % 2][i // 2]
            cursor.executemany(insert, [_row(r) for r in records])
            cursor.executemany(index, [_index_row(first, last) for first, last in chunk])
            connection.commit()
    finally:
        if pool is not None:
            pool.shutdown()
    connection.close()
    return time.monotonic() - started


def _utc(record: dict[str, Any]) -> str:
    return schema.utc_text(datetime.fromisoformat(record["captured"]))


def _row(record: dict[str, Any]) -> list[Any]:
    return [int(record[k]) if k == "again" else record[k] for k in ledger.COLUMNS] + [_utc(record)]


def _index_row(first: dict[str, Any], last: dict[str, Any]) -> tuple[Any, ...]:
    return (
        first["transaction"], first["plate"], "closed", None, first["number"], last["number"],
        None, _utc(first), _utc(last), last["number"],
    )  # fmt: skip


class Memory(threading.Thread):
    """Samples the resident memory (VmRSS) of a process and of its children (an export's
    worker) every 20 ms; keeps the peaks."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.peak_tree, self.running = pid, 0, 0, True

    def now(self, pid: int | None = None) -> int:
        """VmRSS of `pid` (the service) now, in KiB."""
        try:
            with open(f"/proc/{pid or self.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except FileNotFoundError:  # a child gone meanwhile
            pass
        return 0

    def tree(self) -> int:
        """VmRSS of the service and its children now, in KiB."""
        children = []
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            children += (task / "children").read_text().split()
        return self.now() + sum(self.now(int(child)) for child in children)

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.now())
            self.peak_tree = max(self.peak_tree, self.tree())
            time.sleep(SAMPLE)


def download(port: int, path: Path) -> tuple[float, int]:
    """GET /api/transactions.csv into `path`: (seconds, bytes)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.monotonic()
    connection.request("GET", "/api/transactions.csv")
    response = connection.getresponse()
    assert response.status == 200, response.status
    size = 0
    with open(path, "wb") as out:
        while chunk := response.read(1 << 16):
            out.write(chunk)
            size += len(chunk)
    return time.monotonic() - started, size


def read_back(path: Path, count: int) -> dict[str, Any]:
    """The file as a spreadsheet opens it: rows, and the totals line against the sums."""
    raw = path.read_bytes()
    assert raw.startswith(codecs.BOM_UTF8)
    reader = csv.reader(io.StringIO(raw[3:].decode("utf-8"), newline=""), delimiter=";")
    header = next(reader)
    rows = totals = 0
    line: list[str] = []
    gross = net = Decimal(0)
    for line in reader:
        if line[0] == "Total":
            totals += 1
            break
        rows += 1
        gross += Decimal(line[header.index("Bruto")].replace(",", "."))
        net += Decimal(line[header.index("Líquido")].replace(",", "."))
    assert rows == count, (rows, count)
    assert totals == 1 and int(line[1]) == count, line
    assert Decimal(line[header.index("Bruto")].replace(",", ".")) == gross
    assert Decimal(line[header.index("Líquido")].replace(",", ".")) == net
    return {"rows_read_back": rows, "total_gross": str(gross), "total_net": str(net)}


def export_bench(count: int, sealed: bool = False, mysql: bool = False) -> dict[str, Any]:
    """Fill, start balanca, stream the export; the figures."""
    work = Path(tempfile.mkdtemp(prefix="balanca-export-bench-"))
    key = work / "records.key"
    load_or_create(str(key))
    if mysql:
        import pymysql

        name = f"balanca_export_bench_{os.getpid()}"
        admin = pymysql.connect(host="127.0.0.1", user="root", password="")
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.cursor().execute(f"CREATE DATABASE `{name}`")
        db = f"mysql://root@127.0.0.1:3306/{name}"

        def connect() -> Any:
            return pymysql.connect(host="127.0.0.1", user="root", password="", database=name)

    else:
        path = work / "export.sqlite3"
        db = f"sqlite:{path}"

        def connect() -> Any:
            connection = sqlite3.connect(path)
            connection.execute("PRAGMA synchronous=OFF")  # a bench's fill: no power cut here
            return connection

    dialect = schema.DIALECTS["mysql" if mysql else "sqlite"]
    outcome: dict[str, Any] = {"transactions": count, "database": "MariaDB" if mysql else "SQLite",
                               "sealed": sealed, "fill_seconds": fill(connect, dialect, key, count, sealed)}  # fmt: skip
    port = _free_port()
    log = work / "service.log"
    with open(log, "wb") as out:
        service = subprocess.Popen(
            [*TWISTD, "-n", "--pidfile=", "balanca", "--http", f"tcp:{port}:interface=127.0.0.1",
             "--db", db, "--records-key", str(key), "--scale", "simulator"],
            cwd=work, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    probe = Probe(port)
    memory = Memory(service.pid)
    try:
        _wait(lambda: _answers(port), 120)
        checked = (b"records checked", b"chain BROKEN")
        _wait(lambda: any(word in log.read_bytes() for word in checked), 900)
        outcome["chain"] = "ok" if checked[0] in log.read_bytes() else "broken (unsealed)"
        assert not sealed or outcome["chain"] == "ok", "the sealed chain does not verify"
        time.sleep(2)  # the index check at start, then quiet
        outcome["rss_before_mib"] = memory.now() / 1024
        probe.start()
        memory.start()
        seconds, size = download(port, work / "transactions.csv")
        memory.running = False
        memory.join()
        outcome.update(
            stream_seconds=seconds,
            rows_per_second=count / seconds,
            megabytes=size / 1e6,
            rss_peak_mib=memory.peak / 1024,
            rss_peak_with_worker_mib=memory.peak_tree / 1024,
            rss_after_mib=memory.now() / 1024,
            during_export=probe.percentiles(),
            probe_errors=probe.errors,
        )
        outcome.update(read_back(work / "transactions.csv", count))
    finally:
        probe.running = False
        memory.running = False
        service.terminate()
        service.wait(30)
        if mysql:
            admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        shutil.rmtree(work, ignore_errors=True)  # a million transactions: about a gigabyte
    return outcome


def export_line(outcome: dict[str, Any]) -> str:
    """The bench's line for the README."""
    during = outcome["during_export"]
    return (
        f"export: {outcome['transactions']:,} transactions ({outcome['database']}) streamed as"
        f" /api/transactions.csv ({outcome['megabytes']:.0f} MB) in"
        f" {outcome['stream_seconds']:.1f} s, {outcome['rows_per_second']:,.0f} rows/s; server"
        f" RSS {outcome['rss_before_mib']:.1f} MiB before, peak {outcome['rss_peak_mib']:.1f} MiB"
        f" during ({outcome['rss_peak_with_worker_mib']:.1f} MiB with the export's worker); GET /api/weight meanwhile p50 {during['p50_ms']:.2f} ms, p99"
        f" {during['p99_ms']:.2f} ms ({outcome['probe_errors']} errors); read back with csv:"
        f" {outcome['rows_read_back']:,} rows, totals equal; filling took"
        f" {outcome['fill_seconds']:.0f} s{' (sealed)' if outcome['sealed'] else ''}"
    )
