"""NATS broker: core pub/sub on one subject. nats-py reconnects and resubscribes by itself; this class turns its
connection callbacks into ``healthy`` and the node's ``reconnected`` call, and refuses to publish while the
connection is down (nats-py would otherwise buffer silently and deliver late).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from vask import tasks
from vask.broker.base import BrokerUnavailable, Receiver, Reconnected

log = logging.getLogger("vask.broker")

START_WAIT = 5.0  # seconds start() waits for a first connection before going on in the background


def connect_options(url: str, name: str) -> dict[str, Any]:
    """nats-py settings shared by the broker and the store: reconnect for ever, notice a dead server fast."""
    return {
        "servers": [u.strip() for u in url.split(",") if u.strip()],
        "name": name,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,  # also makes the first connect() keep trying until the server is up
        "reconnect_time_wait": 0.5,
        "connect_timeout": 2,
        "ping_interval": 5,  # a silently dead server (no RST) is noticed after about 3 pings
        "max_outstanding_pings": 2,
    }


class QuietErrors:
    """nats-py reports every failed reconnect attempt; log the first of a streak, then one a minute."""

    def __init__(self, what: str, logger: logging.Logger = log) -> None:
        self.what = what
        self.log = logger
        self.last = 0.0

    async def report(self, exc: Exception) -> None:  # nats-py wants a coroutine function
        now = time.monotonic()
        if now - self.last >= 60:
            self.log.warning("%s: %s", self.what, exc or type(exc).__name__)
            self.last = now

    def reset(self) -> None:
        self.last = 0.0


class NatsBroker:
    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.subject = f"{prefix}.bus"
        self.healthy = False
        self.nc = Client()
        self.task: asyncio.Task[None] | None = None
        self.background: set[asyncio.Task[None]] = set()
        self.errors = QuietErrors(f"NATS broker {url}")
        self._receive: Receiver | None = None
        self._reconnected: Reconnected | None = None
        self._late = False  # the first connection came after start() returned: treat it as a reconnect
        self._closing = False

    async def start(self, receive: Receiver, reconnected: Reconnected) -> None:
        self._receive = receive
        self._reconnected = reconnected
        self.task = tasks.spawn(self._connect(), "nats-connect")
        with contextlib.suppress(TimeoutError, nats.errors.Error, OSError):
            await asyncio.wait_for(asyncio.shield(self.task), START_WAIT)
        if not self.healthy:
            self._late = True
            log.warning("NATS broker %s not reachable yet; retrying in the background", self.url)

    async def _connect(self) -> None:
        while True:
            try:
                await self.nc.connect(**connect_options(self.url, "vask-broker"),
                                      error_cb=self.errors.report, disconnected_cb=self._disconnected,
                                      reconnected_cb=self._back, closed_cb=self._closed)
                await self.nc.subscribe(self.subject, cb=self._on_message)
                await self.nc.flush(timeout=2)  # the SUB has reached the server
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # e.g. the server went away between CONNECT and SUB
                await self.errors.report(exc)
                with contextlib.suppress(Exception):
                    await self.nc.close()
                self.nc = Client()
                await asyncio.sleep(0.5)
        self.healthy = True
        self.errors.reset()
        if self._late:
            log.info("NATS broker %s connected", self.url)
            self._spawn_reconnected()

    async def _on_message(self, msg: Msg) -> None:
        if self._receive is None:
            return
        try:
            self._receive(msg.data)
        except Exception:
            log.exception("error handling a message from the NATS bus")

    async def _disconnected(self) -> None:
        if self.healthy and not self._closing:
            log.warning("NATS broker %s lost; reconnecting", self.url)
        self.healthy = False

    async def _back(self) -> None:
        # nats-py has already re-sent our subscription when it calls this.
        log.info("NATS broker %s back: resubscribed", self.url)
        self.healthy = True
        self.errors.reset()
        self._spawn_reconnected()

    async def _closed(self) -> None:
        self.healthy = False

    def _spawn_reconnected(self) -> None:
        if self._reconnected is None:
            return
        tasks.spawn(self._reconnected(), "nats-reconnected", self.background)

    async def publish(self, payload: bytes) -> None:
        if not self.nc.is_connected:
            self.healthy = False
            raise BrokerUnavailable("NATS broker unavailable")
        try:
            await self.nc.publish(self.subject, payload)
        except nats.errors.MaxPayloadError:
            # Retrying could never succeed and would stall the node's whole outgoing queue: drop it, loudly.
            log.error("dropped a %d-byte envelope: larger than the NATS server's max_payload (%d)",
                      len(payload), self.nc.max_payload)
        except (nats.errors.Error, OSError) as exc:
            raise BrokerUnavailable(str(exc) or type(exc).__name__) from exc

    async def close(self) -> None:
        self._closing = True  # nats-py calls disconnected_cb on a deliberate close too
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        for task in list(self.background):
            task.cancel()
        with contextlib.suppress(Exception):
            await self.nc.close()
        self.healthy = False
