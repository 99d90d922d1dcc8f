"""`--mqtt URL` and its companions, checked at start into one value."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

VERSIONS = ("5", "3.1.1")
PREFIX = re.compile(r"[^#+\s/][^#+\s]*[^#+\s/]|[^#+\s/]")
"""A topic prefix: no wildcards, no spaces, no leading or trailing `/`."""


@dataclass(frozen=True)
class MqttSpec:
    """Where and how to publish: the broker, credentials, TLS, prefix and protocol version."""

    host: str
    port: int
    tls: bool
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    """Never printed: not in `describe()`, the repr or an error."""
    ca_file: str | None = None
    prefix: str = "balanca"
    version: Literal["5", "3.1.1"] = "5"
    discovery: bool = False

    def describe(self) -> str:
        """The broker as logs name it, without the password."""
        who = f"{self.user}@" if self.user else ""
        scheme = "mqtts" if self.tls else "mqtt"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{who}{host}:{self.port} (MQTT {self.version})"


def parse_mqtt(
    url: str,
    *,
    password_file: str | None = None,
    ca_file: str | None = None,
    prefix: str = "balanca",
    version: str = "5",
    discovery: bool = False,
) -> MqttSpec:
    """Check `mqtt://[USER@]HOST[:1883]` or `mqtts://...[:8883]` and the options beside it;
    ValueError says what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"--mqtt must be mqtt://[USER@]HOST[:PORT] or mqtts://..., not {url!r}")
    if parts.password is not None:
        raise ValueError("--mqtt: give the password in --mqtt-password-file, not in the URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"--mqtt takes no path or query: {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"--mqtt: bad port in {url!r}") from None
    tls = parts.scheme == "mqtts"
    if version not in VERSIONS:
        raise ValueError(f"--mqtt-version must be 5 or 3.1.1, not {version!r}")
    if not PREFIX.fullmatch(prefix):
        raise ValueError(f"--mqtt-prefix {prefix!r}: no wildcards, spaces, or / at either end")
    if ca_file is not None and not tls:
        raise ValueError("--mqtt-ca-file needs an mqtts:// broker")
    if ca_file is not None and not Path(ca_file).is_file():
        raise ValueError(f"--mqtt-ca-file {ca_file}: no such file")
    password = None
    if password_file is not None:
        try:
            password = Path(password_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read --mqtt-password-file {password_file}: {e}") from None
    return MqttSpec(
        host=parts.hostname,
        port=port or (8883 if tls else 1883),
        tls=tls,
        user=unquote(parts.username) if parts.username else None,
        password=password,
        ca_file=ca_file,
        prefix=prefix,
        version="5" if version == "5" else "3.1.1",
        discovery=discovery,
    )
