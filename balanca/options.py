"""`twistd balanca`'s options, from four places: the command line wins over the environment,
which wins over the configuration file (`--config`), which wins over the defaults.

Every option has an environment variable (`--stale-after` reads `BALANCA_STALE_AFTER`; a list
option such as `--scale` or `--http` a space-separated list) and a key of the same name in the
file; a list given in a higher place replaces the lower one whole. Values are checked at
start: a bad one stops the service with one line that says what to fix and, for a value from
the file, names the file and the key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from twisted.internet import reactor as global_reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.python import usage

from balanca import __version__
from balanca.config import (
    ScaleSpec,
    check_stale_after,
    nonnegative_decimal,
    parse_scale,
    parse_scales,
    split_scale_id,
)
from balanca.config_file import OptionKind, Site, read_config
from balanca.http.security import Access, read_operators_file, read_token_file
from balanca.publish.settings import MqttSpec, parse_mqtt
from balanca.records.transaction import Rules
from balanca.store.spec import DatabaseSpec, db_from_environment, parse_db

T = TypeVar("T")
LIST_DEFAULTS = {
    "http": ["dualstack:8080"],
    "ws": [],
    "allowed-origin": [],
    "scale": ["simulator"],
}
"""The repeatable options and their defaults."""
COMMAND_LINE, ENVIRONMENT = "command line", "environment"
SITE_ID = re.compile(r"[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?")


def env_name(option: str) -> str:
    """The environment variable of `option`: `--stale-after` reads `BALANCA_STALE_AFTER`."""
    return "BALANCA_" + option.upper().replace("-", "_")


class Options(usage.Options):
    """`twistd balanca` options (DESIGN.md's table, "Several scales", "Configuration file")."""

    synopsis = "[options]"
    longdesc = "Serve weighing scales' live weight over HTTP and WebSocket, and record it."
    optParameters = [
        ["config", None, None, "TOML configuration file: options, [scales] and [site]"],
        ["stale-after", None, "3", "seconds without a frame before the latest reading is stale"],
        [
            "db",
            None,
            None,
            "sqlite:PATH or mysql://USER[:PASS]@HOST[:PORT]/DB [default: sqlite:balanca.sqlite3]",
        ],
        ["record", None, "stable", "which readings are stored: stable, all or none"],
        [
            "keep-readings",
            None,
            None,
            "days of readings to keep (older ones are pruned) [default: all]",
        ],
        ["min-weight", None, "0", "capture minimum of every scale without its own min-weight="],
        ["tare-days", None, "90", "days a stored vehicle tare stays in force"],
        [
            "tare-tolerance",
            None,
            "10",
            "percent a closing tare may differ from the stored tare before it is flagged",
        ],
        ["site-id", None, None, "the site's id (MQTT topics) [default: [site] id, or host name]"],
        ["token-file", None, None, "file holding the bearer token that writes need"],
        ["read-token-file", None, None, "file holding a token that reads and /ws need too"],
        ["operators-file", None, None, "file of name:token lines: operators whose tokens write"],
        [
            "records-key",
            None,
            "balanca-records.key",
            "the Ed25519 key that signs records (created 0600 when missing)",
        ],
        ["ping-interval", None, "30", "seconds between WebSocket keepalive pings"],
        ["ping-timeout", None, "10", "seconds to wait for a pong before dropping a client"],
        [
            "ws-max-queue",
            None,
            "32",
            "messages a slow WebSocket client may have queued before readings are skipped",
        ],
        ["mqtt", None, None, "publish to an MQTT broker: mqtt://[USER@]HOST[:1883] or mqtts://..."],
        ["mqtt-password-file", None, None, "file holding the MQTT user's password"],
        ["mqtt-ca-file", None, None, "CA certificates (PEM) that an mqtts:// broker is checked by"],
        ["mqtt-prefix", None, "balanca", "the first level of every MQTT topic"],
        ["mqtt-version", None, "5", "MQTT protocol version: 5 or 3.1.1"],
    ]
    optFlags = [["mqtt-discovery", None, "publish Home Assistant discovery for each scale"]]

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.environ = os.environ if environ is None else environ
        self.origins: dict[str, str] = {}
        """Where each option not left at its default came from: COMMAND_LINE, ENVIRONMENT or
        the configuration file's path."""
        self.site: dict[str, str] = {}
        """The `[site]` table of the configuration file."""
        for name, default in LIST_DEFAULTS.items():
            self[name] = list(default)
            if words := self.environ.get(env_name(name)):
                self[name], self.origins[name] = words.split(), ENVIRONMENT
        for option in (str(p[0]) for p in self.optParameters):
            if value := self.environ.get(env_name(option)):
                self[option], self.origins[option] = value, ENVIRONMENT
        for flag in (str(f[0]) for f in self.optFlags):
            if self.environ.get(env_name(flag), "").lower() in ("1", "true", "yes"):
                self[flag], self.origins[flag] = True, ENVIRONMENT
        for name, handler in list(self._dispatch.items()):
            self._dispatch[name] = self._tracked(name, handler)
        self.settings: Settings | None = None
        self._failed = False

    def _tracked(self, name: str, handler: Any) -> Callable[[str, str], None]:
        """`handler` of option `name`, noting that the command line gave the option."""

        def dispatch(option: str, value: str) -> None:
            if isinstance(handler, usage.CoerceParameter):
                handler.dispatch(option, value)
            else:
                handler(option, value)
            self.origins[name] = COMMAND_LINE

        return dispatch

    def parseOptions(self, options: list[str] | None = None) -> None:
        """Parse; a usage error says what is wrong and where help is, without the help."""
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            self._failed = True
            raise usage.UsageError(f"{e} (see: twistd balanca --help)") from None

    def getUsage(self, width: int | None = None) -> str:
        """The options' help, or nothing after a usage error (twistd prints the help before
        the error, which then scrolled away behind 27 lines)."""
        return "" if self._failed else super().getUsage(width)  # type: ignore[no-any-return]

    def _append(self, name: str, value: str) -> None:
        """Add to list option `name`; its first use on the command line replaces the list."""
        if self.origins.get(name) != COMMAND_LINE:
            self[name] = []
        self[name].append(value)

    def opt_scale(self, spec: str) -> None:
        """[ID=]SPEC: simulator[:protocol=P][:rate=HZ], serial:DEVICE[:...] or tcp:HOST:PORT[:protocol=P], each with [:min-weight=W] (repeatable; several need ids) [default: simulator]"""
        self._append("scale", spec)

    def opt_http(self, endpoint: str) -> None:
        """HTTP + WebSocket (/ws) listener, a Twisted endpoint string (repeatable) [default: dualstack:8080]"""
        self._append("http", endpoint)

    def opt_ws(self, endpoint: str) -> None:
        """extra WebSocket-only listener, any path (repeatable)"""
        self._append("ws", endpoint)

    def opt_allowed_origin(self, pattern: str) -> None:
        """browser origin allowed on the WebSocket besides the page's own, e.g. https://*.example.com (repeatable)"""
        self._append("allowed-origin", pattern)

    def opt_version(self) -> None:
        """show the version and exit"""
        print(f"balanca {__version__}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        try:
            if self["config"]:
                self._read_config(self["config"])
            self.settings = settings_from(self, self.environ)
        except ValueError as e:
            raise usage.UsageError(str(e)) from None

    def _read_config(self, path: str) -> None:
        """Put the file's values under those the command line or the environment gave."""
        known: dict[str, OptionKind] = {
            str(p[0]): "text" for p in self.optParameters if p[0] != "config"
        }
        known.update((name, "list") for name in LIST_DEFAULTS if name != "scale")
        known.update((str(f[0]), "flag") for f in self.optFlags)
        config = read_config(path, known)
        given = dict(config.options)
        if config.scales is not None:
            given["scale"] = config.scales
        for name, value in given.items():
            if name not in self.origins:
                self[name], self.origins[name] = value, path
        self.site = config.site


@dataclass(frozen=True)
class Settings:
    """Validated options."""

    http: list[tuple[str, IStreamServerEndpoint]]
    ws: list[tuple[str, IStreamServerEndpoint]]
    scales: list[tuple[str, ScaleSpec]]
    """Each scale's id and spec, in the order configured."""
    db: DatabaseSpec
    record: str
    keep_readings: float | None
    stale_after: float
    min_weight: Decimal
    rules: Rules
    """Stored tares: `--tare-days`, `--tare-tolerance`."""
    site: Site
    access: Access
    records_key: str
    ping_interval: float
    ping_timeout: float
    ws_max_queue: int
    mqtt: MqttSpec | None = None
    """Where to publish the site (None: fleet publishing is off)."""

    @property
    def scale(self) -> ScaleSpec:
        """The first scale's spec (a lone scale's, as 0.1 had it)."""
        return self.scales[0][1]


def blamed(options: usage.Options, name: str, message: str) -> str:
    """`message` about option `name`, prefixed with the file and key when the value came from
    the configuration file."""
    origin = getattr(options, "origins", {}).get(name)
    if origin in (None, COMMAND_LINE, ENVIRONMENT):
        return message
    return f"{origin}: key {name!r}: {message}"


def checked(options: usage.Options, name: str, convert: Callable[[Any], T]) -> T:
    """`convert(options[name])`; its ValueError names the file and key where it came from."""
    try:
        return convert(options[name])
    except ValueError as e:
        raise ValueError(blamed(options, name, str(e))) from None


def settings_from(options: usage.Options, environ: Mapping[str, str]) -> Settings:
    """Check every option and turn it into a value; ValueError says what is wrong."""
    if options["record"] not in ("stable", "all", "none"):
        message = f"--record must be stable, all or none, not {options['record']!r}"
        raise ValueError(blamed(options, "record", message))
    if options["db"]:
        db = checked(options, "db", parse_db)
    else:
        db = db_from_environment(environ) or parse_db("sqlite:balanca.sqlite3")
    write_token = environ.get("BALANCA_TOKEN", "").strip() or None
    if options["token-file"]:
        write_token = checked(options, "token-file", read_token_file)
    read_token = (
        checked(options, "read-token-file", read_token_file) if options["read-token-file"] else None
    )
    operators = (
        checked(options, "operators-file", read_operators_file) if options["operators-file"] else ()
    )
    if read_token is not None and write_token is None and not operators:
        raise ValueError(
            "--read-token-file without --token-file would leave tare, zero and weighings "
            "public while the weight is private: give --token-file (or BALANCA_TOKEN) or"
            " --operators-file too"
        )
    if not options["http"] and not options["ws"]:
        raise ValueError("nothing to listen on: give --http or --ws")
    scales, stale_after = configured_scales(options), _positive(options, "stale-after")
    for _, spec in scales:
        check_stale_after(spec, stale_after)
    return Settings(
        http=checked(options, "http", lambda texts: [(s, server_endpoint(s)) for s in texts]),
        ws=checked(options, "ws", lambda texts: [(s, server_endpoint(s)) for s in texts]),
        scales=scales,
        db=db,
        record=options["record"],
        keep_readings=_positive(options, "keep-readings") if options["keep-readings"] else None,
        stale_after=stale_after,
        min_weight=checked(options, "min-weight", lambda t: nonnegative_decimal(t, "--min-weight")),
        rules=Rules(
            _positive(options, "tare-days"),
            checked(
                options, "tare-tolerance", lambda t: nonnegative_decimal(t, "--tare-tolerance")
            ),
        ),
        site=site_from(options),
        access=Access(write_token, read_token, tuple(options["allowed-origin"]), operators),
        records_key=options["records-key"],
        ping_interval=_positive(options, "ping-interval"),
        ping_timeout=_positive(options, "ping-timeout"),
        ws_max_queue=_whole(options, "ws-max-queue"),
        mqtt=mqtt_from(options),
    )


def mqtt_from(options: usage.Options) -> MqttSpec | None:
    """`--mqtt` and its companions, or None without `--mqtt`."""
    if not options["mqtt"]:
        for name in ("mqtt-password-file", "mqtt-ca-file", "mqtt-discovery"):
            if options[name]:
                raise ValueError(blamed(options, name, f"--{name} needs --mqtt"))
        return None
    return checked(
        options,
        "mqtt",
        lambda url: parse_mqtt(
            url,
            password_file=options["mqtt-password-file"],
            ca_file=options["mqtt-ca-file"],
            prefix=options["mqtt-prefix"],
            version=str(options["mqtt-version"]),
            discovery=bool(options["mqtt-discovery"]),
        ),
    )


def configured_scales(options: usage.Options) -> list[tuple[str, ScaleSpec]]:
    """Each scale's id and spec; a bad `[scales]` entry names the file and its key."""
    specs = list(options["scale"])
    origin = getattr(options, "origins", {}).get("scale")
    if origin not in (None, COMMAND_LINE, ENVIRONMENT):
        if not specs:
            raise ValueError(f"{origin}: key 'scales': the table has no scale")
        for text in specs:
            try:
                parse_scale(split_scale_id(text)[1])
            except ValueError as e:
                raise ValueError(f"{origin}: key 'scales.{text.partition('=')[0]}': {e}") from None
    return parse_scales(specs)


def site_from(options: usage.Options) -> Site:
    """The site: `[site]`, with `--site-id` over its id (default: the host's short name)."""
    table = dict(getattr(options, "site", {}))
    site_id, where = table.get("id"), f"{options['config']}: key 'site.id'"
    if options["site-id"]:
        site_id, where = options["site-id"], blamed(options, "site-id", "--site-id")
    if site_id is not None and not SITE_ID.fullmatch(site_id):
        raise ValueError(
            f"{where}: {site_id!r} must be lower-case letters, digits and dashes (at most 64),"
            " starting and ending with a letter or digit"
        )
    if site_id is not None:
        table["id"] = site_id
    return Site(**table)


def server_endpoint(description: str) -> IStreamServerEndpoint:
    """A server endpoint from its string, or a ValueError naming the bad string."""
    try:
        return serverFromString(global_reactor, description)
    except Exception as e:  # Twisted raises ValueError, KeyError, TypeError, OSError...
        raise ValueError(f"bad endpoint {description!r}: {e}") from None


def _positive(options: usage.Options, name: str) -> float:
    def convert(text: Any) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"--{name} must be a number, not {text!r}") from None
        if not value > 0:
            raise ValueError(f"--{name} must be above 0")
        return value

    return checked(options, name, convert)


def _whole(options: usage.Options, name: str) -> int:
    def convert(value: Any) -> int:
        text = str(value).strip()
        if not (text.isascii() and text.isdigit() and int(text) >= 1):
            raise ValueError(f"--{name} must be a whole number of 1 or more, not {value!r}")
        return int(text)

    return checked(options, name, convert)
