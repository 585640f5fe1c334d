"""`python -m runtime.migrate`: create the database if it is missing, then upgrade it to head."""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy.engine import make_url

from core.settings import get_settings
from runtime.migrations import upgrade


async def ensure_database(database_url: str) -> bool:
    """Create the database named in the URL when absent (connecting to `postgres`). True if created."""
    url = make_url(database_url)
    maintenance = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    conn = await asyncpg.connect(maintenance)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", url.database)
        if exists:
            return False
        # Identifiers cannot be bound parameters; quote it the way PostgreSQL does.
        quoted = '"' + url.database.replace('"', '""') + '"'
        await conn.execute(f"CREATE DATABASE {quoted}")
        return True
    finally:
        await conn.close()


def main() -> None:
    settings = get_settings()
    created = asyncio.run(ensure_database(settings.DATABASE_URL))
    if created:
        print(f"created database {make_url(settings.DATABASE_URL).database}")
    upgrade(settings.DATABASE_URL)
    print("migrations at head")


if __name__ == "__main__":
    main()
