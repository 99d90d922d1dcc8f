"""Options: every one has an environment variable, and a bad value stops the start with a
clear message and a non-zero exit."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from pathlib import Path

from twisted.python import usage
from twisted.trial.unittest import TestCase

from balanca.tap import Options
from tests.base import TWISTD
from tests.child import free_port


def parse(*args: str, env: dict[str, str] | None = None) -> Options:
    options = Options(environ=env or {})
    options.parseOptions(list(args))
    return options


class OptionValues(TestCase):
    def test_defaults_run_the_simulator_on_sqlite_on_port_8080(self) -> None:
        settings = parse().settings
        assert settings is not None
        self.assertEqual(settings.scale.kind, "simulator")
        self.assertEqual(settings.scale.protocol, "toledo")
        self.assertEqual(settings.db.dialect, "sqlite")
        self.assertEqual([d for d, _ in settings.http], ["dualstack:8080"])
        self.assertEqual((settings.ping_interval, settings.ping_timeout), (30, 10))
        self.assertEqual(settings.ws_max_queue, 32)
        self.assertEqual(settings.stale_after, 3)

    def test_environment_variables_set_options_and_the_command_line_wins(self) -> None:
        env = {
            "BALANCA_HTTP": "tcp:9000 tcp6:9001",
            "BALANCA_STALE_AFTER": "5",
            "BALANCA_RECORD": "all",
            "BALANCA_SCALE": "simulator:protocol=sics:rate=5",
        }
        settings = parse(env=env).settings
        assert settings is not None
        self.assertEqual([d for d, _ in settings.http], ["tcp:9000", "tcp6:9001"])
        self.assertEqual(settings.stale_after, 5)
        self.assertEqual(settings.record, "all")
        self.assertEqual((settings.scale.protocol, settings.scale.rate), ("sics", 5))
        settings = parse("--http", "tcp:9002", "--record", "none", env=env).settings
        assert settings is not None
        self.assertEqual([d for d, _ in settings.http], ["tcp:9002"])
        self.assertEqual(settings.record, "none")

    def test_mysql_variables_select_mysql_when_db_is_absent(self) -> None:
        env = {
            "MYSQL_HOST": "db.local",
            "MYSQL_USER": "scale",
            "MYSQL_PASSWORD": "p:w",
            "MYSQL_DATABASE": "pesagem",
        }
        settings = parse(env=env).settings
        assert settings is not None
        self.assertEqual(
            (
                settings.db.dialect,
                settings.db.host,
                settings.db.user,
                settings.db.password,
                settings.db.database,
            ),
            ("mysql", "db.local", "scale", "p:w", "pesagem"),
        )
        settings = parse("--db", "sqlite:x.sqlite3", env=env).settings
        assert settings is not None
        self.assertEqual(settings.db.dialect, "sqlite")

    def test_a_token_file_is_read_and_stripped(self) -> None:
        path = Path(tempfile.mkdtemp(), "token")
        path.write_text("  s3cret\n")
        settings = parse("--token-file", str(path)).settings
        assert settings is not None
        self.assertEqual(settings.access.write_token, "s3cret")
        settings = parse(env={"BALANCA_TOKEN": "from-env"}).settings
        assert settings is not None
        self.assertEqual(settings.access.write_token, "from-env")

    def test_serial_and_tcp_scale_specs(self) -> None:
        settings = parse(
            "--scale", "serial:/dev/serial/by-path/pci-0\\:1:baudrate=4800:protocol=sics"
        ).settings
        assert settings is not None
        spec = settings.scale
        self.assertEqual(
            (spec.kind, spec.device, spec.line.baudrate, spec.protocol),
            ("serial", "/dev/serial/by-path/pci-0:1", 4800, "sics"),
        )
        self.assertEqual((spec.line.bytesize, spec.line.parity), (8, "N"))
        toledo = parse("--scale", "serial:/dev/ttyUSB0").settings
        assert toledo is not None
        self.assertEqual((toledo.scale.line.bytesize, toledo.scale.line.parity), (7, "E"))
        tcp = parse("--scale", "tcp:10.0.0.5:4001:protocol=ad:timeout=3").settings
        assert tcp is not None
        self.assertEqual(
            (tcp.scale.kind, tcp.scale.endpoint, tcp.scale.protocol, tcp.scale.source),
            ("endpoint", "tcp:10.0.0.5:4001:timeout=3", "ad", "tcp"),
        )

    def test_a_bare_device_path_is_a_serial_device_with_its_case_kept(self) -> None:
        for text, device, protocol in (
            ("/dev/ttyUSB0", "/dev/ttyUSB0", "toledo"),
            (
                "/dev/serial/by-id/usb-FTDI_A1\\:B:protocol=sics",
                "/dev/serial/by-id/usb-FTDI_A1:B",
                "sics",
            ),
        ):
            settings = parse("--scale", text).settings
            assert settings is not None
            spec = settings.scale
            self.assertEqual((spec.kind, spec.device, spec.protocol), ("serial", device, protocol))

    def test_bad_scale_specs_are_one_line_usage_errors(self) -> None:
        cases = [
            (
                "simulatr",
                "unknown scale kind 'simulatr'; expected simulator, serial:DEVICE, a device "
                "path, or a client endpoint such as tcp:HOST:PORT",
            ),
            ("tcp:127.0.0.1", "tcp:HOST:PORT"),
            ("tcp:127.0.0.1:port", "not a client endpoint"),
            (
                "serial:/dev/ttyUSB0:tolerance=NaN",
                "tolerance must be a decimal number of at least 0",
            ),
            ("serial:/dev/ttyUSB0:tolerance=-0.5", "tolerance"),
            ("serial:/dev/ttyUSB0:tolerance=Infinity", "tolerance"),
            ("serial:/dev/ttyUSB0:tolerance=sNaN", "tolerance"),
            ("serial:/dev/ttyUSB0:protocol=sics:poll=nan", "poll"),
            ("serial:/dev/ttyUSB0:protocol=sics:poll=inf", "poll"),
            ("serial:/dev/ttyUSB0:protocol=sics:poll=-1", "poll"),
            ("serial:/dev/ttyUSB0:stopbits=nan", "stopbits"),
            ("serial:/dev/ttyUSB0:baudrate=-9600", "baudrate"),
            ("serial:/dev/ttyUSB0:decimals=-1", "decimals"),
            ("simulator:rate=nan", "rate"),
            ("simulator:rate=-1", "rate"),
        ]
        for spec, words in cases:
            with self.assertRaises(usage.UsageError, msg=spec) as caught:
                parse("--scale", spec)
            message = str(caught.exception)
            self.assertIn(words, message, spec)
            self.assertNotIn("\n", message, spec)

    def test_stale_after_must_be_longer_than_a_polled_scales_poll_period(self) -> None:
        with self.assertRaises(usage.UsageError) as caught:
            parse("--scale", "serial:/dev/ttyUSB0:protocol=prix:poll=2", "--stale-after", "1")
        self.assertIn("longer than the poll period of the prix scale (2 s)", str(caught.exception))
        with self.assertRaises(usage.UsageError):
            parse("--scale", "simulator:protocol=sics", "--stale-after", "0.2")
        settings = parse(
            "--scale", "serial:/dev/ttyUSB0:protocol=prix:poll=0.5", "--stale-after", "1"
        ).settings
        assert settings is not None
        self.assertEqual((settings.stale_after, settings.scale.poll), (1, 0.5))
        settings = parse("--scale", "serial:/dev/ttyUSB0:poll=5", "--stale-after", "1").settings
        self.assertIsNotNone(settings)  # toledo streams: its poll option is unused

    def test_bad_values_are_usage_errors_that_say_what_is_wrong(self) -> None:
        cases = [
            (["--http", "nonsense:1234"], "nonsense"),
            (["--http", "dualstack:notaport"], "port"),
            (["--scale", "simulator:protocol=nope"], "unknown scale protocol"),
            (["--scale", "serial:/dev/ttyS0:parity=Q"], "parity"),
            (["--scale", "serial"], "device"),
            (["--scale", "simulator:speed=3"], "speed"),
            (["--token-file", "/nonexistent/token"], "cannot read token file"),
            (["--db", "postgres://x/y"], "sqlite:PATH or mysql://"),
            (["--record", "sometimes"], "--record"),
            (["--stale-after", "-1"], "--stale-after"),
            (["--ping-interval", "soon"], "--ping-interval"),
            (["--ws-max-queue", "0.5"], "--ws-max-queue must be a whole number"),
            (["--ws-max-queue", "0"], "--ws-max-queue must be a whole number"),
            (["--ws-max-queue", "1e3"], "--ws-max-queue must be a whole number"),
        ]
        for args, words in cases:
            with self.assertRaises(usage.UsageError, msg=args) as caught:
                parse(*args)
            self.assertIn(words, str(caught.exception), args)

    def test_a_read_token_without_a_write_token_is_refused(self) -> None:
        folder = Path(tempfile.mkdtemp())
        (folder / "read").write_text("reader\n")
        (folder / "write").write_text("writer\n")
        with self.assertRaises(usage.UsageError) as caught:
            parse("--read-token-file", str(folder / "read"))
        self.assertIn("give --token-file", str(caught.exception))
        both = parse("--read-token-file", str(folder / "read"), "--token-file", str(folder / "write"))  # fmt: skip
        self.assertEqual((both.settings.access.read_token, both.settings.access.write_token), ("reader", "writer"))  # fmt: skip
        from_env = parse("--read-token-file", str(folder / "read"), env={"BALANCA_TOKEN": "w"})
        self.assertEqual(from_env.settings.access.write_token, "w")

    def test_a_database_password_is_never_shown(self) -> None:
        for url in ("mysql://root:SECRETPW@db:notaport/x", "postgres://root:SECRETPW@db/x"):
            with self.assertRaises(usage.UsageError) as caught:
                parse("--db", url)
            self.assertNotIn("SECRETPW", str(caught.exception))
            self.assertIn("root:***@db", str(caught.exception))
        spec = parse("--db", "mysql://root:SECRETPW@db/x").settings.db
        self.assertEqual(spec.password, "SECRETPW")
        for text in (repr(spec), str(spec), spec.describe()):
            self.assertNotIn("SECRETPW", text)


def twistd(*args: str) -> subprocess.CompletedProcess[str]:
    """`twistd -n balanca ARGS` in a fresh folder, to its end (it should not start)."""
    return subprocess.run(
        [*TWISTD, "-n", "--pidfile=", "balanca", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tempfile.mkdtemp(),
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )


class CommandLine(TestCase):
    def test_twistd_exits_non_zero_with_the_message_for_a_bad_option(self) -> None:
        run = twistd("--scale", "simulator:protocol=nope")
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("unknown scale protocol 'nope'", run.stdout + run.stderr)

    def test_a_usage_error_is_the_error_and_where_help_is_not_the_help(self) -> None:
        for args, words in (
            (["--ws-max-queue", "0.5"], "--ws-max-queue must be a whole number of 1 or more"),
            (["--no-such-option"], "no-such-option"),
            (["--db", "mysql://root:SECRETPW@db:x/y"], "root:***@db"),
        ):
            run = twistd(*args)
            output = (run.stdout + run.stderr).strip().splitlines()
            self.assertNotEqual(run.returncode, 0, args)
            self.assertLessEqual(len(output), 3, output)
            self.assertIn(words, output[-1])
            self.assertIn("see: twistd balanca --help", output[-1])
            self.assertNotIn("SECRETPW", run.stdout + run.stderr)
        help_text = twistd("--help").stdout
        self.assertIn("--ws-max-queue", help_text, "--help still shows the options")

    def test_a_port_in_use_is_one_line_naming_the_endpoint_and_the_option(self) -> None:
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for option in ("--http", "--ws"):
            args = [option, f"tcp:{port}:interface=127.0.0.1"]
            if option == "--ws":
                args = ["--http", "tcp:0:interface=127.0.0.1", *args]
            run = twistd(*args)
            output = run.stdout + run.stderr
            self.assertNotEqual(run.returncode, 0)
            self.assertNotIn("Traceback", output)
            lines = [line for line in output.splitlines() if "cannot listen" in line]
            self.assertEqual(len(lines), 1, output)
            self.assertIn(
                f"cannot listen on tcp:{port}:interface=127.0.0.1 (Address already in use): "
                f"choose another {option}",
                lines[0],
            )
            self.assertLess(len(output.splitlines()), 12, output)

    def test_a_mistyped_scale_kind_is_a_message_not_a_traceback(self) -> None:
        run = twistd("--scale", "simulatr")
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("unknown scale kind 'simulatr'", run.stdout + run.stderr)
        self.assertNotIn("Traceback", run.stdout + run.stderr)


class TacFile(TestCase):
    timeout = 60

    def test_balanca_tac_builds_the_same_service_from_the_environment(self) -> None:
        import json
        import signal
        import time
        import urllib.request

        port = free_port()
        workdir = tempfile.mkdtemp(prefix="balanca-tac-")
        env = {
            **os.environ,
            "PYTHONPATH": str(Path(__file__).parent.parent),
            "BALANCA_HTTP": f"tcp:{port}:interface=127.0.0.1",
            "BALANCA_DB": f"sqlite:{workdir}/tac.sqlite3",
            "BALANCA_SCALE": "simulator:protocol=ad:rate=20",
        }
        tac = Path(__file__).parent.parent / "balanca.tac"
        server = subprocess.Popen(
            [*TWISTD, "-n", "--pidfile=", "--logfile=twistd.log", "-y", str(tac)],
            cwd=workdir,
            env=env,
        )
        try:
            reading = None
            for _ in range(100):
                try:
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/api/weight", timeout=2
                    ) as r:
                        reading = json.load(r)
                        break
                except OSError:
                    time.sleep(0.1)
            self.assertIsNotNone(reading, Path(workdir, "twistd.log").read_text()[-2000:])
            assert reading is not None
            self.assertEqual((reading["source"], reading["unit"]), ("simulator", "kg"))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(20)
