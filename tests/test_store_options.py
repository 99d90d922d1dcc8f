"""The store's options: `--keep-readings`, and a SQLite path that cannot exist stops the start."""

from __future__ import annotations

import os
import subprocess
import tempfile

from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import TestCase

from balanca.tap import Options, makeService
from tests.base import TWISTD
from tests.child import REPO


def parse(*args: str, env: dict[str, str] | None = None) -> Options:
    options = Options(environ=env or {})
    options.parseOptions(list(args))
    return options


class StoreOptions(TestCase):
    def test_a_sqlite_path_in_a_missing_folder_stops_the_start_naming_it(self) -> None:
        options = parse("--db", "sqlite:/no/such/dir/x.sqlite3")
        with self.assertRaises(SystemExit) as raised:
            makeService(options, Clock())
        self.assertIn("/no/such/dir", str(raised.exception))

    def test_twistd_exits_at_once_on_a_sqlite_path_in_a_missing_folder(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        done = subprocess.run(
            [*TWISTD, "-n", "--pidfile=", "balanca", "--db", "sqlite:/no/such/dir/x.sqlite3"],
            capture_output=True, text=True, timeout=60, env=env, check=False,
        )  # fmt: skip
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("no folder /no/such/dir", done.stderr + done.stdout)

    def test_a_sqlite_path_in_the_working_directory_is_fine(self) -> None:
        settings = parse("--db", "sqlite:x.sqlite3").settings
        assert settings is not None
        self.assertEqual(settings.db.path, "x.sqlite3")

    def test_keep_readings_defaults_to_all_and_reaches_the_store(self) -> None:
        self.assertIsNone(parse().settings.keep_readings)  # type: ignore[union-attr]
        folder = tempfile.mkdtemp()
        self.addCleanup(os.rmdir, folder)
        options = parse("--keep-readings", "30", "--db", f"sqlite:{folder}/x.sqlite3")
        self.assertEqual(makeService(options, Clock()).parts.store.keep_days, 30)
        env = {"BALANCA_KEEP_READINGS": "7.5"}
        self.assertEqual(parse(env=env).settings.keep_readings, 7.5)  # type: ignore[union-attr]

    def test_keep_readings_must_be_a_positive_number(self) -> None:
        for bad in ("0", "-3", "forever"):
            with self.assertRaises(usage.UsageError):
                parse("--keep-readings", bad)
