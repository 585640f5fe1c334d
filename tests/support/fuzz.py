"""The fuzz tests' seed data: schedules and manual executions for path parameters, and the server's handle."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

SCHEDULE_BODIES = [
    {
        "name": "fuzz-cron",
        "schedule_type": "cron",
        "cron_expression": "*/5 * * * *",
        "timezone": "Europe/Paris",
        "target_command": "cmd.fuzz.cron",
        "command_payload": {"n": 1},
        "tags": ["fuzz", "cron"],
    },
    {
        "name": "fuzz-interval",
        "schedule_type": "interval",
        "interval_seconds": 600,
        "target_command": "cmd.fuzz.interval",
        "command_payload": {},
    },
    {"name": "fuzz-immediate", "schedule_type": "immediate", "target_command": "cmd.fuzz.now", "command_payload": {}},
    {
        "name": "fuzz-cron-2",
        "schedule_type": "cron",
        "cron_expression": "0 3 * * 1-5",
        "target_command": "cmd.fuzz.weekday",
        "command_payload": {"a": [1, 2]},
    },
]


@dataclass(frozen=True)
class FuzzServer:
    base_url: str
    log_path: Path
    process: subprocess.Popen

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def seed_data(base_url: str, prefix: str) -> tuple[list[str], list[str]]:
    """Schedules (and manual executions of them) for the fuzzer to point path parameters at."""
    schedule_ids, execution_ids = [], []
    with httpx.Client(base_url=base_url, timeout=10, headers={"X-Created-By": "fuzzer"}) as http:
        for copy in range(3):
            for body in SCHEDULE_BODIES:
                created = http.post("/api/v1/schedules", json={**body, "name": f"{prefix}-{body['name']}-{copy}"})
                assert created.status_code == 201, created.text
                schedule_ids.append(created.json()["id"])
        for schedule_id in schedule_ids[:4]:
            triggered = http.post(f"/api/v1/schedules/{schedule_id}/trigger", json={"override_payload": {"x": 1}})
            assert triggered.status_code == 200, triggered.text
            execution_ids.append(triggered.json()["execution_id"])
    return schedule_ids, execution_ids


def seed_backfills_and_calendars(base_url: str, schedule_ids: list[str]) -> dict[str, list[str]]:
    """A backfill (of a short past range) of the first schedule and a calendar, for path parameters."""
    window = {"start": "2020-01-01T00:00:00Z", "end": "2020-01-01T01:00:00Z"}
    with httpx.Client(base_url=base_url, timeout=10, headers={"X-Created-By": "fuzzer"}) as http:
        backfill = http.post(f"/api/v1/schedules/{schedule_ids[0]}/backfill", json=window)
        assert backfill.status_code == 200, backfill.text
        calendar = http.post("/api/v1/calendars", json={"name": "fuzz-cal", "yearly": ["12-25"]})
        assert calendar.status_code == 201, calendar.text
    return {"backfill_id": [backfill.json()["backfill"]["id"]], "name": ["fuzz-cal"]}
