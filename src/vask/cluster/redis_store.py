"""SharedStore on Redis: documents are hashes {v: value, r: revision} changed by a compare-and-set script."""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

from vask.broker.redis import ERRORS, connect
from vask.cluster.store import StoreUnavailable

# KEYS[1] key; ARGV[1] expected revision; ARGV[2] new value ("" deletes); ARGV[3] a random revision to start a
# new key at, so that a key deleted and created again does not reuse the revision a slow writer still holds
# (which would let that writer's stale compare-and-set succeed). Returns 1 when written.
_CAS = """
local rev = tonumber(redis.call('HGET', KEYS[1], 'r') or '0')
if rev ~= tonumber(ARGV[1]) then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) return 1 end
if rev == 0 then rev = tonumber(ARGV[3]) end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'r', string.format('%d', rev + 1))
return 1
"""


class RedisStore:
    def __init__(self, url: str, prefix: str, ttls: dict[str, float]) -> None:
        self.url = url
        self.prefix = prefix
        self.ttls = ttls  # bucket → seconds
        self.client: Any = None
        self._cas: Any = None

    async def start(self) -> None:
        with contextlib.suppress(StoreUnavailable):  # unreachable now: the first operation tries again
            await self._connect()

    async def _connect(self) -> Any:
        # A plain client connects on its first command; a cluster client must read the slot map first,
        # which fails while Redis is away, so it is made here, on demand.
        if self.client is None:
            try:
                self.client = await connect(self.url, socket_timeout=2, socket_connect_timeout=2,
                                            health_check_interval=5)
            except ERRORS as exc:
                raise StoreUnavailable(str(exc)) from exc
            self._cas = self.client.register_script(_CAS)
        return self.client

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    def _k(self, key: str) -> str:
        return f"{self.prefix}:s:{key}"

    async def get(self, key: str) -> tuple[bytes | None, int]:
        try:
            value, revision = await (await self._connect()).hmget(self._k(key), "v", "r")
        except ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc
        return value, int(revision or 0)

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        try:
            async with (await self._connect()).pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hget(self._k(key), "v")
                return list(await pipe.execute())
        except ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def put_if(self, key: str, value: bytes | None, revision: int) -> bool:
        try:
            await self._connect()
            return bool(await self._cas(keys=[self._k(key)], args=[revision, value or b"", secrets.randbits(40)]))
        except ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def keys(self, prefix: str) -> list[str]:
        start = len(self._k(""))
        try:
            return [k.decode()[start:] async for k in (await self._connect()).scan_iter(match=self._k(prefix) + "*",
                                                                            count=500)]
        except ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc

    def _e(self, bucket: str, key: str) -> str:
        return f"{self.prefix}:e:{bucket}:{key}"

    async def put_expiring(self, bucket: str, key: str, value: bytes) -> None:
        try:
            await (await self._connect()).set(self._e(bucket, key), value, px=int(self.ttls[bucket] * 1000))
        except ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def create_expiring(self, bucket: str, key: str, value: bytes) -> bool:
        try:
            return bool(await (await self._connect()).set(self._e(bucket, key), value, px=int(self.ttls[bucket] * 1000),
                                              nx=True))
        except ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def get_expiring(self, bucket: str, key: str) -> bytes | None:
        try:
            return await (await self._connect()).get(self._e(bucket, key))  # type: ignore[no-any-return]
        except ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def delete_expiring(self, bucket: str, key: str) -> None:
        try:
            await (await self._connect()).delete(self._e(bucket, key))
        except ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def keys_expiring(self, bucket: str) -> list[str]:
        start = len(self._e(bucket, ""))
        try:
            return [k.decode()[start:] async for k in (await self._connect()).scan_iter(match=self._e(bucket, "*"),
                                                                            count=500)]
        except ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc
