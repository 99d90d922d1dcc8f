"""A database written by a real 0.1 run upgrades: its weighings become records 1 to N, in id
order, sealed once, and its readings stay. The fixtures are dumps of 0.1 (commit 6b9b419)
recording three weighings from the simulator, on SQLite and on MariaDB."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pymysql

from balanca.records.seal import verify_chain
from tests.storebase import MARIADB, MariaDBCase, SQLiteCase
from tests.test_recordbook import KEY, start_book

FIXTURES = Path(__file__).parent / "fixtures"


class UpgradeCases:
    """Checks run on each database (mixed into the cases below)."""

    weights: tuple[str, ...] = ()
    """The weights the 0.1 run recorded in this database's fixture."""

    def load_fixture(self) -> None:
        raise NotImplementedError

    async def test_0_1_weighings_become_sealed_records_and_readings_stay(self) -> None:
        case: Any = self
        self.load_fixture()
        weighings = case.query("SELECT id, reference FROM weighings ORDER BY id")
        book = await start_book(case)
        records = [await book.get(n) for n in range(1, len(weighings) + 1)]
        case.assertEqual([r["reference"] for r in records], [w[1] for w in weighings])
        case.assertEqual(
            [(r["kind"], r["weight"], r["unit"], r["decimals"]) for r in records],
            [("weighing", w, "kg", 0) for w in self.weights],
        )
        case.assertEqual(records[0]["note"], "feito pelo 0.1")
        case.assertTrue(verify_chain(records, KEY.public_key()).ok)
        case.assertEqual(book.state, "ok")
        case.assertEqual(case.query("SELECT COUNT(*) FROM readings"), [(6,)])
        again = await start_book(case)  # a second start seals nothing more
        case.assertEqual((await again.verify()).records, 3)


class SQLiteUpgrade(UpgradeCases, SQLiteCase):
    weights = ("16680", "32860", "7550")

    def load_fixture(self) -> None:
        with sqlite3.connect(self.path) as db:
            db.executescript((FIXTURES / "balanca-0.1-sqlite.sql").read_text())


class MariaDBUpgrade(UpgradeCases, MariaDBCase):
    weights = ("11040", "4490", "9470")

    def load_fixture(self) -> None:
        connection = pymysql.connect(**MARIADB)
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4")
                cursor.execute(f"USE `{self.database}`")
                dump = (FIXTURES / "balanca-0.1-mysql.sql").read_text()
                for statement in dump.split(";\n"):
                    if statement.strip():
                        cursor.execute(statement)
            connection.commit()
        finally:
            connection.close()
