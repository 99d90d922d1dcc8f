"""Property tests: framers and decoders against random measurements, splits and garbage.

What is provable, per protocol, and asserted:
- any bytes at all: the framer never raises, frames stay within `MAX_BUFFER`, and decoding a
  frame raises nothing but `DecodeError`;
- valid frames (made by `encode` from random measurements) with garbage between them and split
  anywhere decode to exactly the measurements they came from, in order, when the garbage holds
  no byte that opens or closes a frame (no STX for the STX protocols and no CR for toledo,
  whose frames are found by the CR's position; no header letter, CR or LF for the line
  protocols). Garbage that may hold those bytes can legitimately corrupt the next frame.
- A toledo stream without CHK is checked with garbage only before its first frame: garbage
  right after a frame cannot be told from a bad checksum until the framer has learned the
  stream carries none (a unit test covers garbage after that).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balanca.reading import Measurement, Mode, Status
from balanca.scale.protocols import PROTOCOLS
from balanca.scale.protocols.base import MAX_BUFFER, WireProtocol, fixed_point
from balanca.scale.protocols.toledo import CR
from tests.test_protocols_framing import decoded

SETTINGS = settings(max_examples=200, deadline=None)
_PROBLEMS: tuple[Status, ...] = ("overload", "underload", "error")
_OUT_OF_RANGE: tuple[Status, ...] = ("overload", "underload")
_MODES: tuple[Mode, ...] = ("gross", "net")
PROBLEM_STATUS = st.sampled_from(_PROBLEMS)
OUT_OF_RANGE = st.sampled_from(_OUT_OF_RANGE)
MODES = st.sampled_from(_MODES)


@st.composite
def toledo_measurements(draw: st.DrawFn) -> Measurement:
    places = draw(st.integers(-2, 5))
    unit = draw(st.sampled_from(["kg", "lb", "g", "t", "oz"]))
    mode = draw(MODES)
    tare = draw(st.none() | st.integers(0, 999_999).map(lambda u: Decimal(u).scaleb(-places)))
    if draw(st.booleans()):
        return Measurement(None, unit, False, mode, tare, draw(PROBLEM_STATUS))
    weight = Decimal(draw(st.integers(-999_999, 999_999))).scaleb(-places)
    return Measurement(weight, unit, draw(st.booleans()), mode, tare)


@st.composite
def sics_measurements(draw: st.DrawFn) -> Measurement:
    if draw(st.booleans()):
        return Measurement(None, stable=False, status=draw(PROBLEM_STATUS))
    weight = Decimal(draw(st.integers(-(10**9), 10**9))).scaleb(-draw(st.integers(0, 5)))
    unit = draw(st.sampled_from(["g", "kg", "mg", "lb", "oz", "ct"]))
    return Measurement(weight, unit, draw(st.booleans()))


@st.composite
def ad_measurements(draw: st.DrawFn) -> Measurement:
    unit = draw(st.sampled_from(["kg", "g", "t", "lb"]))
    mode = draw(MODES)
    value = Decimal(draw(st.integers(-(10**8), 10**8))).scaleb(-draw(st.integers(0, 4)))
    kind = draw(st.sampled_from(["weight", "out of range", "tare"]))
    if kind == "out of range":
        return Measurement(None, unit, False, mode, status=draw(OUT_OF_RANGE))
    if kind == "tare":
        return Measurement(None, unit, False, "net", value)
    return Measurement(value, unit, draw(st.booleans()), mode)


@st.composite
def prix_measurements(draw: st.DrawFn) -> Measurement:
    if draw(st.booleans()):
        status = draw(st.sampled_from(("ok", *_OUT_OF_RANGE)))
        return Measurement(None, stable=False, status=status)
    return Measurement(fixed_point(draw(st.integers(0, 999_999)), 3))


@st.composite
def mt8217_measurements(draw: st.DrawFn) -> Measurement:
    mode = draw(MODES)
    if draw(st.booleans()):
        status = draw(st.sampled_from(("ok", *_PROBLEMS)))
        return Measurement(None, "kg", False, mode, None, status)
    unit, places = draw(st.sampled_from([("kg", 3), ("lb", 2)]))
    return Measurement(
        fixed_point(draw(st.integers(0, 10 ** (places + 2) - 1)), places), unit, mode=mode
    )


def encodable(name: str) -> Callable[[Measurement], bool]:
    """Whether protocol `name` can write a measurement (its fields have fixed widths)."""

    def check(m: Measurement) -> bool:
        try:
            PROTOCOLS[name].encode(m)
        except ValueError:
            return False
        return True

    return check


def scaled(low: int, high: int, places: tuple[int, int]) -> st.SearchStrategy[Decimal]:
    """Decimals of `low`..`high` units with `places` decimals (a range)."""
    return st.builds(
        lambda u, p: Decimal(u).scaleb(-p), st.integers(low, high), st.integers(*places)
    )


@st.composite
def lider_measurements(draw: st.DrawFn) -> Measurement:
    return Measurement(draw(scaled(-9999, 99999, (0, 3))), stable=draw(st.booleans()))


@st.composite
def wt1000_measurements(draw: st.DrawFn) -> Measurement:
    places = draw(st.integers(0, 3))
    weight = Decimal(draw(st.integers(-99999, 999999))).scaleb(-places)
    tare = Decimal(draw(st.integers(0, 99999) | st.just(0))).scaleb(-places)
    return Measurement(weight, "kg", draw(st.booleans()), "net" if tare else "gross", tare)


@st.composite
def wt27r_measurements(draw: st.DrawFn) -> Measurement:
    unit = draw(st.sampled_from(["kg", "g", "lb", "t"]))
    mode, tare = draw(MODES), Decimal(draw(st.integers(0, 99999)))
    if draw(st.booleans()):
        return Measurement(None, unit, False, mode, tare, draw(OUT_OF_RANGE))
    weight = Decimal(draw(st.integers(-99999, 899999)))
    return Measurement(weight, unit, draw(st.booleans()), mode, tare)


@st.composite
def toledo_a_measurements(draw: st.DrawFn) -> Measurement:
    mode = draw(MODES)
    if draw(st.booleans()):
        return Measurement(None, "kg", False, mode, status="overload")
    weight = fixed_point(draw(st.integers(0, 999_999)), draw(st.sampled_from([2, 3])))
    return Measurement(weight, "kg", draw(st.booleans()), mode)


@st.composite
def cas_measurements(draw: st.DrawFn) -> Measurement:
    unit = draw(st.sampled_from(["kg", "lb"]))
    if draw(st.booleans()):
        return Measurement(None, unit, False, status=draw(st.sampled_from(["overload", "error"])))
    return Measurement(draw(scaled(-99999, 99999, (0, 4))), unit, draw(st.booleans()))


@st.composite
def condec_measurements(draw: st.DrawFn) -> Measurement:
    unit, mode = draw(st.sampled_from(["lb", "kg", "g", "oz", "t"])), draw(MODES)
    if draw(st.booleans()):
        return Measurement(None, unit, False, mode, status=draw(PROBLEM_STATUS))
    return Measurement(draw(scaled(-999999, 9999999, (0, 4))), unit, draw(st.booleans()), mode)


@st.composite
def cardinal_measurements(draw: st.DrawFn) -> Measurement:
    unit, mode = draw(st.sampled_from(["lb", "kg", "g", "t", "tn", "oz"])), draw(MODES)
    if draw(st.booleans()):
        return Measurement(None, unit, False, mode, status=draw(OUT_OF_RANGE))
    return Measurement(draw(scaled(-999999, 999999, (0, 5))), unit, draw(st.booleans()), mode)


@st.composite
def epelsa_measurements(draw: st.DrawFn) -> Measurement:
    return Measurement(draw(scaled(-99999, 999999, (0, 5))), stable=draw(st.booleans()))


MEASUREMENTS = {
    "toledo": toledo_measurements(),
    "sics": sics_measurements(),
    "ad": ad_measurements(),
    "prix": prix_measurements(),
    "mt8217": mt8217_measurements(),
    "lider": lider_measurements(),
    "wt1000": wt1000_measurements(),
    "wt27r": wt27r_measurements(),
    "toledo-a": toledo_a_measurements(),
    "cas": cas_measurements(),
    "condec": condec_measurements(),
    "cardinal": cardinal_measurements(),
    "epelsa": epelsa_measurements(),
}
NEXT = ["lider", "wt1000", "wt27r", "toledo-a", "cas", "condec", "cardinal", "epelsa"]
"""The families of PROTOCOLS-NEXT.md, whose property tests are parametrized."""
for _name in NEXT:
    MEASUREMENTS[_name] = MEASUREMENTS[_name].filter(encodable(_name))
SAFE_GARBAGE = {
    "toledo": bytes(b for b in range(256) if b not in (0x02, CR)),
    "sics": bytes(b for b in range(256) if not (0x41 <= b <= 0x5A or b in b"\r\n")),
    "ad": bytes(b for b in range(256) if b not in b"SUO\r\n"),
    "prix": bytes(b for b in range(256) if b != 0x02),
    "mt8217": bytes(b for b in range(256) if b != 0x02),
    "lider": bytes(b for b in range(256) if b not in (0x01, 0x02)),
    "wt1000": bytes(b for b in range(256) if b not in b"01\r\n"),
    "wt27r": bytes(b for b in range(256) if b not in b"EI\r\n"),
    "toledo-a": bytes(b for b in range(256) if b != 0x02),
    "cas": bytes(b for b in range(256) if b not in (0x01, 0x81)),
    "condec": bytes(b for b in range(256) if b != 0x02),
    "cardinal": bytes(b for b in range(256) if b != 0x0D),
    "epelsa": bytes(b for b in range(256) if b != 0x02),
}
DELIMITERS = [b"\x02", b"\x03", b"\r", b"\n", b"\r\n", b"S", b"?", b"S S ", b"ST,GS,"]


def feed_split(protocol: WireProtocol, data: bytes, cuts: list[int]) -> list[bytes]:
    """Feed `data` to a new framer in pieces cut at `cuts`; return the frames."""
    framer = protocol.framer()
    bounds = [0, *sorted(cuts), len(data)]
    return [frame for a, b in pairwise(bounds) for frame in framer.feed(data[a:b])]


def garbage(name: str) -> st.SearchStrategy[bytes]:
    """Garbage that cannot open or close a frame of protocol `name`."""
    return st.lists(st.sampled_from(SAFE_GARBAGE[name]), max_size=12).map(bytes)


def check_any_bytes(name: str, chunks: list[bytes]) -> None:
    protocol = PROTOCOLS[name]
    framer = protocol.framer()
    for chunk in chunks:
        for frame in framer.feed(chunk):
            assert len(frame) <= MAX_BUFFER + 1
            decoded(protocol, [frame])
    assert framer.stats.garbage_bytes >= 0 and framer.stats.overflows >= 0


def any_chunks(name: str) -> st.SearchStrategy[list[bytes]]:
    """Random bytes, delimiters and valid frames of protocol `name`, in any order."""
    frames = MEASUREMENTS[name].map(PROTOCOLS[name].encode)
    pieces = st.binary(max_size=40) | st.sampled_from(DELIMITERS) | frames
    return st.lists(pieces, max_size=30)


def check_frames_survive(name: str, data: st.DataObject) -> None:
    protocol = PROTOCOLS[name]
    ms = data.draw(st.lists(MEASUREMENTS[name], min_size=1, max_size=8))
    stream = b""
    for m in ms:
        stream += data.draw(garbage(name)) + protocol.encode(m)
    stream += data.draw(garbage(name))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    assert decoded(protocol, feed_split(protocol, stream, cuts)) == ms


def check_round_trip(name: str, m: Measurement) -> None:
    protocol = PROTOCOLS[name]
    assert protocol.decode(protocol.encode(m), None) == m


def check_exact_round_trip(name: str, m: Measurement) -> None:
    """The round trip keeps every value's own decimals too (`12.50` stays `12.50`)."""
    protocol = PROTOCOLS[name]
    assert repr(protocol.decode(protocol.encode(m), None)) == repr(m)


