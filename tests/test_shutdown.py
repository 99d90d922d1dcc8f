"""Stopping and crashing the real service (twistd in a child process).

A clean stop (SIGTERM, as systemd and Docker send) writes every pending reading first, and
finishes within the stop budget even against a database that never answers; a `kill -9`
during a database outage costs at most the last second of readings.
"""

from __future__ import annotations

import glob
import re
import signal
import sqlite3
import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.threads import blockingCallFromThread, deferToThread
from twisted.trial.unittest import TestCase

from balanca.store.store import CLOSE_TIMEOUT, STOP_WRITE_TIMEOUT
from tests.child import REPO, Service
from tests.crashdrill import crash_during_outage, store_health, wait_for
from tests.dbproxy import ProxiedMariaDBCase

STOP_BUDGET = 6.0
"""Seconds a stop may take against a silent database (README: "Stopping")."""


class StopBudget(TestCase):
    def test_the_supervisors_wait_longer_than_the_stop_budget(self) -> None:
        unit = (REPO / "contrib" / "systemd" / "balanca.service").read_text()
        compose = (REPO / "docker-compose.yml").read_text()
        systemd = int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.MULTILINE)[1])  # type: ignore[index]
        docker = int(re.search(r"stop_grace_period: (\d+)s", compose)[1])  # type: ignore[index]
        self.assertGreaterEqual(STOP_BUDGET, STOP_WRITE_TIMEOUT + CLOSE_TIMEOUT)
        self.assertGreaterEqual(min(systemd, docker), 2 * STOP_BUDGET)


class CleanStop(TestCase):
    timeout = 60

    def test_sigterm_flushes_every_pending_reading_before_exit(self) -> None:
        service = Service("--scale", "simulator:rate=50", "--record", "all")
        self.addCleanup(service.close)
        service.start()
        wait_for(lambda: store_health(service)["rows_written"] >= 100, 30, "100 rows written")
        service.stop()  # SIGTERM, as systemd and Docker send it
        assert service.process is not None
        # twistd exits by the signal it got
        self.assertIn(service.process.returncode, (0, -signal.SIGTERM))
        log = service.log()
        with sqlite3.connect(service.workdir / "x.sqlite3") as conn:
            seqs = [row[0] for row in conn.execute("SELECT seq FROM readings ORDER BY seq")]
        self.assertGreater(len(seqs), 100, log[-2000:])
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)), "every reading, once, none lost")
        published = int(log.split("scale: stopped after ", 1)[1].split()[0])
        self.assertEqual(len(seqs), published)


class StopAndCrashAgainstMariaDB(ProxiedMariaDBCase):
    """The service on MariaDB through the test's proxy (run by this process's reactor, so the
    blocking parts of each test run in a thread)."""

    timeout = 120

    def url(self) -> str:
        return f"mysql://root@127.0.0.1:{self.proxy.port}/{self.database}"

    def journal(self, service: Service) -> list[int]:
        [path] = glob.glob(str(service.workdir / "balanca-journal-*.sqlite3"))
        with sqlite3.connect(path) as conn:
            rows = conn.execute("SELECT row FROM pending ORDER BY ord").fetchall()
        return [int(row.split('"seq":')[1].split(",")[0]) for (row,) in rows]

    async def test_sigterm_against_a_silent_database_stops_within_the_budget(self) -> None:
        service = Service("--scale", "simulator:rate=20", "--record", "all", "--db", self.url())
        self.addCleanup(service.close)

        def stop_when_silent() -> float:
            service.start()
            wait_for(lambda: store_health(service)["rows_written"] >= 20, 30, "rows written")
            blockingCallFromThread(reactor, self.proxy.silence)
            wait_for(lambda: store_health(service)["code"] == "db_slow", 15, "db_slow")
            started = time.monotonic()
            service.stop()
            return time.monotonic() - started

        elapsed = await deferToThread(stop_when_silent)
        log = service.log()
        self.assertLess(elapsed, STOP_BUDGET, log)
        published = int(log.split("scale: stopped after ", 1)[1].split()[0])
        stored = {seq for (seq,) in self.query("SELECT seq FROM readings")}
        self.assertEqual(stored | set(self.journal(service)), set(range(1, published + 1)))

    async def test_a_kill_during_an_outage_costs_at_most_the_last_second(self) -> None:
        def cut() -> None:
            blockingCallFromThread(reactor, self.proxy.cut)

        def restore() -> None:
            blockingCallFromThread(reactor, self.proxy.restore)

        def query(sql: str) -> list[tuple[Any, ...]]:
            return self.query(sql)

        result = await deferToThread(
            crash_during_outage, self.url(), cut, restore, query, cut_seconds=10, rate=20
        )
        self.assertGreaterEqual(result.outage_seconds, 9)
        self.assertEqual(
            result.stored, list(range(1, len(result.stored) + 1)), "once each, in order"
        )
        self.assertLessEqual(result.lost, 20, f"lost {result.lost} of {result.last_seen}")
