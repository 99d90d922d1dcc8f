"""Which database the store records into: `--db` URLs and the old deployment's `MYSQL_*`
variables, parsed into a `DatabaseSpec` (pure; `ValueError` with a message an operator can act
on, which `balanca.options` turns into a usage error)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class DatabaseSpec:
    """Which database to record into, from `--db` or the `MYSQL_*` variables."""

    dialect: Literal["sqlite", "mysql"]
    path: str = ""
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = field(default="", repr=False)
    """Never printed: not in `describe()`, the repr or an error."""
    database: str = "balanca"

    def describe(self) -> str:
        """Where it is, without the password."""
        if self.dialect == "sqlite":
            return f"SQLite {self.path}"
        return f"MySQL {self.user}@{self.host}:{self.port}/{self.database}"


def redact(url: str) -> str:
    """`url` with the password of its `USER:PASS@` part replaced by `***`."""
    return re.sub(r"^([a-z]+://[^:@/]*:)[^/]*@", r"\1***@", url)


def parse_db(url: str) -> DatabaseSpec:
    """Parse `sqlite:PATH` or `mysql://USER[:PASS]@HOST[:PORT]/DB`."""
    if url.startswith("sqlite:"):
        path = url[len("sqlite:") :]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ValueError("--db sqlite: needs a path, as sqlite:balanca.sqlite3")
        return DatabaseSpec("sqlite", path=path)
    if url.startswith("mysql://"):
        parts = urlsplit(url)
        database = parts.path.lstrip("/")
        if not parts.hostname or not database:
            raise ValueError("--db must look like mysql://USER[:PASS]@HOST[:PORT]/DB")
        try:
            port = parts.port or 3306
        except ValueError:
            raise ValueError(f"--db {redact(url)!r}: the port must be a number") from None
        return DatabaseSpec(
            "mysql",
            host=parts.hostname,
            port=port,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            database=database,
        )
    raise ValueError(f"--db {redact(url)!r}: use sqlite:PATH or mysql://USER[:PASS]@HOST[:PORT]/DB")


def db_from_environment(env: Mapping[str, str]) -> DatabaseSpec | None:
    """The old deployment's `MYSQL_*` variables, when `MYSQL_HOST` or `MYSQL_DATABASE` is set."""
    if not (env.get("MYSQL_HOST") or env.get("MYSQL_DATABASE")):
        return None
    port = env.get("MYSQL_PORT", "3306")
    if not port.isdigit():
        raise ValueError(f"MYSQL_PORT must be a number, not {port!r}")
    return DatabaseSpec(
        "mysql",
        host=env.get("MYSQL_HOST", "127.0.0.1"),
        port=int(port),
        user=env.get("MYSQL_USER", "root"),
        password=env.get("MYSQL_PASSWORD", ""),
        database=env.get("MYSQL_DATABASE", "balanca"),
    )
