"""Benchmark balanca against a re-creation of the old stack, in the same run.

For each server (the old stack, then balanca) and each number of WebSocket clients N:

1. open a pty pair; a thread writes toledo frames into the master at `--rate` frames/s, the
   weight of frame k being 2k, and remembers when each was written (`time.monotonic()`,
   which is CLOCK_MONOTONIC and so comparable across processes on Linux);
2. start the server as a subprocess reading the pty's slave path, wait for
   `GET /api/weight` to answer 200;
3. start N WebSocket clients in processes of at most 250 (`wsclients.py`), wait until all
   are connected, let things settle for a second;
4. measure for `--seconds`: every client records each reading's weight and receipt time;
   the server's CPU time comes from /proc/PID/stat over the window;
5. after a grace period, collect the records: delivery is received / expected over the
   frames written during the window for all N clients (clients that failed to connect
   count as receiving nothing), latency is receipt time minus write time.

Then balanca alone runs the multi-scale row: `--scales` ptys (4), each written at
`--scale-rate` frames/s (10), read as that many scales of one service, to the largest N of
clients following all of them (`/ws`); its server CPU per delivered message is compared with
the single-scale run at that N. Each scale's frames carry weights in their own range (scale i,
frame k: 2(k + i * SCALE_SPAN)), so a client's record tells which scale a reading came from.

Then `wrk` loads `GET /api/weight` (10 connections, 8 s) on a fresh instance of each server
while frames keep arriving, `--wrk-rounds` times (3), the servers taking turns and the order
reversed every other round, medians reported (`--no-wrk` leaves it out). Besides the two servers,
this row also runs the old stack without its log line per request (`--no-access-log`) and
balanca as of `--baseline` (0.1.0's commit, checked out from this repository's history): issue
19's goal is twice the first, issue 14's not to fall below the second. Results go to bench/results/latest.json and, as Markdown, to
stdout; progress goes to stderr.

    python bench/run.py [--clients 10,100,1000] [--rate 20] [--seconds 20] [--only old|balanca]
                        [--scales 4] [--scale-rate 10] [--no-wrk]

`--crash-drill` runs bench/crash.py instead: `kill -9` during a 30 s database cut, and how
many readings it cost. `--fleet` runs bench/fleet.py instead: 20 sites publishing to one
Mosquitto, readings/s and latency end to end, records lost across a broker restart.
`--records` runs bench/records.py instead: a chain of 1,000,000 sealed records checked while
`GET /api/weight` is measured. `--export` runs bench/export.py: 1,000,000 transactions
streamed as `/api/transactions.csv`, rows/s and the server's memory.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import pickle
import platform
import re
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tty
import urllib.error
import urllib.request
from array import array
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
"""twistd of the Python running the benchmark (`-m twisted.scripts.twistd` does nothing: no main)."""
RESULTS = HERE / "results" / "latest.json"
CLIENTS_PER_PROCESS = 250
GRACE_SECONDS = 3.0
SETTLE_SECONDS = 1.0
READY_TIMEOUT = 30.0
CONNECT_TIMEOUT = 90.0
WRK_CONNECTIONS, WRK_SECONDS, WRK_THREADS = 10, 8, 2
BASELINE = "6b9b419"
"""The commit of balanca 0.1.0, the `--baseline` the wrk row compares with by default."""
TARGETS = {
    "delivery": 1.0,  # balanca at 1000 clients
    "p99_ratio": 0.75,  # balanca p99 / old p99 at 1000 clients, at most
    "cpu_ratio": 0.5,  # balanca CPU / old CPU at 1000 clients, at most
    "rps_ratio": 2.0,  # balanca req/s / old req/s (with or without its access log), at least
    "rps_baseline_ratio": 1.0,  # balanca req/s / the baseline's (0.1.0), at least
    "wrk_p99_ms": 10.0,  # balanca, below
    "wrk_errors": 0,
    "multi_cpu_ratio": 1.10,  # CPU per delivered message, several scales / one, at most
}
SCALE_SPAN = 100_000
"""Frame numbers of one scale in the multi-scale row: scale i's frame k is number
i * SCALE_SPAN + k (and weighs twice that)."""


# -- the scale: toledo frames into a pty --------------------------------------------------


def toledo_frame(seq: int) -> bytes:
    """The toledo frame for sequence number `seq`: 2*seq kg (mod 10^6), stable, gross, CHK.

    Status bytes as in PROTOCOLS.md's example (`20 `: units, increment x2, kg, stable), hence
    even weights. Every byte is 7-bit.
    """
    body = b"\x0220 " + b"%06d000000\r" % ((2 * seq) % 1_000_000)
    return body + bytes([(-sum(body)) & 0x7F])


class FrameWriter:
    """A pty pair and a thread writing a toledo frame into its master at `rate` frames/s.

    `written[seq]` is the monotonic time just before frame `seq` was written (seq from 1).
    The slave stays open here in raw mode, so the line discipline neither echoes nor
    translates CR before the server opens it, and a server's close does not hang it up.
    """

    def __init__(self, rate: float, base: int = 0, phase: float = 0.0) -> None:
        """`base` is added to each frame's number on the wire, and the first frame waits
        `phase` periods (the multi-scale row: independent scales are not in step)."""
        self.base, self.phase = base, phase
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.period = 1.0 / rate
        self.written: list[float] = [math.nan]
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="frame-writer", daemon=True)

    def start(self) -> FrameWriter:
        """Start writing."""
        self._thread.start()
        return self

    def _run(self) -> None:
        next_at = time.monotonic() + self.phase * self.period
        self._stop.wait(self.phase * self.period)
        while not self._stop.is_set():
            frame = toledo_frame(self.base + len(self.written))
            self.written.append(time.monotonic())
            try:
                if os.write(self.master, frame) < len(frame):
                    self.dropped += 1
            except BlockingIOError:
                self.dropped += 1  # nobody reads the slave: the pty buffer is full
            next_at += self.period
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()  # fell behind: carry on, do not burst

    def seqs_between(self, t0: float, t1: float) -> range:
        """Sequence numbers of the frames written in [t0, t1)."""
        times = self.written[1:]  # a snapshot; only appended to
        return range(bisect.bisect_left(times, t0) + 1, bisect.bisect_left(times, t1) + 1)

    def close(self) -> None:
        """Stop the thread and close both ends."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        os.close(self.master)
        os.close(self.slave)


