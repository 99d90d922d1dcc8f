"""Mettler-Toledo MT-SICS, per PROTOCOLS.md `sics` (MT-SICS reference manual, level 0/1).

Polled with `SI` (send the weight immediately); every line ends in CR LF and is read as
whitespace-separated tokens, not columns:

    S S <weight> <unit>     stable weight          S D <weight> <unit>   dynamic (in motion)
    S I                     busy, no weight now    S + / S -             overload / underload
    Z A | Z I | Z + | Z -   zero: done / not executable / above / below the zero range
    T S <tare> <unit>       tare done              T I | T + | T -       tare not done
    TAC A | TAC I           clear tare: done / not executable
    ES | ET | EL            syntax, transmission, logical error

`S I` becomes a measurement with no weight and status `error`: the balance cannot tell its
weight now, and a live view should show that rather than keep the last weight. Replies to
`Z`, `T` and `TAC` become a `Reply`; so do `ES`/`ET`/`EL`, which do not name the command they
answer: their `command` is empty (they answer the command sent last). A refusal's text adds
the balance's reason in words, and its `code` is `zero_out_of_range` (`Z +`, `Z -`) or
`scale_refused`. A frame is a line from
its first capital letter (what comes before is garbage) to its CR LF (or a lone CR or LF).
"""

from __future__ import annotations

from balanca.reading import Measurement, Reply
from balanca.scale.protocols.base import (
    DecodeError,
    DelimitedFramer,
    WireProtocol,
    frame_text,
    parse_decimal,
)

_COMMANDS = {"Z": "zero", "T": "tare", "TAC": "clear-tare"}
_HEADS = {name: head for head, name in _COMMANDS.items()}
_FAILED = {
    "I": "not executable now",
    "+": "above the permitted range",
    "-": "below the permitted range",
}
"""Statuses that say a command was not done, in words."""
_ERRORS = {
    "ES": "syntax error: command not recognised",
    "ET": "transmission error",
    "EL": "logical error: command not executable now",
}
_NO_WEIGHT = {
    "I": Measurement(None, stable=False, status="error"),
    "+": Measurement(None, stable=False, status="overload"),
    "-": Measurement(None, stable=False, status="underload"),
}
"""`S` answers without a weight: busy, overload, underload."""


def framer() -> DelimitedFramer:
    """A framer for MT-SICS lines."""
    return DelimitedFramer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"\r\n", resync=False)


def decode(frame: bytes, decimals: int | None = None) -> Measurement | Reply:
    """Decode one line; `decimals` is ignored (the weight carries its decimal point)."""
    text = frame_text(frame)
    tokens = text.split()
    if len(tokens) == 1 and tokens[0] in _ERRORS:
        return Reply("", False, f"{text} ({_ERRORS[text]})", code="scale_refused")
    if len(tokens) < 2:
        raise DecodeError("malformed", f"not an answer: {text!r}")
    head, status, rest = tokens[0], tokens[1], tokens[2:]
    if head == "S":
        if status in ("S", "D"):
            _arity(rest, 2, text)
            return Measurement(parse_decimal(rest[0]), rest[1], status == "S")
        answer = _NO_WEIGHT.get(status)
        if answer is None:
            raise DecodeError("unknown-status", text)
        _arity(rest, 0, text)
        return answer
    command = _COMMANDS.get(head)
    if command is None:
        raise DecodeError("malformed", f"not an answer balanca asks for: {text!r}")
    if status in _FAILED:
        _arity(rest, 0, text)
        outside = command == "zero" and status != "I"
        return Reply(
            command,
            False,
            f"{text} ({_FAILED[status]})",
            code="zero_out_of_range" if outside else "scale_refused",
        )
    if command == "tare" and status == "S":
        _arity(rest, 2, text)
        return Reply(command, True, text, parse_decimal(rest[0]))
    if command != "tare" and status == "A":
        _arity(rest, 0, text)
        return Reply(command, True, text)
    raise DecodeError("unknown-status", text)


def _arity(values: list[str], count: int, text: str) -> None:
    """Check that an answer has `count` values after its two header tokens."""
    if len(values) != count:
        raise DecodeError("malformed", f"{count} values expected: {text!r}")


def encode(m: Measurement) -> bytes:
    """The answer to `SI` for `m`: `S S`/`S D` with the weight, or `S +`, `S -`, `S I`.

    An `S` answer has no net/gross flag and no tare: `m.mode` and `m.tare` are not sent.
    """
    if m.status != "ok":
        if m.weight is not None:
            raise ValueError(f"status {m.status} with weight {m.weight}")
        return {"overload": b"S +\r\n", "underload": b"S -\r\n", "error": b"S I\r\n"}[m.status]
    if m.weight is None:
        raise ValueError("status ok needs a weight")
    return _line("S", "S" if m.stable else "D", format(m.weight, "f"), m.unit)


def encode_reply(reply: Reply) -> bytes:
    """The line a balance answers a zero, tare or clear-tare command with (tare in kg)."""
    head = _HEADS.get(reply.command)
    if head is None:
        raise ValueError(f"MT-SICS has no reply for command {reply.command!r}")
    if not reply.ok:
        status = "+" if reply.code == "zero_out_of_range" else "I"
        return f"{head} {status}\r\n".encode("ascii")
    if head != "T":
        return f"{head} A\r\n".encode("ascii")
    if reply.tare is None:
        raise ValueError("a tare reply needs the tare")
    return _line("T", "S", format(reply.tare, "f"), "kg")


def _line(head: str, status: str, value: str, unit: str) -> bytes:
    """A weight line: the value right-aligned in 10 characters, as balances send it."""
    if unit.split() != [unit]:
        raise ValueError(f"not a unit: {unit!r}")
    return f"{head} {status} {value:>10} {unit}\r\n".encode("ascii")


PROTOCOL = WireProtocol(
    name="sics",
    framer=framer,
    decode=decode,
    encode=encode,
    poll=b"SI\r\n",
    commands={"tare": b"T\r\n", "zero": b"Z\r\n", "clear-tare": b"TAC\r\n"},
    replies=True,
    encode_reply=encode_reply,
)
