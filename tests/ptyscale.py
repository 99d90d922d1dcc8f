"""A scale on a real pseudo-terminal: the test writes frames into the master side, balanca
opens the slave through a stable symlink (as udev's /dev/serial/by-id links), and for polled
protocols a thread answers each request the way an indicator would."""

from __future__ import annotations

import os
import select
import tempfile
import threading
import tty
from collections.abc import Callable
from pathlib import Path

from balanca.reading import Measurement, Reply
from balanca.scale.protocols import PROTOCOLS

Answer = Callable[[bytes], bytes | None]


class PtyScale:
    """A pty pair behind a symlink, unpluggable and replugable."""

    def __init__(self, protocol: str, link: Path | None = None) -> None:
        self.wire = PROTOCOLS[protocol]
        self.link = link or Path(tempfile.mkdtemp(prefix="balanca-pty-"), "scale0")
        self.master: int | None = None
        self._slave = -1
        self.requests: list[bytes] = []
        self.measurement: Measurement | None = None
        self.replies: dict[str, Reply] = {}
        self.answers: dict[str, bytes] = {}
        """Raw answers to commands, before `replies` (e.g. MT-SICS `EL`)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def plug(self) -> PtyScale:
        """A new pty behind the symlink; polled protocols get an answering thread."""
        master, slave = os.openpty()
        tty.setraw(master)
        name = os.ttyname(slave)
        self.master, self._slave = master, slave  # held open: no hang-up before balanca opens it
        if self.link.is_symlink():
            self.link.unlink()
        self.link.parent.mkdir(parents=True, exist_ok=True)
        self.link.symlink_to(name)
        if self.wire.poll is not None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._answer, args=(master,), daemon=True)
            self._thread.start()
        return self

    def unplug(self) -> None:
        """Close the pty and remove the symlink, as pulling a USB adapter does."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self.master is not None:
            os.close(self.master)
            os.close(self._slave)
            self.master = None
        if self.link.is_symlink():
            self.link.unlink()

    def write(self, data: bytes) -> None:
        assert self.master is not None
        os.write(self.master, data)

    def send(self, m: Measurement) -> None:
        self.write(self.wire.encode(m))

    def spec(self, *options: str) -> str:
        device = str(self.link).replace(":", "\\:")
        return ":".join([f"serial:{device}", f"protocol={self.wire.name}", *options])

    def _answer(self, master: int) -> None:
        """Answer poll requests with the current measurement and commands with their reply."""
        commands = {request: name for name, request in self.wire.commands.items()}
        pending = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                pending += os.read(master, 1024)
            except OSError:
                return
            for request in [self.wire.poll, *commands]:
                assert request is not None
                while request in pending:
                    before, _, pending = pending.partition(request)
                    self.requests.append(request)
                    answer = self._answer_for(request, commands)
                    if answer:
                        os.write(master, answer)

    def _answer_for(self, request: bytes, commands: dict[bytes, str]) -> bytes | None:
        if request == self.wire.poll:
            return None if self.measurement is None else self.wire.encode(self.measurement)
        if commands[request] in self.answers:
            return self.answers[commands[request]]
        reply = self.replies.get(commands[request])
        if reply is None or self.wire.encode_reply is None:
            return None
        return self.wire.encode_reply(reply)
