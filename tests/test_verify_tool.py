"""`balanca-verify` checks an export with only the public key, and names what is wrong."""

from __future__ import annotations

import io
import json
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from twisted.trial.unittest import TestCase

from balanca.records.key import key_info
from balanca.verify import main
from tests.test_records_seal import KEY, chain


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        status = main(list(args))
    return status, out.getvalue()


class VerifyExport(TestCase):
    def export(self, records: list[dict[str, Any]]) -> str:
        path = Path(tempfile.mkdtemp(), "export.json")
        path.write_text(json.dumps({"weighings": list(reversed(records))}, ensure_ascii=False))
        return str(path)

    def test_an_untouched_export_checks_with_the_public_key_alone(self) -> None:
        records = chain(4)
        status, out = run("--key", key_info(KEY.public_key())["public_key"], self.export(records))
        self.assertEqual(status, 0, out)
        self.assertIn(f"ok: 4 records, last 4 {records[-1]['hash']}", out)

    def test_an_edited_export_names_the_record_and_the_problem(self) -> None:
        records = chain(4)
        records[1]["net"] = "1.00"
        key_file = Path(tempfile.mkdtemp(), "key.txt")
        key_file.write_text(key_info(KEY.public_key())["public_key"] + "\n")
        status, out = run("--key", str(key_file), self.export(records))
        self.assertEqual(status, 1)
        self.assertIn("BROKEN: record 2: hash", out)

    def test_a_file_that_is_not_an_export_cannot_be_checked(self) -> None:
        path = Path(tempfile.mkdtemp(), "x.json")
        path.write_text('{"readings": []}')
        status, out = run("--key", key_info(KEY.public_key())["public_key"], str(path))
        self.assertEqual(status, 2)
        self.assertIn("cannot check", out)
