"""balanca: serve a weighing scale's live weight over HTTP and WebSocket, and record it."""

__version__ = "0.2.0"