next_families = pytest.mark.parametrize("name", NEXT)


@next_families
@SETTINGS
@given(data=st.data())
def test_next_families_survive_any_bytes(name: str, data: st.DataObject) -> None:
    check_any_bytes(name, data.draw(any_chunks(name)))


@next_families
@SETTINGS
@given(data=st.data())
def test_next_families_frames_among_garbage_decode_to_their_measurements(
    name: str, data: st.DataObject
) -> None:
    check_frames_survive(name, data)


@next_families
@SETTINGS
@given(data=st.data())
def test_next_families_encode_then_decode_is_exact_identity(name: str, data: st.DataObject) -> None:
    check_exact_round_trip(name, data.draw(MEASUREMENTS[name]))


@SETTINGS
@given(chunks=any_chunks("toledo"))
def test_toledo_survives_any_bytes(chunks: list[bytes]) -> None:
    check_any_bytes("toledo", chunks)


@SETTINGS
@given(chunks=any_chunks("sics"))
def test_sics_survives_any_bytes(chunks: list[bytes]) -> None:
    check_any_bytes("sics", chunks)


@SETTINGS
@given(chunks=any_chunks("ad"))
def test_ad_survives_any_bytes(chunks: list[bytes]) -> None:
    check_any_bytes("ad", chunks)


