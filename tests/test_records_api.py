"""Sealed records over HTTP, as the other party of a trade sees them: every hash and signature
recomputed from the API's JSON with only the public key, voids in the open, retries that make
one record, operators named, and a chain edited behind the service's back caught."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from twisted.internet import defer
from twisted.trial.unittest import TestCase

from tests.base import fetch
from tests.child import REPO, running
from tests.test_api import ApiCase, closed_port


def recomputed_hash(record: dict[str, Any]) -> str:
    """DESIGN.md's hash, written out again here rather than imported from balanca."""
    body = {k: v for k, v in record.items() if k not in ("hash", "signature", "voided_by")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class RecordsOverHttp(ApiCase):
    @defer.inlineCallbacks
    def keyed_post(self, path: str, body: Any, headers: dict[str, str]) -> Any:
        raw = json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", **headers}
        return (yield fetch(self.url(path), b"POST", raw, all_headers))

    @defer.inlineCallbacks
    def capture_three(self) -> Any:
        yield self.start("--scale", "simulator:rate=20")
        yield self.until_stable_load()
        records = []
        for n in range(3):
            response = yield self.post(
                "/api/weighings", {"plate": "abc-1d23", "reference": f"NF {n}", "again": True}
            )
            self.assertEqual(response.code, 201, response.body)
            records.append(response.json())
        return records

    @defer.inlineCallbacks
    def test_hashes_links_and_signatures_recompute_from_the_json_with_the_public_key(
        self,
    ) -> defer.Generator:
        records = yield self.capture_three()
        key = (yield fetch(self.url("/api/weighings/key"))).json()
        raw = base64.b64decode(key["public_key"])
        self.assertEqual(key["fingerprint"], "sha256:" + hashlib.sha256(raw).hexdigest())
        public = Ed25519PublicKey.from_public_bytes(raw)
        prev = "0" * 64
        for number, created in enumerate(records, 1):
            record = (yield fetch(self.url(f"/api/weighings/{number}"))).json()
            self.assertEqual(record, created)
            self.assertEqual(record["plate"], "ABC1D23")
            self.assertEqual((record["number"], record["prev"]), (number, prev))
            self.assertEqual(record["hash"], recomputed_hash(record))
            public.verify(base64.b64decode(record["signature"]), bytes.fromhex(record["hash"]))
            self.assertTrue(record["frame"])  # the bytes of the frame, as hex
            bytes.fromhex(record["frame"])
            prev = record["hash"]
        verify = (yield fetch(self.url("/api/weighings/verify"))).json()
        self.assertEqual(verify, {"ok": True, "records": 3, "last": {"number": 3, "hash": prev}})
        plates = (yield fetch(self.url("/api/weighings?plate=ABC1D23&limit=2"))).json()
        self.assertEqual([r["number"] for r in plates["weighings"]], [3, 2])

    @defer.inlineCallbacks
    def test_a_void_needs_a_reason_and_shows_in_listings(self) -> defer.Generator:
        yield self.capture_three()
        response = yield self.post("/api/weighings/2/void", {})
        self.assertEqual((response.code, response.json()["code"]), (400, "bad_request"))
        response = yield self.post("/api/weighings/2/void", {"reason": "placa errada"})
        self.assertEqual(response.code, 201, response.body)
        void = response.json()
        self.assertEqual((void["kind"], void["voids"], void["number"]), ("void", 2, 4))
        listed = (yield fetch(self.url("/api/weighings"))).json()["weighings"]
        self.assertEqual([(r["number"], r["voided_by"]) for r in listed],
                         [(4, None), (3, None), (2, 4), (1, None)])  # fmt: skip
        for number in (2, 4):
            again = yield self.post(f"/api/weighings/{number}/void", {"reason": "de novo"})
            self.assertEqual((again.code, again.json()["code"]), (409, "already_void"))
        missing = yield fetch(self.url("/api/weighings/99"))
        self.assertEqual((missing.code, missing.json()["code"]), (404, "not_found"))

    @defer.inlineCallbacks
    def test_a_retried_capture_with_its_idempotency_key_makes_one_record(self) -> defer.Generator:
        yield self.start("--scale", "simulator:rate=20")
        yield self.until_stable_load()
        key = {"Idempotency-Key": "7d1f6c1e-click"}
        body = {"reference": "NF 9"}
        first, second = yield defer.gatherResults(
            [self.keyed_post("/api/weighings", body, key) for _ in range(2)]
        )
        self.assertEqual((first.code, second.code), (201, 201))
        self.assertEqual(first.json(), second.json())
        third = yield self.keyed_post("/api/weighings", body, key)
        self.assertEqual(third.json(), first.json())
        other = yield self.keyed_post("/api/weighings", {"reference": "NF 10"}, key)
        self.assertEqual((other.code, other.json()["code"]), (422, "idempotency_key_reused"))
        listed = (yield fetch(self.url("/api/weighings"))).json()["weighings"]
        self.assertEqual(len(listed), 1)

    @defer.inlineCallbacks
    def test_a_refusal_with_an_idempotency_key_is_answered_and_replayed(self) -> defer.Generator:
        """The page sends a key with every capture: a refusal (an error body, already bytes)
        is its final answer, kept like a 201."""
        yield self.start("--scale", "simulator:rate=20")
        yield self.until_stable_load()
        first = yield self.keyed_post("/api/weighings", {}, {"Idempotency-Key": "page-1"})
        self.assertEqual(first.code, 201, first.body)
        for _ in range(2):
            same = yield self.keyed_post("/api/weighings", {}, {"Idempotency-Key": "page-2"})
            self.assertEqual((same.code, same.json()["code"]), (409, "same_load"), same.body)
        again = yield self.keyed_post(
            "/api/weighings", {"again": True}, {"Idempotency-Key": "page-3"}
        )
        self.assertEqual((again.code, again.json()["again"]), (201, True), again.body)

    @defer.inlineCallbacks
    def test_each_record_names_the_operator_whose_token_wrote_it(self) -> defer.Generator:
        folder = Path(tempfile.mkdtemp())
        (folder / "operators").write_text("# gate\nana:tok-ana\nbruno : tok-bruno\n")
        yield self.start(
            "--scale", "simulator:rate=20", "--operators-file", str(folder / "operators")
        )
        yield self.until_stable_load()
        refused = yield self.post("/api/weighings", {})
        self.assertEqual((refused.code, refused.json()["code"]), (401, "unauthorized"))
        response = yield self.keyed_post(
            "/api/weighings", {}, {"Authorization": "Bearer tok-bruno"}
        )
        self.assertEqual((response.code, response.json()["operator"]), (201, "bruno"))


class ChainEditedBehindTheServicesBack(TestCase):
    """The real service as a child process, and its SQLite file edited or its process killed."""

    timeout = 120

    def capture(self, origin: str) -> dict[str, Any]:
        body = json.dumps({"again": True}).encode()
        for _ in range(200):
            request = urllib.request.Request(
                f"{origin}/api/weighings", body, {"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    return dict(json.load(answer))
            except urllib.error.HTTPError as refused:
                refused.close()
                time.sleep(0.1)  # the simulator's load is not stable yet: ask again
        self.fail("no capture within 20 s")

    def get(self, origin: str, path: str) -> Any:
        try:
            with urllib.request.urlopen(f"{origin}{path}", timeout=10) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def test_an_update_is_caught_at_the_next_start_and_by_verify(self) -> None:
        with running("--scale", "simulator:rate=20") as service:
            for _ in range(3):
                self.capture(service.origin)
            service.stop()
            with sqlite3.connect(service.workdir / "x.sqlite3") as db:
                db.execute("UPDATE records SET weight = '1.00' WHERE number = 2")
            service.start()
            verdict = self.get(service.origin, "/api/weighings/verify")[1]
            self.assertEqual(
                verdict, {"ok": False, "records": 3, "first_bad": 2, "problem": "hash"}
            )
            status, health = self.get(service.origin, "/api/health")
            self.assertEqual((status, health["records"]), (503, "broken"))
            self.assertIn("chain BROKEN at record 2: hash", service.log())

    def test_balanca_verify_checks_a_live_service_and_an_export_with_the_key_alone(self) -> None:
        with running("--scale", "simulator:rate=20") as service:
            for _ in range(2):
                self.capture(service.origin)
            key = self.get(service.origin, "/api/weighings/key")[1]["public_key"]
            export = service.workdir / "export.json"
            export.write_text(json.dumps(self.get(service.origin, "/api/weighings")[1]))
            for source in (service.origin, str(export)):
                run = subprocess.run(
                    [sys.executable, "-m", "balanca.verify", "--key", key, source],
                    capture_output=True, text=True, timeout=60, cwd=REPO,
                )  # fmt: skip
                self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
                self.assertIn("ok: 2 records", run.stdout)
            wrong = base64.b64encode(bytes(32)).decode()
            run = subprocess.run(
                [sys.executable, "-m", "balanca.verify", "--key", wrong, str(export)],
                capture_output=True, text=True, timeout=60, cwd=REPO,
            )  # fmt: skip
            self.assertEqual(run.returncode, 1)
            self.assertIn("BROKEN: record 1: signature", run.stdout)

    def test_a_deleted_row_is_a_gap_and_a_record_answered_201_survives_sigkill(self) -> None:
        with running("--scale", "simulator:rate=20") as service:
            created = [self.capture(service.origin) for _ in range(3)]
            assert service.process is not None
            service.process.kill()  # SIGKILL right after the 201s
            service.process.wait()
            with sqlite3.connect(service.workdir / "x.sqlite3") as db:
                numbers = [n for (n,) in db.execute("SELECT number FROM records ORDER BY number")]
                self.assertEqual(numbers, [r["number"] for r in created])
                db.execute("DELETE FROM records WHERE number = 2")
            service.start()
            verdict = self.get(service.origin, "/api/weighings/verify")[1]
            self.assertEqual(verdict, {"ok": False, "records": 2, "first_bad": 2, "problem": "gap"})


class KeyedCommands(ApiCase):
    @defer.inlineCallbacks
    def test_a_tare_retried_with_its_key_is_sent_to_the_scale_once(self) -> defer.Generator:
        yield self.start("--scale", "simulator:rate=20")
        yield self.until_stable_load()
        scale = self.service.parts.scale
        sent = []
        real = scale.command
        self.patch(scale, "command", lambda name: sent.append(name) or real(name))
        headers = {"Content-Type": "application/json", "Idempotency-Key": "tare-1"}
        first = yield fetch(self.url("/api/tare"), b"POST", b"{}", headers)
        again = yield fetch(self.url("/api/tare"), b"POST", b"{}", headers)
        self.assertEqual((first.code, again.code), (200, 200), first.body)
        self.assertEqual(first.json(), again.json())
        self.assertEqual(sent, ["tare"])


class StateBeforeDatabase(ApiCase):
    @defer.inlineCallbacks
    def test_a_scale_that_is_not_live_is_named_even_while_the_database_is_away(
        self,
    ) -> defer.Generator:
        away = f"mysql://root@127.0.0.1:{closed_port()}/x"
        yield self.start("--scale", "serial:/nonexistent", "--db", away)
        response = yield self.post("/api/weighings", {})
        self.assertEqual((response.code, response.json()["code"]), (409, "scale_not_live"))
