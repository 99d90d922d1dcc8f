"""Framing behaviour every protocol shares: splits, mid-frame starts, garbage, overflow."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import pytest

from balanca.reading import Measurement, Reply
from balanca.scale.protocols import PROTOCOLS
from balanca.scale.protocols.base import MAX_BUFFER, DecodeError, Framer, WireProtocol

M = Measurement
SAMPLES: dict[str, list[Measurement]] = {
    "toledo": [
        M(Decimal("12.34"), tare=Decimal("0.00")),
        M(Decimal("-0.500"), "lb", False, "net", Decimal("1.000")),
        M(None, stable=False, status="overload"),
        M(Decimal(1234)),
    ],
    "sics": [
        M(Decimal("100.00"), "g"),
        M(Decimal("-1.5"), "kg", False),
        M(None, stable=False, status="error"),
        M(None, stable=False, status="overload"),
    ],
    "ad": [
        M(Decimal("123.45")),
        M(Decimal(10000), mode="net"),
        M(Decimal("-0.5"), "g", False),
        M(None, "kg", False, status="overload"),
        M(None, "kg", False, "net", Decimal("2.00")),
    ],
    "prix": [
        M(Decimal("1.250")),
        M(None, stable=False),
        M(Decimal("123.456")),
        M(None, stable=False, status="overload"),
    ],
    "mt8217": [
        M(Decimal("1.234")),
        M(Decimal("12.34"), "lb", mode="net"),
        M(None, stable=False, status="underload"),
        M(Decimal("0.000")),
    ],
    "lider": [
        M(Decimal("12.50")),
        M(Decimal("-0.35"), stable=False),
        M(Decimal(12340)),
        M(Decimal("0.000")),
    ],
    "wt1000": [
        M(Decimal("1.500"), tare=Decimal("0.000")),
        M(Decimal("-0.350"), stable=False, tare=Decimal("0.000")),
        M(Decimal("2.000"), mode="net", tare=Decimal("0.500")),
    ],
    "wt27r": [
        M(Decimal(12340), tare=Decimal(0)),
        M(Decimal(-20), "kg", False, "net", Decimal(40)),
        M(None, "kg", False, "gross", Decimal(0), "overload"),
        M(Decimal(500), "lb", tare=Decimal(0)),
    ],
    "toledo-a": [
        M(Decimal("1.250")),
        M(Decimal("12.34"), stable=False, mode="net"),
        M(None, stable=False, status="overload"),
        M(Decimal("0.000")),
    ],
    "cas": [
        M(Decimal("1.234")),
        M(Decimal("-0.500"), "lb", False),
        M(None, stable=False, status="overload"),
        M(None, stable=False, status="error"),
    ],
    "condec": [
        M(Decimal(1234)),
        M(Decimal("-0.50"), "lb", False, "net"),
        M(None, "kg", False, status="overload"),
        M(None, "lb", False, status="underload"),
        M(None, "g", False, status="error"),
    ],
    "cardinal": [
        M(Decimal(1234), "lb"),
        M(Decimal("-12.50"), "kg", False, "net"),
        M(None, "lb", False, status="overload"),
        M(None, "t", False, "net", status="underload"),
    ],
    "epelsa": [
        M(Decimal("-0.450")),
        M(Decimal("-0.250"), stable=False),
        M(Decimal("0.000")),
    ],
}
GARBAGE = b"#\x00\x7f\xa5"
"""Bytes that start and end no frame in any of the protocols."""
OPEN_FRAME = {
    "toledo": b"\x02",
    "sics": b"S",
    "ad": b"S",
    "prix": b"\x02",
    "mt8217": b"\x02",
    "lider": b"\x01",
    "wt1000": b"0",
    "wt27r": b"E",
    "toledo-a": b"\x02",
    "cas": b"\x01",
    "condec": b"\x02",
    "cardinal": b"\r",
    "epelsa": b"\x02",
}
"""A byte that opens a frame in each protocol."""
FILLER = {"wt1000": b","}
"""Frame content that opens no frame, where `0` would (default `0`)."""

protocols = pytest.mark.parametrize("protocol", PROTOCOLS.values(), ids=list(PROTOCOLS))


def stream(protocol: WireProtocol, separator: bytes = b"") -> bytes:
    """The sample measurements as the indicator sends them."""
    return separator.join(protocol.encode(m) for m in SAMPLES[protocol.name])


def decoded(protocol: WireProtocol, frames: Iterable[bytes]) -> list[Measurement | Reply]:
    """The frames that decode (every failure must be a DecodeError)."""
    out = []
    for frame in frames:
        try:
            out.append(protocol.decode(frame, None))
        except DecodeError:
            pass
    return out


def feed_all(framer: Framer, chunks: Iterable[bytes]) -> list[bytes]:
    """Every frame the chunks give, in order."""
    return [frame for chunk in chunks for frame in framer.feed(chunk)]


def test_the_registry_holds_the_thirteen_protocols_under_their_names() -> None:
    assert sorted(PROTOCOLS) == sorted(
        ["ad", "mt8217", "prix", "sics", "toledo"]
        + ["lider", "wt1000", "wt27r", "toledo-a", "cas", "condec", "cardinal", "epelsa"]
    )
    assert all(p.name == name and p.flags_stability for name, p in PROTOCOLS.items())


@protocols
def test_encoded_samples_decode_back(protocol: WireProtocol) -> None:
    assert decoded(protocol, protocol.framer().feed(stream(protocol))) == SAMPLES[protocol.name]


@protocols
def test_a_stream_split_at_any_byte_gives_the_same_readings(protocol: WireProtocol) -> None:
    data = stream(protocol)
    for cut in range(len(data) + 1):
        framer = protocol.framer()
        frames = feed_all(framer, [data[:cut], data[cut:]])
        assert decoded(protocol, frames) == SAMPLES[protocol.name], cut
        assert framer.stats.garbage_bytes == 0


@protocols
def test_fed_byte_by_byte_each_frame_comes_out_by_its_last_byte(protocol: WireProtocol) -> None:
    framer = protocol.framer()
    frames: list[bytes] = []
    for m in SAMPLES[protocol.name]:
        for byte in protocol.encode(m):
            frames += framer.feed(bytes([byte]))
        assert decoded(protocol, frames)[-1] == m


@protocols
def test_a_stream_that_starts_mid_frame_gives_every_later_frame(protocol: WireProtocol) -> None:
    first = protocol.encode(SAMPLES[protocol.name][0])
    data = stream(protocol)
    for skip in range(1, len(first)):
        frames = protocol.framer().feed(data[skip:])
        assert decoded(protocol, frames) == SAMPLES[protocol.name][1:], skip


@protocols
def test_garbage_between_frames_is_skipped_and_counted(protocol: WireProtocol) -> None:
    framer = protocol.framer()
    frames = framer.feed(GARBAGE + stream(protocol, GARBAGE) + GARBAGE)
    assert decoded(protocol, frames) == SAMPLES[protocol.name]
    assert framer.stats.garbage_bytes == len(GARBAGE) * (len(SAMPLES[protocol.name]) + 1)
    assert framer.stats.overflows == 0


@protocols
@pytest.mark.parametrize("chunk", [1, 100, 6000])
def test_more_than_4_kib_of_garbage_counts_one_overflow(protocol: WireProtocol, chunk: int) -> None:
    framer = protocol.framer()
    junk = b"#" * (MAX_BUFFER + 904)
    assert feed_all(framer, [junk[i : i + chunk] for i in range(0, len(junk), chunk)]) == []
    assert framer.stats.overflows == 1
    assert decoded(protocol, framer.feed(stream(protocol))) == SAMPLES[protocol.name]


@protocols
@pytest.mark.parametrize("chunk", [1, 100, 6000])
def test_a_frame_left_open_past_4_kib_is_dropped_and_counted(
    protocol: WireProtocol, chunk: int
) -> None:
    framer = protocol.framer()
    opened = OPEN_FRAME[protocol.name] * 2 + FILLER.get(protocol.name, b"0") * (MAX_BUFFER + 900)
    frames = feed_all(framer, [opened[i : i + chunk] for i in range(0, len(opened), chunk)])
    assert decoded(protocol, frames) == []
    assert framer.stats.overflows == 1
    assert framer.stats.garbage_bytes == len(opened)
    assert decoded(protocol, framer.feed(b"\r\n" + stream(protocol))) == SAMPLES[protocol.name]


@pytest.mark.parametrize("name", ["sics", "ad", "prix", "mt8217"])
def test_a_frame_longer_than_4_kib_is_never_emitted(name: str) -> None:
    protocol = PROTOCOLS[name]
    framer = protocol.framer()
    assert framer.feed(OPEN_FRAME[name] + b"0" * MAX_BUFFER + b"\r") == []
    assert framer.stats.overflows == 1


@protocols
def test_truncated_or_corrupted_frames_raise_only_decode_error(protocol: WireProtocol) -> None:
    for m in SAMPLES[protocol.name]:
        frame = protocol.encode(m)
        variants = [frame[:i] for i in range(len(frame))] + [frame[i:] for i in range(len(frame))]
        variants += [
            frame[:i] + bytes([b]) + frame[i + 1 :]
            for i in range(len(frame))
            for b in (0x00, 0x02, 0x0D, 0x20, 0x2B, 0x2D, 0x2E, 0x30, 0x39, 0x49, 0x7F, 0xFF)
        ]
        for variant in variants:
            try:
                protocol.decode(variant, None)
            except DecodeError:
                pass
