"""A minimal Pusher protocol client (websockets' sync client) for the Django tests that need a subscriber."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from typing import Any

from websockets.sync.client import ClientConnection, connect


class PusherSocket:
    def __init__(self, server: Any, key: str | None = None) -> None:
        self._stack = ExitStack()  # websockets wants connect() used as a context manager
        url = f"{server.ws_url}/app/{key or server.app.key}?protocol=7&client=test"
        self.ws: ClientConnection = self._stack.enter_context(connect(url))
        established = self.next_frame("pusher:connection_established")
        self.socket_id: str = json.loads(established["data"])["socket_id"]

    def send(self, event: str, data: Any) -> None:
        self.ws.send(json.dumps({"event": event, "data": data}))

    def next_frame(self, event: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
        """The next frame (skipping others when ``event`` is given)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if event is None or frame.get("event") == event:
                return frame  # type: ignore[no-any-return]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event} frame within {timeout} s")

    def subscribe(self, channel: str, auth: dict[str, Any] | None = None) -> dict[str, Any]:
        """Subscribe and return the server's answer (subscription_succeeded or subscription_error)."""
        self.send("pusher:subscribe", {"channel": channel, **(auth or {})})
        while True:
            frame = self.next_frame()
            if frame.get("event") in ("pusher_internal:subscription_succeeded", "pusher:subscription_error",
                                      "pusher:error") and frame.get("channel", channel) == channel:
                return frame

    def close(self) -> None:
        self._stack.close()
