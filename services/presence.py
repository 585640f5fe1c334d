"""Which tickers and workers are running, as their heartbeats in Redis say: for display only.

Workers beat through services.liveness: `<prefix>worker:<id>`, holding the beat's Redis time in ms,
members of the hash `<prefix>workers`. Tickers beat here the same way (`TickerHeartbeat`):
`<prefix>ticker:<id>` with the TTL WORKER_DEAD_AFTER_SECONDS, refreshed every
WORKER_HEARTBEAT_SECONDS from a thread, members of the hash `<prefix>tickers`. Nothing acts on a
ticker's absence (tickers have no leader and hold no runs), so the listing itself takes the members
whose key is gone out of the tickers' hash. It never touches the workers' hash: the ticker's census
reads the departed workers there (services.liveness).

`live_processes` reads both kinds in one script call, against Redis's clock (no skew between hosts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from redis.asyncio import Redis

from services.liveness import KEY_PREFIX, Heartbeat

# KEYS: the ticker's key, the hash of tickers. ARGV: the ticker id, the TTL in ms.
_TICKER_BEAT = """
local now = redis.call('TIME')
redis.call('SET', KEYS[1], now[1] .. string.format('%03d', math.floor(now[2] / 1000)), 'PX', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], '')
return 1
"""
# KEYS: the hash of workers, the hash of tickers. ARGV: the key prefix.
# Returns {now in ms, kind, id, last beat in ms, kind, id, last beat in ms, ...} for the members whose
# key exists; removes the tickers whose key is gone from their hash.
_LIST = """
local now = redis.call('TIME')
local result = {now[1] .. string.format('%03d', math.floor(now[2] / 1000))}
for index, kind in ipairs({'worker', 'ticker'}) do
  for _, id in ipairs(redis.call('HKEYS', KEYS[index])) do
    local beat = redis.call('GET', ARGV[1] .. kind .. ':' .. id)
    if beat then
      result[#result + 1] = kind
      result[#result + 1] = id
      result[#result + 1] = beat
    elseif kind == 'ticker' then
      redis.call('HDEL', KEYS[index], id)
    end
  end
end
return result
"""


class TickerHeartbeat(Heartbeat):
    """Keeps one ticker process's key alive from a daemon thread (see the module docstring)."""

    kind = "ticker"
    members = "tickers"
    script = _TICKER_BEAT

    def keys(self) -> list[str]:
        return [self.key, f"{self.prefix}{self.members}"]

    def args(self) -> list[Any]:
        return [self.worker_id, self.ttl_ms]


@dataclass(frozen=True)
class Presence:
    """One running process: its kind (`worker`, `ticker`), its id, its last beat (UTC) and how long ago
    that was (seconds). Both are None for a worker of an earlier version, whose key holds its id."""

    kind: str
    id: str
    last_beat: datetime | None
    age_seconds: float | None

    def as_dict(self) -> dict[str, Any]:
        last_beat = self.last_beat.isoformat() if self.last_beat is not None else None
        return {"id": self.id, "last_beat": last_beat, "age_seconds": self.age_seconds}


async def live_processes(client: Redis, prefix: str = KEY_PREFIX) -> list[Presence]:
    """The workers and tickers whose heartbeat key exists, oldest id first within each kind."""
    found = await client.eval(_LIST, 2, f"{prefix}workers", f"{prefix}tickers", prefix)
    values = [v.decode() if isinstance(v, bytes) else str(v) for v in found]
    now_ms = int(values[0])
    processes = []
    for kind, process_id, beat in zip(values[1::3], values[2::3], values[3::3]):
        if not beat.isdigit():
            processes.append(Presence(kind, process_id, None, None))
            continue
        at = datetime.fromtimestamp(int(beat) / 1000, timezone.utc)
        processes.append(Presence(kind, process_id, at, round(max(0, now_ms - int(beat)) / 1000, 3)))
    return sorted(processes, key=lambda p: (p.kind, p.id))
