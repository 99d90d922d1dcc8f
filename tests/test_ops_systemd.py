"""The systemd deployment in contrib/systemd: units that systemd-analyze accepts, an environment
file of real options, and the service started the way systemd starts it, from a socket it
inherits, logging in text for journald or in JSON under `twist`."""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import defer, endpoints, reactor
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import eventsFromJSONLogFile, formatEvent
from twisted.python.failure import Failure
from twisted.python.systemd import ListenFDs
from twisted.scripts.twistd import ServerOptions
from twisted.trial.unittest import TestCase

from balanca.tap import Options
from tests.base import TWISTD, fetch, skip_or_fail
from tests.wsclient import connect

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "contrib" / "systemd"
INSTALLED_TWISTD = "/opt/balanca/venv/bin/twistd"
TWIST = [sys.executable, "-c", "from twisted.application.twist._twist import Twist; Twist.main()"]
OPERATORS_GREP = re.compile("(WebSocket|keepalive|Nova conexão)")
"""The old system's operators watched its log with `grep -E "(WebSocket|keepalive|Nova conexão)"`."""


def key_values(path: Path) -> dict[str, str]:
    """The `Key=Value` lines of a unit or environment file (each key once in ours)."""
    entries = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            entries[key.strip()] = value.strip()
    return entries


def exec_start() -> list[str]:
    """balanca.service's command line, as words."""
    return shlex.split(key_values(UNITS / "balanca.service")["ExecStart"])


def environment_file() -> dict[str, str]:
    """balanca.env as systemd reads it: plain values, so what the file says is what it means."""
    entries = key_values(UNITS / "balanca.env")
    for key, value in entries.items():
        assert not re.search(r"""['"\\$]""", value), f"{key}: quote or escape in {value!r}"
    return entries


