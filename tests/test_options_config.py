"""Several scales and the configuration file through `twistd balanca`'s Options: ids, usage
errors that name the `--scale` or the file and key, and the precedence command line >
environment > file > defaults, where a list given higher replaces the lower one whole."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

from twisted.python import usage
from twisted.trial.unittest import TestCase

from balanca.options import Settings
from balanca.tap import Options
from tests.base import TWISTD
from tests.child import free_port


def parse(*args: str, env: dict[str, str] | None = None) -> Settings:
    options = Options(environ=env or {})
    options.parseOptions(list(args))
    assert options.settings is not None
    return options.settings


def config(text: str) -> str:
    """A configuration file holding `text`; its path."""
    path = Path(tempfile.mkdtemp(prefix="balanca-config-"), "balanca.toml")
    path.write_text(text)
    return str(path)


TWO_SCALES = """
stale-after = 4
record = "all"
http = ["tcp:9100"]
min-weight = "20"

[scales]
truck = "simulator:protocol=toledo:min-weight=200"
floor = "simulator:protocol=ad"

[site]
id = "gate-1"
name = "Cooperativa"
"""


class ScaleIds(TestCase):
    def test_a_lone_scale_without_an_id_is_default_as_in_0_1(self) -> None:
        self.assertEqual([i for i, _ in parse().scales], ["default"])
        self.assertEqual([i for i, _ in parse("--scale", "/dev/ttyUSB0").scales], ["default"])
        settings = parse("--scale", "truck=simulator:protocol=sics")
        self.assertEqual([(i, s.protocol) for i, s in settings.scales], [("truck", "sics")])

    def test_several_scales_keep_the_order_given(self) -> None:
        settings = parse(
            "--scale", "b=simulator", "--scale", "a=serial:/dev/ttyS0", "--scale", "c=/dev/x"
        )
        self.assertEqual([(i, s.kind) for i, s in settings.scales],
                         [("b", "simulator"), ("a", "serial"), ("c", "serial")])  # fmt: skip

    def test_a_missing_or_repeated_id_is_a_usage_error_naming_the_scale_and_the_id(
        self,
    ) -> None:
        for args, words in (
            (["--scale", "a=simulator", "--scale", "simulator:protocol=ad"], "needs an id"),
            (["--scale", "a=simulator", "--scale", "a=simulator"], "'a' is given twice"),
            (["--scale", "Truck=simulator"], "the id 'Truck' must be"),
            (["--scale", "-a=simulator"], "the id '-a' must be"),
        ):
            with self.assertRaises(usage.UsageError) as raised:
                parse(*args)
            message = str(raised.exception)
            self.assertIn("--scale", message)
            self.assertIn("id", message)
            self.assertIn(words, message)
            self.assertNotIn("\n", message)

    def test_balanca_scale_is_a_space_separated_list_and_the_command_line_replaces_it(
        self,
    ) -> None:
        env = {"BALANCA_SCALE": "a=simulator b=simulator:protocol=ad"}
        self.assertEqual([i for i, _ in parse(env=env).scales], ["a", "b"])
        settings = parse("--scale", "c=simulator", env=env)
        self.assertEqual([i for i, _ in settings.scales], ["c"])

    def test_min_weight_per_scale_and_for_all_as_exact_decimals(self) -> None:
        settings = parse(
            "--min-weight", "0.5", "--scale", "a=simulator:min-weight=20.10", "--scale", "b=/dev/x"
        )
        specs = dict(settings.scales)
        self.assertEqual((specs["a"].min_weight, specs["b"].min_weight), (Decimal("20.10"), None))
        self.assertEqual(settings.min_weight, Decimal("0.5"))
        for args in (["--min-weight", "-1"], ["--scale", "simulator:min-weight=abc"]):
            with self.assertRaises(usage.UsageError) as raised:
                parse(*args)
            self.assertIn(
                "min-weight must be a decimal number of at least 0", str(raised.exception)
            )


class ConfigFile(TestCase):
    def test_the_file_sets_options_scales_and_the_site(self) -> None:
        settings = parse("--config", config(TWO_SCALES))
        self.assertEqual((settings.stale_after, settings.record), (4, "all"))
        self.assertEqual([d for d, _ in settings.http], ["tcp:9100"])
        self.assertEqual([i for i, _ in settings.scales], ["truck", "floor"])
        self.assertEqual(dict(settings.scales)["truck"].min_weight, Decimal("200"))
        self.assertEqual(settings.min_weight, Decimal("20"))
        self.assertEqual((settings.site.id, settings.site.name), ("gate-1", "Cooperativa"))

    def test_the_example_file_in_contrib_has_two_scales_and_a_site(self) -> None:
        example = Path(__file__).resolve().parent.parent / "contrib" / "systemd" / "balanca.toml"
        dockerfile = example.parent.parent.parent / "Dockerfile"
        self.assertIn("contrib/systemd/balanca.toml", dockerfile.read_text())
        workdir = tempfile.mkdtemp()
        settings = parse("--config", str(example), "--db", f"sqlite:{workdir}/b.sqlite3")
        self.assertEqual([(i, s.kind) for i, s in settings.scales],
                         [("truck", "serial"), ("floor", "endpoint")])  # fmt: skip
        self.assertEqual(dict(settings.scales)["truck"].min_weight, Decimal("200"))
        self.assertEqual(settings.site.id, "armazem-1")

    def test_the_command_line_wins_over_the_environment_which_wins_over_the_file(self) -> None:
        path = config(TWO_SCALES)
        env = {"BALANCA_CONFIG": path, "BALANCA_STALE_AFTER": "6", "BALANCA_HTTP": "tcp:9200"}
        settings = parse(env=env)
        self.assertEqual((settings.stale_after, settings.record), (6, "all"))  # env, file
        self.assertEqual([d for d, _ in settings.http], ["tcp:9200"])
        settings = parse("--stale-after", "7", "--http", "tcp:9300", "--http", "tcp:9301", env=env)
        self.assertEqual(settings.stale_after, 7)
        self.assertEqual([d for d, _ in settings.http], ["tcp:9300", "tcp:9301"])
        # a --scale on the command line replaces [scales] whole; so does BALANCA_SCALE
        settings = parse("--scale", "silo=simulator", env=env)
        self.assertEqual([i for i, _ in settings.scales], ["silo"])
        settings = parse(env={**env, "BALANCA_SCALE": "x=simulator y=simulator"})
        self.assertEqual([i for i, _ in settings.scales], ["x", "y"])

    def test_a_value_equal_to_the_default_on_the_command_line_still_wins_over_the_file(
        self,
    ) -> None:
        settings = parse("--config", config('record = "all"\n'), "--record", "stable")
        self.assertEqual(settings.record, "stable")

    def test_site_id_overrides_the_files_and_is_checked(self) -> None:
        path = config(TWO_SCALES)
        self.assertEqual(parse("--config", path, "--site-id", "gate-2").site.id, "gate-2")
        with self.assertRaises(usage.UsageError) as raised:
            parse("--config", path, "--site-id", "Gate 2")
        self.assertIn("--site-id", str(raised.exception))
        with self.assertRaises(usage.UsageError) as raised:
            parse("--config", config('[site]\nid = "Gate_1"\n'))
        self.assertIn("key 'site.id'", str(raised.exception))

    def test_errors_stop_the_start_in_one_line_naming_the_file_and_the_key(self) -> None:
        for text, key in (
            ("stale-after = -1\n", "key 'stale-after'"),
            ('record = "sometimes"\n', "key 'record'"),
            ("colour = 1\n", "unknown key 'colour'"),
            ("ping-interval = [1]\n", "key 'ping-interval'"),
            ('[scales]\ntruck = "serial:/dev/x:protocol=nope"\n', "key 'scales.truck'"),
            ('[scales]\ntruck = "simulator:min-weight=-2"\n', "key 'scales.truck'"),
            ('[scales]\nTruck = "simulator"\n', "key 'scales.Truck'"),
            ("[scales]\n", "key 'scales'"),
            ('[site]\nfax = "1"\n', "unknown key 'site.fax'"),
            ("stale-after = 4\nstale-after = 5\n", "not valid TOML"),
        ):
            path = config(text)
            with self.assertRaises(usage.UsageError) as raised:
                parse("--config", path)
            message = str(raised.exception)
            self.assertIn(path, message, text)
            self.assertIn(key, message, text)
            self.assertNotIn("\n", message.strip(), text)
        with self.assertRaises(usage.UsageError) as raised:
            parse("--config", "/nonexistent/balanca.toml")
        self.assertIn("/nonexistent/balanca.toml: cannot read it", str(raised.exception))

    def test_a_bad_value_given_on_the_command_line_is_not_blamed_on_the_file(self) -> None:
        with self.assertRaises(usage.UsageError) as raised:
            parse("--config", config(TWO_SCALES), "--stale-after", "x")
        self.assertNotIn("balanca.toml", str(raised.exception))
        self.assertIn("--stale-after must be a number", str(raised.exception))


class TwistdWithConfig(TestCase):
    timeout = 60

    def test_twistd_runs_two_scales_from_a_configuration_file(self) -> None:
        port, workdir = free_port(), tempfile.mkdtemp(prefix="balanca-twistd-")
        path = config(
            f'http = ["tcp:{port}:interface=127.0.0.1"]\ndb = "sqlite:{workdir}/b.sqlite3"\n'
            '[scales]\ntruck = "simulator"\nfloor = "simulator:protocol=ad:rate=5"\n'
        )
        child = subprocess.Popen(
            [*TWISTD, "-n", "--pidfile=", "balanca", "--config", path],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=workdir,
        )
        try:
            scales = self.wait_for_scales(port, child)
        finally:
            child.terminate()
            output, _ = child.communicate(timeout=20)
        self.assertEqual([(s["id"], s["protocol"]) for s in scales],
                         [("truck", "toledo"), ("floor", "ad")], output)  # fmt: skip
        self.assertIn("scale truck: built-in simulator (toledo) (SIMULATED)", output)

    def wait_for_scales(self, port: int, child: subprocess.Popen[str]) -> list[dict[str, str]]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if child.poll() is not None:
                self.fail(
                    f"twistd exited {child.returncode}: {child.stdout and child.stdout.read()}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/scales", timeout=2) as r:
                    scales = json.load(r)["scales"]
                if all(s["state"] == "live" for s in scales):
                    return list(scales)
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)  # a child process: polled with a bound, not a fixed wait
        self.fail("twistd with --config never served /api/scales")
