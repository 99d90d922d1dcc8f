"""The registry of scale wire protocols, by the name `--scale ...:protocol=NAME` uses."""

from balanca.scale.protocols import (
    ad,
    cardinal,
    cas,
    condec,
    epelsa,
    lider,
    mt8217,
    prix,
    sics,
    toledo,
    toledo_a,
    wt27r,
    wt1000,
)
from balanca.scale.protocols.base import WireProtocol

PROTOCOLS: dict[str, WireProtocol] = {
    p.name: p
    for p in (
        toledo.PROTOCOL,
        sics.PROTOCOL,
        ad.PROTOCOL,
        prix.PROTOCOL,
        mt8217.PROTOCOL,
        lider.PROTOCOL,
        wt1000.PROTOCOL,
        wt27r.PROTOCOL,
        toledo_a.PROTOCOL,
        cas.PROTOCOL,
        condec.PROTOCOL,
        cardinal.PROTOCOL,
        epelsa.PROTOCOL,
    )
}
