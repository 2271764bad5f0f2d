"""SharedStore on NATS JetStream KV: one bucket of CAS documents, one bucket per expiring namespace.

Buckets (``{prefix}_state`` with history 1 and no TTL; ``{prefix}_<name>`` with the TTL from ``ttls``) are created
when missing, on every (re)connection, so a NATS server that lost its data gets them back. A bucket that exists
with another TTL or history is updated in place to ours, with a warning: nodes sharing a prefix must agree.

Revisions are JetStream stream sequences: unique for the stream's life and never reused, so a compare-and-set
can not be fooled by a key deleted and created again in between (no ABA). Deletes purge the key's message
(conditionally, for CAS: "purge what is older than revision + 1" removes something only while ``revision`` is
still the latest) instead of writing KV delete markers, which would pile up in the state bucket for every
channel ever used. A marker written by another tool (``nats kv del``) reads as absent, though ``keys`` lists it.

Keys are escaped for NATS token by token (see ``escape``); the keys Vask uses normally pass through unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from vask import tasks
from vask.broker.nats import QuietErrors, connect_options
from vask.cluster.store import StoreUnavailable

log = logging.getLogger("vask.cluster")

TIMEOUT = 2.0  # every store call: past this it raises StoreUnavailable
START_WAIT = 2.0  # start() waits this long for the buckets, then goes on connecting in the background
STATE = "state"
_SAFE = re.compile(r"[A-Za-z0-9_/-]")
_NO_STREAM = 10059
T = TypeVar("T")


def escape(key: str) -> str:
    """A store key as a NATS KV key, escaped per dot-separated token so that prefix filters still work:
    characters outside ``[A-Za-z0-9_/-]`` become ``=XX`` per UTF-8 byte and an empty token becomes ``=``."""
    tokens = []
    for token in key.split("."):
        out = "".join(ch if _SAFE.fullmatch(ch) else "".join(f"={b:02X}" for b in ch.encode()) for ch in token)
        tokens.append(out or "=")
    return ".".join(tokens)


def unescape(key: str) -> str:
    return ".".join(_unescape_token(token) for token in key.split("."))


def _unescape_token(token: str) -> str:
    if token == "=":
        return ""
    raw = bytearray()
    i = 0
    try:
        while i < len(token):
            if token[i] == "=":
                raw.append(int(token[i + 1:i + 3], 16))
                i += 3
            else:
                raw += token[i].encode()
                i += 1
        return raw.decode()
    except ValueError:  # not escaped by us (a key some other tool wrote): keep it as it is
        return token


class NatsStore:
    def __init__(self, url: str, prefix: str, ttls: dict[str, float]) -> None:
        self.url = url
        self.prefix = prefix
        self.ttls = ttls  # bucket → seconds
        self.nc = Client()
        self.js: JetStreamContext | None = None
        self.kvs: dict[str, KeyValue] = {}  # "state" and each expiring bucket, once ensured
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.ensuring: asyncio.Task[None] | None = None
        self.errors = QuietErrors(f"NATS store {url}", log)

    # -- connection and buckets --------------------------------------------------------------

    async def start(self) -> None:
        self.task = tasks.spawn(self._connect(), "nats-store-connect")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), START_WAIT)
        if not self.ready.is_set():
            log.warning("NATS store %s not ready yet; retrying in the background", self.url)

    async def _connect(self) -> None:
        # With max_reconnect_attempts=-1, connect() itself keeps trying until the server answers.
        while True:
            try:
                await self.nc.connect(**connect_options(self.url, "vask-store"), error_cb=self.errors.report,
                                      reconnected_cb=self._reconnected, disconnected_cb=self._disconnected)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self.errors.report(exc)
                self.nc = Client()
                await asyncio.sleep(0.5)
        self.js = self.nc.jetstream(timeout=TIMEOUT)
        self._ensure_soon()

    async def _reconnected(self) -> None:
        self.errors.reset()
        self._ensure_soon()  # the server may have restarted without its data

    async def _disconnected(self) -> None:
        self.ready.clear()

    def _ensure_soon(self) -> None:
        if self.ensuring is None or self.ensuring.done():
            self.ensuring = tasks.spawn(self._ensure_loop(), "nats-store-buckets")

    async def _ensure_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._ensure_buckets(), 5 * TIMEOUT)
                self.ready.set()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self.errors.report(exc)
                await asyncio.sleep(0.5)

    def _bucket(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    async def _ensure_buckets(self) -> None:
        assert self.js is not None
        wanted: dict[str, float | None] = {STATE: None, **self.ttls}
        for name, ttl in wanted.items():
            bucket = self._bucket(name)
            try:
                info = await self.js.stream_info(f"KV_{bucket}")
            except nats.js.errors.NotFoundError:
                await self.js.create_key_value(bucket=bucket, history=1, ttl=ttl)
            else:
                config = info.config
                have = config.max_age or None
                if config.max_msgs_per_subject != 1 or abs((have or 0) - (ttl or 0)) > 1e-3:
                    log.warning("NATS KV bucket %s had ttl=%s, history=%s; setting ttl=%s, history=1 "
                                "(nodes sharing a prefix should use the same node timeout)",
                                bucket, have, config.max_msgs_per_subject, ttl)
                    config.max_age = ttl or 0.0
                    config.max_msgs_per_subject = 1
                    # JetStream refuses a duplicate window longer than max_age.
                    config.duplicate_window = min(config.duplicate_window or 120.0, ttl or 120.0)
                    await self.js.update_stream(config)
            self.kvs[name] = await self.js.key_value(bucket)

    async def close(self) -> None:
        for task in (self.task, self.ensuring):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        with contextlib.suppress(Exception):
            await self.nc.close()

    # -- plumbing ------------------------------------------------------------------------------

    def _kv(self, name: str) -> KeyValue:
        kv = self.kvs.get(name)
        if kv is None or not self.nc.is_connected or not self.ready.is_set():
            raise StoreUnavailable("NATS store not connected")
        return kv

    async def _call(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run one store operation within the timeout; every failure but a lost CAS becomes StoreUnavailable.

        Connected but still (re)creating the buckets, as right after a reconnect: wait for them, in the same
        time budget, rather than fail a call that would succeed a moment later."""
        try:
            async with asyncio.timeout(TIMEOUT):
                if not self.ready.is_set() and self.nc.is_connected:
                    await self.ready.wait()
                return await work()
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            if isinstance(exc, nats.js.errors.NoStreamResponseError | nats.errors.NoRespondersError):
                self._lost_buckets()
            raise StoreUnavailable(str(exc) or type(exc).__name__) from exc

    def _lost_buckets(self) -> None:
        """No stream answered a write: the server lost its data. Recreate the buckets in the background."""
        if self.ready.is_set():
            log.warning("NATS KV buckets for prefix %s are gone; recreating them", self.prefix)
            self.ready.clear()
            self._ensure_soon()

    async def _api(self, verb: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """A raw JetStream API request (for answers nats-py does not pass on: purged counts, subject pages)."""
        msg = await self.nc.request(f"$JS.API.STREAM.{verb}.KV_{self._bucket(name)}", orjson.dumps(body),
                                    timeout=TIMEOUT)
        answer: dict[str, Any] = orjson.loads(msg.data)
        error = answer.get("error")
        if error:
            if error.get("err_code") == _NO_STREAM:
                self._lost_buckets()
            raise StoreUnavailable(f"JetStream {verb}: {error.get('description')}")
        return answer

    async def _purge(self, name: str, key: str, below: int | None = None) -> int:
        """Remove the key's message (only revisions below ``below`` when given); how many went."""
        self._kv(name)
        body: dict[str, Any] = {"filter": f"$KV.{self._bucket(name)}.{escape(key)}"}
        if below is not None:
            body["seq"] = below
        return int((await self._api("PURGE", name, body)).get("purged", 0))

    async def _keys(self, name: str, prefix: str) -> list[str]:
        """Keys starting with ``prefix``: the server filters on the prefix's whole tokens, we on the rest."""
        self._kv(name)
        whole = prefix.split(".")[:-1]
        pattern = ".".join([f"$KV.{self._bucket(name)}", *(escape(t) for t in whole), ">"]) if whole else \
            f"$KV.{self._bucket(name)}.>"
        start = len(f"$KV.{self._bucket(name)}.")
        keys: list[str] = []
        offset = 0
        while True:  # the server pages subject lists (100,000 at a time)
            answer = await self._api("INFO", name, {"subjects_filter": pattern, "offset": offset})
            subjects = (answer.get("state") or {}).get("subjects") or {}
            keys.extend(unescape(subject[start:]) for subject in subjects)
            offset += len(subjects)
            if not subjects or offset >= int(answer.get("total", 0)):
                break
        return [key for key in keys if key.startswith(prefix)]

    async def _read(self, name: str, key: str) -> tuple[bytes, int] | None:
        """The value and revision, or None when absent (deleted and purged keys included)."""
        try:
            entry = await self._kv(name).get(escape(key))
        except nats.js.errors.KeyNotFoundError:
            return None
        return entry.value or b"", entry.revision or 0  # nats-py gives None for an empty payload

    async def _create(self, name: str, key: str, value: bytes) -> bool:
        try:
            await self._kv(name).create(escape(key), value)
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        return True

    async def _update(self, key: str, value: bytes, revision: int) -> bool:
        try:
            await self._kv(STATE).update(escape(key), value, last=revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        return True

    # -- documents -----------------------------------------------------------------------------

    async def get(self, key: str) -> tuple[bytes | None, int]:
        return await self._call(lambda: self._read(STATE, key)) or (None, 0)

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        values: list[bytes | None] = []
        for start in range(0, len(keys), 256):  # bounded concurrency for big listings
            chunk = keys[start:start + 256]
            values.extend(await self._call(lambda: self._read_values(chunk)))  # noqa: B023 - awaited at once
        return values

    async def _read_values(self, keys: list[str]) -> list[bytes | None]:
        entries = await asyncio.gather(*(self._read(STATE, key) for key in keys))
        return [None if entry is None else entry[0] for entry in entries]

    async def put_if(self, key: str, value: bytes | None, revision: int) -> bool:
        if value is None:
            if revision == 0:
                return (await self.get(key))[0] is None  # "delete if absent" changes nothing
            # With one message per key, the purge removes something only if `revision` is still the latest.
            return await self._call(lambda: self._purge(STATE, key, revision + 1)) > 0
        if revision == 0:
            return await self._call(lambda: self._create(STATE, key, value))
        return await self._call(lambda: self._update(key, value, revision))

    async def keys(self, prefix: str) -> list[str]:
        return await self._call(lambda: self._keys(STATE, prefix))

    # -- expiring buckets ----------------------------------------------------------------------

    async def put_expiring(self, bucket: str, key: str, value: bytes) -> None:
        await self._call(lambda: self._kv(bucket).put(escape(key), value))

    async def create_expiring(self, bucket: str, key: str, value: bytes) -> bool:
        return await self._call(lambda: self._create(bucket, key, value))

    async def get_expiring(self, bucket: str, key: str) -> bytes | None:
        entry = await self._call(lambda: self._read(bucket, key))
        return None if entry is None else entry[0]

    async def delete_expiring(self, bucket: str, key: str) -> None:
        await self._call(lambda: self._purge(bucket, key))

    async def keys_expiring(self, bucket: str) -> list[str]:
        return await self._call(lambda: self._keys(bucket, ""))

