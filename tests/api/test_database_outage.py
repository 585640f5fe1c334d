"""While PostgreSQL is down the API answers 503 with Retry-After (and the NATS door 503), and the request
ends there.

Against a private PostgreSQL (tests/support/postgres.py) that the test stops. The client does not
swallow app exceptions: an error the app re-raised after answering (as Starlette does for a handler of
`Exception`, which made the server log a traceback per 503) fails the test.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timezone

import httpx

from api import nats_commands
from core.settings import Settings
from runtime.http import create_app
from runtime.migrations import upgrade
from tests.support.servers import PrivatePostgres


async def test_reads_and_writes_get_503_with_retry_after_while_postgresql_is_down():
    pg = PrivatePostgres()
    pg.start()
    try:
        url = pg.database_url("postgres")
        await asyncio.to_thread(upgrade, url)
        settings = Settings(DATABASE_URL=url, AUTH_ENABLED=False, RATE_LIMIT_WRITES="", _env_file=None)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
                assert (await http.get("/api/v1/schedules")).status_code == 200
                await asyncio.to_thread(pg.shutdown, "fast")
                body = {
                    "name": "during-outage",
                    "schedule_type": "interval",
                    "interval_seconds": 60,
                    "target_command": "cmd.outage.test",
                }
                for response in (await http.get("/api/v1/schedules"), await http.post("/api/v1/schedules", json=body)):
                    assert response.status_code == 503, response.text
                    assert response.headers["Retry-After"] == "2" and "service_unavailable" in response.text
                # The NATS door answers the same: 503, nothing written, send it again.
                report = json.dumps({"execution_id": str(uuid.uuid4()), "status": "succeeded"}).encode()
                subject = f"{nats_commands.SUBJECT_PREFIX}execution.complete"
                status, reply = await nats_commands.handle(
                    app.state.schedules, subject, report, {}, datetime.now(timezone.utc), None, False
                )
                assert status == 503 and json.loads(reply)["code"] == "service_unavailable"
    finally:
        pg.cleanup()
