"""Whether the database takes the store's writes in time: its state, the code that says why,
and one log line per change (`database state: ...`), plus the errors the HTTP API maps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

SLOW_AFTER = 3.0
"""Seconds the oldest pending write may wait before the state is `db_slow`."""

State = Literal["ok", "degraded"]


class DatabaseUnavailable(Exception):
    """The database cannot be reached, or did not answer in time (HTTP 503)."""

    code = "db_unavailable"


class DatabaseRefused(DatabaseUnavailable):
    """The database answered with an error other than a lost connection (HTTP 503)."""

    code = "db_error"


def describe(error: BaseException) -> str:
    """An error in one line: its type and message."""
    if isinstance(error, DatabaseUnavailable):
        return str(error)
    return f"{type(error).__name__}: {error}"


def refusal(error: Exception, dbapi: Any) -> Exception:
    """A database's own error (other than a lost connection) as DatabaseRefused; anything
    else (a bug) as it is."""
    return DatabaseRefused(describe(error)) if isinstance(error, dbapi.Error) else error


class Condition:
    """The database's condition as the store sees it: reachable or not, and how long the
    oldest pending write has waited (rows queued, or a call under way)."""

    log = Logger()

    def __init__(self, clock: IReactorTime, database: str, backlog: Callable[[], int]) -> None:
        self.clock = clock
        self.database = database
        self.backlog = backlog
        self.last_error: str | None = "not connected yet"
        self.reachable: bool | None = None
        self.last_contact = clock.seconds()
        self._failure_code = DatabaseUnavailable.code
        self._waiting_since: float | None = None
        self._calls: dict[object, float] = {}
        self._logged: tuple[State, str] | None = None

    def current(self) -> tuple[State, str]:
        """The state and its code: `ok`, `db_unavailable`, `db_error` or `db_slow`."""
        if not self.reachable:
            return "degraded", self._failure_code
        oldest = self.oldest()
        if oldest is not None and oldest >= SLOW_AFTER:
            return "degraded", "db_slow"
        return "ok", "ok"

    def oldest(self) -> float | None:
        """Seconds the oldest pending write has waited (None when nothing waits)."""
        starts = list(self._calls.values())
        if self.backlog() and self._waiting_since is not None:
            starts.append(self._waiting_since)
        return self.clock.seconds() - min(starts) if starts else None

    def queued(self) -> None:
        """A row was queued: the wait starts now unless one is under way."""
        if self._waiting_since is None:
            self._waiting_since = self.clock.seconds()

    def progressed(self) -> None:
        """A batch was written: what is left has waited from now on."""
        self._waiting_since = self.clock.seconds() if self.backlog() else None

    def call_started(self) -> object:
        """A database call starts; returns its token for `call_ended`."""
        token = object()
        self._calls[token] = self.clock.seconds()
        return token

    def call_ended(self, token: object) -> None:
        """The call of `token` is over, however it ended."""
        del self._calls[token]

    def failed(self, error: BaseException) -> None:
        """The database failed: degraded, with the error's code."""
        self.last_error = describe(error)
        self._failure_code = getattr(error, "code", DatabaseUnavailable.code)
        self.reachable = False
        self.log_change()

    def answered(self) -> None:
        """The database answered: reachable (and a wait for it starts again now)."""
        self.last_contact = self.clock.seconds()
        if not self.reachable and self._waiting_since is not None:
            self._waiting_since = self.last_contact
        self.reachable = True
        self.last_error = None
        self.log_change()

    def log_change(self) -> None:
        """One line per change of the state or its code, starting `database state:`."""
        state, code = self.current()
        first_ok = self._logged is None and state == "ok"
        if (state, code) == self._logged or first_ok:
            self._logged = (state, code)
            return
        self._logged = (state, code)
        if state == "ok":
            why = f"{self.backlog()} readings to write"
        elif code == "db_slow":
            why = f"the oldest write has waited {self.oldest() or 0:.1f} s"
        else:
            why = f"{self.last_error}; {self.backlog()} readings waiting"
        self.log.info(
            "database state: {state} [{code}] {database}: {why}",
            state=state, code=code, database=self.database, why=why,
        )  # fmt: skip
