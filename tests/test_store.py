"""The store against real databases: the same tests on a SQLite file and on MariaDB."""

from __future__ import annotations

import glob
import io
import os
import shutil
import sqlite3
from contextlib import redirect_stdout
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pymysql
from twisted.enterprise import adbapi
from twisted.internet import reactor
from twisted.internet.task import deferLater

from balanca.http.metrics import BalancaCollector
from balanca.hub import Hub
from balanca.reading import Reading, Status
from balanca.store import database as database_module
from balanca.store import deadletters, ledger, prune, schema
from balanca.store.backlog import BATCH
from balanca.store.journal import dump, open_file
from balanca.store.schema import encode_reading, identity, migrations
from balanca.store.spec import DatabaseSpec
from balanca.store.store import (
    FLUSH_INTERVAL,
    DatabaseRefused,
    DatabaseUnavailable,
    Store,
    default_journal_path,
)
from tests.storebase import (
    MARIADB,
    START,
    MariaDBCase,
    SQLiteCase,
    make_reading,
    wait_until,
)

if TYPE_CHECKING:
    from tests.storebase import StoreCase as Base
else:
    Base = object


class StoreTests(Base):
    """The store's behaviour, whatever the database."""

    async def recorded(self, store: Store) -> list[int]:
        """The seqs of the stored readings, oldest first, after writing what is queued."""
        await store.flush()
        return [row["seq"] for row in reversed(await store.readings(limit=10000))]

    async def test_weights_come_back_with_their_exact_decimals(self) -> None:
        store = await self.start_store(record="all")
        weights = ["1234.50", "0.005", "-12.3", "123400", None, "12.340", "0.5", "0.000"]
        for seq, weight in enumerate(weights, 1):
            store.reading(make_reading(seq, weight, tare="1.50" if seq % 2 else None), b"")
        await store.flush()
        rows = list(reversed(await store.readings(limit=100)))
        self.assertEqual([row["weight"] for row in rows], weights)
        self.assertEqual([row["tare"] for row in rows], ["1.50", None] * 4)

    async def test_times_come_back_as_the_same_iso_string(self) -> None:
        store = await self.start_store(record="all")
        times = [
            START,
            datetime(2025, 1, 2, 3, 4, 5, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            datetime(2025, 1, 2, 3, 4, 6, 1, tzinfo=UTC),
        ]
        for seq, time in enumerate(times, 1):
            store.reading(make_reading(seq, time=time), b"")
        await store.flush()
        stored = {row["seq"]: row["time"] for row in await store.readings(limit=10)}
        self.assertEqual(stored, {1: START.isoformat(), 2: "2025-01-02T03:04:05.000000+05:30",
                                  3: "2025-01-02T03:04:06.000001+00:00"})  # fmt: skip

    async def test_a_stored_reading_has_the_reading_shape_with_its_id_and_run(self) -> None:
        store = await self.start_store(record="all", run="run-1")
        reading = make_reading(7, "1234.50", tare="0.00", mode="net", unit="lb")
        store.reading(reading, b"")
        await store.flush()
        [row] = await store.readings()
        self.assertEqual(row, {**reading.to_dict(), "id": row["id"], "run": "run-1"})

    async def test_stable_policy_records_each_new_stable_weight_once(self) -> None:
        store = await self.start_store()
        feed: list[tuple[int, str | None, bool, Status]] = [
            (1, "3.00", False, "ok"),  # motion
            (2, "10.00", True, "ok"),  # recorded
            (3, "10.00", True, "ok"),
            (4, "10.0", True, "ok"),  # the same weight
            (5, "12.00", True, "ok"),  # recorded: a different weight
            (6, "12.50", False, "ok"),  # motion
            (7, "12.00", True, "ok"),  # recorded: motion came in between
            (8, None, True, "overload"),
            (9, "12.00", True, "ok"),  # recorded: another status came in between
            (10, "0.00", True, "ok"),  # recorded: zero between loads is a real reading
            (11, "0.00", True, "ok"),
        ]
        for seq, weight, stable, status in feed:
            store.reading(make_reading(seq, weight, stable=stable, status=status), b"")
        self.assertEqual(await self.recorded(store), [2, 5, 7, 9, 10])

    async def test_all_policy_records_every_reading(self) -> None:
        store = await self.start_store(record="all")
        for seq in range(1, 6):
            store.reading(make_reading(seq, None if seq == 3 else "1.0", stable=seq > 2), b"")
        self.assertEqual(await self.recorded(store), [1, 2, 3, 4, 5])

    async def test_none_policy_records_no_reading(self) -> None:
        store = await self.start_store(record="none")
        store.reading(make_reading(1), b"")
        self.assertEqual(await self.recorded(store), [])

    async def test_only_the_stores_own_scale_is_recorded_and_served(self) -> None:
        store = await self.start_store(record="all", scales=("silo",))
        store.reading(make_reading(1, scale="default"), b"")
        store.reading(make_reading(2, scale="silo"), b"")
        self.assertEqual(await self.recorded(store), [2])

    async def test_one_store_records_several_scales_each_with_its_own_stable_memory(
        self,
    ) -> None:
        store = await self.start_store(scales=("truck", "floor"))
        for seq, scale in ((1, "truck"), (2, "floor"), (3, "truck"), (4, "floor"), (5, "silo")):
            store.reading(make_reading(seq, "10.00", scale=scale), b"")  # the same weight
        store.reading(make_reading(6, "10.00", stable=False, scale="floor"), b"")  # motion
        store.reading(make_reading(7, "10.00", scale="floor"), b"")  # again after motion
        store.reading(make_reading(8, "10.00", scale="truck"), b"")  # truck never moved
        self.assertEqual(await self.recorded(store), [1, 2, 7])
        floor = await store.readings(limit=10, scale="floor")
        self.assertEqual([(r["scale"], r["seq"]) for r in floor], [("floor", 7), ("floor", 2)])

    async def test_queued_readings_are_written_in_one_batch_within_a_second(self) -> None:
        store = await self.start_store(record="all")
        batches = store.batches
        for seq in range(1, 21):
            store.reading(make_reading(seq), b"")
        await deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(self.query("SELECT COUNT(*) FROM readings"), [(0,)])
        self.clock.advance(FLUSH_INTERVAL)
        await wait_until(lambda: store.rows_written == 20)
        self.assertEqual(store.batches, batches + 1)
        self.assertEqual(self.query("SELECT COUNT(*) FROM readings"), [(20,)])
        self.assertEqual(store.health()["db"], "ok")

    async def test_a_large_backlog_is_written_in_batches_of_executemany(self) -> None:
        store = await self.start_store(record="all")
        batches = store.batches
        for seq in range(1, 2 * BATCH + 2):
            store.reading(make_reading(seq), b"")
        self.assertEqual(await self.recorded(store), list(range(1, 2 * BATCH + 2)))
        self.assertEqual(store.batches, batches + 3)

    async def test_a_retried_insert_of_the_same_readings_is_harmless(self) -> None:
        store = await self.start_store(record="all", run="run-1")
        for _ in range(2):
            for seq in range(1, 4):
                store.reading(make_reading(seq), b"")
            await store.flush()
        self.assertEqual(self.query("SELECT seq FROM readings ORDER BY seq"), [(1,), (2,), (3,)])
        self.assertEqual((store.failures, store.rows_written), (0, 3))

    async def test_a_weight_the_columns_cannot_hold_is_refused_alone(self) -> None:
        store = await self.start_store(record="all")
        for seq, weight in enumerate(["1.0", "1.0000001", "1000000000000", "2.0"], 1):
            store.reading(make_reading(seq, weight), b"")
        self.assertEqual(await self.recorded(store), [1, 4])
        self.assertEqual(store.rows_failed, 2)

    async def test_readings_are_paged_newest_first_by_time(self) -> None:
        store = await self.start_store(record="all")
        for seq in range(1, 11):
            store.reading(make_reading(seq, time=START + timedelta(seconds=seq)), b"")
        await store.flush()

        def seqs(rows: list[dict[str, object]]) -> list[object]:
            return [row["seq"] for row in rows]

        at = {seq: START + timedelta(seconds=seq) for seq in range(1, 11)}
        self.assertEqual(seqs(await store.readings(limit=3)), [10, 9, 8])
        self.assertEqual(seqs(await store.readings(until=at[8], limit=3)), [7, 6, 5])
        self.assertEqual(seqs(await store.readings(since=at[3], until=at[5])), [4, 3])
        utc = at[9].astimezone(UTC)
        self.assertEqual(seqs(await store.readings(since=utc)), [10, 9])

    async def test_a_stop_writes_what_is_queued(self) -> None:
        store = await self.start_store(record="all")
        for seq in range(1, 6):
            store.reading(make_reading(seq), b"")
        await store.stopService()
        self.assertEqual(self.query("SELECT COUNT(*) FROM readings"), [(5,)])

    async def test_readings_survive_a_restart_and_migrations_run_once(self) -> None:
        first = await self.start_store(record="all")
        first.reading(make_reading(1, "1.50"), b"")
        await first.stopService()
        second = await self.start_store(record="all")
        self.assertNotEqual(first.run, second.run)
        second.reading(make_reading(1, "2.50"), b"")
        await second.flush()
        rows = await second.readings()
        self.assertEqual([(r["run"], r["weight"]) for r in rows],
                         [(second.run, "2.50"), (first.run, "1.50")])  # fmt: skip
        versions = self.query("SELECT version, name FROM schema_version ORDER BY version")
        self.assertEqual(versions, [(n, name) for n, name, _ in migrations(self.dialect)])

    async def test_health_reports_state_counters_and_backlog(self) -> None:
        store = await self.start_store(record="all")
        store.reading(make_reading(1), b"")
        self.assertEqual(store.health()["backlog"], 1)
        await store.flush()
        health = store.health()
        self.assertEqual(
            {k: health[k] for k in ("db", "backlog", "last_error", "rows_written", "failures")},
            {"db": "ok", "backlog": 0, "last_error": None, "rows_written": 1, "failures": 0},
        )
        self.assertIsInstance(health["last_batch_seconds"], float)


class SQLiteStoreTests(StoreTests, SQLiteCase):
    """The store on a SQLite file."""


class MariaDBStoreTests(StoreTests, MariaDBCase):
    """The store on MariaDB."""


class StoreOptionTests(SQLiteCase):
    """What the constructor takes and what it makes of it."""

    def test_an_unknown_record_policy_is_refused(self) -> None:
        with self.assertRaises(ValueError):
            self.make_store(record="sometimes")

    def test_the_journal_lives_next_to_a_sqlite_database_or_in_the_working_directory(self) -> None:
        self.assertEqual(
            default_journal_path(DatabaseSpec("sqlite", path="/var/lib/balanca/data.sqlite3")),
            "/var/lib/balanca/data-journal.sqlite3",
        )
        self.assertRegex(
            default_journal_path(DatabaseSpec("mysql", database="plant")),
            r"^balanca-journal-plant-[0-9a-f]{10}\.sqlite3$",
        )

    async def test_a_journal_of_another_database_is_moved_aside_and_never_replayed(self) -> None:
        other = DatabaseSpec("mysql", host="db.example", database="plant")
        opened = open_file(self.journal_path, identity(other))
        self.assertEqual(opened.foreign, None)
        with sqlite3.connect(self.journal_path) as connection:
            connection.execute("INSERT INTO pending (row) VALUES (?)", (dump(encoded(1)),))
        lines = self.logged()
        store = await self.start_store(record="all")
        store.reading(make_reading(2), b"")
        await store.flush()
        self.assertEqual(self.query("SELECT seq FROM readings"), [(2,)])
        [moved] = glob.glob(os.path.join(self.directory, "journal.foreign-*.sqlite3"))
        with sqlite3.connect(moved) as connection:
            self.assertEqual(connection.execute("SELECT COUNT(*) FROM pending").fetchone(), (1,))
        [line] = [line for line in lines if "belongs to another database" in line]
        self.assertIn("mysql://db.example:3306/plant", line)
        self.assertIn(moved, line)

    async def test_a_journal_of_this_database_is_replayed_at_start(self) -> None:
        open_file(self.journal_path, identity(self.spec()))
        with sqlite3.connect(self.journal_path) as connection:
            connection.execute("INSERT INTO pending (row) VALUES (?)", (dump(encoded(1)),))
        await self.start_store()
        self.assertEqual(self.query("SELECT seq FROM readings"), [(1,)])

    def test_each_start_gets_its_own_run(self) -> None:
        self.assertNotEqual(self.make_store().run, self.make_store().run)

    async def test_a_time_without_offset_is_refused(self) -> None:
        store = await self.start_store()
        self.assertRaises(ValueError, store.readings, since=datetime(2025, 1, 1))

    async def test_the_store_records_what_the_hub_publishes(self) -> None:
        store = await self.start_store(record="all")
        hub = Hub(self.clock, stale_after=3)
        hub.subscribe(store)
        hub.publish(make_reading(1, "5.25"))
        await store.flush()
        self.assertEqual([r["weight"] for r in await store.readings()], ["5.25"])
        hub.stop()


class CutAfter:
    """A transaction whose connection is lost after `statements` statements."""

    def __init__(self, txn: Any, statements: int) -> None:
        self.txn, self.left = txn, statements

    def execute(self, *args: Any) -> Any:
        if not self.left:
            raise adbapi.ConnectionLost()
        self.left -= 1
        return self.txn.execute(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.txn, name)


def encoded(seq: int) -> tuple[object, ...]:
    """The row of reading `seq`, as the journal keeps it."""
    return encode_reading(make_reading(seq), "earlier-run")


def _refused_reading(seq: int) -> Reading:
    """A reading the test's constraint refuses (see `refuse_source`)."""
    return replace(make_reading(seq), source="bad")


class StoreRobustnessTests(Base):
    """Refused rows, migrations that fail half-way, pruning: whatever the database."""

    async def test_a_row_the_database_refuses_is_set_aside_and_the_rest_are_written(self) -> None:
        store = await self.start_store(record="all")
        self.refuse_source("bad")
        lines = self.logged()
        for seq in range(1, 6):
            store.reading(_refused_reading(seq) if seq in (2, 4) else make_reading(seq), b"")
        await store.flush()
        self.assertEqual(self.query("SELECT seq FROM readings ORDER BY seq"), [(1,), (3,), (5,)])
        letters = self.dead_letters()
        self.assertEqual([row["seq"] for _, row in letters], [2, 4])
        self.assertEqual(store.health()["dead_letters"], 2)
        series = BalancaCollector([], None, store)._database()  # type: ignore[arg-type]
        dead = [m.samples[0].value for m in series if m.name == "balanca_db_dead_letters"]
        self.assertEqual(dead, [2])
        self.assertEqual((store.state, store.rows_written), ("ok", 3))
        self.assertEqual(len([line for line in lines if "set aside" in line]), 1, lines)
        store.reading(make_reading(6), b"")
        await store.flush()
        self.assertEqual(self.query("SELECT COUNT(*) FROM readings"), [(4,)])

    async def test_an_operator_lists_replays_and_drops_dead_letters(self) -> None:
        store = await self.start_store(record="all")
        self.refuse_source("bad")
        for seq in (1, 2, 3):
            store.reading(_refused_reading(seq), b"")
        await store.flush()
        await store.stopService()
        url = self.db_url()
        out = io.StringIO()
        with redirect_stdout(out):
            self.assertEqual(
                deadletters.main(["list", "--db", url, "--journal", self.journal_path]), 0
            )
        self.assertEqual(
            [line.split("\t")[0] for line in out.getvalue().splitlines()], ["1", "2", "3"]
        )
        with redirect_stdout(io.StringIO()):
            self.assertEqual(
                deadletters.main(
                    ["replay", "--db", url, "--journal", self.journal_path, "--id", "1"]
                ),
                1,
            )
            self.assertEqual(len(self.dead_letters()), 3, "still refused, still kept")
            self.accept_source("bad")
            self.assertEqual(
                deadletters.main(
                    [
                        "replay",
                        "--db",
                        url,
                        "--journal",
                        self.journal_path,
                        "--id",
                        "1",
                        "--id",
                        "2",
                    ]
                ),
                0,
            )
            self.assertEqual(
                deadletters.main(["drop", "--db", url, "--journal", self.journal_path, "--all"]), 0
            )
        self.assertEqual(self.query("SELECT seq FROM readings ORDER BY seq"), [(1,), (2,)])
        self.assertEqual(self.dead_letters(), [])

    async def test_a_query_the_database_refuses_fails_as_db_error(self) -> None:
        store = await self.start_store()
        self.query("DROP TABLE records")
        with self.assertRaises(DatabaseRefused) as raised:
            await store.interact(ledger.extent)
        self.assertEqual(raised.exception.code, "db_error")
        self.assertIn("records", str(raised.exception))
        self.assertIsInstance(raised.exception, DatabaseUnavailable, "api.py answers it 503")

    def use_migrations(self, extra: str) -> Path:
        """Serve the real migrations plus `900_extra.sql` holding `extra`, from a copy."""
        folder = Path(self.directory) / "migrations"
        shutil.copytree(schema.MIGRATIONS, folder)
        (folder / self.dialect / "900_extra.sql").write_text(extra)
        self.patch(schema, "MIGRATIONS", folder)
        return folder / self.dialect / "900_extra.sql"

    async def test_a_migration_failing_half_way_lets_the_next_start_finish_it(self) -> None:
        migration = self.use_migrations(
            "CREATE TABLE IF NOT EXISTS extra (id INTEGER);\nCREATE TABLE broken (;\n"
        )
        store = self.make_store()
        store.startService()
        with self.assertRaises(DatabaseRefused):
            await store.flush()
        self.assertEqual(store.condition(), ("degraded", "db_error"))
        await store.stopService()
        if self.dialect == "sqlite":  # one transaction: nothing of it stayed
            self.assertEqual(self.query("SELECT name FROM sqlite_master"), [])
        migration.write_text("CREATE TABLE IF NOT EXISTS extra (id INTEGER);\n")
        await self.start_store()
        self.assertEqual(
            self.query("SELECT version FROM schema_version ORDER BY version"),
            [(n,) for n, _, _ in schema.migrations(self.dialect)],
        )
        self.assertEqual(self.query("SELECT MAX(version) FROM schema_version"), [(900,)])

    async def test_a_migration_retried_after_a_lost_connection_completes(self) -> None:
        real, cut = database_module.migrate, []

        def cut_once(txn: Any, dialect: schema.Dialect) -> list[str]:
            if cut:
                return real(txn, dialect)
            cut.append(True)
            return real(CutAfter(txn, 4), dialect)

        self.patch(database_module, "migrate", cut_once)
        store = await self.start_store()
        self.assertEqual((cut, store.state), ([True], "ok"))
        self.assertEqual(
            self.query("SELECT version FROM schema_version ORDER BY version"),
            [(n,) for n, _, _ in schema.migrations(self.dialect)],
        )
        store.reading(make_reading(1), b"")
        await store.flush()

    async def test_readings_older_than_keep_days_are_pruned_in_batches(self) -> None:
        self.patch(prune, "PRUNE_BATCH", 3)
        now = START + timedelta(days=10)
        self.clock.advance(now.timestamp())
        store = await self.start_store(record="all", keep_days=2)
        for seq in range(1, 11):  # 1-7 are 3 days old or more, 8-10 less than 2
            store.reading(make_reading(seq, time=now - timedelta(days=10 - seq, hours=-1)), b"")
        await store.flush()
        self.clock.advance(prune.PRUNE_INTERVAL)

        await wait_until(lambda: store.pruner is not None and store.pruner.pruned == 7)
        self.assertEqual(self.query("SELECT seq FROM readings ORDER BY seq"), [(8,), (9,), (10,)])
        self.assertEqual(await store.prune(), 0)


class SQLiteRobustnessTests(StoreRobustnessTests, SQLiteCase):
    """On a SQLite file."""


class MariaDBRobustnessTests(StoreRobustnessTests, MariaDBCase):
    """On MariaDB."""

    def test_every_mysql_migration_statement_can_run_twice(self) -> None:
        connection = pymysql.connect(**MARIADB)
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE `{self.database}`")
                cursor.execute(f"USE `{self.database}`")
                for _, _, statements in migrations("mysql"):
                    for statement in statements:
                        cursor.execute(statement)
                        cursor.execute(statement)
        finally:
            connection.close()