@SETTINGS
@given(chunks=any_chunks("prix"))
def test_prix_survives_any_bytes(chunks: list[bytes]) -> None:
    check_any_bytes("prix", chunks)


@SETTINGS
@given(chunks=any_chunks("mt8217"))
def test_mt8217_survives_any_bytes(chunks: list[bytes]) -> None:
    check_any_bytes("mt8217", chunks)


@SETTINGS
@given(data=st.data())
def test_toledo_checksum_frames_among_garbage_decode_to_their_measurements(
    data: st.DataObject,
) -> None:
    check_frames_survive("toledo", data)


@SETTINGS
@given(data=st.data())
def test_toledo_frames_without_checksum_decode_to_their_measurements(data: st.DataObject) -> None:
    protocol = PROTOCOLS["toledo"]
    ms = data.draw(st.lists(toledo_measurements(), min_size=1, max_size=8))
    stream = data.draw(garbage("toledo")) + b"".join(protocol.encode(m)[:-1] for m in ms)
    stream += b"\x02"  # the next frame's STX tells the last frame has no CHK
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    assert decoded(protocol, feed_split(protocol, stream, cuts)) == ms


@SETTINGS
@given(data=st.data())
def test_sics_answers_among_garbage_decode_to_their_measurements(data: st.DataObject) -> None:
    check_frames_survive("sics", data)


