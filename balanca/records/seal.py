"""Sealing records: canonical JSON, SHA-256 chain, Ed25519 signatures, and their verification.

Pure functions over plain values (DESIGN.md, "Weighings are sealed records"): the service, the
`balanca-verify` tool and the tests run this same code, so the other party of a trade checks
records with the very rules that made them.

    hash      = SHA-256 (hex) of json.dumps(record without hash, signature and voided_by,
                sort_keys=True, separators=(",", ":"), ensure_ascii=False) in UTF-8
    prev      = the previous record's hash (64 zeros for number 1)
    signature = Ed25519 over the hash's 32 bytes, standard padded base64
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

RECORD_KEYS = (
    "number",
    "kind",
    "scale",
    "run",
    "seq",
    "time",
    "captured",
    "weight",
    "unit",
    "decimals",
    "mode",
    "tare",
    "status",
    "source",
    "frame",
    "plate",
    "reference",
    "product",
    "party",
    "note",
    "operator",
    "transaction",
    "gross",
    "net",
    "tare_record",
    "again",
    "voids",
    "reason",
    "prev",
    "hash",
    "signature",
    "voided_by",
)
"""Every key a record has, always present (null when empty)."""
UNSEALED_KEYS = ("hash", "signature", "voided_by")
"""Keys outside the hash: the seal itself, and the one fact a later void adds."""
GENESIS = "0" * 64
"""`prev` of record number 1."""
Problem = Literal["gap", "prev", "hash", "signature"]
Record = dict[str, Any]


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes a record's hash covers."""
    sealed = {k: v for k, v in record.items() if k not in UNSEALED_KEYS}
    return json.dumps(sealed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def record_hash(record: Mapping[str, Any]) -> str:
    """The SHA-256 (lower-case hex) of a record's canonical JSON."""
    return hashlib.sha256(canonical(record)).hexdigest()


def seal(record: Mapping[str, Any], prev: str, key: Ed25519PrivateKey) -> Record:
    """`record` with `prev`, `hash` and `signature` set: ready to be written, never changed."""
    sealed = {**record, "prev": prev, "voided_by": None}
    sealed["hash"] = record_hash(sealed)
    sealed["signature"] = base64.b64encode(key.sign(bytes.fromhex(sealed["hash"]))).decode()
    missing = set(RECORD_KEYS) - set(sealed)
    extra = set(sealed) - set(RECORD_KEYS)
    if missing or extra:
        raise ValueError(f"a record has exactly DESIGN.md's keys: missing {missing}, extra {extra}")
    return {k: sealed[k] for k in RECORD_KEYS}


def signature_ok(record: Mapping[str, Any], public_key: Ed25519PublicKey) -> bool:
    """The record's signature is the key's over its stated hash."""
    try:
        signature = base64.b64decode(record["signature"], validate=True)
        public_key.verify(signature, bytes.fromhex(record["hash"]))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking a chain, as `GET /api/weighings/verify` answers it."""

    records: int
    last: Record | None = None
    first_bad: int | None = None
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        """No record failed."""
        return self.problem is None

    def to_json(self) -> dict[str, Any]:
        """The JSON answer of DESIGN.md."""
        if self.ok:
            last = None if self.last is None else {k: self.last[k] for k in ("number", "hash")}
            return {"ok": True, "records": self.records, "last": last}
        return {
            "ok": False,
            "records": self.records,
            "first_bad": self.first_bad,
            "problem": self.problem,
        }


class ChainCheck:
    """Checks records one at a time, in number order, from record 1 or from a trusted head.

    Feed it every record with `add`; it counts them all and remembers the first problem.
    `verdict()` says where things stand.
    """

    def __init__(self, public_key: Ed25519PublicKey, head: Mapping[str, Any] | None = None) -> None:
        self.public_key = public_key
        self.records = 0
        self.last: Record | None = dict(head) if head is not None else None
        self.first_bad: int | None = None
        self.problem: Problem | None = None

    def add(self, record: Mapping[str, Any]) -> bool:
        """Check the next record; False once the chain is broken."""
        self.records += 1
        if self.problem is not None:
            return False
        expected = 1 if self.last is None else self.last["number"] + 1
        prev = GENESIS if self.last is None else self.last["hash"]
        problem = self._problem(record, expected, prev)
        if problem is not None:
            self.problem = problem
            self.first_bad = expected if problem == "gap" else record.get("number")
            return False
        self.last = dict(record)
        return True

    def add_all(self, records: Iterable[Mapping[str, Any]]) -> bool:
        """Check each record in turn (counting them all); False if any broke the chain."""
        for record in records:
            self.add(record)
        return self.problem is None

    def verdict(self) -> Verdict:
        """Where the check stands."""
        return Verdict(self.records, self.last, self.first_bad, self.problem)

    def _problem(self, record: Mapping[str, Any], expected: int, prev: str) -> Problem | None:
        if record.get("number") != expected:
            return "gap"
        if record.get("prev") != prev:
            return "prev"
        if set(record) != set(RECORD_KEYS) or record_hash(record) != record.get("hash"):
            return "hash"
        if not signature_ok(record, self.public_key):
            return "signature"
        return None


def verify_chain(records: Iterable[Mapping[str, Any]], public_key: Ed25519PublicKey) -> Verdict:
    """Check a whole chain from record 1, in the order given (number order)."""
    check = ChainCheck(public_key)
    check.add_all(records)
    return check.verdict()
