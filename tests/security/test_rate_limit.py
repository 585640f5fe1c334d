"""Writes past the per-principal limit are refused with 429 and Retry-After, across two API processes."""

from __future__ import annotations

import uuid

import httpx

from tests.support.harness import Stack, free_port


def test_two_api_instances_share_one_write_limit():
    with Stack(RATE_LIMIT_WRITES="10/minute", MAX_SCHEDULES_PER_CREATOR="1000") as stack:
        stack.start("api-1", "api")
        second = free_port()
        stack.start("api-2", "api", port=second)
        urls = [stack.api, f"http://127.0.0.1:{second}"]
        principal = f"flooder-{uuid.uuid4().hex[:8]}"
        statuses, retry_after = [], []
        for i in range(30):
            body = {
                "name": f"f{i}",
                "schedule_type": "interval",
                "interval_seconds": 60,
                "target_command": "cmd.test.flood",
            }
            response = httpx.post(
                f"{urls[i % 2]}/api/v1/schedules", json=body, headers={"X-Created-By": principal}, timeout=10
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                retry_after.append(int(response.headers["Retry-After"]))
                assert response.json()["code"] == "rate_limited"
        assert statuses.count(201) == 10, statuses
        assert statuses.count(429) == 20 and all(0 < r <= 60 for r in retry_after)
        assert statuses[:10] == [201] * 10  # the window admits the first ten, whichever instance served them
        others = httpx.post(
            f"{urls[1]}/api/v1/schedules",
            headers={"X-Created-By": f"{principal}-2"},
            json={"name": "x", "schedule_type": "interval", "interval_seconds": 60, "target_command": "cmd.test.flood"},
        )
        assert others.status_code == 201  # the limit is per principal
        listed = httpx.get(f"{urls[0]}/api/v1/schedules", params={"created_by": principal}).json()
        assert listed["total"] == 10  # a refused write changed nothing