def dual_stack_socket() -> socket.socket:
    """A listening socket as balanca.socket makes: IPv6 on [::] that takes IPv4 too."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", 0))
    sock.listen(128)
    return sock


class Child(ProcessProtocol):
    """A child process: everything it writes, and how it ended."""

    def __init__(self) -> None:
        self.output = bytearray()
        self.reason: Failure | None = None
        self.ended: defer.Deferred[None] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        self.reason = reason
        self.ended.callback(None)

    def text(self) -> str:
        return self.output.decode(errors="replace")


class SocketActivation(TestCase):
    """The service started from inherited sockets, as systemd starts it."""

    timeout = 60

    def start_as_systemd(self, command: list[str], env: dict[str, str], *sockets: Any) -> Child:
        """Run `command` with `sockets` as fds 3, 4, ... and LISTEN_FDS, LISTEN_FDNAMES and
        LISTEN_PID (the child's pid: a shell sets it to its own, then execs the command)."""
        workdir = tempfile.mkdtemp(prefix="balanca-systemd-")
        self.addCleanup(shutil.rmtree, workdir, True)
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith(("BALANCA_", "MYSQL_"))
        }
        env = {
            **inherited,
            "PYTHONPATH": str(ROOT),
            "BALANCA_DB": f"sqlite:{workdir}/balanca.sqlite3",
            **env,
            "LISTEN_FDS": str(len(sockets)),
            "LISTEN_FDNAMES": ":".join("balanca.socket" for _ in sockets),
        }
        shell = ["/bin/sh", "-c", 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"', "sh", *command]
        fds: dict[int, int | str] = {0: "w", 1: "r", 2: "r"}
        fds.update({3 + i: s.fileno() for i, s in enumerate(sockets)})
        child = Child()
        reactor.spawnProcess(child, shell[0], shell, env, workdir, childFDs=fds)
        for sock in sockets:
            sock.close()  # only the child holds them now, as a socket-activated service does
        self.addCleanup(self.stop, child)
        return child

    async def stop(self, child: Child) -> Any:
        """Send SIGTERM, as `systemctl stop` does; how the child ended (ProcessDone or
        ProcessTerminated)."""
        if not child.ended.called:
            child.transport.signalProcess("TERM")  # type: ignore[union-attr]
        await child.ended
        assert child.reason is not None
        return child.reason.value

    def assertStoppedCleanly(self, ended: Any, child: Child) -> None:
        """twistd and twist shut down on SIGTERM, then die of it again (exit status 143),
        which systemd counts as a clean exit of a service it stopped."""
        self.assertEqual((ended.exitCode, ended.signal), (None, signal.SIGTERM), child.text())
        self.assertIn("Main loop terminated.", child.text())

    async def answer(self, url: str, child: Child) -> Any:
        """The response to a GET of `url`; a failure shows what the child wrote."""
        try:
            return await fetch(url).addTimeout(20, reactor)
        except Exception as e:
            self.fail(f"{url}: {e!r}; the service wrote:\n{child.text()}")

    async def test_started_as_systemd_does_it_serves_http_and_websockets_on_ipv4_and_ipv6(
        self,
    ) -> None:
        http, old_clients = dual_stack_socket(), dual_stack_socket()
        port, ws_port = http.getsockname()[1], old_clients.getsockname()[1]
        env = {**environment_file(), "BALANCA_SCALE": "simulator"}
        env["BALANCA_WS"] = "systemd:domain=INET6:index=1"  # the port 81 drop-in's socket
        del env["BALANCA_DB"]  # a temporary SQLite file instead of /var/lib/balanca's
        child = self.start_as_systemd([*TWISTD, *exec_start()[1:]], env, http, old_clients)
        for host in ("127.0.0.1", "[::1]"):
            response = await self.answer(f"http://{host}:{port}/api/time", child)
            self.assertEqual(response.code, 200, host)
        for url in (f"ws://127.0.0.1:{port}/ws", f"ws://[::1]:{port}/ws", f"ws://[::1]:{ws_port}/"):
            client = await connect(url)
            await client.until(1)
            client.sendClose()
            await client.closed
        self.assertStoppedCleanly(await self.stop(child), child)
        log = child.text()
        self.assertIn(
            f"HTTP + WebSocket (/ws) listening on [::]:{port} (dual-stack IPv4+IPv6) "
            "from systemd:domain=INET6:index=0",
            log,
        )
        self.assertIn(f"WebSocket listening on [::]:{ws_port} (dual-stack IPv4+IPv6)", log)
        grepped = [line for line in log.splitlines() if OPERATORS_GREP.search(line)]
        for what in (
            "listening on",
            "keepalive: ping every",
            "Nova conexão WebSocket",
            "disconnected",
        ):
            self.assertTrue(any(what in line for line in grepped), f"grep misses {what!r}")
        self.assertEqual(sum("Nova conexão WebSocket" in line for line in grepped), 3)

    async def test_twist_logs_json_that_twisted_reads_back(self) -> None:
        http = dual_stack_socket()
        port = http.getsockname()[1]
        command = [*TWIST, "--log-format=json", "balanca", "--http", "systemd:domain=INET6:index=0"]
        child = self.start_as_systemd(command, {"BALANCA_SCALE": "simulator"}, http)
        response = await self.answer(f"http://127.0.0.1:{port}/api/time", child)
        self.assertEqual(response.code, 200)
        self.assertStoppedCleanly(await self.stop(child), child)
        records = child.output.split(b"\x1e")  # RFC 7464: each record starts with RS
        self.assertEqual(records[0], b"", "output before the first record")
        events = list(eventsFromJSONLogFile(io.StringIO(child.text())))
        self.assertEqual(len(events), len(records) - 1)
        texts = [formatEvent(event) for event in events]
        listening = f"HTTP + WebSocket (/ws) listening on [::]:{port} (dual-stack IPv4+IPv6)"
        self.assertTrue(any(text.startswith(listening) for text in texts), texts)
        self.assertTrue(all(event["log_level"] and "log_time" in event for event in events))


class Units(TestCase):
    def test_systemd_analyze_verify_accepts_the_units(self) -> None:
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            skip_or_fail("systemd-analyze is not installed")
        units = Path(tempfile.mkdtemp(prefix="balanca-units-"))
        self.addCleanup(shutil.rmtree, units, True)
        for name in ("balanca.socket", "balanca.service"):
            shutil.copy(UNITS / name, units)

        def verify() -> str:
            run = subprocess.run(
                [analyze, "verify", "balanca.socket", "balanca.service"],
                cwd=units,
                capture_output=True,
                text=True,
                timeout=60,
            )
            return (run.stdout + run.stderr).strip() + ("" if run.returncode == 0 else " (failed)")

        if not Path(INSTALLED_TWISTD).exists():
            # The one complaint about the units as shipped: their twistd is not installed here.
            self.assertEqual(
                verify(),
                f"balanca.service: Command {INSTALLED_TWISTD} is not executable: "
                "No such file or directory (failed)",
            )
        service = units / "balanca.service"
        twistd = Path(sys.executable).with_name("twistd")
        service.write_text(service.read_text().replace(INSTALLED_TWISTD, str(twistd)))
        self.assertEqual(verify(), "")

    def test_the_service_is_hardened_and_started_by_a_dual_stack_socket_on_port_80(self) -> None:
        service, sock = key_values(UNITS / "balanca.service"), key_values(UNITS / "balanca.socket")
        self.assertLessEqual(
            {"ListenStream": "[::]:80", "BindIPv6Only": "both"}.items(), sock.items()
        )
        wanted = {
            "User": "balanca",
            "SupplementaryGroups": "dialout",
            "EnvironmentFile": "/etc/balanca/balanca.env",
            "Restart": "on-failure",
            "NoNewPrivileges": "true",
            "ProtectSystem": "strict",
            "ProtectHome": "true",
            "PrivateTmp": "true",
            "CapabilityBoundingSet": "",
        }
        self.assertLessEqual(wanted.items(), service.items())
        self.assertNotIn("PrivateDevices", service, "it would hide the serial port")
        self.assertNotIn("MemoryDenyWriteExecute", service, "it breaks pyOpenSSL's callbacks")

    def test_the_unit_command_line_and_environment_file_are_real_options(self) -> None:
        words = exec_start()
        split = words.index("balanca")
        self.assertEqual(words[0], INSTALLED_TWISTD)
        twistd = ServerOptions()
        twistd.parseOptions(words[1:split])
        self.assertEqual(
            (twistd["nodaemon"], twistd["pidfile"], twistd["logfile"]), (True, "", "-")
        )
        # systemd's sockets, as balanca would inherit them with the port 81 drop-in
        inherited = ListenFDs([3, 4], ["balanca.socket", "balanca.socket"])
        self.patch(endpoints._SystemdParser, "_sddaemon", inherited)
        env = environment_file()
        options = Options(environ={**env, "BALANCA_WS": "systemd:domain=INET6:index=1"})
        options.parseOptions(words[split + 1 :])
        parsed = options.settings
        assert parsed is not None
        self.assertEqual([d for d, _ in parsed.http], ["systemd:domain=INET6:index=0"])
        self.assertEqual(parsed.scale.kind, "serial")
        self.assertEqual(parsed.db.dialect, "sqlite")
        writable = key_values(UNITS / "balanca.service")["ReadWritePaths"]
        self.assertTrue(parsed.db.path.startswith(writable + "/"), (parsed.db.path, writable))
        self.assertEqual(key_values(UNITS / "balanca.service")["WorkingDirectory"], writable)
