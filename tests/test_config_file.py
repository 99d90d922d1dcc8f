"""The configuration file and scale ids: what a site's file may say, and errors that name
the file and the key."""

from __future__ import annotations

import tempfile
from pathlib import Path

from twisted.trial.unittest import TestCase

from balanca.config import parse_scales, split_scale_id
from balanca.config_file import host_site_id, read_config

KNOWN = {"http": "list", "db": "text", "stale-after": "text", "mqtt-discovery": "flag"}


def config_file(text: str) -> str:
    path = Path(tempfile.mkdtemp(), "balanca.toml")
    path.write_text(text)
    return str(path)


class ConfigFileReading(TestCase):
    def test_options_scales_and_site_are_read_in_the_files_order(self) -> None:
        path = config_file(
            'http = ["dualstack:8080", "unix:/run/b.sock"]\n'
            'db = "sqlite:site.sqlite3"\n'
            "stale-after = 2.5\n"
            "mqtt-discovery = true\n"
            "[scales]\n"
            'truck = "serial:/dev/ttyUSB0:protocol=toledo"\n'
            'floor = "simulator:protocol=ad"\n'
            "[site]\n"
            'id = "gate-1"\n'
            'name = "Pátio Norte"\n'
        )
        config = read_config(path, KNOWN)
        self.assertEqual(
            config.options,
            {
                "http": ["dualstack:8080", "unix:/run/b.sock"],
                "db": "sqlite:site.sqlite3",
                "stale-after": "2.5",
                "mqtt-discovery": True,
            },
        )
        self.assertEqual(
            config.scales,
            ["truck=serial:/dev/ttyUSB0:protocol=toledo", "floor=simulator:protocol=ad"],
        )
        self.assertEqual(config.site, {"id": "gate-1", "name": "Pátio Norte"})

    def test_a_file_without_scales_leaves_the_scales_to_the_other_places(self) -> None:
        self.assertIsNone(read_config(config_file('db = "sqlite:x"\n'), KNOWN).scales)

    def test_errors_name_the_file_and_the_key(self) -> None:
        cases = {
            "colour = 1\n": "unknown key 'colour'",
            "http = [8080]\n": "key 'http' must be a string or a list of strings",
            "db = true\n": "key 'db' must be a string or a number",
            'mqtt-discovery = "yes"\n': "key 'mqtt-discovery' must be true or false",
            "[scales]\ntruck = 3\n": "key 'scales.truck' must be a spec string",
            '[site]\ncolour = "red"\n': "unknown key 'site.colour'",
            "[site]\nname = 3\n": "key 'site.name' must be a string",
            'scale = "simulator"\n': "key 'scale' cannot be set in the file",
            "db = \n": "not valid TOML",
        }
        for text, words in cases.items():
            path = config_file(text)
            with self.assertRaises(ValueError) as caught:
                read_config(path, KNOWN)
            self.assertIn(path, str(caught.exception))
            self.assertIn(words, str(caught.exception))

    def test_an_unreadable_file_is_named(self) -> None:
        with self.assertRaises(ValueError) as caught:
            read_config("/no/such/balanca.toml", KNOWN)
        self.assertIn("--config /no/such/balanca.toml: cannot read it", str(caught.exception))

    def test_the_default_site_id_is_the_hosts_short_name_cleaned(self) -> None:
        self.assertEqual(host_site_id("Balanca_01.example.com"), "balanca-01")
        self.assertEqual(host_site_id("pátio"), "p-tio")
        self.assertEqual(host_site_id("___"), "site")


class ScaleIds(TestCase):
    def test_a_lone_scale_without_an_id_is_default(self) -> None:
        [(scale_id, spec)] = parse_scales(["simulator:protocol=ad"])
        self.assertEqual((scale_id, spec.protocol), ("default", "ad"))

    def test_ids_are_split_from_specs_whose_options_hold_equals_signs(self) -> None:
        self.assertEqual(
            split_scale_id("truck=serial:/dev/ttyUSB0:protocol=toledo"),
            ("truck", "serial:/dev/ttyUSB0:protocol=toledo"),
        )
        self.assertEqual(split_scale_id("simulator:rate=5"), (None, "simulator:rate=5"))
        self.assertEqual(split_scale_id("/dev/ttyUSB0"), (None, "/dev/ttyUSB0"))

    def test_several_scales_keep_their_order(self) -> None:
        scales = parse_scales(["gate=simulator", "floor-2=simulator:protocol=sics"])
        self.assertEqual([i for i, _ in scales], ["gate", "floor-2"])

    def test_missing_repeated_and_malformed_ids_are_usage_errors_that_say_id(self) -> None:
        cases = [
            (["simulator", "b=simulator"], "each needs an id"),
            (["a=simulator", "a=simulator:protocol=ad"], "the id 'a' is given twice"),
            (["Truck=simulator"], "the id 'Truck' must be"),
            (["-a=simulator"], "the id '-a' must be"),
            ([f"{'a' * 33}=simulator"], "must be 1 to 32"),
        ]
        for specs, words in cases:
            with self.assertRaises(ValueError) as caught:
                parse_scales(specs)
            self.assertIn("--scale", str(caught.exception))
            self.assertIn(words, str(caught.exception))
