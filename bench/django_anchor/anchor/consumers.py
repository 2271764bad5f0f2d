"""A Pusher-shaped consumer, so the same load generator drives it: connection_established, subscribe, events.

The HTTP endpoint does one ``group_send`` per publish and does not check signatures: the anchor measures
Channels' fan-out, not a Pusher implementation.
"""

import json
import secrets
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer


class PusherishConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()
        socket_id = f"{secrets.randbelow(10**9)}.{secrets.randbelow(10**10)}"
        data = json.dumps({"socket_id": socket_id, "activity_timeout": 120})
        await self.send(text_data=json.dumps({"event": "pusher:connection_established", "data": data}))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        message = json.loads(text_data or "{}")
        if message.get("event") == "pusher:subscribe":
            channel = message["data"]["channel"]
            await self.channel_layer.group_add(channel, self.channel_name)
            await self.send(text_data=json.dumps(
                {"event": "pusher_internal:subscription_succeeded", "data": "{}", "channel": channel}))
        elif message.get("event") == "pusher:ping":
            await self.send(text_data=json.dumps({"event": "pusher:pong", "data": "{}"}))

    async def bench_event(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


async def publish(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """POST /apps/{id}/events: {"name", "channel", "data"} → one group_send."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    event = json.loads(body)
    text = json.dumps({"event": event["name"], "data": event["data"], "channel": event["channel"]})
    await get_channel_layer().group_send(event["channel"], {"type": "bench.event", "text": text})
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})
