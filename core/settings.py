"""Service settings, read once from the environment (and an optional `.env` file).

Every variable of the original service is here with its original default. A bad value stops
start-up with one line naming the variable and the reason (see `load_settings`).
"""

from __future__ import annotations

import sys
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """All configuration. Durations are in seconds unless the name says otherwise."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=True)

    SERVICE_NAME: str = "scheduler-service"
    SERVICE_VERSION: str = "1.0.0"
    API_HOST: str = "127.0.0.1"
    API_PORT: int = Field(8008, ge=1, le=65535)

    DATABASE_URL: str = "postgresql+asyncpg://postgres@localhost:5432/scheduler"
    REDIS_URL: str = "redis://localhost:6379/0"
    NATS_URL: str = "nats://localhost:4222"

    SCHEDULER_TIMEZONE: str = "UTC"
    SCHEDULER_MISFIRE_GRACE_TIME: int = Field(300, ge=0, le=31 * 86400)
    SCHEDULER_MAX_INSTANCES: int = Field(3, ge=1, le=1000)
    SCHEDULER_EXECUTOR_POOL_SIZE: int = Field(10, ge=1, le=1000)
    LOCK_TIMEOUT_SECONDS: int = Field(300, ge=1, le=86400)
    MAX_SCHEDULE_LOOKAHEAD_DAYS: int = Field(365, ge=1, le=3660)
    DEFAULT_MAX_RETRIES: int = Field(3, ge=0, le=100)
    DEFAULT_RETRY_DELAY: int = Field(300, ge=0, le=86400)
    MAX_SCHEDULES_PER_CREATOR: int = Field(1000, ge=1)

    # Firing pipeline (ticker, queue, worker). Durations in seconds unless the name says _MS.
    TICKER_BATCH_SIZE: int = Field(500, ge=1, le=10000)
    MISFIRE_ON_TIME_SECONDS: float = Field(1.0, ge=0, le=60)  # ticker latency that is never a misfire
    TICKER_MAX_SLEEP_SECONDS: float = Field(5.0, gt=0, le=60)
    DISPATCH_BATCH_SIZE: int = Field(100, ge=1, le=1000)
    # Runs are recorded, handed to the workers and claimed up to this long before their instant; the
    # publish still waits for the instant. This takes the hand-over chain (commit, queue, claim, lock)
    # out of the lag and spreads a burst's preparation over the lead. A pause, edit or delete reaches
    # the slots further away than this; 0 = hand over when due.
    DISPATCH_LEAD_MS: int = Field(1000, ge=0, le=10_000)
    REENQUEUE_AFTER_SECONDS: int = Field(15, ge=1, le=3600)
    RETRY_BACKOFF_CAP_SECONDS: int = Field(3600, ge=1, le=86400)
    NATS_PUBLISH_TIMEOUT_SECONDS: float = Field(5.0, gt=0, le=300)
    NATS_STREAM_CACHE_SECONDS: float = Field(30.0, ge=0, le=3600)
    # Dead-worker detection (services.liveness): every worker process refreshes a key in Redis each
    # WORKER_HEARTBEAT_SECONDS; the runs of a worker whose key has been gone WORKER_DEAD_AFTER_SECONDS
    # are reaped then, instead of after LOCK_TIMEOUT_SECONDS (which stays the fallback without Redis).
    WORKER_HEARTBEAT_SECONDS: float = Field(1.0, gt=0, le=60)
    WORKER_DEAD_AFTER_SECONDS: float = Field(5.0, ge=1, le=3600)
    BROKER_NAMESPACE: str = Field("scheduler", min_length=1, max_length=64)
    BROKER_HEARTBEAT_TIMEOUT_MS: int = Field(15000, ge=1000)
    BROKER_MAINTENANCE_CHANCE: int = Field(100_000, ge=1, le=1_000_000)
    EXECUTION_HISTORY_RETENTION_DAYS: int = Field(30, ge=1, le=3650)

    # Security. AUTH_ENABLED is on by default; `make run` (the local development run) turns it off.
    AUTH_ENABLED: bool = True
    API_KEY_CACHE_SECONDS: float = Field(10.0, ge=0, le=600)
    COMMAND_WHITELIST: str = Field("cmd.>", description="comma-separated NATS subject patterns a schedule may target")
    PAYLOAD_SCHEMA_DIR: str | None = None
    RATE_LIMIT_WRITES: str = Field("60/minute", description="writes per principal, shared through Redis; empty = off")
    MAX_BODY_BYTES: int = Field(8 * 1024 * 1024, ge=1024)
    CORS_ORIGINS: str = ""
    METRICS_PUBLIC: bool = True
    NATS_USER: str | None = None
    NATS_PASSWORD: str | None = None
    NATS_TOKEN: str | None = None
    NATS_CREDS_FILE: str | None = None

    MAX_BULK_ITEMS: int = Field(100, ge=1, le=10000)
    MAX_PAYLOAD_BYTES: int = Field(64 * 1024, ge=1)
    MAX_PAYLOAD_DEPTH: int = Field(32, ge=1, le=200)
    LOG_LEVEL: str = "INFO"
    # The API's pool of plain connections for single-statement reads (GET by id): no transaction,
    # no pre-ping, one round trip per read. Opened on demand, up to this many connections.
    API_READ_POOL_SIZE: int = Field(20, ge=1, le=1000)

    @field_validator("SCHEDULER_TIMEZONE")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @field_validator("DATABASE_URL")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgresql+asyncpg://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        # Always talk to PostgreSQL through asyncpg.
        _scheme, rest = value.split("://", 1)
        return f"postgresql+asyncpg://{rest}"

    @field_validator("WORKER_DEAD_AFTER_SECONDS")
    @classmethod
    def _several_beats(cls, value: float, info: ValidationInfo) -> float:
        beat = info.data.get("WORKER_HEARTBEAT_SECONDS")
        if beat is not None and value < 3 * beat:
            # One late beat (a GC pause, a slow Redis reply) must not make a live worker look dead.
            raise ValueError(f"must be at least 3 × WORKER_HEARTBEAT_SECONDS ({3 * beat:g})")
        return value

    @field_validator("REDIS_URL")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("NATS_URL")
    @classmethod
    def _nats_url(cls, value: str) -> str:
        for url in value.split(","):
            if not url.strip().startswith(("nats://", "tls://", "ws://", "wss://")):
                raise ValueError("must be a comma-separated list of nats:// URLs")
        return value

    @field_validator("COMMAND_WHITELIST")
    @classmethod
    def _patterns(cls, value: str) -> str:
        from core.subjects import pattern_problem

        for pattern in value.split(","):
            problem = pattern_problem(pattern.strip())
            if problem:
                raise ValueError(f"pattern {pattern.strip()!r} {problem}")
        return value

    @field_validator("RATE_LIMIT_WRITES")
    @classmethod
    def _rate(cls, value: str) -> str:
        if value.strip():
            from limits import parse_many

            try:
                parse_many(value)
            except ValueError:
                raise ValueError("must look like '60/minute' or '10/second;500/hour'") from None
        return value

    @property
    def command_whitelist(self) -> list[str]:
        return [p.strip() for p in self.COMMAND_WHITELIST.split(",") if p.strip()]

    @property
    def sync_database_url(self) -> str:
        """The same database for tools that want the plain driver-less form (psql style)."""
        return self.DATABASE_URL.replace("postgresql+asyncpg://", "postgresql://", 1)


SECRET_NAMES = ("PASSWORD", "TOKEN", "SECRET", "CREDS", "URL")


def _shown(name: str, value: object) -> str:
    """The offending value as it may appear in a log: secrets and URLs (which may embed one) are hidden."""
    if any(part in name for part in SECRET_NAMES):
        return "(value hidden)"
    return f"(got {value!r})"


def describe_error(error: ValidationError) -> str:
    """One line naming each bad variable and why, e.g. `API_PORT: Input should be ... (got 'abc')`."""
    parts = []
    for item in error.errors():
        name = ".".join(str(p) for p in item["loc"]) or "settings"
        reason = item["msg"].removeprefix("Value error, ")
        parts.append(f"{name}: {reason} {_shown(name, item.get('input'))}")
    return "invalid configuration: " + "; ".join(parts)


def load_settings() -> Settings:
    """Read settings, or exit with status 2 and one line on stderr naming the bad variable."""
    try:
        return Settings()
    except ValidationError as error:
        print(describe_error(error), file=sys.stderr)
        raise SystemExit(2) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings (entry points call this once; code below them takes a Settings)."""
    return load_settings()
