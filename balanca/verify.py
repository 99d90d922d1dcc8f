"""`balanca-verify`: check sealed records with nothing but the public key.

What the other party of a trade runs: against a JSON export (`{"weighings": [...]}` or a bare
list, any order) or a live service's `/api/weighings`, it recomputes every hash, checks every
signature and the chain's links, and names the first bad record. It uses the very functions
the service seals with (`balanca.records.seal`).

    balanca-verify --key KEY export.json
    balanca-verify --key KEY https://scale.example.com:8080 [--token-file PATH]

KEY is the base64 public key of `GET /api/weighings/key`, or a file holding it (or a PEM).
Exit status: 0 when every record checks, 1 when one does not, 2 when it could not check.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from balanca.records.key import fingerprint, public_from_text
from balanca.records.seal import verify_chain

PAGE = 1000


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check; the exit status says how it went."""
    parser = argparse.ArgumentParser(prog="balanca-verify", description=__doc__.split("\n")[0])
    parser.add_argument("source", help="a JSON export file, or the service's base URL")
    parser.add_argument("--key", required=True, help="the public key (base64 or PEM), or a file")
    parser.add_argument("--token-file", help="a file with the read token, for a live service")
    args = parser.parse_args(argv)
    try:
        key_text = Path(args.key).read_text() if Path(args.key).is_file() else args.key
        public_key = public_from_text(key_text)
        if args.source.startswith(("http://", "https://")):
            token = Path(args.token_file).read_text().strip() if args.token_file else None
            records = list(live_records(args.source, token))
        else:
            records = export_records(Path(args.source))
    except (OSError, ValueError) as e:
        print(f"balanca-verify: cannot check: {e}", file=sys.stderr)
        return 2
    records.sort(key=lambda r: r.get("number") or 0)
    verdict = verify_chain(records, public_key)
    print(f"key {fingerprint(public_key)}")
    if verdict.ok:
        last = verdict.last
        where = "" if last is None else f", last {last['number']} {last['hash']}"
        print(f"ok: {verdict.records} records{where}")
        return 0
    print(f"BROKEN: record {verdict.first_bad}: {verdict.problem} ({verdict.records} records)")
    return 1


def export_records(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON export: `{"weighings": [...]}` or a list."""
    data = json.loads(path.read_text(encoding="utf-8"))
    records = data.get("weighings") if isinstance(data, dict) else data
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError(f'{path}: expected {{"weighings": [records]}} or a list of records')
    return records


def live_records(base: str, token: str | None) -> Iterator[dict[str, Any]]:
    """Every record of a live service, newest first, page by page."""
    before: int | None = None
    while True:
        query = f"limit={PAGE}" + (f"&before={before}" if before is not None else "")
        page = _get(f"{base.rstrip('/')}/api/weighings?{query}", token)["weighings"]
        yield from page
        if len(page) < PAGE:
            return
        before = page[-1]["number"]


def _get(url: str, token: str | None) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


if __name__ == "__main__":
    raise SystemExit(main())
