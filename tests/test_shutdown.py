"""A clean stop (SIGTERM, as systemd and Docker send) writes every pending reading first."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.base import TWISTD


class CleanStop(TestCase):
    timeout = 60

    def test_sigterm_flushes_every_pending_reading_before_exit(self) -> None:
        workdir = Path(tempfile.mkdtemp(prefix="balanca-stop-"))
        db = workdir / "stop.sqlite3"
        server = subprocess.Popen(
            [*TWISTD, "-n", "--pidfile=", "--logfile=twistd.log", "balanca",
             "--http", "tcp:0:interface=127.0.0.1", "--scale", "simulator:rate=50",
             "--record", "all", "--db", f"sqlite:{db}"],
            cwd=workdir,
        )  # fmt: skip
        time.sleep(4)
        server.send_signal(signal.SIGTERM)
        self.assertIn(server.wait(30), (0, -signal.SIGTERM))  # twistd exits by the signal it got
        log = (workdir / "twistd.log").read_text()
        with sqlite3.connect(db) as conn:
            seqs = [row[0] for row in conn.execute("SELECT seq FROM readings ORDER BY seq")]
        self.assertGreater(len(seqs), 100, log[-2000:])
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)), "every reading, once, none lost")
        published = int(log.split("scale: stopped after ", 1)[1].split()[0])
        self.assertEqual(len(seqs), published)
