"""Settings: originals' defaults, and a bad value stops start-up with one line naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
ORIGINAL_DEFAULTS = {
    "SERVICE_NAME": "scheduler-service",
    "SERVICE_VERSION": "1.0.0",
    "API_PORT": 8008,
    "SCHEDULER_TIMEZONE": "UTC",
    "SCHEDULER_MISFIRE_GRACE_TIME": 300,
    "SCHEDULER_MAX_INSTANCES": 3,
    "SCHEDULER_EXECUTOR_POOL_SIZE": 10,
    "REDIS_URL": "redis://localhost:6379/0",
    "LOCK_TIMEOUT_SECONDS": 300,
    "MAX_SCHEDULE_LOOKAHEAD_DAYS": 365,
    "DEFAULT_MAX_RETRIES": 3,
    "DEFAULT_RETRY_DELAY": 300,
    "MAX_SCHEDULES_PER_CREATOR": 1000,
}


def test_defaults_are_the_original_service_values(monkeypatch):
    for name in ORIGINAL_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)
    assert {name: getattr(settings, name) for name in ORIGINAL_DEFAULTS} == ORIGINAL_DEFAULTS


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("API_PORT", "abc", "valid integer"),
        ("API_PORT", "70000", "less than or equal to 65535"),
        ("SCHEDULER_TIMEZONE", "Mars/Olympus", "unknown IANA time zone"),
        ("REDIS_URL", "http://x", "redis://"),
        ("DATABASE_URL", "mysql://x", "postgresql://"),
        ("LOCK_TIMEOUT_SECONDS", "0", "greater than or equal to 1"),
        ("WORKER_DEAD_AFTER_SECONDS", "2", "at least 3 × WORKER_HEARTBEAT_SECONDS"),
    ],
)
def test_bad_value_stops_startup_with_one_line(variable, value, reason):
    env = {**os.environ, variable: value, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", "from core.settings import load_settings; load_settings()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("invalid configuration: ")
    assert variable in lines[0] and reason in lines[0]
