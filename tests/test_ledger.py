"""The records table on SQLite and the real MariaDB: records come back exactly as sealed, and
a row edited or deleted behind the service's back breaks the chain where it was changed."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.trial.unittest import TestCase

from balanca.records.seal import RECORD_KEYS, verify_chain
from balanca.store import ledger
from balanca.store.schema import DIALECTS, migrations
from tests.base import skip_or_fail
from tests.storebase import MARIADB

KEY = Ed25519PrivateKey.generate()


def draft(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        k: None for k in RECORD_KEYS if k not in ("number", "prev", "hash", "signature")
    }
    record.update(
        kind="weighing",
        scale="truck",
        run="r1",
        seq=7,
        time="2025-10-30T13:38:15.835260-03:00",
        captured="2025-10-30T13:38:16.000001-03:00",
        weight="12.345",
        unit="t",
        decimals=3,
        mode="gross",
        tare="0.000",
        status="ok",
        source="serial",
        frame="02202020313233343503",
        plate="ABC1D23",
        note="Carga de açúcar — 1ª",
        again=False,
    )
    record.update(fields)
    del record["voided_by"]
    return record


class LedgerCases(TestCase):
    """The same checks on each database (run by the subclasses below)."""

    __test__ = False
    dialect = DIALECTS["sqlite"]

    def cursor(self) -> Any:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def append(self, **fields: Any) -> dict[str, Any]:
        record = ledger.append(
            self.cursor(),
            self.dialect,
            draft(**fields),
            KEY,
            "2025-10-30 16:38:16.000001",
            uuid.uuid4().hex,
        )
        self.commit()
        return record

    def all_records(self) -> list[dict[str, Any]]:
        return ledger.batch(self.cursor(), self.dialect, 0, 1000)

    def test_records_come_back_exactly_as_sealed_and_the_chain_verifies(self) -> None:
        written = [self.append(), self.append(seq=8, again=True), self.append(weight="0.010")]
        self.assertEqual([r["number"] for r in written], [1, 2, 3])
        read = ledger.get(self.cursor(), self.dialect, 2)
        self.assertEqual(read, written[1])
        self.assertIs(read and read["again"], True)
        verdict = verify_chain(self.all_records(), KEY.public_key())
        self.assertTrue(verdict.ok)

    def test_a_capture_sent_twice_writes_one_record(self) -> None:
        self.append()
        once = ledger.append(self.cursor(), self.dialect, draft(), KEY, "x", "capture-1")
        again = ledger.append(self.cursor(), self.dialect, draft(seq=99), KEY, "x", "capture-1")
        self.commit()
        self.assertEqual(again, once)
        self.assertEqual(ledger.extent(self.cursor())[1], 2)

    def test_a_void_shows_as_voided_by_in_listings(self) -> None:
        self.append()
        void = self.append(kind="void", voids=1, reason="wrong plate", weight=None)
        [newest, first] = ledger.listing(self.cursor(), self.dialect, ledger.Filters())
        self.assertEqual((newest["number"], first["voided_by"]), (2, void["number"]))
        self.assertTrue(verify_chain(self.all_records(), KEY.public_key()).ok)

    def test_an_update_behind_the_services_back_is_caught_at_that_number(self) -> None:
        for _ in range(4):
            self.append()
        self.cursor().execute("UPDATE records SET weight = '99.999' WHERE number = 3")
        self.commit()
        verdict = verify_chain(self.all_records(), KEY.public_key()).to_json()
        self.assertEqual(verdict, {"ok": False, "records": 4, "first_bad": 3, "problem": "hash"})

    def test_a_deleted_row_is_caught_as_a_gap(self) -> None:
        for _ in range(4):
            self.append()
        self.cursor().execute("DELETE FROM records WHERE number = 2")
        self.commit()
        verdict = verify_chain(self.all_records(), KEY.public_key()).to_json()
        self.assertEqual(verdict, {"ok": False, "records": 3, "first_bad": 2, "problem": "gap"})

    def test_listings_filter_by_scale_plate_kind_and_number(self) -> None:
        self.append()
        self.append(scale="floor", plate=None)
        self.append(kind="in", plate="XYZ9876")
        list_ = lambda **f: [  # noqa: E731
            r["number"] for r in ledger.listing(self.cursor(), self.dialect, ledger.Filters(**f))
        ]
        self.assertEqual(list_(scale="truck"), [3, 1])
        self.assertEqual(list_(plate="XYZ9876"), [3])
        self.assertEqual(list_(kind="weighing"), [2, 1])
        self.assertEqual(list_(before=3, limit=1), [2])


class SQLiteLedger(LedgerCases):
    __test__ = True

    def setUp(self) -> None:
        self.connection = sqlite3.connect(":memory:")
        for _, _, statements in migrations("sqlite"):
            for statement in statements:
                self.connection.execute(statement)
        self._cursor = self.connection.cursor()

    def cursor(self) -> Any:
        return self._cursor

    def commit(self) -> None:
        self.connection.commit()


class MariaDBLedger(LedgerCases):
    __test__ = True
    dialect = DIALECTS["mysql"]

    def setUp(self) -> None:
        try:
            import pymysql

            self.connection = pymysql.connect(**MARIADB, autocommit=False, connect_timeout=3)
        except Exception as e:  # noqa: BLE001 - any failure to connect means no MariaDB here
            skip_or_fail(f"no MariaDB at 127.0.0.1:3306 ({e})")
        name = f"balanca_test_ledger_{uuid.uuid4().hex[:12]}"
        self._cursor = self.connection.cursor()
        self._cursor.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        self.addCleanup(self._cursor.execute, f"DROP DATABASE {name}")
        self._cursor.execute(f"USE {name}")
        for _, _, statements in migrations("mysql"):
            for statement in statements:
                self._cursor.execute(statement)

    def cursor(self) -> Any:
        return self._cursor

    def commit(self) -> None:
        self.connection.commit()
