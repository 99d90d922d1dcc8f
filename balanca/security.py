"""Who may do what: bearer tokens, a per-address rate limit for writes, browser origins,
and the security headers every response carries."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from twisted.internet.interfaces import IReactorTime

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


def token_matches(expected: str | None, presented: str | None) -> bool:
    """`presented` equals `expected`, compared in constant time; anything goes without one."""
    if expected is None:
        return True
    if presented is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), presented.encode("utf-8"))


def bearer(authorization: bytes | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header."""
    if not authorization:
        return None
    scheme, _, token = authorization.decode("latin-1").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass
class TokenBucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    """Token buckets per client address: `rate` requests per second, bursts of `burst`."""

    clock: IReactorTime
    rate: float = 10.0
    burst: int = 20
    max_addresses: int = 10000
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def allow(self, address: str) -> bool:
        """Spend one token of `address`'s bucket; False when it is empty."""
        now = self.clock.seconds()
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= self.max_addresses:
                self._forget_full(now)
            bucket = self._buckets[address] = TokenBucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: they hold nothing worth remembering."""
        refill = self.burst / self.rate
        self._buckets = {a: b for a, b in self._buckets.items() if now - b.updated < refill}


@dataclass(frozen=True)
class Access:
    """The tokens and origins the service was started with."""

    write_token: str | None = None
    read_token: str | None = None
    allowed_origins: tuple[str, ...] = ()

    def origin_allowed(self, origin: str | None, host: str | None, secure: bool) -> bool:
        """A WebSocket handshake's `Origin` is acceptable: absent (not a browser), the page's
        own origin, or one of `--allowed-origin`'s patterns (`scheme://host[:port]`, `*` wild)."""
        if origin is None:
            return True
        origin = origin.strip().lower().rstrip("/")
        if host and origin == f"{'https' if secure else 'http'}://{host.strip().lower()}":
            return True
        return any(fnmatchcase(origin, p.strip().lower().rstrip("/")) for p in self.allowed_origins)
