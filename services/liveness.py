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

A dead worker also strands the queue messages it had fetched but not started: Dramatiq prefetches
2 x threads batches per queue, and holds delayed retry messages (up to 1000 x threads) in memory until
their instant. Their runs are still `pending` or `retrying`, so no claim names the worker, and Dramatiq
moves them back to their queues only once the process's *broker* heartbeat is `heartbeat_timeout` old
(BROKER_HEARTBEAT_TIMEOUT_MS). So each beat also records, in the hash `<prefix>workers`, the process's
Dramatiq consumer id (its broker_id); `WorkerRegistry.census` reports the members whose key is gone, and
the ticker that `take`s one out of the hash marks that consumer dead in Dramatiq's heartbeat set
(`release_consumers`), so that Dramatiq's own maintenance moves its unacked messages back at once,
exactly those, to the queue they came from. The census also tells when Redis lost its data (queues
included): then the ticker hands over again every run handed over (services.outbox, `rescue`).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.asyncio import Redis

from core.tuning import (
    HEARTBEAT_JOIN_MARGIN_SECONDS,
    REDIS_CONNECT_TIMEOUT_SECONDS,
    REDIS_SOCKET_TIMEOUT_SECONDS,
    WARM_UP_MARGIN_SECONDS,
)

log = logging.getLogger("services.liveness")

KEY_PREFIX = "scheduler:"  # keys: <prefix>worker:<id>, <prefix>workers (a hash), <prefix>workers:epoch
# Dramatiq's Redis broker keeps `<namespace>:__heartbeats__`, a sorted set of its consumers (broker ids)
# scored by their last command (ms); maintenance requeues the unacked messages of those older than
# heartbeat_timeout. Our prefix is `<namespace>:` (prefix_for), so this is its name under our prefix.
DRAMATIQ_HEARTBEATS = "__heartbeats__"

