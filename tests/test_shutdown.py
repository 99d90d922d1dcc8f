"""A clean stop (SIGTERM, as systemd and Docker send) writes every pending reading first."""

from __future__ import annotations

import signal
import sqlite3
import time

from twisted.trial.unittest import TestCase

from tests.child import Service


class CleanStop(TestCase):
    timeout = 60

    def test_sigterm_flushes_every_pending_reading_before_exit(self) -> None:
        service = Service("--scale", "simulator:rate=50", "--record", "all")
        self.addCleanup(service.close)
        service.start()
        time.sleep(3)
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
