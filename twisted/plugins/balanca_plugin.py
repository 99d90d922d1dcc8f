"""Registers `twistd balanca`."""

from twisted.application.service import ServiceMaker

balanca = ServiceMaker(
    "balanca",
    "balanca.tap",
    "Serve a weighing scale's live weight over HTTP and WebSocket, and record it.",
    "balanca",
)
