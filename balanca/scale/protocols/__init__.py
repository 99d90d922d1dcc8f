"""The registry of scale wire protocols, by the name `--scale ...:protocol=NAME` uses."""

from balanca.scale.protocols import ad, mt8217, prix, sics, toledo
from balanca.scale.protocols.base import WireProtocol

PROTOCOLS: dict[str, WireProtocol] = {
    p.name: p for p in (toledo.PROTOCOL, sics.PROTOCOL, ad.PROTOCOL, prix.PROTOCOL, mt8217.PROTOCOL)
}
