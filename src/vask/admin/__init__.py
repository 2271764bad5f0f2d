"""The control plane: the admin HTTP API on its own port (aiohttp), for operators and the dashboard."""
