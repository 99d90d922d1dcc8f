"""Real MQTT brokers for the fleet-publishing tests and bench: the shared Mosquitto on
127.0.0.1:1883, or a mosquitto process of the test's own on a free port from a config the test
writes (TLS with a test-made CA, a password file, a broker to restart); and a subscriber that
records what it receives, on a paho thread of its own."""

from __future__ import annotations

import datetime
import getpass
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from tests.base import skip_or_fail

SHARED = ("127.0.0.1", 1883)
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=1).close()
    except OSError:
        return False
    return True


def require_shared() -> None:
    """The shared Mosquitto answers on 127.0.0.1:1883, or the test skips (fails in CI)."""
    if not answers(SHARED):
        skip_or_fail("no MQTT broker on 127.0.0.1:1883 (.ci/run starts one)")


class Mosquitto:
    """A mosquitto process of the test's own on a free port; `config` lines are added to the
    listener's (certificates, password file), `plain_port` adds an anonymous plain listener."""

    def __init__(self, config: str = "", *, plain_port: bool = False, persist: bool = False):
        if not Path(MOSQUITTO).exists():
            skip_or_fail("mosquitto is not installed")
        self.dir = Path(tempfile.mkdtemp(prefix="balanca-mosquitto-"))
        self.port = free_port()
        self.plain = free_port() if plain_port else None
        lines = [
            "per_listener_settings true",
            f"user {getpass.getuser()}",  # as root, mosquitto would become `mosquitto` otherwise
            f"persistence {'true' if persist else 'false'}",
            f"persistence_location {self.dir}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            f"listener {self.port} 127.0.0.1",
            config,
        ]
        if "password_file" not in config:
            lines.append("allow_anonymous true")
        if self.plain is not None:
            lines += [f"listener {self.plain} 127.0.0.1", "allow_anonymous true"]
        (self.dir / "mosquitto.conf").write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        with open(self.dir / "mosquitto.log", "ab") as log:
            self.process = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.dir / "mosquitto.conf")],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while not answers(("127.0.0.1", self.port)):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"mosquitto did not start: {self.log()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "mosquitto.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def make_ca(folder: Path, names: tuple[str, ...] = ("localhost",)) -> dict[str, Path]:
    """A CA and a server certificate it signed for `names`; the PEM files' paths (`ca`,
    `cert`, `key`)."""
    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.DNSName(n) for n in names])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = f"balanca test CA {uuid.uuid4().hex[:8]}"
    ca = certificate(ca_name, ca_key, ca_name, ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(names[0], key, ca_name, ca_key, False)
    paths = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


class Subscriber:
    """A subscriber on its own paho thread: every message it receives, in order, with the
    time it arrived. `session` keeps a persistent session (QoS 1) across broker restarts."""

    def __init__(
        self,
        topic: str,
        address: tuple[str, int] = SHARED,
        *,
        session: str | None = None,
        on_message: Callable[[str, bytes, float], None] | None = None,
    ) -> None:
        self.topic, self.messages = topic, list[tuple[str, bytes, bool, float]]()
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.extra = on_message
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=session or f"test-{uuid.uuid4().hex[:10]}",
            protocol=paho.MQTTv5,
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.session = session
        properties = None
        if session is not None:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 3600
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect(*address, clean_start=session is None, properties=properties)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise AssertionError(f"the subscriber could not connect to {address}")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe(self.topic, qos=1)
        self.connected.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        now = time.time()
        with self.lock:
            self.messages.append((message.topic, message.payload, bool(message.retain), now))
        if self.extra is not None:
            self.extra(message.topic, message.payload, now)

    def payloads(self, suffix: str) -> list[Any]:
        """The JSON payloads received on topics ending with `suffix`, in order."""
        with self.lock:
            return [json.loads(p) for t, p, _, _ in self.messages if t.endswith(suffix) and p]

    def retained(self, suffix: str) -> list[Any]:
        with self.lock:
            return [json.loads(p) for t, p, r, _ in self.messages if t.endswith(suffix) and r]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def clear_retained(prefix: str, address: tuple[str, int] = SHARED) -> None:
    """Remove every retained message under `prefix` (a test's own site), so that the shared
    broker does not keep them."""
    seen: list[str] = []
    probe = Subscriber(f"{prefix}/#", address)
    time.sleep(0.5)
    with probe.lock:
        seen = sorted({t for t, _, r, _ in probe.messages if r})
    for topic in seen:
        probe.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    probe.close()
