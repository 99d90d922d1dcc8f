"""A serial device file: opened exclusively, named when missing or held, watched for replugs.

The port is opened with pyserial's `exclusive=True` (an advisory `flock`), so a second balanca
on the same device is told "device busy" instead of starting "fine" and reading nothing. On
Linux the device's directory is watched with inotify (the nearest existing ancestor while the
directory itself is missing, as `/dev/serial/by-id` is until the first adapter is plugged),
so the link reopens the device as soon as it appears; elsewhere the link's backoff does it.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable
from typing import Any

import serial
from twisted.internet.interfaces import IReactorTime
from twisted.internet.serialport import SerialPort
from twisted.logger import Logger
from twisted.python.filepath import FilePath

from balanca.scale.link import OpenFailed
from balanca.scale.protocols.base import LineSettings
from balanca.scale.scale import ScaleProtocol

try:
    from twisted.internet import inotify
except ImportError:  # not Linux: the link's backoff is the only way back
    inotify = None  # type: ignore[assignment]

BUSY = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY}


class ExclusiveSerialPort(SerialPort):
    """Twisted's serial port, opened with an exclusive advisory lock (Twisted's `SerialPort`
    passes no extra arguments to `serial.Serial`, so its factory is replaced)."""

    _serialFactory = functools.partial(serial.Serial, exclusive=True)


class SerialDevice:
    """The serial device at `path`: the link's opener and its `Device`."""

    log = Logger()

    def __init__(self, path: str, line: LineSettings, reactor: Any) -> None:
        self.path, self.line, self.reactor = path, line, reactor
        self._watch: DirectoryWatch | None = None

    def open(self, protocol: ScaleProtocol) -> SerialPort:
        """Open the port for `protocol`; `OpenFailed` says why not."""
        line = self.line
        try:
            return ExclusiveSerialPort(
                protocol,
                self.path,
                self.reactor,
                baudrate=line.baudrate,
                bytesize=line.bytesize,
                parity=line.parity,
                stopbits=line.stopbits,
            )
        except (serial.SerialException, OSError) as e:
            raise self._why(e) from None

    def present(self) -> bool:
        """The device file exists (a link whose target is gone does not)."""
        return os.path.exists(self.path)

    def watch(self, appeared: Callable[[], None]) -> None:
        """Call `appeared` whenever the device file may have appeared (Linux only)."""
        if inotify is None:
            return
        try:
            self._watch = DirectoryWatch(self.reactor, FilePath(os.path.abspath(self.path)))
            self._watch.start(appeared)
        except (OSError, inotify.INotifyError) as e:
            self._watch = None
            self.log.warn(
                "scale: cannot watch {path} for replugs ({error}); reopening by backoff only",
                path=self.path,
                error=e,
            )

    def stop(self) -> None:
        """Stop watching."""
        if self._watch is not None:
            self._watch.stop()
            self._watch = None

    def _why(self, e: Exception) -> OpenFailed:
        code = getattr(e, "errno", None)
        if code == errno.ENOENT or not self.present():
            return OpenFailed(f"device not found: {self.path}", "device_not_found")
        if code in BUSY:
            return OpenFailed(f"device busy: held by another process: {self.path}", "device_busy")
        return OpenFailed(f"cannot open {self.path}: {e}", "open_failed")


class DirectoryWatch:
    """Watches the directory of one path (or its nearest existing ancestor) with inotify."""

    def __init__(self, reactor: IReactorTime, path: FilePath[str]) -> None:
        self.reactor = reactor
        self.path = path.asBytesMode()
        self.came = inotify.IN_CREATE | inotify.IN_MOVED_TO
        """A file or directory came into the watched directory."""
        self.gone = inotify.IN_DELETE_SELF | inotify.IN_MOVE_SELF
        """The watched directory itself went."""
        self._appeared: Callable[[], None] = lambda: None
        self._notifier: Any = None

    def start(self, appeared: Callable[[], None]) -> None:
        """Watch, calling `appeared` when the path may have appeared."""
        self._appeared = appeared
        self._arm()

    def stop(self) -> None:
        """Stop watching."""
        notifier, self._notifier = self._notifier, None
        if notifier is not None:
            notifier.loseConnection()

    def _arm(self) -> None:
        """Watch the nearest existing directory on the way to the path (one notifier each time:
        Twisted's closes itself when a watched directory is deleted)."""
        self.stop()
        directory = self.path.parent()
        while not directory.isdir() and directory.parent() != directory:
            directory = directory.parent()
        notifier = inotify.INotify(self.reactor)
        notifier.startReading()
        notifier.watch(
            directory, mask=self.came | self.gone | inotify.IN_ATTRIB, callbacks=[self._event]
        )
        self._notifier = notifier
        if self.path.exists():
            self._appeared()

    def _event(self, _: object, path: FilePath[bytes], mask: int) -> None:
        if self._notifier is None:
            return
        if mask & self.gone:  # the watched directory went: watch an ancestor
            self.reactor.callLater(0, self._arm)
        elif path == self.path:
            self._appeared()
        elif mask & self.came and self.path.path.startswith(path.path + b"/"):
            self.reactor.callLater(0, self._arm)
