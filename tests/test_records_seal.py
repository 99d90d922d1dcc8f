"""Sealed records: the hash and signature anyone can recompute from the API's JSON, and a
chain check that names the first bad record and what is wrong with it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import tempfile
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.trial.unittest import TestCase

from balanca.records.key import fingerprint, key_info, load_or_create, public_from_text
from balanca.records.seal import (
    GENESIS,
    RECORD_KEYS,
    ChainCheck,
    record_hash,
    seal,
    verify_chain,
)

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def draft(number: int, weight: str = "1234.50", **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = dict.fromkeys(RECORD_KEYS)
    record.update(
        number=number,
        kind="weighing",
        scale="default",
        run="r1",
        seq=number * 10,
        time="2025-10-30T13:38:15.835260-03:00",
        captured="2025-10-30T13:38:16.000001-03:00",
        weight=weight,
        unit="kg",
        decimals=2,
        mode="gross",
        tare="0.00",
        status="ok",
        source="serial",
        frame="0228303030",
        again=False,
        reference="Nota 7 — açúcar",
    )
    record.update(fields)
    for key in ("hash", "signature", "voided_by"):
        record.pop(key)
    return record


def chain(count: int) -> list[dict[str, Any]]:
    records, prev = [], GENESIS
    for number in range(1, count + 1):
        record = seal(draft(number, weight=f"{number}00.25"), prev, KEY)
        records.append(record)
        prev = record["hash"]
    return records


class Sealing(TestCase):
    def test_the_hash_is_sha256_of_the_canonical_json_as_design_defines_it(self) -> None:
        record = seal(draft(1), GENESIS, KEY)
        body = {k: v for k, v in record.items() if k not in ("hash", "signature", "voided_by")}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        self.assertEqual(record["hash"], hashlib.sha256(text.encode("utf-8")).hexdigest())
        self.assertIn("açúcar", text)  # not escaped: ensure_ascii=False
        self.assertEqual(record["prev"], "0" * 64)
        self.assertEqual(list(record), list(RECORD_KEYS))
        # A fixed vector: a change to the canonical form breaks every record ever sealed.
        self.assertEqual(
            record["hash"], "f9d415c11a86bbeb231fc0b587010fb5a6b734095811f3301b00e557c664202a"
        )

    def test_the_signature_is_ed25519_over_the_hash_bytes_in_padded_base64(self) -> None:
        record = seal(draft(1), GENESIS, KEY)
        signature = base64.b64decode(record["signature"], validate=True)
        KEY.public_key().verify(signature, bytes.fromhex(record["hash"]))
        self.assertEqual(len(record["signature"]), 88)

    def test_a_record_with_missing_or_extra_keys_is_not_sealed(self) -> None:
        incomplete = draft(1)
        del incomplete["plate"]
        self.assertRaises(ValueError, seal, incomplete, GENESIS, KEY)
        self.assertRaises(ValueError, seal, {**draft(1), "colour": "red"}, GENESIS, KEY)


class ChainChecking(TestCase):
    def test_a_whole_chain_verifies_and_names_its_last_record(self) -> None:
        records = chain(5)
        verdict = verify_chain(records, KEY.public_key())
        self.assertEqual(
            verdict.to_json(),
            {"ok": True, "records": 5, "last": {"number": 5, "hash": records[-1]["hash"]}},
        )

    def test_an_empty_chain_is_ok(self) -> None:
        self.assertEqual(
            verify_chain([], KEY.public_key()).to_json(), {"ok": True, "records": 0, "last": None}
        )

    def test_each_kind_of_tampering_is_named_at_the_first_bad_number(self) -> None:
        def broken(records: list[dict[str, Any]]) -> dict[str, Any]:
            return verify_chain(records, KEY.public_key()).to_json()

        edited = chain(5)
        edited[2]["weight"] = "999.99"
        self.assertEqual(
            broken(edited), {"ok": False, "records": 5, "first_bad": 3, "problem": "hash"}
        )
        deleted = chain(5)
        del deleted[2]
        self.assertEqual(
            broken(deleted), {"ok": False, "records": 4, "first_bad": 3, "problem": "gap"}
        )
        resealed = chain(5)  # edited and re-hashed by someone without the key
        resealed[3]["weight"] = "1.00"
        resealed[3]["hash"] = record_hash(resealed[3])
        resealed[4]["prev"] = resealed[3]["hash"]
        self.assertEqual(
            broken(resealed), {"ok": False, "records": 5, "first_bad": 4, "problem": "signature"}
        )
        relinked = chain(5)
        relinked[1]["prev"] = GENESIS
        self.assertEqual(
            broken(relinked), {"ok": False, "records": 5, "first_bad": 2, "problem": "prev"}
        )
        other_key = Ed25519PrivateKey.from_private_bytes(bytes(32))
        foreign = chain(2) + [seal(draft(3), chain(2)[-1]["hash"], other_key)]
        self.assertEqual(
            broken(foreign), {"ok": False, "records": 3, "first_bad": 3, "problem": "signature"}
        )

    def test_a_check_can_go_on_from_a_trusted_head(self) -> None:
        records = chain(6)
        check = ChainCheck(KEY.public_key(), head=records[3])
        self.assertTrue(check.add_all(records[4:]))
        self.assertEqual(check.verdict().last, records[5])

    def test_voided_by_is_outside_the_seal(self) -> None:
        records = chain(2)
        records[0]["voided_by"] = 2
        self.assertTrue(verify_chain(records, KEY.public_key()).ok)


class SigningKey(TestCase):
    def test_a_missing_key_is_created_0600_and_read_back_the_same(self) -> None:
        path = os.path.join(tempfile.mkdtemp(), "records.key")
        key, created = load_or_create(path)
        self.assertTrue(created)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        again, created = load_or_create(path)
        self.assertFalse(created)
        self.assertEqual(fingerprint(again.public_key()), fingerprint(key.public_key()))

    def test_the_published_key_round_trips_and_its_fingerprint_is_sha256_of_the_raw_key(
        self,
    ) -> None:
        info = key_info(KEY.public_key())
        raw = base64.b64decode(info["public_key"])
        self.assertEqual(len(raw), 32)
        self.assertEqual(info["fingerprint"], "sha256:" + hashlib.sha256(raw).hexdigest())
        self.assertEqual(info["algorithm"], "ed25519")
        self.assertEqual(fingerprint(public_from_text(info["public_key"])), info["fingerprint"])

    def test_a_file_that_is_not_a_key_is_refused_with_its_name(self) -> None:
        path = os.path.join(tempfile.mkdtemp(), "records.key")
        with open(path, "w") as f:
            f.write("not a key")
        with self.assertRaises(ValueError) as caught:
            load_or_create(path)
        self.assertIn(path, str(caught.exception))
