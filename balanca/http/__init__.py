"""HTTP and WebSocket: the API, the site, live clients, security and metrics."""
