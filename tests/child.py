"""The real service as a child process (`twistd -n balanca` with the simulator) on a port of
its own, for tests that must stop, freeze, signal or measure the process itself."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.base import TWISTD

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port free on the IPv6 wildcard address (so on IPv4 too) right now."""
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", 0))
        return int(s.getsockname()[1])


class Service:
    """`twistd -n balanca` with the simulator, in a child process on a port of its own that
    stays the same across restarts."""

    def __init__(self, *args: str) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="balanca-page-"))
        self.port = free_port()
        self.args = args
        self.origin = f"http://[::1]:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            *TWISTD,
            "-n",
            "--pidfile=",
            "balanca",
            "--http",
            f"dualstack:{self.port}",
            "--db",
            f"sqlite:{self.workdir / 'x.sqlite3'}",
            *self.args,
        ]

    def start(self, timeout: float = 30) -> None:
        """Start the service and wait until `/api/health` answers (200 or 503 alike)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BALANCA_", "MYSQL_"))}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        with open(self.workdir / "service.log", "ab") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the service exited ({self.process.returncode}):\n{self.log()}"
                )
            if self._answers():
                return
            time.sleep(0.1)
        raise AssertionError(f"the service did not answer within {timeout:g} s:\n{self.log()}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.origin}/api/health", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # 503 (scale not live yet) or 401 (token): it answers
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the service the way an operator does (SIGTERM), and wait for it to exit."""
        if self.process is None or self.process.poll() is not None:
            return
        self.resume()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def freeze(self) -> None:
        """Stop the process without closing anything: its sockets stay open but silent, as
        behind a dead switch."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def log(self) -> str:
        path = self.workdir / "service.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def weighings(self) -> list[dict[str, Any]]:
        """The service's own list of weighings (newest first), to check the page against."""
        import json

        with urllib.request.urlopen(f"{self.origin}/api/weighings", timeout=5) as response:
            return list(json.load(response)["weighings"])


@contextmanager
def running(*args: str) -> Iterator[Service]:
    """A started service, stopped and cleaned up afterwards."""
    service = Service(*args)
    try:
        service.start()
        yield service
    finally:
        service.close()
