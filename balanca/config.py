"""Parsing of the option values that are small languages: `--scale` specs and scale ids
(`--db` URLs are the store's: `balanca.store.spec`).

Pure functions that raise `ValueError` with a message an operator can act on; `balanca.tap`
turns those into usage errors at start.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypeVar

from balanca.reading import Source
from balanca.scale.protocols import PROTOCOLS
from balanca.scale.protocols.base import LineSettings

N = TypeVar("N", int, float)
DEFAULT_PROTOCOL = "toledo"
AUTO = "auto"
"""`protocol=auto`: detect the family (balanca.scale.detect)."""
SOURCES: dict[str, Source] = {"simulator": "simulator", "serial": "serial", "endpoint": "tcp"}
SCALE_KEYS = {"protocol", "poll", "decimals", "stable", "tolerance", "min-weight"}
LINE_KEYS = {"baudrate", "bytesize", "parity", "stopbits"}
SIMULATOR_KEYS = {"protocol", "rate", "min-weight"}


@dataclass(frozen=True)
class ScaleSpec:
    """Where the scale is and how to talk to it, from `--scale`."""

    kind: Literal["simulator", "serial", "endpoint"]
    protocol: str = DEFAULT_PROTOCOL
    device: str = ""
    endpoint: str = ""
    """A Twisted client endpoint string (kind `endpoint`), with balanca's own keys removed."""
    line: LineSettings = field(default_factory=LineSettings)
    rate: float = 10.0
    poll: float = 0.2
    decimals: int | None = None
    stable: int | None = None
    """Readings in a row within `tolerance` that make a weight stable (software filter)."""
    tolerance: Decimal = Decimal(0)
    min_weight: Decimal | None = None
    """This scale's capture minimum (`min-weight=W`); None leaves it to `--min-weight`."""
    line_named: bool = False
    """`--scale` names line settings (with `protocol=auto`, detection keeps to them)."""

    @property
    def source(self) -> Source:
        """The `source` its readings carry."""
        return SOURCES[self.kind]

    @property
    def where(self) -> str:
        """Where the scale is: its device, its endpoint or the simulator."""
        return {"simulator": "built-in simulator", "serial": self.device}.get(
            self.kind, self.endpoint
        )

    def describe(self) -> str:
        """A short description for logs."""
        return f"{self.where} ({self.protocol})"


def split_escaped(text: str) -> list[str]:
    """Split on `:` except where escaped as `\\:`, unescaping the parts."""
    parts = re.split(r"(?<!\\):", text)
    return [re.sub(r"\\(.)", r"\1", p) for p in parts]


def escape(text: str) -> str:
    """Escape `\\` and `:` for an endpoint string."""
    return text.replace("\\", "\\\\").replace(":", "\\:")


KINDS = "simulator, serial:DEVICE, a device path, or a client endpoint such as tcp:HOST:PORT"


def parse_scale(spec: str) -> ScaleSpec:
    """Parse a `--scale` spec (DESIGN.md's grammar); a bare device path means `serial:PATH`."""
    head, *rest = split_escaped(spec.strip())
    if head.startswith("/"):
        head, rest = "serial", [head, *rest]
    positional = [p for p in rest if "=" not in p]
    options = dict(p.split("=", 1) for p in rest if "=" in p)
    if head == "simulator":
        _only(options, SIMULATOR_KEYS, spec)
        if positional:
            raise ValueError(
                f"--scale {spec!r}: simulator takes only protocol=, rate= and min-weight="
            )
        rate = _number(options.get("rate", "10"), "rate", float)
        if not 0 < rate <= 100:
            raise ValueError(f"--scale {spec!r}: rate must be above 0 and at most 100 Hz")
        if options.get("protocol") == AUTO:
            raise ValueError(
                f"--scale {spec!r}: protocol=auto needs a real scale (serial: or tcp:)"
            )
        return ScaleSpec(
            "simulator",
            protocol=_protocol(options),
            rate=rate,
            min_weight=_min_weight(options, spec),
        )
    common = _scale_options(options, spec)
    if head == "serial":
        if len(positional) != 1 or not positional[0]:
            raise ValueError(f"--scale {spec!r}: serial needs a device, as serial:/dev/ttyUSB0")
        _only(options, SCALE_KEYS | LINE_KEYS, spec)
        wire = PROTOCOLS.get(common["protocol"])
        line = _line(options, wire.line if wire else LineSettings(), spec)
        named = bool(LINE_KEYS & set(options))
        return ScaleSpec("serial", device=positional[0], line=line, line_named=named, **common)
    endpoint_options = {k: v for k, v in options.items() if k not in SCALE_KEYS}
    endpoint = ":".join(
        [escape(head), *map(escape, positional)]
        + [f"{escape(k)}={escape(v)}" for k, v in endpoint_options.items()]
    )
    _check_endpoint(endpoint, spec)
    return ScaleSpec("endpoint", endpoint=endpoint, **common)


def _check_endpoint(endpoint: str, spec: str) -> None:
    """Raise a one-line ValueError unless `endpoint` is a client endpoint Twisted can make."""
    from twisted.internet import reactor
    from twisted.internet.endpoints import clientFromString

    try:
        clientFromString(reactor, endpoint)
    except ValueError as e:
        if str(e).startswith("Unknown endpoint type"):
            kind = split_escaped(spec.strip())[0]
            raise ValueError(f"unknown scale kind {kind!r}; expected {KINDS}") from None
        raise ValueError(f"--scale {spec!r}: not a client endpoint: {e}") from None
    except Exception as e:  # Twisted's parsers raise TypeError, KeyError, ... on bad arguments
        raise ValueError(
            f"--scale {spec!r}: not a client endpoint ({e}); a network indicator is tcp:HOST:PORT"
        ) from None


