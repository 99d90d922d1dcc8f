"""One place per scale's objects: for each configured scale, its hub, its scale and its link.

`makeService` calls `build_scale` once per `--scale` (or `[scales]` entry), in the order
configured; everything a scale multiplies (transport, reconnect loop, stability filter, stale
timer, `run`/`seq`, counters, poller) lives in its `ScaleParts` and nowhere else, so that one
scale's trouble stays its own (docs/architecture.md, "Several scales").
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from twisted.internet.endpoints import clientFromString, connectProtocol

from balanca.config import ScaleSpec
from balanca.hub import Hub
from balanca.scale.detect import AUTO, AutoOpener
from balanca.scale.link import Opener, ScaleLink
from balanca.scale.protocols import PROTOCOLS
from balanca.scale.scale import Scale, ScaleProtocol
from balanca.scale.simulator import SimulatedIndicator
from balanca.scale.stability import StabilityFilter

COMMANDS = ("tare", "zero", "clear-tare")


@dataclass(frozen=True)
class ScaleParts:
    """A configured scale's objects: its id and spec, the hub that fans its readings out, the
    scale that decodes them and the link that keeps its transport open."""

    id: str
    spec: ScaleSpec
    hub: Hub
    scale: Scale
    link: ScaleLink
    min_weight: Decimal
    """The capture minimum: the spec's `min-weight=`, else `--min-weight`."""

    @property
    def commands(self) -> list[str]:
        """The commands this scale can take (`/api/scales`): those its protocol sends (with
        `protocol=auto`, once detected), or all of them for the simulator, which acts on
        every one."""
        if self.spec.kind == "simulator":
            return list(COMMANDS)
        return [name for name in COMMANDS if name in self.scale.wire.commands]


def build_scale(
    scale_id: str,
    spec: ScaleSpec,
    reactor: Any,
    stale_after: float,
    min_weight: Decimal = Decimal(0),
) -> ScaleParts:
    """Build one scale's chain: hub, stability filter, scale and the link to its indicator."""
    hub = Hub(reactor, stale_after, scale_id)
    stability = StabilityFilter(spec.stable, spec.tolerance) if spec.stable else None
    scale = Scale(
        PROTOCOLS.get(spec.protocol, AUTO),
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
        link = ScaleLink(
            scale, detecting(spec, scale, device.open, reactor), reactor, spec.where, device
        )
    else:
        plain = opener(spec, scale, reactor)
        link = ScaleLink(scale, detecting(spec, scale, plain, reactor), reactor, spec.where)
    own_minimum = spec.min_weight
    return ScaleParts(
        scale_id, spec, hub, scale, link, min_weight if own_minimum is None else own_minimum
    )


def opener(spec: ScaleSpec, scale: Scale, reactor: Any) -> Opener:
    """How to connect a scale protocol to the simulator or the endpoint `spec` names (a
    serial device is a `SerialDevice`). Each simulated scale has its own load cycle, drawn
    from its id: its loads and a shift of up to 2 s into the cycle (the lone `default`
    scale keeps 0.1's unseeded, unshifted cycle)."""
    if spec.kind == "simulator":
        own = scale.hub.scale != "default"
        seed = zlib.crc32(scale.hub.scale.encode()) if own else None
        shift = (seed or 0) % 2000 / 1000

        def simulate(protocol: ScaleProtocol) -> None:
            SimulatedIndicator(scale.wire, reactor, spec.rate, seed, shift).attach(protocol)

        return simulate
    endpoint = clientFromString(reactor, spec.endpoint)
    return lambda protocol: connectProtocol(endpoint, protocol)


def detecting(spec: ScaleSpec, scale: Scale, plain: Opener, reactor: Any) -> Opener:
    """`plain`; with `protocol=auto`, `plain` behind the protocol detector (which keeps to the
    line the spec names, if it names one)."""
    if spec.protocol != AUTO.name:
        return plain
    serial = spec.kind == "serial"
    line = spec.line if serial and spec.line_named else None
    return AutoOpener(scale, plain, reactor, serial=serial, line=line)
