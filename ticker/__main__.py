"""`python -m ticker`: run the ticker until SIGTERM/SIGINT."""

import asyncio
import signal

from actors import broker
from core.settings import get_settings
from models.db import make_engine
from runtime.logging import configure_logging
from runtime.nats_client import NatsConnection
from services.events import NatsEvents
from ticker.dispatch import queue_enqueuer
from ticker.loop import run_loop


async def main() -> None:
    settings = get_settings()
    configure_logging(settings.LOG_LEVEL, f"{settings.SERVICE_NAME}-ticker")
    engine = make_engine(settings.DATABASE_URL, pool_size=2)
    nats = NatsConnection.from_settings(settings, name=f"{settings.SERVICE_NAME}-ticker")
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        await run_loop(engine, settings, queue_enqueuer(broker, settings), NatsEvents(nats), stop)
    finally:
        await nats.close()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
