"""Which worker processes are alive: one heartbeat key per process in Redis.

A worker killed mid-run leaves its runs `running`. Without a detector they wait LOCK_TIMEOUT_SECONDS
(300 s by default) before the sweep hands them out again, so one `kill -9` during the catch-up after
an outage published that outage's slots minutes late. Now each worker process refreshes
`scheduler:worker:<id>` every WORKER_HEARTBEAT_SECONDS with a TTL of WORKER_DEAD_AFTER_SECONDS, the
claim records the id (`executions.claimed_by`), and the ticker's sweep reaps the runs of claimers
whose key is gone (services.outbox).

The beat runs on a thread of its own (`Heartbeat`), not on the worker's event loop: a loop busy with a
large batch is alive and must not look dead, while SIGKILL and SIGSTOP stop the thread with the
process. A worker frozen past WORKER_DEAD_AFTER_SECONDS is treated as dead: its runs go to another
worker, and what it publishes when it resumes is a duplicate (JetStream drops it by Nats-Msg-Id; its
outcome is not recorded, see services.firing).

Redis restarted without its data loses every key at once, which would make every live worker look
dead. So the first beat after the loss also writes an epoch (Redis server time, seconds), and the
registry names nobody dead until WORKER_DEAD_AFTER_SECONDS (+1 s for the rounding) have passed since
it: every live worker has beaten again by then. Redis unreachable: nobody is named dead either, and
LOCK_TIMEOUT_SECONDS remains the fallback.

A dead worker also strands the queue messages it had prefetched but not started (Dramatiq prefetches
2 x threads batches, and holds delayed retry messages in memory until their instant): their runs are
still `pending` or `retrying`, so no claim names the worker. Each beat therefore also adds the id to the
set `<prefix>workers`, and `WorkerRegistry.census` reports the members whose key is gone (and whether
Redis lost its data, queues included) so that the ticker hands the outstanding runs over again at once
(services.outbox, `rescue`) instead of after REENQUEUE_AFTER_SECONDS: the ticker that `take`s a
departed worker out of the set does it.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import redis
from redis.asyncio import Redis

log = logging.getLogger("services.liveness")

KEY_PREFIX = "scheduler:"  # keys: <prefix>worker:<id>, <prefix>workers (a set), <prefix>workers:epoch

# KEYS: the worker's key, the epoch key, the set of workers. ARGV: the worker id, the TTL in ms.
_BEAT = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], redis.call('TIME')[1])
end
return 1
"""
# KEYS: the epoch key, the set of workers. ARGV: the key prefix, the warm-up in seconds.
# Returns {epoch or false, warm (0/1), ids of members without a key...}.
_CENSUS = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {false, 0} end
if tonumber(redis.call('TIME')[1]) - tonumber(epoch) < tonumber(ARGV[2]) then return {epoch, 0} end
local result = {epoch, 1}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('EXISTS', ARGV[1] .. 'worker:' .. id) == 0 then result[#result + 1] = id end
end
return result
"""
# KEYS: the epoch key, then one worker key per claimer. ARGV: the warm-up in seconds.
# Returns -1 while the registry is not warm, else the 1-based positions of the claimers without a key.
_DEAD = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then return -1 end
if tonumber(redis.call('TIME')[1]) - tonumber(epoch) < tonumber(ARGV[1]) then return -1 end
local dead = {}
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then dead[#dead + 1] = i - 1 end
end
return dead
"""


_UNSEEN = object()


def prefix_for(namespace: str) -> str:
    """The key prefix of a deployment's heartbeats: its broker namespace, so that two deployments
    (or two test stacks) sharing one Redis never see each other's workers."""
    return f"{namespace}:"


@dataclass(frozen=True)
class Census:
    """What the heartbeats say now.

    `departed`: workers that beat once and whose key is gone (killed, frozen, or cut off from Redis),
    not yet taken out of the set by a ticker. `queues_lost`: Redis lost its data since this registry's previous census, and
    with it every queue message. Nobody departs while Redis is unreachable or warming up after a loss.
    """

    departed: list[str] = field(default_factory=list)
    queues_lost: bool = False


def new_worker_id() -> str:
    """A name no other process will ever use: host, pid and a random suffix (pids are reused)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(4)}"


class Heartbeat:
    """Keeps one worker process's key alive from a daemon thread.

    `interval_seconds` between beats; the key lives `dead_after_seconds` after each beat.
    """

    def __init__(self, redis_url: str, interval_seconds: float, dead_after_seconds: float,
                 prefix: str = KEY_PREFIX) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.interval = interval_seconds
        self.ttl_ms = int(dead_after_seconds * 1000)
        self.worker_id: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: redis.Redis | None = None
        self._script: Callable[..., Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.prefix}worker:{self.worker_id}"

    def start(self) -> str:
        """Name this process, beat once before it takes any work, then keep beating; returns the id.

        Called in the process that does the work (after any fork), so every process has its own id.
        """
        self.worker_id = new_worker_id()
        self._client = redis.Redis.from_url(self.redis_url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self._client.register_script(_BEAT)
        self._stop.clear()
        self.beat()
        self._thread = threading.Thread(target=self._run, name="worker-heartbeat", daemon=True)
        self._thread.start()
        return self.worker_id

    def beat(self) -> bool:
        if self._script is None:
            raise RuntimeError("Heartbeat.beat() before start()")
        try:
            self._script(keys=[self.key, f"{self.prefix}workers:epoch", f"{self.prefix}workers"],
                         args=[self.worker_id, self.ttl_ms])
            return True
        except redis.RedisError as error:  # Redis down: the runs fall back to LOCK_TIMEOUT_SECONDS
            log.warning("heartbeat failed", extra={"action": "worker.heartbeat_failed", "error": str(error)})
            return False

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def stop(self) -> None:
        """Stop beating and remove the key and the membership (a clean shutdown has finished its runs
        and Dramatiq has returned its prefetched messages to the queue)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 3)
        if self._client is not None:
            try:
                self._client.delete(self.key)
                self._client.srem(f"{self.prefix}workers", self.worker_id)
            except redis.RedisError:
                pass  # the key expires on its own
            self._client.close()


