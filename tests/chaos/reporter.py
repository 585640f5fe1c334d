"""The chaos run's target for `completion: report` schedules: it reports every command it receives.

Each command on the reporting subjects is reported complete (`cmd.scheduler.execution.complete`, over
NATS request/reply, naming the attempt of the command's `Scheduler-Attempt` header) after a short
random delay, as a service finishing its work would. A report that gets no answer (an API killed, NATS
or PostgreSQL down: 503) is sent again until answered or until `give_up_after` seconds; an answer that
refuses it (409: a repeat of a duplicate command, a cancelled run, an attempt that is over) ends it.
The counts go into the ledger.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter

import nats

SUBJECT = "cmd.scheduler.execution.complete"


class Reporter:
    def __init__(self, rng: random.Random, give_up_after: float = 300.0) -> None:
        self.rng = rng
        self.give_up_after = give_up_after
        self.answers: Counter = Counter()  # HTTP-equivalent status of each report's final answer
        self.unanswered = 0  # reports given up without an answer
        self.tasks: set[asyncio.Task] = set()
        self.nc = None

    async def start(self, nc, subjects: str) -> None:
        self.nc = nc
        await nc.subscribe(subjects, cb=self.on_command, pending_msgs_limit=1_000_000)

    async def on_command(self, msg) -> None:
        headers = msg.headers or {}
        eid = headers.get("Scheduler-Execution-Id")
        if not eid:
            return
        body = {"execution_id": eid, "status": "succeeded", "attempt": int(headers.get("Scheduler-Attempt", "1"))}
        task = asyncio.create_task(self._report(body))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _report(self, body: dict) -> None:
        await asyncio.sleep(self.rng.uniform(0.05, 1.5))
        give_up = time.time() + self.give_up_after
        while time.time() < give_up:
            try:
                reply = await self.nc.request(
                    SUBJECT, json.dumps(body).encode(), timeout=5, headers={"X-Reported-By": "chaos"}
                )
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.errors.ConnectionClosedError):
                await asyncio.sleep(1)
                continue
            except Exception:  # reconnecting after an outage
                await asyncio.sleep(1)
                continue
            status = int((reply.headers or {}).get("Scheduler-Status", "0"))
            if status in (503, 0):
                await asyncio.sleep(1)
                continue
            self.answers[status] += 1
            return
        self.unanswered += 1

    def report(self) -> dict:
        return {"answers": dict(sorted(self.answers.items())), "unanswered": self.unanswered}
