"""Connections to the database: adbapi pools that log a lost connection in one line, never
hold the process at exit, close off the reactor thread, and give up on a silent server in
seconds (PyMySQL's connect, read and write timeouts)."""

from __future__ import annotations

import threading
from functools import partial
from typing import TYPE_CHECKING, Any

from twisted.enterprise import adbapi
from twisted.internet.defer import Deferred
from twisted.logger import Logger

if TYPE_CHECKING:
    from balanca.store.spec import DatabaseSpec

DB_TIMEOUT = 5
"""Seconds PyMySQL waits to connect, for an answer, or to send, before it calls the connection
lost: a silent server fails a call in seconds instead of holding it."""


class _Connection(adbapi.Connection):
    """adbapi's connection, whose failed rollback on a dead connection is one log line."""

    log = Logger()

    def rollback(self) -> None:
        connection: Any = self._connection
        if not self._pool.reconnect:
            connection.rollback()
            return
        try:
            connection.rollback()
            cursor = connection.cursor()
            cursor.execute(self._pool.good_sql)
            cursor.close()
            connection.commit()
            return
        except Exception as error:
            self._pool.rollback_failed(error)
        self._pool.disconnect(self._connection)
        raise adbapi.ConnectionLost()


class Pool(adbapi.ConnectionPool):
    """A ConnectionPool whose worker threads never keep the process alive, and whose failed
    rollbacks (one per interaction on a lost connection) log one line until it works again."""

    connectionFactory = _Connection
    log = Logger()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threadpool.threadFactory = partial(threading.Thread, daemon=True)  # type: ignore[assignment]
        self._rollbacks_failing = False

    def rollback_failed(self, error: BaseException) -> None:
        """Note a rollback that failed: logged once until an interaction succeeds again."""
        if not self._rollbacks_failing:
            self.log.info("database rollback failed, reconnecting: {error}", error=repr(error))
        self._rollbacks_failing = True

    def _runInteraction(self, interaction: Any, *args: Any, **kw: Any) -> Any:
        conn = self.connectionFactory(self)
        trans = self.transactionFactory(self, conn)
        try:
            result = interaction(trans, *args, **kw)
            trans.close()
            conn.commit()
            self._rollbacks_failing = False
            return result
        except BaseException:
            try:
                conn.rollback()
            except adbapi.ConnectionLost:
                pass  # noted once by rollback_failed
            raise


def close_in_background(pool: adbapi.ConnectionPool, reactor: Any) -> Deferred[None]:
    """Close `pool` without blocking the reactor; fires once its threads are done.

    Closing joins the pool's threads, and one may be waiting on a silent server for up to
    DB_TIMEOUT seconds: that wait happens in a thread of its own.
    """
    for trigger in ("shutdownID", "startID"):
        if getattr(pool, trigger, None) is not None:
            reactor.removeSystemEventTrigger(getattr(pool, trigger))
            setattr(pool, trigger, None)
    done: Deferred[None] = Deferred()

    def close() -> None:
        try:
            pool.finalClose()
        finally:
            reactor.callFromThread(done.callback, None)

    threading.Thread(target=close, name="balanca-db-close", daemon=True).start()
    return done


def connection_pool(spec: DatabaseSpec, reactor: Any) -> adbapi.ConnectionPool:
    """The pool for `spec`: one connection for SQLite, reconnecting ones for MySQL."""
    if spec.dialect == "sqlite":
        return Pool(
            "sqlite3",
            spec.path,
            check_same_thread=False,
            cp_min=1,
            cp_max=1,
            cp_reactor=reactor,
            cp_openfun=_durable_sqlite,
        )
    return Pool(
        "pymysql",
        cp_min=1,
        cp_max=3,
        cp_reconnect=True,
        cp_reactor=reactor,
        database=spec.database,
        **mysql_arguments(spec),
    )


def _durable_sqlite(connection: Any) -> None:
    """WAL, and every commit synced to disk: a record answered 201 survives a power cut."""
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")


def connect(spec: DatabaseSpec) -> Any:
    """A plain DB-API connection to `spec` (blocking: command-line tools, pool threads)."""
    if spec.dialect == "sqlite":
        import sqlite3

        return sqlite3.connect(spec.path)
    import pymysql

    return pymysql.connect(database=spec.database, **mysql_arguments(spec))


def ensure_database(spec: DatabaseSpec) -> None:
    """Create the MySQL database if it is missing (blocking: run it in a pool thread).

    SQLite creates its file on connect.
    """
    if spec.dialect != "mysql":
        return
    import pymysql

    name = spec.database.replace("`", "``")
    connection = pymysql.connect(**mysql_arguments(spec))
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
    finally:
        connection.close()


def mysql_arguments(spec: DatabaseSpec) -> dict[str, Any]:
    """PyMySQL's connection arguments for `spec`, every wait bounded by DB_TIMEOUT."""
    return {
        "host": spec.host,
        "port": spec.port,
        "user": spec.user,
        "password": spec.password,
        "charset": "utf8mb4",
        "connect_timeout": DB_TIMEOUT,
        "read_timeout": DB_TIMEOUT,
        "write_timeout": DB_TIMEOUT,
    }
