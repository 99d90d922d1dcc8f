"""`twistd balanca`: `makeService`, the one place that wires objects together.

The options and where they come from (command line, environment, configuration file) are in
`balanca.options`; here, for each configured scale its chain is built (`balanca.scales`), and
the store, the WebSocket factory, the API and the listeners are shared by all of them.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from typing import Any

import txaio
from autobahn.twisted.resource import WebSocketResource
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry
from twisted.application import internet, service
from twisted.internet import reactor as global_reactor
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.logger import Logger

from balanca import __version__
from balanca.endpoints import address_text, is_dual_stack
from balanca.http.api import Api
from balanca.http.live import LiveFactory
from balanca.http.metrics import BalancaCollector, MetricsResource
from balanca.http.scales_api import api_tree
from balanca.http.security import RateLimiter
from balanca.http.site import site_tree, web_root
from balanca.http.tickets import Printer, TicketsRoot
from balanca.hub import Hub
from balanca.options import Options, Settings
from balanca.publish.mqtt import Publisher
from balanca.records.key import fingerprint, load_or_create
from balanca.scale.link import ScaleLink
from balanca.scale.scale import Scale
from balanca.scales import ScaleParts, build_scale
from balanca.store import outbox
from balanca.store.idempotency import Idempotency
from balanca.store.recordbook import RecordBook
from balanca.store.store import Store
from balanca.store.transaction_index import get as transactions_view
from balanca.store.transactions import Transactions

__all__ = ["BalancaService", "Listener", "Options", "Parts", "Settings", "makeService"]


@dataclass(frozen=True)
class Parts:
    """The main objects of a running service, for introspection (tests, a manhole)."""

    scales: dict[str, ScaleParts]
    """Each scale's objects by id, in the order configured."""
    live: LiveFactory
    store: Store
    site: Any
    limiter: RateLimiter

    @property
    def first(self) -> ScaleParts:
        """The first scale's objects (a lone scale's)."""
        return next(iter(self.scales.values()))

    @property
    def hub(self) -> Hub:
        """The first scale's hub."""
        return self.first.hub

    @property
    def scale(self) -> Scale:
        """The first scale's Scale."""
        return self.first.scale

    @property
    def link(self) -> ScaleLink:
        """The first scale's link."""
        return self.first.link


class BalancaService(service.MultiService):
    """The whole service; `parts` names its main objects."""

    parts: Parts


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


def record_book(
    key_path: str, store: Store, reactor: Any, scales: dict[str, ScaleParts]
) -> RecordBook:
    """The sealed records, signed with the key at `key_path` (made when missing). The key is
    read when the book starts, as the service's own user."""
    log = Logger(namespace="balanca")

    def load_key() -> Ed25519PrivateKey:
        try:
            key, created = load_or_create(key_path)
        except (OSError, ValueError) as e:
            log.critical("cannot use --records-key {path}: {error}", path=key_path, error=e)
            raise SystemExit(1) from None
        if created:
            log.info(
                "records: created the signing key {path} ({fingerprint}); keep a copy of it safe",
                path=os.path.abspath(key_path),
                fingerprint=fingerprint(key.public_key()),
            )
        return key

    min_weights = {scale_id: parts.min_weight for scale_id, parts in scales.items()}
    return RecordBook(store.interact, store.spec, load_key, reactor, store.run, min_weights)


def makeService(options: Options, reactor: Any = global_reactor) -> BalancaService:
    """Build the whole service from validated options: for each configured scale its chain
    (hub, scale, link), then the store, WebSocket factory, API and listeners they share."""
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
    scales = {
        scale_id: build_scale(scale_id, spec, reactor, settings.stale_after, settings.min_weight)
        for scale_id, spec in settings.scales
    }
    store = Store(
        settings.db,
        reactor,
        record=settings.record,
        scales=tuple(scales),
        keep_days=settings.keep_readings,
    )
    for parts in scales.values():
        parts.hub.subscribe(store)
    limiter = RateLimiter(reactor)
    live = LiveFactory(
        [parts.hub for parts in scales.values()],
        settings.access,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        max_queue=settings.ws_max_queue,
        limiter=limiter,
        reactor=reactor,
    )
    registry = CollectorRegistry()
    collector = BalancaCollector(list(scales.values()), live, store)
    registry.register(collector)
    book = record_book(settings.records_key, store, reactor, scales)
    for parts in scales.values():
        parts.hub.subscribe(book)
    collector.book = book
    transactions = Transactions(book, settings.rules)
    publisher = None
    if settings.mqtt is not None:
        hubs = [parts.hub for parts in scales.values()]
        publisher = Publisher(
            settings.mqtt, settings.site.id, hubs, store.interact, store.dialect, reactor
        )
        book.outbox = outbox.Queue(
            store.dialect,
            lambda txn, number: transactions_view(txn, store.dialect, settings.rules, number),
        )
        collector.publisher = publisher
    api = Api(
        reactor,
        scales,
        store,
        lambda: len(live.clients),
        settings.access,
        limiter,
        lambda: book.state,
        Idempotency(store.interact, store.dialect, reactor),
    )
    if publisher is not None:
        api.mqtt = publisher.health
    site = site_tree(
        api_tree(api, book, transactions),
        WebSocketResource(live),
        MetricsResource(registry),
        web_root(),
        settings.access,
        limiter,
        reactor,
        TicketsRoot(Printer(api, settings.site, book, transactions)),
    )
    collector.site = site
    top.parts = Parts(scales, live, store, site, limiter)
    # Services stop in reverse order: listeners, then the scales, then the store, which writes
    # everything the scales published before the process exits.
    store.setServiceParent(top)
    book.setServiceParent(top)
    if publisher is not None:  # stops before the store and the record book it reads
        publisher.setServiceParent(top)
    for parts in scales.values():
        parts.link.setServiceParent(top)
    for description, endpoint in settings.http:
        Listener(description, endpoint, site, "HTTP + WebSocket (/ws)").setServiceParent(top)
    for description, endpoint in settings.ws:
        Listener(description, endpoint, live, "WebSocket", "ws").setServiceParent(top)
    log.info(
        "balanca {version}: site {site}, database {db}, recording {record}",
        version=__version__,
        site=settings.site.id,
        db=settings.db.describe(),
        record=settings.record,
    )
    for parts in scales.values():
        log.info(
            "scale {id}: {scale}{simulated}",
            id=parts.id,
            scale=parts.spec.describe(),
            simulated=" (SIMULATED)" if parts.spec.kind == "simulator" else "",
        )
    log.info(
        "WebSocket keepalive: ping every {interval:g} s, pong timeout {timeout:g} s; "
        "slow clients skip readings past {queue} queued messages",
        interval=settings.ping_interval,
        timeout=settings.ping_timeout,
        queue=settings.ws_max_queue,
    )
    return top
