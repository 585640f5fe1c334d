"""Settings: originals' defaults, and a bad value stops start-up with one line naming it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.settings import Settings, old_names
from tests.support.settings import load_settings_in_a_process

ROOT = Path(__file__).resolve().parents[1]
ORIGINAL_DEFAULTS = {
    "SERVICE_NAME": "scheduler-service",
    "SERVICE_VERSION": "1.0.0",
    "API_PORT": 8008,
    "DEFAULT_TIMEZONE": "UTC",
    "DEFAULT_MISFIRE_GRACE_SECONDS": 300,
    "DEFAULT_MAX_CONCURRENT": 3,
    "DATABASE_POOL_SIZE": 10,
    "REDIS_URL": "redis://localhost:6379/0",
    "LOCK_TIMEOUT_SECONDS": 300,
    "MAX_SCHEDULE_LOOKAHEAD_DAYS": 365,
    "DEFAULT_MAX_RETRIES": 3,
    "DEFAULT_RETRY_DELAY": 300,
    "MAX_SCHEDULES_PER_CREATOR": 1000,
}
# Renamed settings: the old environment variable still sets the new field.
RENAMED = {
    "SCHEDULER_EXECUTOR_POOL_SIZE": ("DATABASE_POOL_SIZE", "7", 7),
    "SCHEDULER_TIMEZONE": ("DEFAULT_TIMEZONE", "Europe/Paris", "Europe/Paris"),
    "SCHEDULER_MISFIRE_GRACE_TIME": ("DEFAULT_MISFIRE_GRACE_SECONDS", "60", 60),
    "SCHEDULER_MAX_INSTANCES": ("DEFAULT_MAX_CONCURRENT", "5", 5),
}


def test_defaults_are_the_original_service_values(monkeypatch):
    for name in ORIGINAL_DEFAULTS:
        for variable in (name, *old_names(name)):
            monkeypatch.delenv(variable, raising=False)
    settings = Settings(_env_file=None)
    assert {name: getattr(settings, name) for name in ORIGINAL_DEFAULTS} == ORIGINAL_DEFAULTS


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("API_PORT", "abc", "valid integer"),
        ("API_PORT", "70000", "less than or equal to 65535"),
        ("SCHEDULER_TIMEZONE", "Mars/Olympus", "unknown IANA time zone"),
        ("DEFAULT_TIMEZONE", "Mars/Olympus", "unknown IANA time zone"),
        ("SCHEDULER_EXECUTOR_POOL_SIZE", "0", "greater than or equal to 1"),
        ("DATABASE_POOL_SIZE", "0", "greater than or equal to 1"),
        ("REDIS_URL", "http://x", "redis://"),
        ("DATABASE_URL", "mysql://x", "postgresql://"),
        ("LOCK_TIMEOUT_SECONDS", "0", "greater than or equal to 1"),
        ("WORKER_DEAD_AFTER_SECONDS", "2", "at least 3 × WORKER_HEARTBEAT_SECONDS"),
        ("DEAD_LETTER_SUBJECT", "cmd.scheduler.schedule.delete", "command subjects"),
        ("DEAD_LETTER_SUBJECT", "evt.>", "without wildcards"),
    ],
)
def test_bad_value_stops_startup_with_one_line(variable, value, reason):
    env = {**os.environ, variable: value, "PYTHONPATH": str(ROOT)}
    result = load_settings_in_a_process(env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("invalid configuration: ")
    assert variable in lines[0] and reason in lines[0]


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_old_environment_name_still_sets_the_renamed_field(monkeypatch, old):
    new, raw, expected = RENAMED[old]
    monkeypatch.delenv(new, raising=False)
    monkeypatch.setenv(old, raw)
    assert getattr(Settings(_env_file=None), new) == expected
    assert old_names(new) == [old]


def test_new_name_wins_over_old_name(monkeypatch):
    monkeypatch.setenv("SCHEDULER_EXECUTOR_POOL_SIZE", "7")
    monkeypatch.setenv("DATABASE_POOL_SIZE", "12")
    assert Settings(_env_file=None).DATABASE_POOL_SIZE == 12


def test_renamed_field_is_set_by_its_name_in_code(monkeypatch):
    for old in RENAMED:
        monkeypatch.delenv(old, raising=False)
    monkeypatch.delenv("DATABASE_POOL_SIZE", raising=False)
    settings = Settings(_env_file=None, DATABASE_POOL_SIZE=4)
    assert settings.DATABASE_POOL_SIZE == 4
    assert settings.model_copy(update={"DATABASE_POOL_SIZE": 6}).DATABASE_POOL_SIZE == 6


def test_every_setting_is_described():
    undescribed = [name for name, field in Settings.model_fields.items() if not (field.description or "").strip()]
    assert undescribed == []


def test_an_event_subject_may_take_the_dead_letters():
    assert Settings(_env_file=None, DEAD_LETTER_SUBJECT="evt.billing.dead").DEAD_LETTER_SUBJECT == "evt.billing.dead"
