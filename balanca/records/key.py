"""The records' signing key: a file beside the service, never in the database.

Created 0600 at the first start when missing (PKCS#8 PEM, so `openssl pkey` reads it); its
public half and fingerprint are what the other party of a trade needs to check records.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


def load_or_create(path: str) -> tuple[Ed25519PrivateKey, bool]:
    """The signing key at `path`, made (mode 0600) when the file does not exist.

    Returns the key and whether it was created now; ValueError says what is wrong with a file
    that exists but is not an Ed25519 private key.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _load(path), False
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    return key, True


def _load(path: str) -> Ed25519PrivateKey:
    with open(path, "rb") as f:
        data = f.read()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise ValueError(f"--records-key {path}: not a readable private key ({e})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"--records-key {path}: not an Ed25519 key")
    return key


def raw_public(public_key: Ed25519PublicKey) -> bytes:
    """The public key's raw 32 bytes."""
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """`sha256:` and the lower-case hex SHA-256 of the raw public key."""
    return "sha256:" + hashlib.sha256(raw_public(public_key)).hexdigest()


def key_info(public_key: Ed25519PublicKey) -> dict[str, Any]:
    """`GET /api/weighings/key`'s answer."""
    return {
        "algorithm": "ed25519",
        "public_key": base64.b64encode(raw_public(public_key)).decode(),
        "fingerprint": fingerprint(public_key),
    }


def public_from_text(text: str) -> Ed25519PublicKey:
    """A public key from its standard base64 (as `/api/weighings/key` gives it) or a PEM."""
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(stripped.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key
    try:
        raw = base64.b64decode(stripped, validate=True)
    except ValueError:
        raise ValueError("the public key must be base64 of 32 bytes, or a PEM") from None
    if len(raw) != 32:
        raise ValueError("the public key must be base64 of 32 bytes, or a PEM")
    return Ed25519PublicKey.from_public_bytes(raw)
