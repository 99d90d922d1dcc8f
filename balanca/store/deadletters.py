"""See, replay or drop the rows the database refused, set aside in the journal's dead letters.

    python -m balanca.store.deadletters list   --db URL [--journal PATH]
    python -m balanca.store.deadletters replay --db URL [--journal PATH] [--id N ...]
    python -m balanca.store.deadletters drop   --db URL [--journal PATH] (--id N ... | --all)

Run it where the service runs (its working directory, for a MySQL database's journal), with
the service's `--db`. `replay` inserts each row again (after the cause was fixed: a constraint
relaxed, a column widened) and forgets those the database takes; the others stay, with the new
reason printed. Safe while the service runs: SQLite locks the journal between them.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Sequence

from balanca.store.journal import load
from balanca.store.pool import connect
from balanca.store.schema import DIALECTS, READING_COLUMNS
from balanca.store.spec import DatabaseSpec, parse_db
from balanca.store.store import default_journal_path


def letters(
    journal: sqlite3.Connection, ids: Sequence[int] = ()
) -> list[tuple[int, str, str, str]]:
    """Dead letters as (id, at, reason, row JSON), oldest first; only `ids` when given."""
    sql = "SELECT id, at, reason, row FROM dead_letters"
    if ids:
        sql += f" WHERE id IN ({', '.join('?' * len(ids))})"
    return list(journal.execute(sql + " ORDER BY id", tuple(ids)))


def replay(journal: sqlite3.Connection, spec: DatabaseSpec, ids: Sequence[int] = ()) -> list[str]:
    """Insert the dead letters into the database, forgetting each one it takes.

    Returns one line per row still refused, with the reason.
    """
    insert = DIALECTS[spec.dialect].insert("readings", READING_COLUMNS)
    database = connect(spec)
    refused = []
    try:
        for id_, _, _, row in letters(journal, ids):
            try:
                database.cursor().execute(insert, load(row))
                database.commit()
            except Exception as error:  # the driver's own error classes differ
                database.rollback()
                refused.append(f"{id_}: still refused: {type(error).__name__}: {error}")
                continue
            with journal:
                journal.execute("DELETE FROM dead_letters WHERE id = ?", (id_,))
    finally:
        database.close()
    return refused


def drop(journal: sqlite3.Connection, ids: Sequence[int] = ()) -> int:
    """Forget dead letters (`ids`, or all of them); returns how many went."""
    chosen = [id_ for id_, *_ in letters(journal, ids)]
    with journal:
        journal.executemany("DELETE FROM dead_letters WHERE id = ?", [(i,) for i in chosen])
    return len(chosen)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m balanca.store.deadletters", description=__doc__.split("\n")[0]
    )
    parser.add_argument("action", choices=("list", "replay", "drop"))
    parser.add_argument("--db", required=True, help="the service's --db")
    parser.add_argument("--journal", help="the journal file [default: the service's own]")
    parser.add_argument(
        "--id", type=int, action="append", default=[], help="only this row (repeatable)"
    )
    parser.add_argument("--all", action="store_true", help="drop: every row")
    args = parser.parse_args(argv)
    spec = parse_db(args.db)
    path = args.journal or default_journal_path(spec)
    if not os.path.exists(path):
        print(f"no journal at {path}", file=sys.stderr)
        return 1
    journal = sqlite3.connect(path)
    try:
        if args.action == "list":
            for id_, at, reason, row in letters(journal, args.id):
                print(f"{id_}\t{at}\t{reason}\t{row}")
            return 0
        if args.action == "replay":
            refused = replay(journal, spec, args.id)
            print("\n".join(refused) or "every row replayed")
            return 1 if refused else 0
        if not args.id and not args.all:
            parser.error("drop needs --id N or --all")
        print(f"dropped {drop(journal, args.id)} rows")
        return 0
    finally:
        journal.close()


if __name__ == "__main__":
    sys.exit(main())
