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

# One script call takes the slots of a whole batch: lock traffic stays one round trip per batch.
# ARGV: prefix, ttl_ms, then (schedule_id, slots, token) per request. Returns the slot taken, or -1, per request.
_ACQUIRE_BATCH = """
local out = {}
for i = 3, #ARGV, 3 do
  local base = ARGV[1] .. ARGV[i] .. ':'
  local got = -1
  for slot = 0, tonumber(ARGV[i + 1]) - 1 do
    if redis.call('SET', base .. slot, ARGV[i + 2], 'NX', 'PX', ARGV[2]) then
      got = slot
      break
    end
  end
  out[#out + 1] = got
end
return out
"""
# KEYS: lease keys; ARGV: their tokens. Deletes each key that still holds its token.
_RELEASE_BATCH = """
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i] then
    n = n + redis.call('DEL', KEYS[i])
  end
end
return n
"""
# ARGV: prefix, then (schedule_id, slots, token) per request. Deletes every slot of the schedule that
# holds the token (the reaper knows a dead run's token, not which slot it took). Returns how many.
_RELEASE_HELD = """
local n = 0
for i = 2, #ARGV, 3 do
  local base = ARGV[1] .. ARGV[i] .. ':'
  for slot = 0, tonumber(ARGV[i + 1]) - 1 do
    if redis.call('GET', base .. slot) == ARGV[i + 2] then
      n = n + redis.call('DEL', base .. slot)
    end
  end
end
return n
"""


def lease_token(execution_id: uuid.UUID, claimed_by: str | None) -> str:
    """The token a run's lease is held with: its claimer and the run.

    With the claimer in it, the sweep can free exactly the leases of a dead worker's runs, and a worker
    resumed after its runs were reaped cannot release the lease of the worker that took the run over.
    """
    return f"{claimed_by}/{execution_id}" if claimed_by else str(execution_id)


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
        self._acquire = redis.register_script(_ACQUIRE_BATCH)
        self._release = redis.register_script(_RELEASE_BATCH)
        self._release_held = redis.register_script(_RELEASE_HELD)

    async def acquire_many(self, requests: list[tuple[uuid.UUID, int, str]]) -> list[Lease | None]:
        """Try one slot per (schedule_id, max_concurrent, token), all in one script call."""
        if not requests:
            return []
        args: list[object] = [KEY_PREFIX, self.ttl_ms]
        for schedule_id, slots, token in requests:
            args += [str(schedule_id), slots, token]
        results = await self._acquire(args=args)
        return [
            Lease(schedule_id, int(slot), token) if int(slot) >= 0 else None
            for (schedule_id, _, token), slot in zip(requests, results)
        ]

    async def release_many(self, leases: list[Lease]) -> None:
        """Release the leases still held by their tokens, in one script call."""
        if leases:
            await self._release(keys=[lease.key for lease in leases], args=[lease.token for lease in leases])

    async def release_held(self, requests: list[tuple[uuid.UUID, int, str]]) -> int:
        """Free the slots held with (schedule_id, max_concurrent, token), whichever slot each took;
        returns how many were freed. Used for runs reaped from a dead worker."""
        if not requests:
            return 0
        args: list[object] = [KEY_PREFIX]
        for schedule_id, slots, token in requests:
            args += [str(schedule_id), slots, token]
        return int(await self._release_held(args=args))
