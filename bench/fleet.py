"""The fleet bench of issue 17: `--fleet-sites` balanca processes (each a site of two
simulated scales at 10 readings/s) publishing to one Mosquitto of the bench's own, and a
central subscriber counting.

1. start the broker (persistence on, so the central subscriber's session and its queued
   records survive a restart) and the subscriber (QoS 1, persistent session);
2. start the sites, each with `--mqtt` to the broker, and wait until every one is connected;
3. measure for `--fleet-seconds`: readings/s end to end, and the latency from decode (the
   reading's `time`) to the subscriber's receipt, p50 and p99; each site's CPU;
4. meanwhile, a capture thread writes sealed records on every site (`POST .../weighings`);
5. restart the broker: down for `--fleet-cut` seconds, up again; captures go on throughout;
6. wait until every site's outbox is empty: records lost = records answered 201 that the
   subscriber never received (must be 0), and how long after the broker's return the last
   site's outbox emptied.

    python bench/run.py --fleet [--fleet-sites 20] [--fleet-seconds 20] [--fleet-cut 10]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
SCALES = ("a", "b")
RATE = 10


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Site:
    """One balanca process: a site of two simulated scales, publishing to the broker."""

    def __init__(self, index: int, broker_port: int, folder: Path) -> None:
        from tests.mqttbroker import free_port

        self.id = f"site{index:03d}"
        self.port = free_port()
        self.folder = folder / self.id
        self.folder.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BALANCA_", "MYSQL_"))}
        env["PYTHONPATH"] = str(ROOT)
        command = [
            *TWISTD, "-n", "--pidfile=", "balanca",
            "--http", f"tcp:{self.port}:interface=127.0.0.1",
            "--db", f"sqlite:{self.folder / 'site.sqlite3'}",
            "--record", "none", "--site-id", self.id,
            *[f"--scale={s}=simulator:rate={RATE}" for s in SCALES],
            "--mqtt", f"mqtt://127.0.0.1:{broker_port}",
        ]  # fmt: skip
        with open(self.folder / "service.log", "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self.written: list[int] = []

    def get(self, path: str) -> Any:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return json.load(r)
        except urllib.error.HTTPError as error:
            return json.load(error)

    def mqtt(self) -> dict[str, Any]:
        try:
            return dict(self.get("/api/health")["mqtt"])
        except (OSError, ValueError, KeyError):
            return {}

    def published(self) -> float:
        """Readings this site has published so far (its /metrics)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith('balanca_mqtt_published_total{topic="weight"}'):
                    return float(line.split()[-1])
        return 0.0

    def capture(self) -> bool:
        """One capture on scale a; True when written (201)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/scales/a/weighings",
            json.dumps({"again": True}).encode(),
            {"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                self.written.append(int(json.load(answer)["number"]))
                return True
        except urllib.error.HTTPError as refused:
            refused.close()  # the simulated load in motion or at zero: another time
        except OSError:
            pass
        return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Central:
    """The central subscriber: readings counted with their latency, records by site."""

    def __init__(self, port: int) -> None:
        from tests.mqttbroker import Subscriber

        self.lock = threading.Lock()
        self.readings = 0
        self.latencies: list[float] = []
        self.measuring = False
        self.records: dict[str, set[int]] = {}
        self.duplicates = 0
        self.subscriber = Subscriber(
            "balanca/#", ("127.0.0.1", port), session="bench-central", on_message=self.message
        )

    def message(self, topic: str, payload: bytes, now: float) -> None:
        if not payload:
            return
        parts = topic.split("/")
        if parts[-1] == "weight":
            if self.measuring:
                decoded = datetime.fromisoformat(json.loads(payload)["time"]).timestamp()
                with self.lock:
                    self.readings += 1
                    self.latencies.append(now - decoded)
        elif parts[-1] == "records":
            number = int(json.loads(payload)["number"])
            with self.lock:
                seen = self.records.setdefault(parts[1], set())
                self.duplicates += number in seen
                seen.add(number)


def fleet_bench(sites: int = 20, seconds: float = 20.0, cut: float = 10.0) -> dict[str, Any]:
    """Run the bench; its figures."""
    from tests.mqttbroker import Mosquitto

    folder = Path(tempfile.mkdtemp(prefix="balanca-fleet-"))
    broker = Mosquitto("max_queued_messages 100000", persist=True)
    fleet: list[Site] = []
    central: Central | None = None
    stop_capturing = threading.Event()
    try:
        broker.start()
        central = Central(broker.port)
        fleet = [Site(i, broker.port, folder) for i in range(sites)]
        deadline = time.monotonic() + 120
        while not all(s.mqtt().get("state") == "ok" for s in fleet):
            if time.monotonic() > deadline:
                raise RuntimeError("not every site connected within 120 s")
            time.sleep(0.5)
        capturing = threading.Thread(
            target=_capture_loop, args=(fleet, stop_capturing), daemon=True
        )
        capturing.start()
        time.sleep(2)
        cpu0 = {s.id: cpu_seconds(s.process.pid) for s in fleet}
        broker_cpu0 = cpu_seconds(broker.process.pid) if broker.process else 0.0
        sent0 = sum(s.published() for s in fleet)
        t0 = time.monotonic()
        central.measuring = True
        time.sleep(seconds)
        central.measuring = False
        window = time.monotonic() - t0
        sent = sum(s.published() for s in fleet) - sent0
        cpu = {s.id: (cpu_seconds(s.process.pid) - cpu0[s.id]) / window for s in fleet}
        broker_cpu = (
            (cpu_seconds(broker.process.pid) - broker_cpu0) / window if broker.process else 0
        )
        with central.lock:
            latencies = sorted(central.latencies)
            readings = central.readings
        # The broker restart, captures going on.
        broker.stop()
        down_at = time.monotonic()
        time.sleep(cut)
        broker.start()
        back_at = time.monotonic()
        time.sleep(3)
        stop_capturing.set()
        capturing.join(30)
        emptied = 0.0
        deadline = time.monotonic() + 90
        while True:
            states = [s.mqtt() for s in fleet]
            if all(m.get("state") == "ok" and m.get("outbox") == 0 for m in states):
                emptied = time.monotonic() - back_at
                break
            if time.monotonic() > deadline:
                emptied = float("nan")
                break
            time.sleep(0.25)
        time.sleep(1)
        written = sum(len(s.written) for s in fleet)
        with central.lock:
            lost = sum(len(set(s.written) - central.records.get(s.id, set())) for s in fleet)
            duplicates = central.duplicates
        expected = sites * len(SCALES) * RATE
        return {
            "sites": sites,
            "scales": sites * len(SCALES),
            "expected_readings_per_s": expected,
            "readings_per_s": round(readings / window, 1),
            "published_per_s": round(sent / window, 1),
            "delivery": round(readings / sent, 4) if sent else None,
            "latency_p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
            "latency_p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1)
            if latencies
            else None,
            "site_cpu_percent_mean": round(100 * statistics.mean(cpu.values()), 1),
            "broker_cpu_percent": round(100 * broker_cpu, 1),
            "cut_s": round(back_at - down_at, 1),
            "records_written": written,
            "records_lost": lost,
            "records_duplicates": duplicates,
            "outbox_emptied_after_s": round(emptied, 1),
            "readings_dropped": sum(s.mqtt().get("readings_dropped", 0) for s in fleet),
            "payload_bytes": _payload_size(fleet[0]),
        }
    finally:
        stop_capturing.set()
        for site in fleet:
            site.stop()
        if central is not None:
            central.subscriber.close()
        broker.close()
        shutil.rmtree(folder, ignore_errors=True)


def _capture_loop(fleet: list[Site], stop: threading.Event) -> None:
    """Capture on every site in turn, about one capture per site every two seconds."""
    while not stop.is_set():
        for site in fleet:
            if stop.is_set():
                return
            site.capture()
            time.sleep(2 / len(fleet))


def _payload_size(site: Site) -> int:
    reading = site.get("/api/scales/a/weight")
    return len(json.dumps(reading, separators=(",", ":")).encode())


def fleet_line(f: dict[str, Any]) -> str:
    """The bench as Markdown lines."""
    return (
        f"fleet: {f['sites']} sites ({f['scales']} simulated scales at {RATE}/s) → one Mosquitto:"
        f" **{f['readings_per_s']} readings/s** end to end ({f['published_per_s']}/s published,"
        f" delivery {100 * (f['delivery'] or 0):.2f} %; {f['expected_readings_per_s']}/s nominal),"
        f" decode → subscriber p50 {f['latency_p50_ms']} ms, **p99 {f['latency_p99_ms']} ms**;"
        f" site CPU {f['site_cpu_percent_mean']} % each, broker CPU {f['broker_cpu_percent']} %\n"
        f"fleet: broker restart ({f['cut_s']} s down): **{f['records_lost']} records lost** of"
        f" {f['records_written']} written ({f['records_duplicates']} duplicates dropped by number),"
        f" every outbox empty {f['outbox_emptied_after_s']} s after the broker's return;"
        f" {f['readings_dropped']} readings dropped while it was away"
    )


if __name__ == "__main__":
    figures = fleet_bench()
    print(json.dumps(figures, indent=2))
    print(fleet_line(figures))
