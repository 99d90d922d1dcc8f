"""Checking a long chain of sealed records as a bench line: build a chain of N records
(default 1,000,000) in a SQLite file, start balanca on it, and time its check of the whole
chain at start and `GET /api/weighings/verify`, while a client asks `GET /api/weight` every
10 ms on a keep-alive connection and measures each answer.

    python bench/run.py --records [--records-count 1000000]
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from balanca.records.key import load_or_create  # noqa: E402
from balanca.records.seal import GENESIS, record_hash  # noqa: E402
from balanca.store import ledger, schema  # noqa: E402

TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
CHUNK = 20_000
PROBE_INTERVAL = 0.01


def _sign(args: tuple[str, list[str]]) -> list[str]:
    """Sign a chunk of hashes with the key in `args[0]` (a worker's job)."""
    key, _ = load_or_create(args[0])
    return [base64.b64encode(key.sign(bytes.fromhex(h))).decode() for h in args[1]]


def build_chain(db_path: Path, key_path: Path, count: int) -> float:
    """Write a chain of `count` sealed records into a fresh SQLite database; seconds taken."""
    started = time.monotonic()
    load_or_create(str(key_path))
    connection = sqlite3.connect(db_path, isolation_level=None)
    cursor = connection.cursor()
    schema.migrate(cursor, schema.DIALECTS["sqlite"])
    cursor.execute("COMMIT")
    columns = [*ledger.COLUMNS.values(), "captured_utc"]
    insert = f"INSERT INTO records ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    prev = GENESIS
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        for first in range(1, count + 1, CHUNK):
            chunk = []
            for number in range(first, min(first + CHUNK, count + 1)):
                record = _record(number, prev)
                record["hash"] = prev = record_hash(record)
                chunk.append(record)
            halves = [[r["hash"] for r in chunk[i::2]] for i in range(2)]
            signed = list(pool.map(_sign, [(str(key_path), h) for h in halves]))
            for i, record in enumerate(chunk):
                record["signature"] = signed[i % 2][i // 2]
            cursor.execute("BEGIN")
            cursor.executemany(
                insert,
                [
                    [r[k] if k != "again" else int(r[k]) for k in ledger.COLUMNS]
                    + ["2025-10-30 16:38:15.000000"]
                    for r in chunk
                ],
            )
            cursor.execute("COMMIT")
    connection.close()
    return time.monotonic() - started


def _record(number: int, prev: str) -> dict[str, Any]:
    record: dict[str, Any] = dict.fromkeys(ledger.STORED_KEYS)
    record.update(
        number=number,
        kind="weighing",
        scale="truck",
        run="bench",
        seq=number,
        time="2025-10-30T13:38:15.000000-03:00",
        captured="2025-10-30T13:38:15.000000-03:00",
        weight=f"{10000 + number % 30000}.5",
        unit="kg",
        decimals=1,
        mode="gross",
        status="ok",
        source="serial",
        frame="0220202031323334352e350d",
        reference=f"NF {number}",
        again=False,
        prev=prev,
    )
    return record


class Probe(threading.Thread):
    """Asks `GET /api/weight` every 10 ms on one keep-alive connection; keeps the times."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.times, self.errors = port, list[float](), 0
        self.running = True

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while self.running:
            started = time.perf_counter()
            try:
                connection.request("GET", "/api/weight")
                connection.getresponse().read()
                self.times.append(time.perf_counter() - started)
            except (OSError, http.client.HTTPException):
                self.errors += 1
                connection.close()
            time.sleep(PROBE_INTERVAL)

    def percentiles(self) -> dict[str, float]:
        times = sorted(self.times) or [float("nan")]
        pick = lambda q: times[min(len(times) - 1, int(q * len(times)))] * 1000  # noqa: E731
        return {"p50_ms": pick(0.50), "p99_ms": pick(0.99), "max_ms": times[-1] * 1000}


def records_bench(count: int) -> dict[str, Any]:
    """Build the chain, run balanca on it, time the checks; the figures."""
    work = Path(tempfile.mkdtemp(prefix="balanca-records-bench-"))
    db, key = work / "records.sqlite3", work / "records.key"
    outcome: dict[str, Any] = {"records": count, "build_seconds": build_chain(db, key, count)}
    port = _free_port()
    log = work / "service.log"
    started = time.monotonic()
    with open(log, "wb") as out:
        service = subprocess.Popen(
            [*TWISTD, "-n", "--pidfile=", "balanca", "--http", f"tcp:{port}:interface=127.0.0.1",
             "--db", f"sqlite:{db}", "--records-key", str(key), "--scale", "simulator"],
            cwd=work, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    probe = Probe(port)
    try:
        _wait(lambda: _answers(port), 60)
        probe.start()
        _wait(lambda: b"records checked" in log.read_bytes(), 600)
        outcome["start_check_seconds"] = time.monotonic() - started
        outcome["during_start_check"] = probe.percentiles()
        probe.times.clear()
        began = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        connection.request("GET", "/api/weighings/verify")
        verdict = json.loads(connection.getresponse().read())
        outcome["verify_seconds"] = time.monotonic() - began
        outcome["verdict"] = verdict
        outcome["during_verify"] = probe.percentiles()
        outcome["probe_errors"] = probe.errors
    finally:
        probe.running = False
        service.terminate()
        service.wait(30)
    return outcome


def records_line(outcome: dict[str, Any]) -> str:
    """The bench's line for the README."""
    during = outcome["during_verify"]
    return (
        f"records: {outcome['records']:,} records checked by GET /api/weighings/verify in"
        f" {outcome['verify_seconds']:.1f} s (ok: {outcome['verdict'].get('ok')}); at start in"
        f" {outcome['start_check_seconds']:.1f} s; GET /api/weight meanwhile p50"
        f" {during['p50_ms']:.2f} ms, p99 {during['p99_ms']:.2f} ms, max {during['max_ms']:.1f} ms"
        f" ({outcome['probe_errors']} errors); building the chain took"
        f" {outcome['build_seconds']:.0f} s"
    )


def _answers(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/api/time")
        return connection.getresponse().status == 200
    except OSError:
        return False


def _wait(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"still waiting after {timeout:g} s")
        time.sleep(0.1)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
