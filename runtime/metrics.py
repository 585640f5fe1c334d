"""Prometheus metrics of every process, and which process owns which.

Each metric belongs to the process that observes it: the worker owns the execution metrics, the ticker
the batch and hand-over metrics, the API the HTTP metrics (`schedules_total` is computed per scrape by
api.metrics_route). Both the worker and the ticker count misfires (the worker the runs it did not
publish, the ticker the slots it recorded `missed`), so Prometheus sums the two.

The metrics are created unregistered; `install(role)` registers a role's metrics in the process's
registry and creates its labelled counters at 0 for every known label value, so that a rate over a
counter that has not moved yet is 0 rather than absent. Each process thus exports only what it owns.

With PROMETHEUS_MULTIPROC_DIR set (the launcher sets it for all processes), each process writes its
samples there and the API's /metrics aggregates them; without it, each process keeps its own and serves
them itself (runtime.probes for the worker and the ticker). Import this module only after the
environment is set. Durations are in seconds.
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from core.outcomes import Decision
from core.rules import ScheduleType
from core.states import ALLOWED_TRANSITIONS, ExecutionStatus, Reason
from core.tuning import HTTP_DURATION_BUCKETS, LAG_BUCKETS
from services.schemas import ExecutionOut

EXECUTIONS = Counter(
    "schedule_executions_total",
    "Execution outcomes (one per attempt outcome)",
    ["schedule_type", "status"],
    registry=None,
)
EXECUTION_DURATION = Histogram(
    "schedule_execution_duration_seconds",
    "From the start of a command's publish to its outcome (PubAck, barrier echo, reply or error)",
    buckets=LAG_BUCKETS,
    registry=None,
)
FIRE_LAG = Histogram(
    "schedule_fire_lag_seconds",
    "When a command's publish began minus its slot's instant (jitter included)",
    buckets=LAG_BUCKETS,
    registry=None,
)
MISFIRES = Counter("schedule_misfires_total", "Slots that did not fire, by reason", ["reason"], registry=None)
LOCKS_ACQUIRED = Counter("distributed_locks_acquired_total", "Per-schedule concurrency slots taken", registry=None)
TICKER_BATCH_SIZE = Histogram(
    "ticker_batch_size",
    "Schedules claimed per ticker batch",
    buckets=(0, 1, 5, 10, 50, 100, 250, 500, 1000, 5000),
    registry=None,
)
TICKER_BATCH_DURATION = Histogram(
    "ticker_batch_duration_seconds", "Time of one ticker batch", buckets=LAG_BUCKETS, registry=None
)
ENQUEUED = Counter("scheduler_enqueued_total", "Execution ids handed to the queue", ["source"], registry=None)
REAPED = Counter(
    "schedule_runs_reaped_total",
    "Running executions taken back from a lost worker, by what became of them (retrying or failed)",
    ["status"],
    registry=None,
)
DEAD_LETTERS = Counter(
    "schedule_dead_letters_total",
    "Runs that finally failed and went to their dead-letter subject, by whether the publish was confirmed",
    ["result"],
    registry=None,
)
AUTO_PAUSES = Counter(
    "schedule_auto_pauses_total",
    "Schedules paused by the scheduler after pause_after_failures consecutive failed runs",
    registry=None,
)
COMPLETION_TIMEOUTS = Counter(
    "schedule_completion_timeouts_total",
    "Runs awaiting a completion report past completion_timeout_seconds, by what became of them (retrying or timed_out)",
    ["status"],
    registry=None,
)
COMPLETION_REPORTS = Counter(
    "schedule_completion_reports_total",
    "Completion reports accepted, by the status they gave the run (a repeated report: repeat)",
    ["status"],
    registry=None,
)
HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"],
    registry=None,
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "From a request's arrival to the end of its response, by route template and method",
    ["route", "method"],
    buckets=HTTP_DURATION_BUCKETS,
    registry=None,
)

# The sources of `scheduler_enqueued_total`: the ticker's pass over due slots, and its outbox sweep.
ENQUEUE_SOURCES = ("ticker", "sweep")
# The statuses a claimed run can end an attempt in: those `running` may move to.
OUTCOME_STATUSES: tuple[ExecutionStatus, ...] = tuple(sorted(ALLOWED_TRANSITIONS[ExecutionStatus.RUNNING]))
# What the sweep makes of a run whose worker was lost (core.outcomes.RetryPolicy.on_lost).
REAPED_STATUSES: tuple[ExecutionStatus, ...] = (ExecutionStatus.RETRYING, ExecutionStatus.FAILED)
# `published`: the dead letter's publish was confirmed; `unpublished`: NATS refused it or was unreachable.
DEAD_LETTER_RESULTS = ("published", "unpublished")
# What a completion timeout makes of a run (core.outcomes.RetryPolicy.on_timeout).
TIMEOUT_STATUSES: tuple[ExecutionStatus, ...] = (ExecutionStatus.RETRYING, ExecutionStatus.TIMED_OUT)
# What a completion report makes of a run (RetryPolicy.on_report), or `repeat` for a report sent twice.
REPORT_RESULTS = (
    ExecutionStatus.SUCCEEDED.value,
    ExecutionStatus.RETRYING.value,
    ExecutionStatus.FAILED.value,
    "repeat",
)

WORKER = "worker"
TICKER = "ticker"
API = "api"
ROLES: dict[str, tuple] = {
    WORKER: (EXECUTIONS, EXECUTION_DURATION, FIRE_LAG, MISFIRES, LOCKS_ACQUIRED, DEAD_LETTERS, AUTO_PAUSES),
    TICKER: (
        TICKER_BATCH_SIZE,
        TICKER_BATCH_DURATION,
        ENQUEUED,
        REAPED,
        MISFIRES,
        COMPLETION_TIMEOUTS,
        DEAD_LETTERS,
        AUTO_PAUSES,
    ),
    API: (HTTP_REQUESTS, HTTP_DURATION, COMPLETION_REPORTS, EXECUTION_DURATION, DEAD_LETTERS, AUTO_PAUSES),
}
# The metrics each registry holds already (by id; a registry's entry goes with it).
_registered: WeakKeyDictionary[CollectorRegistry, set[int]] = WeakKeyDictionary()


def precreate(role: str) -> None:
    """Create the role's labelled counters at 0 for every value their labels can take."""
    if role == WORKER:
        for schedule_type in ScheduleType:
            for status in OUTCOME_STATUSES:
                EXECUTIONS.labels(schedule_type.value, status.value)
    for result in DEAD_LETTER_RESULTS:
        DEAD_LETTERS.labels(result)
    if role == API:
        for result in REPORT_RESULTS:
            COMPLETION_REPORTS.labels(result)
    if role in (WORKER, TICKER):
        for reason in Reason:
            MISFIRES.labels(reason.value)
    if role == TICKER:
        for source in ENQUEUE_SOURCES:
            ENQUEUED.labels(source)
        for status in REAPED_STATUSES:
            REAPED.labels(status.value)
        for status in TIMEOUT_STATUSES:
            COMPLETION_TIMEOUTS.labels(status.value)


def observe_report(decision: Decision | None, execution: ExecutionOut) -> None:
    """Count an accepted completion report; a run it ended has its duration (publish to report)."""
    COMPLETION_REPORTS.labels(decision.status.value if decision is not None else "repeat").inc()
    if decision is not None and decision.is_final and execution.duration_ms is not None:
        EXECUTION_DURATION.observe(max(0.0, execution.duration_ms / 1000))


def install(role: str, registry: CollectorRegistry = REGISTRY) -> None:
    """Register the role's metrics in `registry` (once each) and pre-create its labelled counters."""
    held = _registered.setdefault(registry, set())
    for metric in ROLES[role]:
        if id(metric) not in held:
            registry.register(metric)
            held.add(id(metric))
    precreate(role)