def check_stale_after(spec: ScaleSpec, stale_after: float) -> None:
    """A polled scale answers once per poll period: a shorter `stale_after` would call every
    reading stale before the next could come."""
    wire = PROTOCOLS.get(spec.protocol)  # with protocol=auto, the check is for any polled one
    if (wire is None or wire.poll is not None) and stale_after <= spec.poll:
        raise ValueError(
            f"--stale-after {stale_after:g} s must be longer than the poll period of the "
            f"{spec.protocol} scale ({spec.poll:g} s): raise --stale-after or lower poll="
        )


def _scale_options(options: Mapping[str, str], spec: str) -> dict[str, Any]:
    poll = _number(options.get("poll", "0.2"), "poll", float)
    if not 0.02 <= poll <= 60:
        raise ValueError(f"--scale {spec!r}: poll must be from 0.02 to 60 seconds")
    decimals = options.get("decimals")
    stable = options.get("stable")
    out: dict[str, Any] = {"protocol": _protocol(options), "poll": poll}
    if decimals is not None:
        out["decimals"] = _number(decimals, "decimals", int)
        if not 0 <= int(decimals) <= 6:
            raise ValueError(f"--scale {spec!r}: decimals must be from 0 to 6")
    if stable is not None:
        out["stable"] = _number(stable, "stable", int)
        if not 2 <= int(stable) <= 100:
            raise ValueError(f"--scale {spec!r}: stable must be from 2 to 100 readings")
    if "tolerance" in options:
        out["tolerance"] = nonnegative_decimal(options["tolerance"], f"--scale {spec!r}: tolerance")
    out["min_weight"] = _min_weight(options, spec)
    return out


def _min_weight(options: Mapping[str, str], spec: str) -> Decimal | None:
    """A spec's `min-weight=W`, or None when it has none."""
    if "min-weight" not in options:
        return None
    return nonnegative_decimal(options["min-weight"], f"--scale {spec!r}: min-weight")


def nonnegative_decimal(text: str, what: str) -> Decimal:
    """`text` as an exact, finite Decimal of at least 0; ValueError starting with `what`."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value < 0:
        raise ValueError(f"{what} must be a decimal number of at least 0, not {text!r}")
    return value


def _line(options: Mapping[str, str], default: LineSettings, spec: str) -> LineSettings:
    parity = options.get("parity", default.parity).upper()
    if parity not in {"N", "E", "O", "M", "S"}:
        raise ValueError(f"--scale {spec!r}: parity must be N, E or O")
    line = LineSettings(
        baudrate=_number(options.get("baudrate", str(default.baudrate)), "baudrate", int),
        bytesize=_number(options.get("bytesize", str(default.bytesize)), "bytesize", int),
        parity=parity,
        stopbits=_number(options.get("stopbits", str(default.stopbits)), "stopbits", float),
    )
    if line.bytesize not in (5, 6, 7, 8) or line.stopbits not in (1, 1.5, 2):
        raise ValueError(f"--scale {spec!r}: bytesize must be 5 to 8 and stopbits 1, 1.5 or 2")
    if line.baudrate <= 0:
        raise ValueError(f"--scale {spec!r}: baudrate must be positive")
    return line


def _protocol(options: Mapping[str, str]) -> str:
    name = options.get("protocol", DEFAULT_PROTOCOL)
    if name not in PROTOCOLS and name != AUTO:
        known = ", ".join([*sorted(PROTOCOLS), AUTO])
        raise ValueError(f"unknown scale protocol {name!r} (known: {known})")
    return name


def _only(options: Mapping[str, str], allowed: set[str], spec: str) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"--scale {spec!r}: unknown option(s) {', '.join(unknown)}")


def _number(text: str, name: str, kind: Callable[[str], N]) -> N:
    """`text` read by `kind` (int or float), finite, or a ValueError that names the option."""
    value: N | None
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {text!r}")
    return value


SCALE_ID = re.compile(r"[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?")
DEFAULT_SCALE_ID = "default"


def parse_scales(specs: Sequence[str]) -> list[tuple[str, ScaleSpec]]:
    """Parse every `--scale [ID=]SPEC`, in order: a lone spec without an id is `default`;
    with two or more, each needs its own id."""
    scales: list[tuple[str, ScaleSpec]] = []
    for text in specs:
        scale_id, spec = split_scale_id(text)
        if scale_id is None:
            if len(specs) > 1:
                raise ValueError(
                    f"--scale {text!r}: with several scales each needs an id, as truck={text}"
                )
            scale_id = DEFAULT_SCALE_ID
        if any(scale_id == seen for seen, _ in scales):
            raise ValueError(f"--scale {text!r}: the id {scale_id!r} is given twice")
        scales.append((scale_id, parse_scale(spec)))
    if not scales:
        raise ValueError("no scale: give --scale")
    return scales


def split_scale_id(text: str) -> tuple[str | None, str]:
    """`ID=SPEC` → (ID, SPEC); a spec without an id → (None, SPEC). A bad id is a ValueError."""
    head, sep, rest = text.partition("=")
    if not sep or ":" in head or "/" in head:
        return None, text
    if not SCALE_ID.fullmatch(head):
        raise ValueError(
            f"--scale {text!r}: the id {head!r} must be 1 to 32 lower-case letters, digits"
            " or dashes, starting and ending with a letter or digit"
        )
    return head, rest
