"""Write rate limiting per principal, shared by every API instance through Redis (the `limits` library).

A moving window per principal; when Redis is unreachable the limiter lets writes through (availability
over strictness) and logs it.
"""

from __future__ import annotations

import logging
import math
import time

from limits import parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from core.errors import RateLimited
from services.context import Actor

log = logging.getLogger("services.ratelimit")


class WriteLimiter:
    def __init__(self, redis_url: str, rate: str, namespace: str = "scheduler-ratelimit") -> None:
        self.rate = rate
        self.limits = parse_many(rate)
        storage_url = redis_url.replace("redis://", "async+redis://", 1).replace("rediss://", "async+rediss://", 1)
        self.storage = RedisStorage(storage_url, implementation="redispy", key_prefix=namespace)
        self.limiter = MovingWindowRateLimiter(self.storage)

    async def hit(self, actor: Actor) -> None:
        """Count one write of `actor`; raise RateLimited (with Retry-After seconds) past the limit."""
        try:
            for limit in self.limits:
                if not await self.limiter.hit(limit, "writes", actor.name):
                    stats = await self.limiter.get_window_stats(limit, "writes", actor.name)
                    retry = max(1, math.ceil(stats.reset_time - time.time()))
                    raise RateLimited(retry, self.rate)
        except RateLimited:
            raise
        except Exception as error:  # Redis down: do not turn a rate limiter into an outage
            log.warning("rate limiter unavailable", extra={"action": "ratelimit.unavailable", "error": str(error)})
