"""runtime.metrics: each role exports the metrics it owns, its labelled counters exist at 0 for every
known label value before anything happened, and the worker observes lag and duration from a run's
publish (actors.fire._observe)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from prometheus_client import CollectorRegistry

from actors.fire import _observe
from core.outcomes import Decision
from core.rules import ScheduleType
from core.states import ExecutionStatus, Reason
from runtime import metrics
from services.firing import FireResult
from services.runs import Outcome

WORKER_FAMILIES = {
    "schedule_executions_total",
    "schedule_execution_duration_seconds",
    "schedule_fire_lag_seconds",
    "schedule_misfires_total",
    "distributed_locks_acquired_total",
    "schedule_dead_letters_total",
    "schedule_auto_pauses_total",
}
TICKER_FAMILIES = {
    "ticker_batch_size",
    "ticker_batch_duration_seconds",
    "scheduler_enqueued_total",
    "schedule_runs_reaped_total",
    "schedule_misfires_total",
    "schedule_completion_timeouts_total",
    "schedule_dead_letters_total",
    "schedule_auto_pauses_total",
}
API_FAMILIES = {
    "http_requests_total",
    "http_request_duration_seconds",
    "schedule_completion_reports_total",
    "schedule_execution_duration_seconds",
    "schedule_dead_letters_total",
    "schedule_auto_pauses_total",
}


def families(registry: CollectorRegistry) -> dict[str, list]:
    """Family name (counters without `_total`, as prometheus_client names them) -> its samples."""
    return {family.name: family.samples for family in registry.collect()}


def counted(samples: list, **labels: str) -> list:
    return [s for s in samples if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items())]


def installed(role: str) -> CollectorRegistry:
    registry = CollectorRegistry()
    metrics.install(role, registry)
    return registry


def exported_names(registry: CollectorRegistry) -> set[str]:
    names = set()
    for family in registry.collect():
        names.add(family.name + "_total" if family.type == "counter" else family.name)
    return names


def test_each_role_exports_exactly_the_metrics_it_owns():
    assert exported_names(installed(metrics.WORKER)) == WORKER_FAMILIES
    assert exported_names(installed(metrics.TICKER)) == TICKER_FAMILIES
    assert exported_names(installed(metrics.API)) == API_FAMILIES


def test_installing_a_role_twice_registers_nothing_twice():
    registry = installed(metrics.TICKER)
    metrics.install(metrics.TICKER, registry)
    assert exported_names(registry) == TICKER_FAMILIES


def test_the_worker_precreates_every_schedule_type_and_outcome_status_and_every_misfire_reason():
    found = families(installed(metrics.WORKER))
    executions = {(s.labels["schedule_type"], s.labels["status"]) for s in counted(found["schedule_executions"])}
    outcome_statuses = {"succeeded", "failed", "retrying", "awaiting", "buffered", "skipped", "missed", "cancelled"}
    assert executions >= {(t.value, s) for t in ScheduleType for s in outcome_statuses}
    assert all(status in outcome_statuses for _, status in executions)
    assert {"pending", "running"}.isdisjoint(status for _, status in executions)
    reasons = {s.labels["reason"] for s in counted(found["schedule_misfires"])}
    assert reasons >= {"missed", "paused", "lock_conflict", "forbidden", "deleted"}


def test_the_ticker_precreates_its_enqueue_sources_and_the_misfire_reasons():
    found = families(installed(metrics.TICKER))
    assert {s.labels["source"] for s in counted(found["scheduler_enqueued"])} == {"ticker", "sweep"}
    assert {s.labels["status"] for s in counted(found["schedule_runs_reaped"])} == {"retrying", "failed"}
    assert {s.labels["reason"] for s in counted(found["schedule_misfires"])} >= {r.value for r in Reason}


def test_a_precreated_counter_starts_at_zero():
    """No test observes a cancelled `once` run through the worker's metrics; its child exists at 0."""
    registry = CollectorRegistry()
    metrics.install(metrics.WORKER, registry)
    samples = counted(families(registry)["schedule_executions"], schedule_type="once", status="cancelled")
    assert [s.value for s in samples] == [0.0]


def outcome(slot: datetime, published: datetime | None, settled: datetime | None) -> Outcome:
    return Outcome(
        uuid.uuid4(),
        uuid.uuid4(),
        ScheduleType.CRON.value,
        1,
        slot,
        slot,
        Decision.succeeded("core"),
        "cmd.test.metrics",
        published,
        settled,
    )


def sample(registry_name: str, suffix: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(registry_name + suffix, labels) or 0.0


def test_lag_is_slot_to_publish_start_and_duration_is_publish_start_to_outcome():
    metrics.install(metrics.WORKER)
    slot = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    published = slot + timedelta(milliseconds=40)
    settled = published + timedelta(milliseconds=7)
    before = {
        "lag": sample("schedule_fire_lag_seconds", "_sum"),
        "lag_n": sample("schedule_fire_lag_seconds", "_count"),
        "duration": sample("schedule_execution_duration_seconds", "_sum"),
        "duration_n": sample("schedule_execution_duration_seconds", "_count"),
        "ok": sample("schedule_executions", "_total", schedule_type="cron", status="succeeded"),
    }
    unsent = Outcome(
        uuid.uuid4(), uuid.uuid4(), "cron", 1, slot, slot, Decision.missed(Reason.PAUSED), None, None, None
    )
    _observe(FireResult(outcomes=[outcome(slot, published, settled), unsent], claimed=2, locks_acquired=1))

    assert sample("schedule_fire_lag_seconds", "_count") - before["lag_n"] == 1
    assert abs(sample("schedule_fire_lag_seconds", "_sum") - before["lag"] - 0.040) < 1e-9
    assert sample("schedule_execution_duration_seconds", "_count") - before["duration_n"] == 1
    assert abs(sample("schedule_execution_duration_seconds", "_sum") - before["duration"] - 0.007) < 1e-9
    assert sample("schedule_executions", "_total", schedule_type="cron", status="succeeded") - before["ok"] == 1
    assert unsent.status is ExecutionStatus.MISSED
