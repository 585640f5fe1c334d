"""Per-schedule concurrency slots in Redis: at most `max_concurrent` runs of a schedule at once.

Each slot is a key `scheduler:lock:{schedule_id}:{n}` set with a random token and a TTL (ms); it is
released only by its holder (compare-and-delete in Lua), so an expired lock re-taken by another run
is never released by the first. Redis losing its data can only let runs overlap, never fire a slot
twice: once-per-slot is PostgreSQL's job.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

KEY_PREFIX = "scheduler:lock:"

# KEYS: none. ARGV: prefix, slots, token, ttl_ms. Returns the slot taken, or -1.
_ACQUIRE = """
for slot = 0, tonumber(ARGV[2]) - 1 do
  if redis.call('SET', ARGV[1] .. slot, ARGV[3], 'NX', 'PX', ARGV[4]) then
    return slot
  end
end
return -1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class Lease:
    schedule_id: uuid.UUID
    slot: int
    token: str

    @property
    def key(self) -> str:
        return f"{KEY_PREFIX}{self.schedule_id}:{self.slot}"


class ScheduleLocks:
    def __init__(self, redis: Redis, ttl_seconds: int) -> None:
        self.redis = redis
        self.ttl_ms = ttl_seconds * 1000
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)

    async def acquire_many(self, requests: list[tuple[uuid.UUID, int, str]]) -> list[Lease | None]:
        """Try one slot per (schedule_id, max_concurrent, token), in one round trip."""
        if not requests:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for schedule_id, slots, token in requests:
                await self._acquire(args=[f"{KEY_PREFIX}{schedule_id}:", slots, token, self.ttl_ms], client=pipe)
            results = await pipe.execute()
        return [
            Lease(schedule_id, int(slot), token) if int(slot) >= 0 else None
            for (schedule_id, _, token), slot in zip(requests, results)
        ]

    async def release_many(self, leases: list[Lease]) -> None:
        if not leases:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for lease in leases:
                await self._release(keys=[lease.key], args=[lease.token], client=pipe)
            await pipe.execute()
