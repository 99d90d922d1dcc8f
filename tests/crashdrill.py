"""The crash drill of issue 12: `kill -9` during a database outage, then a restart and the
database's return; what did the kill cost? Shared by tests/test_shutdown.py (a short cut) and
bench/crash.py (30 s). Blocking: run it in a thread while the reactor runs the proxy."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.child import Service


@dataclass(frozen=True)
class CrashResult:
    """What a drill found."""

    last_seen: int
    """The newest seq `/api/weight` showed just before the kill."""
    stored: list[int]
    """The killed run's seqs in the database after the restart, in the order written."""
    outage_seconds: float
    """How long the database had been cut when the process was killed."""

    @property
    def lost(self) -> int:
        """Readings the kill cost: seen before it, never stored."""
        return self.last_seen - max(self.stored, default=0)


def get_json(service: Service, path: str) -> dict[str, Any]:
    """A JSON answer of the service, 200 or not."""
    try:
        with urllib.request.urlopen(service.origin + path, timeout=5) as response:
            return dict(json.load(response))
    except urllib.error.HTTPError as error:
        return dict(json.load(error))


def store_health(service: Service) -> dict[str, Any]:
    """The database part of `/api/health` (0.1's `database` object, or 0.2's `db` object)."""
    body = get_json(service, "/api/health")
    db = body.get("db")
    return db if isinstance(db, dict) else {**body.get("database", {}), "state": db}


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until it holds; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout:g} s for {what}")
        time.sleep(0.1)


def crash_during_outage(
    database_url: str,
    cut: Callable[[], None],
    restore: Callable[[], None],
    query: Callable[[str], list[tuple[Any, ...]]],
    *,
    cut_seconds: float,
    rate: int = 20,
) -> CrashResult:
    """Record every reading at `rate`/s into `database_url`, `cut` it until about
    `cut_seconds` of readings wait, `kill -9` the service, start it again, `restore` the
    database, and read back what the killed run stored (`query` reads the database)."""
    service = Service("--scale", f"simulator:rate={rate}", "--record", "all", "--db", database_url)
    try:
        service.start()
        wait_for(lambda: store_health(service)["rows_written"] >= rate, 30, "a second of rows")
        cut()
        cut_at = time.monotonic()
        wait_for(
            lambda: store_health(service)["backlog"] >= cut_seconds * rate,
            cut_seconds * 3 + 10,
            f"{cut_seconds:g} s of readings waiting",
        )
        last_seen = int(get_json(service, "/api/weight")["seq"])
        assert service.process is not None
        service.process.kill()
        outage = time.monotonic() - cut_at
        service.process.wait()
        service.start()
        restore()
        wait_for(  # the journal goes oldest first: once it is short, the killed run is in
            lambda: (h := store_health(service))["state"] == "ok" and h["backlog"] < 2 * rate,
            60,
            "the backlog written",
        )
        rows = query("SELECT run, seq FROM readings ORDER BY id")
        killed_run = rows[0][0] if rows else None
        stored = [seq for run, seq in rows if run == killed_run]
        return CrashResult(last_seen, stored, outage)
    finally:
        service.close()