# -- servers under test -------------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    """Where one server instance reads and listens."""

    ttys: tuple[str, ...]
    """One pty per scale (the old stack reads the first)."""
    workdir: Path
    http_port: int
    ws_port: int


@dataclass(frozen=True)
class ServerSpec:
    """How to start a server; the command is the only real difference between the two."""

    name: str
    command: Callable[[Launch], list[str]]
    ws_path: str
    ws_on_http_port: bool
    root: Path = ROOT
    """The source tree it runs from (balanca's checkout, or the baseline's)."""


@dataclass(frozen=True)
class RunningServer:
    """A started, ready server."""

    proc: subprocess.Popen[bytes]
    http_url: str
    ws_url: str
    log: Path
    ready_url: str
    """Answers 200 once every scale is read (`/api/weight` of a lone scale)."""


def old_command(launch: Launch, broadcast: str = "loop", access_log: bool = True) -> list[str]:
    """The old stack: bench/oldstack.py, HTTP and WebSocket on two ports."""
    return [
        sys.executable, str(HERE / "oldstack.py"), "--serial", launch.ttys[0],
        "--http-port", str(launch.http_port), "--ws-port", str(launch.ws_port),
        "--broadcast", broadcast, *([] if access_log else ["--no-access-log"]),
    ]  # fmt: skip


def balanca_command(launch: Launch) -> list[str]:
    """balanca under twistd, HTTP and WebSocket on one dual-stack port: a lone scale as 0.1
    ran it, or scales s0, s1, ... for several ptys."""
    scales = []
    for i, tty_path in enumerate(launch.ttys):
        scale_id = f"s{i}=" if len(launch.ttys) > 1 else ""
        scales += [
            "--scale",
            f"{scale_id}serial:{tty_path.replace(':', chr(92) + ':')}:protocol=toledo",
        ]
    return [
        *TWISTD, "-n", "--pidfile=", "balanca",
        "--http", f"dualstack:{launch.http_port}",
        *scales,
        "--record", "none", "--db", f"sqlite:{launch.workdir / 'bench.sqlite3'}",
        "--ws-max-queue", "32",
    ]  # fmt: skip


SERVER_NAMES = ("old", "balanca")
QUIET_OLD, BASELINE_NAME = "old, no access log", "balanca at baseline"
"""The servers only the wrk row runs."""


def server_specs(old_broadcast: str) -> dict[str, ServerSpec]:
    """The servers under test, in the order they run."""
    return {
        "old": ServerSpec(
            "old", partial(old_command, broadcast=old_broadcast), "/", ws_on_http_port=False
        ),
        "balanca": ServerSpec("balanca", balanca_command, "/ws", ws_on_http_port=True),
    }


def wrk_only_specs(old_broadcast: str, baseline: Path | None) -> dict[str, ServerSpec]:
    """The wrk row's rivals besides the two servers: the old stack without its access log and,
    when a baseline tree is given, balanca as it was there."""
    quiet = partial(old_command, broadcast=old_broadcast, access_log=False)
    specs = {QUIET_OLD: ServerSpec(QUIET_OLD, quiet, "/", ws_on_http_port=False)}
    if baseline is not None:
        specs[BASELINE_NAME] = ServerSpec(
            BASELINE_NAME, balanca_command, "/ws", ws_on_http_port=True, root=baseline
        )
    return specs


