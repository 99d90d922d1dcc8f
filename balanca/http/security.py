"""Who may do what: bearer tokens, a per-client rate limit for writes, browser origins, and
the security headers every response carries (README, "Exposing balanca on a public IPv6
address")."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from twisted.internet.address import UNIXAddress
from twisted.internet.interfaces import IAddress, IReactorTime

SECURITY_HEADERS = {
    b"Content-Security-Policy": b"default-src 'self'; script-src 'self'; style-src 'self'; "
    b"img-src 'self' data:; connect-src 'self' ws: wss:; worker-src 'self'; "
    b"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    b"X-Content-Type-Options": b"nosniff",
    b"Referrer-Policy": b"no-referrer",
    b"X-Frame-Options": b"DENY",
    b"Cross-Origin-Opener-Policy": b"same-origin",
    b"Cross-Origin-Resource-Policy": b"same-origin",
}


def read_token_file(path: str) -> str:
    """The token in `path`, surrounding whitespace stripped; ValueError when unusable."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read token file {path}: {e}") from None
    if not token:
        raise ValueError(f"token file {path} is empty")
    return token


def read_operators_file(path: str) -> tuple[tuple[str, str], ...]:
    """The operators in `path`: one `name:token` a line, `#` comments and blank lines
    skipped; ValueError naming the line when one is unusable."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read operators file {path}: {e}") from None
    operators: list[tuple[str, str]] = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, sep, token = (part.strip() for part in text.partition(":"))
        if not sep or not name or not token:
            raise ValueError(f"{path}, line {number}: expected name:token")
        if len(name) > 64:
            raise ValueError(f"{path}, line {number}: a name has at most 64 characters")
        if any(name == n or token_matches(token, t) for n, t in operators):
            raise ValueError(f"{path}, line {number}: {name!r} or its token is given twice")
        operators.append((name, token))
    if not operators:
        raise ValueError(f"operators file {path} names no operator")
    return tuple(operators)


def token_matches(expected: str | None, presented: str | None) -> bool:
    """`presented` equals `expected`; anything goes without one. The digests are compared, in
    constant time, so that neither the content nor the length of the token leaks."""
    if expected is None:
        return True
    if presented is None:
        return False
    return hmac.compare_digest(_digest(expected), _digest(presented))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def bearer(authorization: bytes | str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header."""
    if not authorization:
        return None
    if isinstance(authorization, bytes):
        authorization = authorization.decode("latin-1")
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def client_key(address: IAddress | str) -> str:
    """Whose budget a request spends: an IPv4 address (also when it arrives as
    `::ffff:a.b.c.d` on the dual-stack socket), an IPv6 /64 (what one host or subscriber
    holds, so that hopping addresses inside it buys nothing), one key for every peer of a
    kind of listener that has no peer address (`unix`), or the text of anything else."""
    if not isinstance(address, str):
        host = getattr(address, "host", None)
        if not isinstance(host, str):  # a UNIX socket's peers are all one place
            return "unix" if isinstance(address, UNIXAddress) else type(address).__name__
        address = host
    network = _network(address, 64)
    return address if network is None else network


def _network(host: str, prefix: int) -> str | None:
    """The IPv4 address, or the IPv6 network of `prefix` bits, that `host` is in; None when
    `host` is no IP address."""
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, prefix), strict=False))
    return str(address)


WIDER_PREFIXES = ((56, 2), (48, 4))
"""IPv6 prefixes limited besides the /64, with their budget as a multiple of a /64's: one
/48 (a site's usual allocation) cannot multiply its budget by rotating through its /64s."""


@dataclass
class TokenBucket:
    """One client's budget: the tokens left, and when it was last refilled."""

    tokens: float
    updated: float


@dataclass
class BucketTable:
    """At most `size` buckets of `rate` per second and bursts of `burst`, least recently
    used first. Only a bucket that has refilled (which a fresh one would equal) is dropped
    to make room; while every kept bucket is in use, newcomers share one overflow bucket,
    so that the bound never hands out a fresh burst."""

    rate: float
    burst: float
    size: int
    buckets: OrderedDict[str, TokenBucket] = field(default_factory=OrderedDict)
    overflow: TokenBucket | None = None

    def get(self, key: str, now: float) -> TokenBucket:
        """`key`'s bucket, refilled up to `now`."""
        bucket = self.buckets.get(key)
        if bucket is not None:
            self.buckets.move_to_end(key)
        else:
            while self.buckets and self._full(next(iter(self.buckets.values())), now):
                self.buckets.popitem(last=False)
            if len(self.buckets) < self.size:
                bucket = self.buckets[key] = TokenBucket(self.burst, now)
            else:
                bucket = self.overflow = self.overflow or TokenBucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        return bucket

    def _full(self, bucket: TokenBucket, now: float) -> bool:
        return bucket.tokens + (now - bucket.updated) * self.rate >= self.burst


