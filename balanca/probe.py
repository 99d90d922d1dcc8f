"""`balanca-probe DEVICE`: name the wire protocol of the indicator on a port, before writing
the config. Runs the `protocol=auto` detector once (balanca.scale.detect: watch, then the safe
probes only) and prints the family, the line settings and a decoded reading; exit status 0
when one family was recognised, 1 when none or several fit.

    balanca-probe /dev/ttyUSB0
    balanca-probe tcp:192.168.0.50:4001
    balanca-probe /dev/ttyUSB0 --baudrate 4800        (only that line)
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from typing import Any

from twisted.internet import defer
from twisted.internet.endpoints import clientFromString, connectProtocol
from twisted.internet.task import react

from balanca.reading import Measurement, decimal_text
from balanca.scale.detect import Detector, plan, set_serial_line
from balanca.scale.protocols import PROTOCOLS
from balanca.scale.protocols.base import DecodeError, LineSettings
from balanca.scale.sniffer import Verdict, line_text

TCP = "tcp:"


def arguments(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="balanca-probe", description=__doc__.split("\n")[0])
    parser.add_argument("device", help="a serial device, or tcp:HOST:PORT")
    parser.add_argument("--baudrate", type=int, help="keep to this baud rate")
    parser.add_argument("--bytesize", type=int, choices=(7, 8), help="keep to 7 or 8 data bits")
    parser.add_argument("--parity", choices=("N", "E", "O"), help="keep to this parity")
    parser.add_argument("--stopbits", type=float, choices=(1, 2), help="keep to these stop bits")
    return parser.parse_args(argv)


def named_line(args: argparse.Namespace) -> LineSettings | None:
    """The line the options name, or None to try every candidate line."""
    given = {
        k: v for k in ("baudrate", "bytesize", "parity", "stopbits") if (v := getattr(args, k))
    }
    return LineSettings(**given) if given else None


def last_reading(verdict: Verdict, data: bytes) -> Measurement | None:
    """The last measurement in `data` under the detected family."""
    if verdict.family is None:
        return None
    wire = PROTOCOLS[verdict.family]
    found = None
    for frame in wire.framer().feed(data):
        try:
            value = wire.decode(frame, None)
        except DecodeError:
            continue
        if isinstance(value, Measurement):
            found = value
    return found


def describe(m: Measurement) -> str:
    """A reading in words: `1.234 kg, stable, gross`."""
    words = [f"{decimal_text(m.weight)} {m.unit}" if m.weight is not None else "no weight"]
    words += ["stable" if m.stable else "not stable", m.mode]
    if m.tare is not None:
        words.append(f"tare {decimal_text(m.tare)}")
    if m.status != "ok":
        words.append(m.status)
    return ", ".join(words)


def config(device: str, verdict: Verdict) -> str:
    """The `--scale` spec for what was found: line options where they differ from the
    family's defaults."""
    assert verdict.family is not None
    spec = [device if device.startswith(TCP) else f"serial:{device}", f"protocol={verdict.family}"]
    if verdict.line is not None and not device.startswith(TCP):
        default = asdict(PROTOCOLS[verdict.family].line)
        spec += [
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in asdict(verdict.line).items()
            if v != default[k]
        ]
    return ":".join(spec)


@defer.inlineCallbacks
def probe(reactor: Any, args: argparse.Namespace) -> Any:
    """Run the detector once and print what it found; the exit status."""
    serial = not args.device.startswith(TCP)
    line = named_line(args) if serial else None
    steps = plan(line, serial)
    detector = Detector(reactor, steps, set_serial_line, steps[0][0] or LineSettings())
    if serial:
        from twisted.internet.serialport import SerialPort

        first = steps[0][0] or LineSettings()
        SerialPort(detector, args.device, reactor, **asdict(first))
    else:
        yield connectProtocol(clientFromString(reactor, args.device), detector)
    verdict = yield detector.done
    detector.stop()
    if verdict.family is None:
        print(verdict.text)
        return 1
    reading = last_reading(verdict, detector.replay)
    print(f"protocol: {verdict.family}")
    print(f"line: {line_text(verdict.line if serial else None)}")
    print(f"evidence: {verdict.text}")
    print(f"reading: {describe(reading) if reading else 'none decoded'}")
    print(f"config: --scale {config(args.device, verdict)}")
    return 0


def main(argv: list[str] | None = None) -> None:
    """The `balanca-probe` console script."""
    args = arguments(sys.argv[1:] if argv is None else argv)

    def run(reactor: Any) -> defer.Deferred[None]:
        return probe(reactor, args).addCallback(_exit)

    react(run)


def _exit(status: int) -> None:
    if status:
        raise SystemExit(status)


if __name__ == "__main__":
    main()