@contextmanager
def baseline_tree(commit: str) -> Iterator[Path | None]:
    """The files of `commit` of this repository in a scratch directory (None when `commit`
    is empty or git cannot give it)."""
    if not commit:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="balanca-baseline-") as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit],
                                 check=False, capture_output=True)  # fmt: skip
        if archive.returncode != 0:
            log(f"baseline {commit}: {archive.stderr.decode(errors='replace').strip()}")
            yield None
            return
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        yield Path(tmp)


def server_env(root: Path = ROOT) -> dict[str, str]:
    """The servers' environment: the source tree (by default the one the benchmark lives in)
    comes first on the path.

    So balanca runs from this checkout (installed or not), as the test suite does; Twisted's
    plugin finder does not see `twisted/plugins` through PEP 660 editable installs anyway.
    """
    path = [str(root), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


def unavailable(spec: ServerSpec) -> str | None:
    """Why `spec` cannot run here, or None."""
    if spec.command is not balanca_command:
        return None
    try:
        out = subprocess.run(
            [*TWISTD, "--help"],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
            env=server_env(spec.root),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"twistd not runnable: {exc!r}"
    if not re.search(r"^\s+balanca\s", out.stdout, re.MULTILINE):
        return f"no `balanca` twistd plugin in {spec.root} or this Python"
    return None


def free_port() -> int:
    """A TCP port free on loopback right now (bind port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(
    spec: ServerSpec, devices: tuple[str, ...], workdir: Path
) -> Iterator[RunningServer]:
    """Start `spec` reading `devices`, wait until it serves readings; stop it afterwards."""
    http_port = free_port()
    ws_port = http_port if spec.ws_on_http_port else free_port()
    launch = Launch(devices, workdir, http_port, ws_port)
    log = workdir / f"{spec.name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            spec.command(launch), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=workdir, env=server_env(spec.root),
        )  # fmt: skip
    try:
        server = RunningServer(
            proc,
            f"http://127.0.0.1:{http_port}/api/weight",
            f"ws://127.0.0.1:{ws_port}{spec.ws_path}",
            log,
            f"http://127.0.0.1:{http_port}/api/{'weight' if len(devices) == 1 else 'health'}",
        )
        wait_ready(server)
        yield server
    finally:
        stop_process(proc)


def wait_ready(server: RunningServer, timeout: float = READY_TIMEOUT) -> None:
    """Poll its ready URL until it answers 200; fail early if the server exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited ({server.proc.returncode}): {tail(server.log)}")
        try:
            with urllib.request.urlopen(server.ready_url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {timeout:.0f} s: {tail(server.log)}")


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Terminate `proc`, kill it if it lingers, reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextmanager
def session(
    spec: ServerSpec, rate: float, scales: int = 1
) -> Iterator[tuple[list[FrameWriter], RunningServer, Path]]:
    """`scales` ptys with frames flowing, a ready server reading them, a scratch directory."""
    with tempfile.TemporaryDirectory(prefix="balanca-bench-") as tmp, ExitStack() as stack:
        writers = [
            stack.enter_context(closing(FrameWriter(rate, i * SCALE_SPAN, i / scales).start()))
            for i in range(scales)
        ]
        devices = tuple(w.path for w in writers)
        server = stack.enter_context(running_server(spec, devices, Path(tmp)))
        yield writers, server, Path(tmp)


# -- /proc figures ------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of stat


def machine_busy_seconds() -> float:
    """CPU time all cores spent busy so far (user, nice, system, irq, softirq, steal), in seconds."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def peak_rss_mib(pid: int) -> float:
    """VmHWM of process `pid`, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


# -- WebSocket clients --------------------------------------------------------------------


def split(total: int, per: int) -> list[int]:
    """`total` split into near-equal parts of at most `per`."""
    parts = max(1, math.ceil(total / per))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


@contextmanager
def client_processes(
    url: str, count: int, workdir: Path, deflate: bool
) -> Iterator[list[tuple[subprocess.Popen[str], Path]]]:
    """Start `count` WebSocket clients in processes of at most CLIENTS_PER_PROCESS."""
    procs: list[tuple[subprocess.Popen[str], Path]] = []
    try:
        for i, share in enumerate(split(count, CLIENTS_PER_PROCESS)):
            out = workdir / f"clients-{i}.pickle"
            cmd = [sys.executable, str(HERE / "wsclients.py"), "--url", url,
                   "--count", str(share), "--out", str(out)]  # fmt: skip
            cmd += ["--deflate"] if deflate else []
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            procs.append((proc, out))
        yield procs
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=5)


def wait_clients_ready(procs: list[tuple[subprocess.Popen[str], Path]]) -> tuple[int, int]:
    """Wait for every client process's `ready OK FAILED` line; return the totals."""
    deadline = time.monotonic() + CONNECT_TIMEOUT
    ok = failed = 0
    with selectors.DefaultSelector() as sel:
        for proc, _ in procs:
            assert proc.stdout is not None
            sel.register(proc.stdout, selectors.EVENT_READ)
        pending = len(procs)
        while pending:
            if time.monotonic() > deadline:
                raise RuntimeError("WebSocket clients did not connect in time")
            for key, _ in sel.select(timeout=1):
                stream: IO[str] = key.fileobj  # type: ignore[assignment]
                words = stream.readline().split()
                sel.unregister(stream)
                pending -= 1
                if len(words) != 3 or words[0] != "ready":
                    raise RuntimeError(f"client process failed: {words}")
                ok, failed = ok + int(words[1]), failed + int(words[2])
    return ok, failed


def collect_records(procs: list[tuple[subprocess.Popen[str], Path]]) -> list[dict[str, Any]]:
    """Tell client processes to stop and read their records."""
    for proc, _ in procs:
        assert proc.stdin is not None
        proc.stdin.write("stop\n")
        proc.stdin.close()
    records: list[dict[str, Any]] = []
    for proc, out in procs:
        proc.wait(timeout=30)
        with open(out, "rb") as f:
            records += pickle.load(f)
    return records


# -- measurements -------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (NaN when empty)."""
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


def delivery_and_latency(
    records: list[dict[str, Any]], clients: int, writers: list[FrameWriter], t0: float, t1: float
) -> dict[str, Any]:
    """Delivery ratio and latency percentiles over the frames written in [t0, t1), by every
    writer (a reading's frame number says whose: SCALE_SPAN apart)."""
    windows = [w.seqs_between(t0, t1) for w in writers]
    latencies: list[float] = []
    lags: list[float] = []
    received = 0
    for rec in records:
        seqs, times, client_lags = array("q"), array("d"), array("d")
        seqs.frombytes(rec["seqs"])
        times.frombytes(rec["times"])
        client_lags.frombytes(rec["lags"])
        seen: set[int] = set()
        for seq, t, lag in zip(seqs, times, client_lags, strict=True):
            scale, k = divmod(seq, SCALE_SPAN)
            if scale < len(windows) and k in windows[scale] and seq not in seen:
                seen.add(seq)
                latencies.append(t - writers[scale].written[k])
                lags.append(lag)
        received += len(seen)
    latencies.sort()
    lags.sort()
    frames = sum(map(len, windows))
    expected = clients * frames
    return {
        "frames": frames,
        "expected": expected,
        "received": received,
        "delivery": received / expected if expected else math.nan,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": (latencies[-1] * 1000) if latencies else math.nan,
        "client_lag_p99_ms": percentile(lags, 0.99) * 1000,
    }


def measure_ws(
    spec: ServerSpec, clients: int, args: argparse.Namespace, scales: int = 1
) -> dict[str, Any]:
    """One server instance, `clients` WebSocket clients, `args.seconds` of readings: of one
    scale at `args.rate`, or of `scales` scales at `args.scale_rate` each."""
    rate = args.rate if scales == 1 else args.scale_rate
    with session(spec, rate, scales) as (writers, server, tmp):
        with client_processes(server.ws_url, clients, tmp, args.deflate) as procs:
            connected, failed = wait_clients_ready(procs)
            time.sleep(SETTLE_SECONDS)
            pids = [p.pid for p, _ in procs]
            cpu0, ccpu0 = cpu_seconds(server.proc.pid), sum(map(cpu_seconds, pids))
            busy0, own0 = machine_busy_seconds(), cpu_seconds(os.getpid())
            t0 = time.monotonic()
            time.sleep(args.seconds)
            t1 = time.monotonic()
            cpu1, ccpu1 = cpu_seconds(server.proc.pid), sum(map(cpu_seconds, pids))
            busy1, own1 = machine_busy_seconds(), cpu_seconds(os.getpid())
            time.sleep(GRACE_SECONDS)
            rss = peak_rss_mib(server.proc.pid)
            records = collect_records(procs)
        result = delivery_and_latency(records, clients, writers, t0, t1)
        closed = sum(1 for r in records if r["closed_at"] is not None and r["closed_at"] < t1)
        result.update(
            clients=clients,
            connected=connected,
            connect_failed=failed,
            closed_early=closed,
            seconds=t1 - t0,
            cpu_s=cpu1 - cpu0,
            cpu_core_pct=100 * (cpu1 - cpu0) / (t1 - t0),
            peak_rss_mib=rss,
            client_cpu_s=ccpu1 - ccpu0,
            other_cpu_s=(busy1 - busy0) - (cpu1 - cpu0) - (ccpu1 - ccpu0) - (own1 - own0),
            writer_dropped=sum(w.dropped for w in writers),
            scales=scales,
            rate=rate,
            cpu_us_per_message=1e6 * (cpu1 - cpu0) / result["received"]
            if result["received"]
            else math.nan,
        )
        return result


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests/s, latency percentiles and errors from `wrk --latency` output."""
    unit_ms = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
        return float(m.group(1)) * unit_ms[m.group(2)] if m else math.nan

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    socket_errors = sum(map(int, sock.groups())) if sock else 0
    return {
        "requests": int(total.group(1)) if total else 0,
        "rps": float(rps.group(1)) if rps else math.nan,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": socket_errors,
        "errors": (int(non2xx.group(1)) if non2xx else 0) + socket_errors,
    }


def measure_wrk(spec: ServerSpec, args: argparse.Namespace) -> dict[str, Any]:
    """`wrk` on `GET /api/weight` of a fresh instance while frames keep arriving."""
    with session(spec, args.rate) as (_, server, _):
        time.sleep(SETTLE_SECONDS)
        cmd = ["wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{WRK_SECONDS}s",
               "--latency", server.http_url]  # fmt: skip
        cpu0 = cpu_seconds(server.proc.pid)
        done = subprocess.run(
            cmd, check=False, capture_output=True, text=True, timeout=WRK_SECONDS + 30
        )
        cpu = cpu_seconds(server.proc.pid) - cpu0
        if done.returncode != 0:
            raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
        result = parse_wrk(done.stdout)
        result.update(cpu_s=cpu, peak_rss_mib=peak_rss_mib(server.proc.pid), raw=done.stdout)
        result["cpu_us_per_request"] = (
            1e6 * cpu / result["requests"] if result["requests"] else math.nan
        )
        return result


def bench_wrk(specs: dict[str, ServerSpec], args: argparse.Namespace) -> dict[str, Any]:
    """The wrk row: every server `args.wrk_rounds` times, taking turns, the order reversed
    every other round (the machine's load drifts); per server, the median of each figure."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for name, spec in specs.items():
        reason = unavailable(spec)
        if reason:
            log(f"wrk, {name}: skipped: {reason}")
        else:
            runs[name] = []
    log("wrk GET /api/weight:")
    for i in range(args.wrk_rounds):
        for name in list(runs) if i % 2 == 0 else list(reversed(runs)):
            what = f"{name}, round {i + 1} of {args.wrk_rounds}"
            runs[name].append(guarded(what, partial(measure_wrk, specs[name], args)))
    return {name: median_run(done) for name, done in runs.items()}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over a server's wrk runs (errors: their sum), with the runs."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"error": runs[-1]["error"] if runs else "no run", "runs": runs}
    summary: dict[str, Any] = {
        key: statistics.median(r[key] for r in ok)
        for key in ("rps", "p50_ms", "p99_ms", "cpu_s", "cpu_us_per_request", "peak_rss_mib")
    }
    summary["errors"] = sum(r["errors"] for r in ok) + len(runs) - len(ok)
    summary["runs"] = runs
    return summary


def guarded(what: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one measurement; a failure is recorded and reported, the run goes on."""
    log(f"  {what} ...")
    try:
        result = measure()
    except Exception as exc:  # noqa: BLE001 (one failed measurement must not end the run)
        log(f"  {what}: FAILED: {last_line(str(exc))}")
        return {"error": str(exc)}
    log(f"  {what}: {brief(result)}")
    return result


def brief(result: dict[str, Any]) -> str:
    """A one-line progress summary of a measurement."""
    if "rps" in result:
        return (
            f"{result['rps']:.0f} req/s, p99 {result['p99_ms']:.2f} ms, errors {result['errors']}"
        )
    return (
        f"delivery {result['delivery']:.2%}, p50 {result['p50_ms']:.1f} ms, "
        f"p99 {result['p99_ms']:.1f} ms, CPU {result['cpu_s']:.2f} s, "
        f"RSS {result['peak_rss_mib']:.0f} MiB, clients' CPU {result['client_cpu_s']:.2f} s, "
        f"other processes' CPU {result['other_cpu_s']:.2f} s"
    )


def bench_server(spec: ServerSpec, args: argparse.Namespace) -> dict[str, Any]:
    """All measurements for one server."""
    reason = unavailable(spec)
    if reason:
        log(f"{spec.name}: skipped: {reason}")
        return {"unavailable": reason}
    log(f"{spec.name}:")
    ws = {
        str(n): guarded(f"{n} WebSocket clients", partial(measure_ws, spec, n, args))
        for n in args.clients
    }
    result: dict[str, Any] = {"ws": ws}
    if spec.name == "balanca" and args.scales > 1:
        n = max(args.clients)
        what = f"{args.scales} scales at {args.scale_rate:g}/s, {n} WebSocket clients"
        result["multi"] = guarded(what, partial(measure_ws, spec, n, args, args.scales))
    return result


# -- comparison and report ----------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> float:
    """a / b, NaN when either is missing or b is 0."""
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return math.nan
    return a / b


def compare(servers: dict[str, Any], clients: list[int]) -> list[dict[str, Any]]:
    """balanca/old ratios, with the targets at the largest N (1000 by default), and balanca's
    several scales against its one."""
    old, new = servers.get("old", {}), servers.get("balanca", {})
    rows = multi_rows(new, max(clients))
    if "ws" not in old or "ws" not in new:
        return rows
    for n in clients:
        o, b = old["ws"].get(str(n), {}), new["ws"].get(str(n), {})
        at_target = n == max(clients)
        rows.append(row(f"delivery, {n} clients (balanca)", b.get("delivery"), None,
                        TARGETS["delivery"] if at_target else None, ">="))  # fmt: skip
        rows.append(row(f"p99 latency, {n} clients", b.get("p99_ms"), o.get("p99_ms"),
                        TARGETS["p99_ratio"] if at_target else None, "<="))  # fmt: skip
        rows.append(row(f"server CPU, {n} clients", b.get("cpu_s"), o.get("cpu_s"),
                        TARGETS["cpu_ratio"] if at_target else None, "<="))  # fmt: skip
    return rows


def wrk_rows(servers: dict[str, Any]) -> list[dict[str, Any]]:
    """balanca's wrk figures against each rival's that ran: the old stack with and without its
    access log (at least 2×) and balanca at the baseline (at least 1×)."""
    bw = servers.get("balanca", {}).get("wrk", {})
    if "rps" not in bw:
        return []
    rows = []
    for name, label, target in (
        ("old", "wrk req/s", TARGETS["rps_ratio"]),
        (QUIET_OLD, "wrk req/s / old without access log", TARGETS["rps_ratio"]),
        (BASELINE_NAME, "wrk req/s / balanca at baseline", TARGETS["rps_baseline_ratio"]),
    ):
        rival = servers.get(name, {}).get("wrk", {})
        if "rps" in rival:
            rows.append(row(label, bw["rps"], rival["rps"], target, ">="))
    rows.append(row("wrk p99 ms (balanca)", bw.get("p99_ms"), None, TARGETS["wrk_p99_ms"], "<"))
    rows.append(row("wrk errors (balanca)", bw.get("errors"), None, TARGETS["wrk_errors"], "<="))
    return rows


def multi_rows(new: dict[str, Any], clients: int) -> list[dict[str, Any]]:
    """The multi-scale row against the single-scale run at `clients`: delivery, and server CPU
    per delivered message (several scales / one)."""
    multi, single = new.get("multi", {}), new.get("ws", {}).get(str(clients), {})
    if "delivery" not in multi:
        return []
    scales = multi["scales"]
    return [
        row(f"delivery, {scales} scales, {clients} clients", multi["delivery"], None,
            TARGETS["delivery"], ">="),
        row(f"CPU per delivered message, {scales} scales / 1 scale", multi["cpu_us_per_message"],
            single.get("cpu_us_per_message"), TARGETS["multi_cpu_ratio"], "<="),
    ]  # fmt: skip


def row(
    figure: str, value: float | None, old: float | None, target: float | None, sense: str
) -> dict[str, Any]:
    """One comparison row: a ratio to old's figure when `old` is given, else the value."""
    measured = ratio(value, old) if old is not None else (math.nan if value is None else value)
    met = None
    if target is not None and not math.isnan(measured):
        met = {"<=": measured <= target, "<": measured < target, ">=": measured >= target}[sense]
    return {
        "figure": figure,
        "kind": "ratio" if old is not None else "value",
        "measured": measured,
        "target": None if target is None else f"{sense} {target:g}",
        "met": met,
    }


def last_line(text: str) -> str:
    """The last non-empty line of an error (a traceback's exception), for a table cell."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "?").replace("|", "/")


def fmt(value: Any, spec: str = ".1f") -> str:
    """A table cell: numbers formatted, missing values as an em dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return format(value, spec) if isinstance(value, (int, float)) else str(value)


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown tables, ready for a README."""
    meta = results["meta"]
    out = [
        (
            f"### WebSocket push: {meta['rate']:g} readings/s, {meta['seconds']:g} s window"
            f" ({meta['date']}, {meta['cpus']} CPUs, load {meta['load_before']})"
        ),
        "",
        (
            "| server | clients | delivery | p50 ms | p99 ms | max ms | server CPU s "
            "| CPU % core | peak RSS MiB | clients' CPU s | other CPU s |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, server in results["servers"].items():
        if "unavailable" in server:
            out.append(f"| {name} | — | not run: {server['unavailable']} |||||||||")
            continue
        for n, r in server.get("ws", {}).items():
            if "error" in r:
                out.append(f"| {name} | {n} | failed: {last_line(r['error'])} |||||||||")
                continue
            out.append(ws_row(name, n, r))
        multi = server.get("multi")
        if multi is not None and "error" not in multi:
            label = f"{name}, {multi['scales']} scales × {multi['rate']:g}/s"
            out.append(ws_row(label, str(multi["clients"]), multi))
    out += [
        "",
        "CPU per delivered message (µs): "
        + ", ".join(
            f"{name} {n}: {fmt(r.get('cpu_us_per_message'), '.2f')}"
            for name, server in results["servers"].items()
            for n, r in [*server.get("ws", {}).items(), ("multi", server.get("multi", {}))]
            if r and "error" not in r
        ),
        "",
        (
            f"### GET /api/weight: wrk, {WRK_CONNECTIONS} connections, {WRK_SECONDS} s,"
            f" median of {meta['wrk_rounds']} runs taking turns (baseline: {meta['baseline']})"
        ),
        "",
        (
            "| server | req/s | p50 ms | p99 ms | errors (non-2xx + socket) | server CPU s "
            "| µs server CPU per request | each run's req/s |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, server in results["servers"].items():
        w = server.get("wrk")
        if w is None or "error" in w:
            failed = "failed: " + last_line(w["error"]) if w else "not run"
            out.append(f"| {name} | {failed} |||||||")
            continue
        each = ", ".join(fmt(r.get("rps"), ".0f") for r in w["runs"])
        out.append(
            f"| {name} | {fmt(w['rps'], '.0f')} | {fmt(w['p50_ms'], '.2f')}"
            f" | {fmt(w['p99_ms'], '.2f')} | {w['errors']} | {fmt(w['cpu_s'], '.2f')}"
            f" | {fmt(w['cpu_us_per_request'], '.1f')} | {each} |"
        )
    if results["comparison"]:
        out += ["", "### balanca / old", "", "| figure | measured | target | met |",
                "|---|---:|---:|:---:|"]  # fmt: skip
        for r in results["comparison"]:
            met = {True: "yes", False: "**no**", None: "not measured" if r["target"] else ""}[
                r["met"]
            ]
            spec = ".2%" if r["figure"].startswith("delivery") else ".2f"
            out.append(
                f"| {r['figure']} | {fmt(r['measured'], spec)} | {r['target'] or ''} | {met} |"
            )
    return "\n".join(out)


# -- main ---------------------------------------------------------------------------------


def ws_row(name: str, clients: str, r: dict[str, Any]) -> str:
    """One row of the WebSocket table."""
    return (
        f"| {name} | {clients} | {r['delivery']:.2%} | {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])}"
        f" | {fmt(r['max_ms'])} | {fmt(r['cpu_s'], '.2f')} | {fmt(r['cpu_core_pct'])}"
        f" | {fmt(r['peak_rss_mib'])} | {fmt(r['client_cpu_s'], '.2f')}"
        f" | {fmt(r.get('other_cpu_s'), '.2f')} |"
    )


def without_nan(value: Any) -> Any:
    """`value` with NaN floats as None, so that the JSON is standard."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_nan(v) for v in value]
    return value


def log(message: str) -> None:
    """Progress, on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def versions() -> dict[str, str]:
    """Versions of the packages involved."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("balanca", "twisted", "autobahn", "websockets", "pyserial"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    if shutil.which("wrk") is None:
        found["wrk"] = "not installed"
        return found
    wrk = subprocess.run(["wrk", "--version"], check=False, capture_output=True, text=True)
    found["wrk"] = (wrk.stdout or wrk.stderr).split("Copyright")[0].strip()
    return found


def git_commit() -> str:
    """The commit of the tree the benchmark runs from."""
    done = subprocess.run(["git", "-C", str(HERE), "describe", "--always", "--dirty"],
                          check=False, capture_output=True, text=True)  # fmt: skip
    return done.stdout.strip() or "unknown"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", default="10,100,1000",
                   type=lambda s: sorted({int(x) for x in s.split(",") if x.strip()}),
                   help="numbers of WebSocket clients, comma-separated (default 10,100,1000)")  # fmt: skip
    p.add_argument("--rate", type=float, default=20.0, help="frames per second (default 20)")
    p.add_argument("--seconds", type=float, default=20.0, help="measurement window per N")
    p.add_argument("--only", choices=SERVER_NAMES, help="run one server only")
    p.add_argument("--deflate", action=argparse.BooleanOptionalAction, default=True,
                   help="clients offer permessage-deflate, as browsers do (default; "
                        "--no-deflate compares the serving paths without compression)")  # fmt: skip
    p.add_argument("--old-broadcast", choices=("loop", "helper"), default="loop",
                   help="old stack: await ws.send in a loop, or websockets.broadcast")  # fmt: skip
    p.add_argument("--scales", type=int, default=4,
                   help="scales in balanca's multi-scale row (default 4; 1 leaves it out)")  # fmt: skip
    p.add_argument("--scale-rate", type=float, default=10.0,
                   help="frames per second of each scale in the multi-scale row (default 10)")  # fmt: skip
    p.add_argument("--wrk", action=argparse.BooleanOptionalAction, default=True,
                   help="load GET /api/weight with wrk (default; --no-wrk leaves it out)")  # fmt: skip
    p.add_argument("--wrk-rounds", type=int, default=3,
                   help="wrk runs per server, taking turns (default 3; medians reported)")  # fmt: skip
    p.add_argument("--baseline", default=BASELINE,
                   help=f"the commit whose balanca the wrk row also loads (default {BASELINE}, "
                        "0.1.0; empty: none)")  # fmt: skip
    p.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    p.add_argument("--crash-drill", action="store_true",
                   help="instead: kill -9 during a database cut (bench/crash.py; MariaDB)")  # fmt: skip
    p.add_argument("--crash-cut", type=float, default=30.0, help="seconds of database cut")
    p.add_argument("--records", action="store_true",
                   help="instead: check a chain of sealed records (bench/records.py)")  # fmt: skip
    p.add_argument("--records-count", type=int, default=1_000_000, help="records in the chain")
    p.add_argument("--fleet", action="store_true",
                   help="instead: sites publishing to one Mosquitto (bench/fleet.py)")  # fmt: skip
    p.add_argument("--fleet-sites", type=int, default=20, help="balanca processes (sites)")
    p.add_argument("--fleet-seconds", type=float, default=20.0, help="seconds measured")
    p.add_argument("--fleet-cut", type=float, default=10.0, help="seconds the broker is down")
    p.add_argument("--export", action="store_true",
                   help="instead: stream /api/transactions.csv (bench/export.py)")  # fmt: skip
    p.add_argument("--export-count", type=int, default=1_000_000, help="transactions to export")
    p.add_argument("--export-sealed", action="store_true", help="chain and sign the records")
    p.add_argument("--export-mysql", action="store_true", help="MariaDB instead of SQLite")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, write the JSON results, print the Markdown tables."""
    args = parse_args(argv)
    if args.crash_drill:
        from crash import crash_drill, crash_line

        outcome = crash_drill(args.crash_cut, int(args.rate))
        print(crash_line(outcome))
        return 1 if "error" in outcome else 0
    if args.fleet:
        from fleet import fleet_bench, fleet_line

        figures = fleet_bench(args.fleet_sites, args.fleet_seconds, args.fleet_cut)
        log(json.dumps(figures))
        print(fleet_line(figures))
        return 0 if figures["records_lost"] == 0 else 1
    if args.export:
        from export import export_bench, export_line

        figures = export_bench(args.export_count, args.export_sealed, args.export_mysql)
        log(json.dumps(figures))
        print(export_line(figures))
        return 0
    if args.records:
        from records import records_bench, records_line

        figures = records_bench(args.records_count)
        log(json.dumps(figures))
        print(records_line(figures))
        return 0 if figures["verdict"].get("ok") else 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    if args.wrk and shutil.which("wrk") is None:
        log("wrk not found (Debian: apt-get install wrk)")
        return 2
    specs = server_specs(args.old_broadcast)
    names = [args.only] if args.only else list(specs)
    results: dict[str, Any] = {
        "meta": {
            "date": datetime.now().astimezone().isoformat(timespec="seconds"),
            "commit": git_commit(),
            "cpus": os.cpu_count(),
            "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "rate": args.rate,
            "seconds": args.seconds,
            "clients": args.clients,
            "deflate": args.deflate,
            "old_broadcast": args.old_broadcast,
            "scales": args.scales,
            "scale_rate": args.scale_rate,
            "wrk_rounds": args.wrk_rounds,
            "baseline": args.baseline or "none",
            "versions": versions(),
        },
        "servers": {name: bench_server(specs[name], args) for name in names},
    }
    if args.wrk:
        with baseline_tree(args.baseline if args.only is None else "") as baseline:
            rivals = wrk_only_specs(args.old_broadcast, baseline) if args.only is None else {}
            wrk_specs = {name: specs[name] for name in names} | rivals
            for name, summary in bench_wrk(wrk_specs, args).items():
                results["servers"].setdefault(name, {})["wrk"] = summary
    results["meta"]["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results["comparison"] = compare(results["servers"], args.clients) + wrk_rows(results["servers"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(without_nan(results), indent=2) + "\n")
    log(f"results written to {args.out}")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