@dataclass
class RateLimiter:
    """Token buckets per client (`client_key`): `rate` requests per second, bursts of
    `burst`; an IPv6 client spends from its /56 and /48 too (WIDER_PREFIXES), and is refused
    when any of them is empty.

    Each level keeps at most `max_clients` buckets (BucketTable): memory stays bounded
    however many addresses a client hops through, and hopping buys no fresh burst."""

    clock: IReactorTime
    rate: float = 10.0
    burst: int = 20
    max_clients: int = 10000
    _tables: list[BucketTable] = field(init=False)

    def __post_init__(self) -> None:
        self._tables = [
            BucketTable(self.rate * n, self.burst * n, self.max_clients)
            for n in (1, *(times for _, times in WIDER_PREFIXES))
        ]

    def allow(self, address: IAddress | str) -> bool:
        """Spend one token of every bucket of `address`; False (nothing spent) when one is
        empty."""
        now = self.clock.seconds()
        key = client_key(address)
        keys = [key]
        if "/" in key:  # an IPv6 /64: its wider prefixes too
            keys += [str(_network(key.partition("/")[0], prefix)) for prefix, _ in WIDER_PREFIXES]
        buckets = [table.get(k, now) for table, k in zip(self._tables, keys, strict=False)]
        if any(bucket.tokens < 1 for bucket in buckets):
            return False
        for bucket in buckets:
            bucket.tokens -= 1
        return True


def _normal_origin(origin: str) -> str:
    return origin.strip().lower().rstrip("/")


def origin_matches(origin: str, pattern: str) -> bool:
    """`origin` fits `pattern` (`scheme://host[:port]`), ignoring case. `*` stands for any
    run of characters and nothing else is special: `http://[::1]:*` is an IPv6 literal."""
    pieces = (re.escape(piece) for piece in _normal_origin(pattern).split("*"))
    return re.fullmatch(".*".join(pieces), _normal_origin(origin)) is not None


@dataclass(frozen=True)
class Access:
    """The tokens and origins the service was started with."""

    write_token: str | None = None
    read_token: str | None = None
    allowed_origins: tuple[str, ...] = ()
    operators: tuple[tuple[str, str], ...] = ()
    """(name, token) of each `--operators-file` line: their tokens write like the write token,
    and what they write carries their name."""

    @property
    def writes_need_token(self) -> bool:
        """A write token or an operator's token is configured."""
        return self.write_token is not None or bool(self.operators)

    def may_write(self, token: str | None) -> bool:
        """A write presenting `token` (None: no token) is allowed."""
        if not self.writes_need_token:
            return True
        by_write_token = self.write_token is not None and token_matches(self.write_token, token)
        return by_write_token or self.operator(token) is not None

    def operator(self, token: str | None) -> str | None:
        """The name of the operator whose token `token` is, or None. Every operator's token
        is compared, so the time taken does not say which one matched."""
        found = None
        for name, expected in self.operators:
            if token is not None and token_matches(expected, token):
                found = name
        return found

    def may_read(self, token: str | None) -> bool:
        """A read presenting `token` is allowed: the read token, the write token or an
        operator's will do."""
        if self.read_token is None or token_matches(self.read_token, token):
            return True
        return self.writes_need_token and self.may_write(token)

    def origin_allowed(self, origin: str | None, host: str | None, secure: bool) -> bool:
        """A WebSocket handshake's `Origin` is acceptable: absent (not a browser), the page's
        own origin (the scheme of this connection and its `Host`), or one of the
        `--allowed-origin` patterns."""
        if origin is None:
            return True
        own = f"{'https' if secure else 'http'}://{host.strip()}" if host else None
        if own is not None and _normal_origin(origin) == _normal_origin(own):
            return True
        return any(origin_matches(origin, pattern) for pattern in self.allowed_origins)
