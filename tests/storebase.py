"""What the store tests share: real databases (a SQLite file, a MariaDB database) per test.

Each MariaDB test creates its own uniquely named database and drops it afterwards, since other
test runs may share the server. Without a reachable MariaDB those tests are skipped, or fail
when `BALANCA_REQUIRE_ALL=1`.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pymysql
from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SkipTest, TestCase

from balanca.reading import Mode, Reading, Status
from balanca.store.spec import DatabaseSpec
from balanca.store.store import Store

MARIADB: dict[str, Any] = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
BRT = timezone(timedelta(hours=-3))
START = datetime(2025, 10, 30, 13, 38, 15, 835260, tzinfo=BRT)


def make_reading(
    seq: int,
    weight: str | None = "10.00",
    *,
    stable: bool = True,
    status: Status = "ok",
    tare: str | None = "0.00",
    mode: Mode = "gross",
    unit: str = "kg",
    scale: str = "default",
    time: datetime | None = None,
    frame: bytes = b"",
) -> Reading:
    """A reading from the default scale, 0.1 s after the previous seq unless `time` is given."""
    return Reading(
        scale=scale,
        seq=seq,
        time=time or START + timedelta(seconds=seq / 10),
        source="simulator",
        weight=None if weight is None else Decimal(weight),
        unit=unit,
        stable=stable,
        mode=mode,
        tare=None if tare is None else Decimal(tare),
        status=status,
        frame=frame,
    )


async def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Let the real reactor run until `condition()` holds; fail after `timeout` seconds."""
    deadline = reactor.seconds() + timeout
    while not condition():
        if reactor.seconds() > deadline:
            raise AssertionError(f"still waiting after {timeout} s for {condition}")
        await deferLater(reactor, 0.02, lambda: None)


class StoreCase(TestCase):
    """A test with a fresh database; `spec()` says where, `query()` reads it directly."""

    dialect = ""

    def setUp(self) -> None:
        self.clock = Clock()
        self.directory = tempfile.mkdtemp(prefix="balanca-store-test-")
        self.addCleanup(shutil.rmtree, self.directory, True)
        self.journal_path = os.path.join(self.directory, "journal.sqlite3")

    def spec(self, port: int | None = None) -> DatabaseSpec:
        """Where this test's database is (through `port` instead of the server's, for MySQL)."""
        raise NotImplementedError

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run `sql` on the test's database directly and commit; its rows (blocking; tests only)."""
        raise NotImplementedError

    def db_url(self) -> str:
        """The test's database as `--db` takes it."""
        raise NotImplementedError

    def make_store(self, port: int | None = None, **options: Any) -> Store:
        """A store on this test's database, timed by `self.clock`, stopped at cleanup."""
        options.setdefault("clock", self.clock)
        options.setdefault("journal_path", self.journal_path)
        store = Store(self.spec(port), reactor, **options)
        self.addCleanup(lambda: store.stopService() if store.running else None)
        return store

    async def start_store(self, **options: Any) -> Store:
        """A started store whose schema is ready."""
        store = self.make_store(**options)
        store.startService()
        await store.flush()
        return store

    def refuse_source(self, source: str) -> None:
        """Make the database refuse readings whose source is `source` (a constraint)."""
        raise NotImplementedError

    def accept_source(self, source: str) -> None:
        """Undo `refuse_source`."""
        raise NotImplementedError

    def dead_letters(self) -> list[tuple[str, dict[str, Any]]]:
        """The rows set aside in the journal, as (reason, row), oldest first."""
        with sqlite3.connect(self.journal_path) as connection:
            rows = connection.execute("SELECT reason, row FROM dead_letters ORDER BY id")
            return [(reason, json.loads(row)) for reason, row in rows.fetchall()]

    def logged(self) -> list[str]:
        """The log lines of this test from now on (a list that grows)."""
        lines: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            lines.append(formatEvent(event) or "")

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        return lines

    def journal_rows(self) -> list[dict[str, Any]]:
        """The readings waiting in the spill journal, oldest first."""
        with sqlite3.connect(self.journal_path) as connection:
            rows = connection.execute("SELECT row FROM pending ORDER BY ord").fetchall()
        return [json.loads(row) for (row,) in rows]


class SQLiteCase(StoreCase):
    """The test's database is a fresh SQLite file."""

    dialect = "sqlite"

    def setUp(self) -> None:
        super().setUp()
        self.path = os.path.join(self.directory, "balanca.sqlite3")

    def spec(self, port: int | None = None) -> DatabaseSpec:
        return DatabaseSpec("sqlite", path=self.path)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        connection = sqlite3.connect(self.path)
        try:
            rows = connection.execute(sql, params).fetchall()
            connection.commit()
            return rows
        finally:
            connection.close()

    def db_url(self) -> str:
        return f"sqlite:{self.path}"

    def refuse_source(self, source: str) -> None:
        self.query(
            f"CREATE TRIGGER refuse_{source} BEFORE INSERT ON readings"
            f" WHEN NEW.source = '{source}' BEGIN SELECT RAISE(ABORT, 'source refused'); END"
        )

    def accept_source(self, source: str) -> None:
        self.query(f"DROP TRIGGER refuse_{source}")


class MariaDBCase(StoreCase):
    """The test's database is a fresh database on the local MariaDB, dropped afterwards."""

    dialect = "mysql"

    def setUp(self) -> None:
        super().setUp()
        try:
            pymysql.connect(**MARIADB, connect_timeout=3).close()
        except pymysql.err.Error as error:
            if os.environ.get("BALANCA_REQUIRE_ALL") == "1":
                self.fail(f"MariaDB at 127.0.0.1:3306 is required: {error}")
            raise SkipTest(f"no MariaDB at 127.0.0.1:3306: {error}") from None
        self.database = f"balanca_test_{os.getpid()}_{uuid.uuid4().hex[:12]}"
        self.addCleanup(self._drop)

    def spec(self, port: int | None = None) -> DatabaseSpec:
        return DatabaseSpec(
            "mysql",
            host=MARIADB["host"],
            port=port or MARIADB["port"],
            user=MARIADB["user"],
            password=MARIADB["password"],
            database=self.database,
        )

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        connection = pymysql.connect(**MARIADB, database=self.database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql.replace("?", "%s"), params)
                rows = list(cursor.fetchall())
            connection.commit()
            return rows
        finally:
            connection.close()

    def db_url(self) -> str:
        return f"mysql://root@127.0.0.1:{MARIADB['port']}/{self.database}"

    def refuse_source(self, source: str) -> None:
        self.query(
            f"ALTER TABLE readings ADD CONSTRAINT refuse_{source} CHECK (source <> '{source}')"
        )

    def accept_source(self, source: str) -> None:
        self.query(f"ALTER TABLE readings DROP CONSTRAINT refuse_{source}")

    def _drop(self) -> None:
        connection = pymysql.connect(**MARIADB)
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{self.database}`")
        finally:
            connection.close()
