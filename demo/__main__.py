"""`python -m demo`: run by `python -m runtime.launcher --demo` (what `make demo` does) next to the service.

It waits for the API's /ready, replaces the demo's schedules (those created by `demo`) with four
examples through the REST API, then subscribes to `cmd.demo.>` on NATS and prints every command
the scheduler publishes: subject, the `Scheduler-Scheduled-For` and `Scheduler-Execution-Id` headers,
and the body. It reads API_PORT and NATS_URL from the environment the launcher gives it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import nats

CREATOR = "demo"
SUBJECTS = "cmd.demo.>"
READY_TIMEOUT_SECONDS = 120


def api_base() -> str:
    return f"http://127.0.0.1:{os.environ.get('API_PORT', '8008')}"


def example_schedules(now: datetime) -> list[dict]:
    run_at = (now + timedelta(seconds=20)).replace(microsecond=0)
    return [
        {
            "name": "demo_every_5_seconds",
            "description": "cron with a leading seconds field: every 5 seconds",
            "schedule_type": "cron",
            "cron_expression": "*/5 * * * * *",
            "target_command": "cmd.demo.heartbeat",
            "command_payload": {"message": "tick", "slot": "{{scheduled_for}}", "attempt": "{{attempt}}"},
            "tags": ["demo"],
        },
        {
            "name": "demo_interval_10s",
            "description": "fixed interval of 10 seconds",
            "schedule_type": "interval",
            "interval_seconds": 10,
            "target_command": "cmd.demo.collect_metrics",
            "command_payload": {"metrics": ["sales", "traffic"], "schedule": "{{schedule.name}}"},
            "tags": ["demo"],
        },
        {
            "name": "demo_one_time",
            "description": "runs once, 20 seconds after the demo started",
            "schedule_type": "once",
            "run_at": run_at.isoformat().replace("+00:00", "Z"),
            "target_command": "cmd.demo.send_welcome_email",
            "command_payload": {"user_id": 42, "template": "welcome"},
            "tags": ["demo"],
        },
        {
            "name": "demo_daily_new_york",
            "description": "every day at 09:00 in New York (DST handled)",
            "schedule_type": "cron",
            "cron_expression": "0 9 * * *",
            "timezone": "America/New_York",
            "target_command": "cmd.demo.daily_summary",
            "command_payload": {"notification_type": "daily_summary"},
            "tags": ["demo"],
        },
    ]


def call(method: str, path: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        api_base() + path, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw)
        except ValueError:
            return error.code, raw.decode(errors="replace")


def wait_ready() -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        try:
            status, _ = call("GET", "/ready")
            if status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: the API did not become ready at {api_base()} within {READY_TIMEOUT_SECONDS}s")
        time.sleep(0.5)


def replace_schedules() -> list[dict]:
    """Delete the schedules a previous demo created, then create the examples."""
    status, page = call("GET", f"/api/v1/schedules?created_by={CREATOR}&limit=100")
    if status == 200:
        for item in page["items"]:
            call("DELETE", f"/api/v1/schedules/{item['id']}", headers={"X-Deleted-By": CREATOR})
    created = []
    for body in example_schedules(datetime.now(timezone.utc)):
        status, answer = call("POST", "/api/v1/schedules", body, headers={"X-Created-By": CREATOR})
        if status != 201:
            print(f"demo: creating {body['name']} failed ({status}): {answer}", file=sys.stderr, flush=True)
            continue
        created.append(answer)
    return created


def describe(schedule: dict) -> str:
    rule = schedule.get("cron_expression") or (
        f"every {schedule['interval_seconds']}s"
        if schedule.get("interval_seconds")
        else f"once at {schedule.get('run_at')}"
    )
    local = schedule.get("next_run_at_local") or schedule.get("next_run_at")
    return (
        f"  {schedule['name']:<22} {rule:<30} {schedule.get('timezone', 'UTC'):<17} -> {schedule['target_command']}"
        f"   next: {local}"
    )


async def run() -> None:
    """Subscribe first (so no command is missed), then create the schedules, then print forever."""
    url = os.environ.get("NATS_URL", "nats://localhost:4222")
    client = await nats.connect(url, name="scheduler-demo-consumer", max_reconnect_attempts=-1)
    received = 0

    async def on_message(msg) -> None:
        nonlocal received
        received += 1
        headers = msg.headers or {}
        try:
            body = json.dumps(json.loads(msg.data))
        except ValueError:
            body = msg.data.decode(errors="replace")
        now = datetime.now(timezone.utc).strftime("%H:%M:%S.%f")[:-3]
        print(
            f"[{now}] #{received} {msg.subject}\n"
            f"    Scheduler-Scheduled-For: {headers.get('Scheduler-Scheduled-For')}\n"
            f"    Scheduler-Execution-Id:  {headers.get('Scheduler-Execution-Id')}\n"
            f"    body: {body}",
            flush=True,
        )
        if msg.reply:  # a `delivery_mode: request` schedule waits for an answer
            await msg.respond(b'{"success": true}')

    await client.subscribe(SUBJECTS, cb=on_message)
    await client.flush()
    created = await asyncio.to_thread(replace_schedules)
    print(f"demo: created {len(created)} example schedules through POST {api_base()}/api/v1/schedules", flush=True)
    for schedule in created:
        print(describe(schedule), flush=True)
    print(f"  list them: curl -s '{api_base()}/api/v1/schedules?created_by={CREATOR}'", flush=True)
    print(
        f"demo consumer subscribed to {SUBJECTS} on {url}; the commands it receives follow (Ctrl-C stops)", flush=True
    )
    try:
        await asyncio.Event().wait()
    finally:
        await client.drain()


def main() -> None:
    wait_ready()
    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
