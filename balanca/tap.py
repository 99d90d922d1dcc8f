"""`twistd balanca`: the options and `makeService`, the one place that wires objects together.

Every option can also come from an environment variable (`--stale-after` from
`BALANCA_STALE_AFTER`, ...); the command line wins. Values are checked at start, and a bad
one stops the service with a message that says what to fix.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import txaio
from autobahn.twisted.resource import WebSocketResource
from prometheus_client import CollectorRegistry
from twisted.application import internet, service
from twisted.internet import reactor as global_reactor
from twisted.internet.endpoints import clientFromString, connectProtocol, serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python import usage

from balanca import __version__
from balanca.config import (
    DatabaseSpec,
    ScaleSpec,
    check_stale_after,
    db_from_environment,
    parse_db,
    parse_scale,
)
from balanca.endpoints import address_text, is_dual_stack
from balanca.http.api import Api, api_tree
from balanca.http.live import LiveFactory
from balanca.http.metrics import BalancaCollector, MetricsResource
from balanca.http.records import Records, WeighingsEndpoint
from balanca.http.security import Access, RateLimiter, read_operators_file, read_token_file
from balanca.http.site import site_tree, web_root
from balanca.hub import Hub
from balanca.records.key import load_or_create
from balanca.scale.link import Opener, ScaleLink
from balanca.scale.protocols import PROTOCOLS
from balanca.scale.scale import Scale, ScaleProtocol
from balanca.scale.simulator import SimulatedIndicator
from balanca.scale.stability import StabilityFilter
from balanca.store.idempotency import Idempotency
from balanca.store.recordbook import RecordBook
from balanca.store.store import Store

LIST_OPTIONS = ("http", "ws", "allowed-origin")


def env_name(option: str) -> str:
    """The environment variable of `option`: `--stale-after` reads `BALANCA_STALE_AFTER`."""
    return "BALANCA_" + option.upper().replace("-", "_")


class Options(usage.Options):
    """`twistd balanca` options (DESIGN.md's table)."""

    synopsis = "[options]"
    longdesc = "Serve a weighing scale's live weight over HTTP and WebSocket, and record it."
    optParameters = [
        [
            "scale",
            None,
            "simulator",
            "simulator[:protocol=P][:rate=HZ], serial:DEVICE[:...] or tcp:HOST:PORT[:protocol=P]",
        ],
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
    ]

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.environ = os.environ if environ is None else environ
        self["http"], self["ws"], self["allowed-origin"] = ["dualstack:8080"], [], []
        for name in LIST_OPTIONS:
            if words := self.environ.get(env_name(name)):
                self[name] = words.split()
        for option in (str(p[0]) for p in self.optParameters):
            if value := self.environ.get(env_name(option)):
                self[option] = value
        self._given: set[str] = set()
        self.settings: Settings | None = None
        self._failed = False

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
        if name not in self._given:
            self._given.add(name)
            self[name] = []
        self[name].append(value)

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
            self.settings = settings_from(self, self.environ)
        except ValueError as e:
            raise usage.UsageError(str(e)) from None


@dataclass(frozen=True)
class Parts:
    """The main objects of a running service, for introspection (tests, a manhole)."""

    hub: Hub
    scale: Scale
    link: ScaleLink
    live: LiveFactory
    store: Store
    site: Any
    limiter: RateLimiter


class BalancaService(service.MultiService):
    """The whole service; `parts` names its main objects."""

    parts: Parts


@dataclass(frozen=True)
class Settings:
    """Validated options."""

    http: list[tuple[str, IStreamServerEndpoint]]
    ws: list[tuple[str, IStreamServerEndpoint]]
    scale: ScaleSpec
    db: DatabaseSpec
    record: str
    keep_readings: float | None
    stale_after: float
    access: Access
    records_key: str
    ping_interval: float
    ping_timeout: float
    ws_max_queue: int


def settings_from(options: usage.Options, environ: Mapping[str, str]) -> Settings:
    """Check every option and turn it into a value; ValueError says what is wrong."""
    if options["record"] not in ("stable", "all", "none"):
        raise ValueError(f"--record must be stable, all or none, not {options['record']!r}")
    if options["db"]:
        db = parse_db(options["db"])
    else:
        db = db_from_environment(environ) or parse_db("sqlite:balanca.sqlite3")
    write_token = environ.get("BALANCA_TOKEN", "").strip() or None
    if options["token-file"]:
        write_token = read_token_file(options["token-file"])
    read_token = read_token_file(options["read-token-file"]) if options["read-token-file"] else None
    operators = read_operators_file(options["operators-file"]) if options["operators-file"] else ()
    if read_token is not None and write_token is None and not operators:
        raise ValueError(
            "--read-token-file without --token-file would leave tare, zero and weighings "
            "public while the weight is private: give --token-file (or BALANCA_TOKEN) or"
            " --operators-file too"
        )
    if not options["http"] and not options["ws"]:
        raise ValueError("nothing to listen on: give --http or --ws")
    scale, stale_after = parse_scale(options["scale"]), _positive(options, "stale-after")
    check_stale_after(scale, stale_after)
    return Settings(
        http=[(s, server_endpoint(s)) for s in options["http"]],
        ws=[(s, server_endpoint(s)) for s in options["ws"]],
        scale=scale,
        db=db,
        record=options["record"],
        keep_readings=_positive(options, "keep-readings") if options["keep-readings"] else None,
        stale_after=stale_after,
        access=Access(write_token, read_token, tuple(options["allowed-origin"]), operators),
        records_key=options["records-key"],
        ping_interval=_positive(options, "ping-interval"),
        ping_timeout=_positive(options, "ping-timeout"),
        ws_max_queue=_whole(options, "ws-max-queue"),
    )


def server_endpoint(description: str) -> IStreamServerEndpoint:
    """A server endpoint from its string, or a ValueError naming the bad string."""
    try:
        return serverFromString(global_reactor, description)
    except Exception as e:  # Twisted raises ValueError, KeyError, TypeError, OSError...
        raise ValueError(f"bad endpoint {description!r}: {e}") from None


def _positive(options: usage.Options, name: str) -> float:
    try:
        value = float(options[name])
    except ValueError:
        raise ValueError(f"--{name} must be a number, not {options[name]!r}") from None
    if not value > 0:
        raise ValueError(f"--{name} must be above 0")
    return value


def _whole(options: usage.Options, name: str) -> int:
    text = str(options[name]).strip()
    if not (text.isascii() and text.isdigit() and int(text) >= 1):
        raise ValueError(f"--{name} must be a whole number of 1 or more, not {options[name]!r}")
    return int(text)


class Listener(internet.StreamServerEndpointService):
    """An endpoint service that logs where it listens once it does."""

    log = Logger()

    def __init__(
        self,
        description: str,
        endpoint: IStreamServerEndpoint,
        factory: Any,
        what: str,
        option: str = "http",
    ) -> None:
        super().__init__(endpoint, factory)
        self.description, self.what, self.option = description, what, option
        self.port: Any = None
        self._raiseSynchronously = True

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except (CannotListenError, OSError) as e:
            self.log.critical("{message}", message=self.refusal(e))
            raise SystemExit(1) from None
        assert self._waitingForPort is not None
        self._waitingForPort.addCallback(self._listening)

    def refusal(self, error: Exception) -> str:
        """One line on why this listener cannot listen, and what to do."""
        cause = getattr(error, "socketError", None) or error
        why = getattr(cause, "strerror", None) or str(cause)
        if getattr(cause, "errno", None) == errno.EACCES:
            hint = (
                f"ports below 1024 need root, CAP_NET_BIND_SERVICE or "
                f"net.ipv4.ip_unprivileged_port_start (README, Docker); or choose another "
                f"--{self.option}"
            )
        else:
            hint = f"choose another --{self.option}"
        return f"cannot listen on {self.description} ({why}): {hint}"

    def _listening(self, port: Any) -> Any:
        self.port = port
        sock = getattr(port, "socket", None)
        family = (
            "dual-stack IPv4+IPv6" if sock is not None and is_dual_stack(sock) else "single-stack"
        )
        self.log.info(
            "{what} listening on {address} ({family}) from {description}",
            what=self.what,
            address=address_text(port.getHost()),
            family=family,
            description=self.description,
        )
        return port


def opener(spec: ScaleSpec, scale: Scale, reactor: Any) -> Opener:
    """How to connect a scale protocol to the simulator or the endpoint `spec` names (a
    serial device is a `SerialDevice`)."""
    if spec.kind == "simulator":

        def simulate(protocol: ScaleProtocol) -> None:
            SimulatedIndicator(scale.wire, reactor, spec.rate).attach(protocol)

        return simulate
    endpoint = clientFromString(reactor, spec.endpoint)
    return lambda protocol: connectProtocol(endpoint, protocol)


def record_book(
    key_path: str, store: Store, reactor: Any, min_weights: dict[str, Decimal]
) -> RecordBook:
    """The sealed records, signed with the key at `key_path` (made when missing)."""
    try:
        key, created = load_or_create(key_path)
    except (OSError, ValueError) as e:
        raise SystemExit(f"balanca: --records-key {key_path}: {e}") from None
    book = RecordBook(store.interact, store.spec, key, reactor, store.run, min_weights)
    if created:
        Logger(namespace="balanca").info(
            "records: created the signing key {path} ({fingerprint}); keep a copy of it safe",
            path=os.path.abspath(key_path),
            fingerprint=book.fingerprint,
        )
    return book


def makeService(options: Options, reactor: Any = global_reactor) -> BalancaService:
    """Build the whole service from validated options."""
    settings = options.settings
    assert settings is not None, "postOptions validates the options"
    folder = os.path.dirname(settings.db.path) or "."
    if settings.db.dialect == "sqlite" and not os.path.isdir(folder):
        # Checked at start, not when parsing: systemd's StateDirectory= makes it just before.
        raise SystemExit(f"balanca: --db sqlite:{settings.db.path}: no folder {folder}")
    log = Logger(namespace="balanca")
    # Autobahn's per-frame debug logging costs CPU and floods the log.
    txaio.set_global_log_level("info")  # type: ignore[attr-defined]
    top = BalancaService()
    spec = settings.scale
    hub = Hub(reactor, settings.stale_after)
    stability = StabilityFilter(spec.stable, spec.tolerance) if spec.stable else None
    scale = Scale(
        PROTOCOLS[spec.protocol],
        hub,
        reactor,
        source=spec.source,
        decimals=spec.decimals,
        poll=spec.poll,
        stability=stability,
    )
    if spec.kind == "serial":
        from balanca.scale.device import SerialDevice

        device = SerialDevice(spec.device, spec.line, reactor)
        link = ScaleLink(scale, device.open, reactor, spec.where, device)
    else:
        link = ScaleLink(scale, opener(spec, scale, reactor), reactor, spec.where)
    store = Store(
        settings.db,
        reactor,
        record=settings.record,
        scale=hub.scale,
        keep_days=settings.keep_readings,
    )
    hub.subscribe(store)
    limiter = RateLimiter(reactor)
    live = LiveFactory(
        hub,
        settings.access,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        max_queue=settings.ws_max_queue,
        limiter=limiter,
        reactor=reactor,
    )
    registry = CollectorRegistry()
    collector = BalancaCollector(hub, scale, link, live, store)
    registry.register(collector)
    book = record_book(settings.records_key, store, reactor, {hub.scale: Decimal(0)})
    hub.subscribe(book)
    collector.book = book
    api = Api(
        reactor,
        hub,
        scale,
        store,
        lambda: len(live.clients),
        settings.access,
        limiter,
        lambda: book.state,
    )
    records = Records(book, Idempotency(store.interact, store.dialect, reactor), book.min_weight)
    site = site_tree(
        api_tree(api, (b"weighings", WeighingsEndpoint(api, records))),
        WebSocketResource(live),
        MetricsResource(registry),
        web_root(),
        settings.access,
        limiter,
        reactor,
    )
    collector.site = site
    top.parts = Parts(hub, scale, link, live, store, site, limiter)
    # Services stop in reverse order: listeners, then the scale, then the store, which writes
    # everything the scale published before the process exits.
    store.setServiceParent(top)
    book.setServiceParent(top)
    link.setServiceParent(top)
    for description, endpoint in settings.http:
        Listener(description, endpoint, site, "HTTP + WebSocket (/ws)").setServiceParent(top)
    for description, endpoint in settings.ws:
        Listener(description, endpoint, live, "WebSocket", "ws").setServiceParent(top)
    log.info(
        "balanca {version}: scale {scale}{simulated}, database {db}, recording {record}",
        version=__version__,
        scale=spec.describe(),
        simulated=" (SIMULATED)" if spec.kind == "simulator" else "",
        db=settings.db.describe(),
        record=settings.record,
    )
    log.info(
        "WebSocket keepalive: ping every {interval:g} s, pong timeout {timeout:g} s; "
        "slow clients skip readings past {queue} queued messages",
        interval=settings.ping_interval,
        timeout=settings.ping_timeout,
        queue=settings.ws_max_queue,
    )
    return top
