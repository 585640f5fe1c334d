"""Prometheus metrics shared by every process.

With PROMETHEUS_MULTIPROC_DIR set (the launcher sets it for all processes), each process writes its
samples there and the API's /metrics aggregates them; without it, each process keeps its own.
Import this module only after the environment is set.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from core.tuning import LAG_BUCKETS

EXECUTIONS = Counter(
    "schedule_executions_total", "Execution outcomes (one per attempt outcome)", ["schedule_type", "status"]
)
EXECUTION_DURATION = Histogram(
    "schedule_execution_duration_seconds", "Claim-to-outcome time of one run", buckets=LAG_BUCKETS
)
FIRE_LAG = Histogram(
    "schedule_fire_lag_seconds",
    "When a command's publish began minus its slot's instant (jitter included)",
    buckets=LAG_BUCKETS,
)
MISFIRES = Counter("schedule_misfires_total", "Slots that did not fire, by reason", ["reason"])
LOCKS_ACQUIRED = Counter("distributed_locks_acquired_total", "Per-schedule concurrency slots taken")
TICKER_BATCH_SIZE = Histogram(
    "ticker_batch_size", "Schedules claimed per ticker batch", buckets=(0, 1, 5, 10, 50, 100, 250, 500, 1000, 5000)
)
TICKER_BATCH_DURATION = Histogram("ticker_batch_duration_seconds", "Time of one ticker batch", buckets=LAG_BUCKETS)
ENQUEUED = Counter("scheduler_enqueued_total", "Execution ids handed to the queue", ["source"])