class WorkerRegistry:
    """The ticker's view of the heartbeats."""

    def __init__(self, client: Redis, dead_after_seconds: float, prefix: str = KEY_PREFIX) -> None:
        self.client = client
        self.prefix = prefix
        self.warm_up_seconds = int(dead_after_seconds) + 1
        self._dead = client.register_script(_DEAD)
        self._census = client.register_script(_CENSUS)
        self._last_epoch: bytes | None | object = _UNSEEN

    async def dead_among(self, worker_ids: Iterable[str]) -> set[str]:
        """The ids among `worker_ids` whose heartbeat key is gone; empty while Redis is unreachable or
        lost its data less than the warm-up ago (see the module docstring)."""
        ids = list(dict.fromkeys(worker_ids))
        if not ids:
            return set()
        try:
            found = await self._dead(keys=[f"{self.prefix}workers:epoch", *(f"{self.prefix}worker:{i}" for i in ids)], args=[self.warm_up_seconds])
        except Exception as error:
            log.warning("worker registry unavailable", extra={"action": "ticker.registry_failed", "error": str(error)})
            return set()
        if not isinstance(found, list):  # -1: not warm
            return set()
        return {ids[int(position) - 1] for position in found}

    async def census(self) -> Census:
        """The departed workers, and whether Redis lost its data since the previous census of this
        registry (its epoch changed). The first census of a process cannot tell a loss."""
        try:
            found = await self._census(keys=[f"{self.prefix}workers:epoch", f"{self.prefix}workers"],
                                       args=[self.prefix, self.warm_up_seconds])
        except Exception as error:
            log.warning("worker registry unavailable", extra={"action": "ticker.registry_failed", "error": str(error)})
            return Census()
        epoch, warm, departed = found[0], found[1], found[2:]
        # An epoch we knew is gone or replaced: Redis lost its data. (None -> an epoch is the first
        # beat into an empty Redis, which lost nothing this registry knew of.)
        queues_lost = self._last_epoch not in (_UNSEEN, None) and epoch != self._last_epoch
        self._last_epoch = epoch
        return Census([m.decode() if isinstance(m, bytes) else m for m in departed] if warm else [], queues_lost)

    async def take(self, worker_ids: Iterable[str]) -> list[str]:
        """Remove departed workers from the set; returns those this caller removed, so that of several
        tickers that saw one death only one hands its runs over again. A ticker that dies between the
        take and its rescue leaves those runs to REENQUEUE_AFTER_SECONDS."""
        taken: list[str] = []
        for worker_id in worker_ids:
            try:
                if await self.client.srem(f"{self.prefix}workers", worker_id):
                    taken.append(worker_id)
            except Exception as error:  # reported again at the next census
                log.warning("could not take a departed worker", extra={"action": "ticker.registry_failed",
                                                                       "error": str(error)})
        return taken
