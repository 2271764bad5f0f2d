"""SharedStore on Redis: documents are hashes {v: value, r: revision} changed by a compare-and-set script."""

from __future__ import annotations

import secrets
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

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
        self.client = aioredis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2,
                                        health_check_interval=5)
        self._cas = self.client.register_script(_CAS)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    def _k(self, key: str) -> str:
        return f"{self.prefix}:s:{key}"

    async def get(self, key: str) -> tuple[bytes | None, int]:
        try:
            value, revision = await self.client.hmget(self._k(key), "v", "r")
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return value, int(revision or 0)

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hget(self._k(key), "v")
                return list(await pipe.execute())
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def put_if(self, key: str, value: bytes | None, revision: int) -> bool:
        try:
            return bool(await self._cas(keys=[self._k(key)], args=[revision, value or b"", secrets.randbits(40)]))
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def keys(self, prefix: str) -> list[str]:
        start = len(self._k(""))
        try:
            return [k.decode()[start:] async for k in self.client.scan_iter(match=self._k(prefix) + "*",
                                                                            count=500)]
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    def _e(self, bucket: str, key: str) -> str:
        return f"{self.prefix}:e:{bucket}:{key}"

    async def put_expiring(self, bucket: str, key: str, value: bytes) -> None:
        try:
            await self.client.set(self._e(bucket, key), value, px=int(self.ttls[bucket] * 1000))
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def create_expiring(self, bucket: str, key: str, value: bytes) -> bool:
        try:
            return bool(await self.client.set(self._e(bucket, key), value, px=int(self.ttls[bucket] * 1000),
                                              nx=True))
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def get_expiring(self, bucket: str, key: str) -> bytes | None:
        try:
            return await self.client.get(self._e(bucket, key))  # type: ignore[no-any-return]
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def delete_expiring(self, bucket: str, key: str) -> None:
        try:
            await self.client.delete(self._e(bucket, key))
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def keys_expiring(self, bucket: str) -> list[str]:
        start = len(self._e(bucket, ""))
        try:
            return [k.decode()[start:] async for k in self.client.scan_iter(match=self._e(bucket, "*"),
                                                                            count=500)]
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
