"""`balanca-probe DEVICE`, the installer's tool: run against a real pty, it names the family,
the line settings and a decoded reading, or says that nothing fits."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

from balanca.reading import Measurement
from tests.ptyscale import PtyScale

PROBE = [sys.executable, "-m", "balanca.probe"]


def streaming(scale: PtyScale, frame: bytes) -> threading.Event:
    """Write `frame` every 50 ms from a thread until the returned event is set."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(0.05):
            scale.write(frame)

    threading.Thread(target=run, daemon=True).start()
    return stop


def run_probe(scale: PtyScale, *options: str) -> subprocess.CompletedProcess[str]:
    """Run `balanca-probe` against the pty; unplug it afterwards."""
    try:
        return subprocess.run(
            [*PROBE, str(scale.link), *options],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        scale.unplug()


def test_the_console_script_is_installed() -> None:
    assert shutil.which("balanca-probe", path=str(Path(sys.executable).parent))


def test_it_names_a_streaming_indicators_family_line_and_reading() -> None:
    scale = PtyScale("condec").plug()
    stop = streaming(scale, scale.wire.encode(Measurement(Decimal("12.50"), "lb", mode="net")))
    out = run_probe(scale)
    stop.set()
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "protocol: condec",
        "line: 9600 8N1",
        "evidence: 3 frames",
        "reading: 12.50 lb, stable, net",
        f"config: --scale serial:{scale.link}:protocol=condec",
    ]


def test_it_asks_a_cas_scale_in_two_steps_and_reads_it() -> None:
    scale = PtyScale("cas").plug()
    scale.measurement = Measurement(Decimal("1.234"))
    out = run_probe(scale, "--baudrate", "9600")
    assert out.returncode == 0, out.stderr
    assert "protocol: cas\n" in out.stdout and "evidence: 3 frames, BCC ok\n" in out.stdout
    assert "reading: 1.234 kg, stable, gross\n" in out.stdout
    assert scale.requests[:3] == [b"\x05", b"\x11", b"\x05"]


def test_it_says_when_nothing_fits_and_exits_1() -> None:
    scale = PtyScale("lider").plug()
    stop = streaming(scale, b"hello\r\n")
    out = run_probe(scale, "--baudrate", "9600")
    stop.set()
    assert out.returncode == 1, out.stderr
    assert out.stdout.startswith("no protocol recognised (")
    assert "bytes seen: 68 65 6c 6c 6f 0d 0a" in out.stdout
