"""The crash drill of issue 12 as a bench line: `kill -9` during a database cut of
`cut_seconds` at `rate` readings/s with `--record all`, then a restart and the database's
return; how many readings did the kill cost? Needs MariaDB on 127.0.0.1:3306 (root, no
password); the drill makes and drops a database of its own.

    python bench/run.py --crash-drill [--crash-cut 30] [--rate 20]
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def crash_drill(cut_seconds: float, rate: int) -> dict[str, Any]:
    """Run the drill (tests/crashdrill.py) against a proxy to MariaDB; its figures."""
    import pymysql
    from twisted.internet import reactor
    from twisted.internet.threads import blockingCallFromThread, deferToThread

    from tests.crashdrill import crash_during_outage
    from tests.dbproxy import CuttableProxy
    from tests.storebase import MARIADB

    database = f"balanca_crash_{uuid.uuid4().hex[:12]}"
    proxy = CuttableProxy()
    outcome: dict[str, Any] = {}

    def query(sql: str) -> list[tuple[Any, ...]]:
        connection = pymysql.connect(**MARIADB, database=database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def drill() -> None:
        result = crash_during_outage(
            f"mysql://root@127.0.0.1:{proxy.port}/{database}",
            lambda: blockingCallFromThread(reactor, proxy.cut),
            lambda: blockingCallFromThread(reactor, proxy.restore),
            query,
            cut_seconds=cut_seconds,
            rate=rate,
        )
        stored = result.stored
        outcome.update(
            cut_s=round(result.outage_seconds, 1),
            rate=rate,
            last_seen=result.last_seen,
            stored=len(stored),
            duplicates=len(stored) - len(set(stored)),
            gaps=len(set(range(1, max(stored, default=0) + 1)) - set(stored)),
            lost=result.lost,
        )

    def done(failure: Any) -> None:
        if failure is not None:
            outcome["error"] = failure.getTraceback()
        connection = pymysql.connect(**MARIADB)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
        connection.close()
        reactor.stop()

    def start() -> None:
        proxy.restore()
        deferToThread(drill).addCallbacks(lambda _: done(None), done)

    reactor.callWhenRunning(start)
    reactor.run()
    return outcome


def crash_line(outcome: dict[str, Any]) -> str:
    """The drill as one Markdown line."""
    if "error" in outcome:
        return f"kill -9 drill failed: {outcome['error'].strip().splitlines()[-1]}"
    o = outcome
    return (
        f"kill -9 after a {o['cut_s']:g} s database cut at {o['rate']} readings/s: "
        f"**{o['lost']} readings lost** (newest seen {o['last_seen']}, {o['stored']} stored, "
        f"{o['duplicates']} duplicates, {o['gaps']} gaps)"
    )