# KEYS: the worker's key, the epoch key, the hash of workers. ARGV: the worker id, the TTL in ms,
# the process's Dramatiq consumer id ("" when unknown). The key holds the beat's Redis time in ms
# (services.presence lists it); only its existence says whether the worker is alive.
_BEAT = """
local now = redis.call('TIME')
redis.call('SET', KEYS[1], now[1] .. string.format('%03d', math.floor(now[2] / 1000)), 'PX', ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], redis.call('TIME')[1])
end
return 1
"""
# KEYS: the epoch key, the hash of workers. ARGV: the key prefix, the warm-up in seconds.
# Returns {epoch or false, warm (0/1), worker id, consumer id, worker id, consumer id, ...} for the
# members without a key.
_CENSUS = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {false, 0} end
if tonumber(redis.call('TIME')[1]) - tonumber(epoch) < tonumber(ARGV[2]) then return {epoch, 0} end
local result = {epoch, 1}
local members = redis.call('HGETALL', KEYS[2])
for i = 1, #members, 2 do
  if redis.call('EXISTS', ARGV[1] .. 'worker:' .. members[i]) == 0 then
    result[#result + 1] = members[i]
    result[#result + 1] = members[i + 1]
  end
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
    not yet taken out of the hash by a ticker, each with its Dramatiq consumer id ("" when unknown).
    `queues_lost`: Redis lost its data since this registry's previous census, and with it every queue
    message. Nobody departs while Redis is unreachable or warming up after a loss.
    """

    departed: dict[str, str] = field(default_factory=dict)
    queues_lost: bool = False


def new_worker_id() -> str:
    """A name no other process will ever use: host, pid and a random suffix (pids are reused)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(4)}"


class Heartbeat:
    """Keeps one worker process's key alive from a daemon thread.

    `interval_seconds` between beats; the key lives `dead_after_seconds` after each beat.
    `beaten_at`: the monotonic time of the last beat Redis took (None before one); `running`: the
    thread beats. A subclass names other keys (`kind`, `members`) and its own script (`script`,
    `keys`, `args`).
    """

    kind = "worker"
    members = "workers"
    script = _BEAT

    def __init__(
        self,
        redis_url: str,
        interval_seconds: float,
        dead_after_seconds: float,
        prefix: str = KEY_PREFIX,
        consumer_id: str | None = None,
    ) -> None:
        """`consumer_id`: the process's Dramatiq broker id, so that its unacked messages can be
        requeued once it is dead (see the module docstring)."""
        self.redis_url = redis_url
        self.prefix = prefix
        self.consumer_id = consumer_id or ""
        self.interval = interval_seconds
        self.ttl_ms = int(dead_after_seconds * 1000)
        self.worker_id: str | None = None
        self.beaten_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: redis.Redis | None = None
        self._script: Callable[..., Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.prefix}{self.kind}:{self.worker_id}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def keys(self) -> list[str]:
        return [self.key, f"{self.prefix}workers:epoch", f"{self.prefix}workers"]

    def args(self) -> list[Any]:
        return [self.worker_id, self.ttl_ms, self.consumer_id]

    def start(self) -> str:
        """Name this process, beat once before it takes any work, then keep beating; returns the id.

        Called in the process that does the work (after any fork), so every process has its own id.
        """
        self.worker_id = new_worker_id()
        self._client = redis.Redis.from_url(
            self.redis_url,
            socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
        )
        self._script = self._client.register_script(self.script)
        self._stop.clear()
        self.beat()
        self._thread = threading.Thread(target=self._run, name=f"{self.kind}-heartbeat", daemon=True)
        self._thread.start()
        return self.worker_id

    def beat(self) -> bool:
        if self._script is None:
            raise RuntimeError("Heartbeat.beat() before start()")
        try:
            self._script(keys=self.keys(), args=self.args())
            self.beaten_at = time.monotonic()
            return True
        except redis.RedisError as error:  # Redis down: the runs fall back to LOCK_TIMEOUT_SECONDS
            log.warning("heartbeat failed", extra={"action": f"{self.kind}.heartbeat_failed", "error": str(error)})
            return False

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def stop(self) -> None:
        """Stop beating and remove the key and the membership (a clean shutdown has finished its runs
        and Dramatiq has returned its prefetched messages to the queue)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + HEARTBEAT_JOIN_MARGIN_SECONDS)
        if self._client is not None:
            try:
                self._client.delete(self.key)
                self._client.hdel(f"{self.prefix}{self.members}", self.worker_id)
            except redis.RedisError:
                pass  # the key expires on its own
            self._client.close()


class WorkerRegistry:
    """The ticker's view of the heartbeats."""

    def __init__(self, client: Redis, dead_after_seconds: float, prefix: str = KEY_PREFIX) -> None:
        self.client = client
        self.prefix = prefix
        self.warm_up_seconds = int(dead_after_seconds) + WARM_UP_MARGIN_SECONDS
        self._dead = client.register_script(_DEAD)
        self._census = client.register_script(_CENSUS)
        self._last_epoch: bytes | object | None = _UNSEEN

    async def dead_among(self, worker_ids: Iterable[str]) -> set[str]:
        """The ids among `worker_ids` whose heartbeat key is gone; empty while Redis is unreachable or
        lost its data less than the warm-up ago (see the module docstring)."""
        ids = list(dict.fromkeys(worker_ids))
        if not ids:
            return set()
        try:
            found = await self._dead(
                keys=[f"{self.prefix}workers:epoch", *(f"{self.prefix}worker:{i}" for i in ids)],
                args=[self.warm_up_seconds],
            )
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
            found = await self._census(
                keys=[f"{self.prefix}workers:epoch", f"{self.prefix}workers"], args=[self.prefix, self.warm_up_seconds]
            )
        except Exception as error:
            log.warning("worker registry unavailable", extra={"action": "ticker.registry_failed", "error": str(error)})
            return Census()
        epoch, warm, pairs = found[0], found[1], [_text(v) for v in found[2:]]
        # An epoch we knew is gone or replaced: Redis lost its data. (None -> an epoch is the first
        # beat into an empty Redis, which lost nothing this registry knew of.)
        queues_lost = self._last_epoch not in (_UNSEEN, None) and epoch != self._last_epoch
        self._last_epoch = epoch
        departed = dict(zip(pairs[0::2], pairs[1::2])) if warm else {}
        return Census(departed, queues_lost)

    async def take(self, worker_ids: Iterable[str]) -> list[str]:
        """Remove departed workers from the hash; returns those this caller removed, so that of several
        tickers that saw one death only one acts on it."""
        taken: list[str] = []
        for worker_id in worker_ids:
            try:
                if await self.client.hdel(f"{self.prefix}workers", worker_id):
                    taken.append(worker_id)
            except Exception as error:  # reported again at the next census
                log.warning(
                    "could not take a departed worker", extra={"action": "ticker.registry_failed", "error": str(error)}
                )
        return taken

    async def release_consumers(self, consumer_ids: Iterable[str]) -> int:
        """Mark dead Dramatiq consumers as silent since the epoch in Dramatiq's heartbeat set, so that
        its maintenance (BROKER_MAINTENANCE_CHANCE of the commands on each queue) moves their unacked
        messages back to their queues now rather than after BROKER_HEARTBEAT_TIMEOUT_MS. Only members
        still there are touched (XX): one Dramatiq removed has nothing left to requeue. A consumer that
        was only frozen beats again with its next command; what it then acks was requeued, and the
        copy is harmless (the claim is conditional). Returns how many were marked."""
        ids = [c for c in consumer_ids if c]
        if not ids:
            return 0
        try:
            return int(
                await self.client.zadd(f"{self.prefix}{DRAMATIQ_HEARTBEATS}", dict.fromkeys(ids, 0), xx=True, ch=True)
            )
        except Exception as error:  # Dramatiq's own heartbeat_timeout still applies
            log.warning(
                "could not release dead consumers", extra={"action": "ticker.registry_failed", "error": str(error)}
            )
            return 0


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