@SETTINGS
@given(data=st.data())
def test_ad_lines_among_garbage_decode_to_their_measurements(data: st.DataObject) -> None:
    check_frames_survive("ad", data)


@SETTINGS
@given(data=st.data())
def test_prix_answers_among_garbage_decode_to_their_measurements(data: st.DataObject) -> None:
    check_frames_survive("prix", data)


@SETTINGS
@given(data=st.data())
def test_mt8217_answers_among_garbage_decode_to_their_measurements(data: st.DataObject) -> None:
    check_frames_survive("mt8217", data)


@SETTINGS
@given(m=toledo_measurements())
def test_toledo_encode_then_decode_is_identity(m: Measurement) -> None:
    check_round_trip("toledo", m)


@SETTINGS
@given(m=sics_measurements())
def test_sics_encode_then_decode_is_identity(m: Measurement) -> None:
    check_round_trip("sics", m)


@SETTINGS
@given(m=ad_measurements())
def test_ad_encode_then_decode_is_identity(m: Measurement) -> None:
    check_round_trip("ad", m)


@SETTINGS
@given(m=prix_measurements())
def test_prix_encode_then_decode_is_identity(m: Measurement) -> None:
    check_round_trip("prix", m)


@SETTINGS
@given(m=mt8217_measurements())
def test_mt8217_encode_then_decode_is_identity(m: Measurement) -> None:
    check_round_trip("mt8217", m)


@SETTINGS
@given(frame=st.binary(max_size=40))
def test_decoders_raise_only_decode_error_on_any_bytes(frame: bytes) -> None:
    for protocol in PROTOCOLS.values():
        decoded(protocol, [frame])
