"""Service settings, read once from the environment (and an optional `.env` file).

The fields are grouped by area; each one's description states its meaning and unit. A renamed
variable is still read under its old name (see `Settings.model_fields[...].validation_alias`); when
both are set, the new name wins. A bad value stops start-up with one line naming the variable and
the reason (see `load_settings`). Engineering constants that an operator does not tune live in
`core.tuning`.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """All configuration, flat: code reads `settings.NAME`. Each field's description gives its unit."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=True, populate_by_name=True)

    # --- Service identity and HTTP API -----------------------------------------------------------
    SERVICE_NAME: str = Field(
        "scheduler-service",
        description="name in logs, in the health answer and, with a -api/-ticker/-worker suffix, "
        "in NATS connection names",
    )
    SERVICE_VERSION: str = Field("1.0.0", description="version reported by the health endpoints")
    API_HOST: str = Field("127.0.0.1", description="address the API listens on")
    API_PORT: int = Field(8008, ge=1, le=65535, description="TCP port the API listens on")
    MAX_BODY_BYTES: int = Field(
        8 * 1024 * 1024, ge=1024, description="largest request body the API accepts, in bytes; larger gets 413"
    )
    CORS_ORIGINS: str = Field("", description="comma-separated origins allowed by CORS; empty = CORS off")

    # --- Database (PostgreSQL) -------------------------------------------------------------------
    DATABASE_URL: str = Field(
        "postgresql+asyncpg://postgres@localhost:5432/scheduler",
        description="PostgreSQL URL (postgresql://, postgres:// or postgresql+asyncpg://; always used through asyncpg)",
    )
    DATABASE_POOL_SIZE: int = Field(
        10,
        ge=1,
        le=1000,
        validation_alias=AliasChoices("DATABASE_POOL_SIZE", "SCHEDULER_EXECUTOR_POOL_SIZE"),
        description="SQLAlchemy connection pool size per API or worker process, in connections "
        "(as many again may overflow under load)",
    )
    # A pool of plain connections for single-statement reads: no transaction, no pre-ping.
    API_READ_POOL_SIZE: int = Field(
        20,
        ge=1,
        le=1000,
        description="plain asyncpg connections per API process for single-row reads (GET by id), "
        "opened on demand, in connections",
    )

    # --- Redis -----------------------------------------------------------------------------------
    REDIS_URL: str = Field(
        "redis://localhost:6379/0",
        description="Redis URL (redis://, rediss:// or unix://): concurrency slots, heartbeats, "
        "Dramatiq queues, rate limits",
    )

    # --- NATS ------------------------------------------------------------------------------------
    NATS_URL: str = Field("nats://localhost:4222", description="comma-separated NATS server URLs the commands go to")
    NATS_USER: str | None = Field(None, description="NATS user name (with NATS_PASSWORD)")
    NATS_PASSWORD: str | None = Field(None, description="NATS password (with NATS_USER)")
    NATS_TOKEN: str | None = Field(None, description="NATS authentication token")
    NATS_CREDS_FILE: str | None = Field(None, description="path of a NATS .creds file (JWT and NKey seed)")
    NATS_STREAM_CACHE_SECONDS: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="how long a worker remembers which JetStream stream covers a subject, in seconds",
    )

    # --- Defaults of new schedules (each named after the schedule field it fills) ----------------
    DEFAULT_TIMEZONE: str = Field(
        "UTC",
        validation_alias=AliasChoices("DEFAULT_TIMEZONE", "SCHEDULER_TIMEZONE"),
        description="IANA time zone of a new schedule that names none (`timezone`)",
    )
    DEFAULT_MISFIRE_GRACE_SECONDS: int = Field(
        300,
        ge=0,
        le=31 * 86400,
        validation_alias=AliasChoices("DEFAULT_MISFIRE_GRACE_SECONDS", "SCHEDULER_MISFIRE_GRACE_TIME"),
        description="default `misfire_grace_seconds`: how late a slot may still fire, in seconds",
    )
    DEFAULT_MAX_CONCURRENT: int = Field(
        3,
        ge=1,
        le=1000,
        validation_alias=AliasChoices("DEFAULT_MAX_CONCURRENT", "SCHEDULER_MAX_INSTANCES"),
        description="default `max_concurrent`: runs of one schedule in flight at once",
    )

    # --- Schedule limits and validation ----------------------------------------------------------
    MAX_SCHEDULE_LOOKAHEAD_DAYS: int = Field(
        365, ge=1, le=3660, description="how far ahead `run_at` and a rule's first fire may lie, in days"
    )
    MAX_SCHEDULES_PER_CREATOR: int = Field(1000, ge=1, description="quota: schedules one creator may own")
    MAX_BULK_ITEMS: int = Field(100, ge=1, le=10000, description="schedules or ids per bulk request")
    MAX_PAYLOAD_BYTES: int = Field(64 * 1024, ge=1, description="largest `command_payload`, in bytes of JSON")
    MAX_PAYLOAD_DEPTH: int = Field(32, ge=1, le=200, description="deepest nesting of `command_payload`, in levels")
    PAYLOAD_SCHEMA_DIR: str | None = Field(
        None, description="folder of `*.json` files, each a JSON Schema for a subject pattern; unset = no schemas"
    )

    # --- Ticker ----------------------------------------------------------------------------------
    TICKER_BATCH_SIZE: int = Field(500, ge=1, le=10000, description="due schedules claimed per ticker transaction")
    TICKER_MAX_SLEEP_SECONDS: float = Field(
        5.0, gt=0, le=60, description="longest ticker sleep when nothing is due sooner, in seconds"
    )
    MISFIRE_ON_TIME_SECONDS: float = Field(
        1.0,
        ge=0,
        le=60,
        description="a slot seen at most this late is on time whatever its grace (the ticker's own latency "
        "is never a misfire), in seconds",
    )

    # --- Dispatch and worker ---------------------------------------------------------------------
    DISPATCH_BATCH_SIZE: int = Field(100, ge=1, le=1000, description="execution ids per queue message")
    # Runs are recorded, handed to the workers and claimed up to this long before their instant; the
    # publish still waits for the instant. This takes the hand-over chain (commit, queue, claim, lock)
    # out of the lag and spreads a burst's preparation over the lead. A pause, edit or delete reaches
    # the slots further away than this.
    DISPATCH_LEAD_MS: int = Field(
        1000,
        ge=0,
        le=10_000,
        description="how long before its instant a run is handed over and claimed, in milliseconds; 0 = when due",
    )
    LOCK_TIMEOUT_SECONDS: int = Field(
        300,
        ge=1,
        le=86400,
        description="TTL of a run's concurrency slot in Redis, and the age past which a run stuck `running` "
        "is reaped even while its worker beats, in seconds",
    )
    # Dead-worker detection (services.liveness): every worker process refreshes a key in Redis each
    # WORKER_HEARTBEAT_SECONDS; the runs of a worker whose key has been gone WORKER_DEAD_AFTER_SECONDS
    # are reaped then, instead of after LOCK_TIMEOUT_SECONDS (which stays the fallback without Redis).
    # WORKER_HEARTBEAT_SECONDS comes first: the check of WORKER_DEAD_AFTER_SECONDS reads it.
    WORKER_HEARTBEAT_SECONDS: float = Field(
        1.0, gt=0, le=60, description="how often each worker process refreshes its heartbeat key, in seconds"
    )
    WORKER_DEAD_AFTER_SECONDS: float = Field(
        5.0,
        ge=1,
        le=3600,
        description="a worker silent this long is dead and its runs are handed out again, in seconds "
        "(at least 3 × WORKER_HEARTBEAT_SECONDS)",
    )
    BROKER_NAMESPACE: str = Field(
        "scheduler", min_length=1, max_length=64, description="Dramatiq's key prefix in Redis"
    )
    BROKER_HEARTBEAT_TIMEOUT_MS: int = Field(
        15000,
        ge=1000,
        description="Dramatiq requeues the unacked messages of a consumer silent this long, in milliseconds",
    )
    BROKER_MAINTENANCE_CHANCE: int = Field(
        100_000,
        ge=1,
        le=1_000_000,
        description="Dramatiq's maintenance (requeue of dead consumers' messages) runs on this many "
        "queue commands per million",
    )

    # --- Retries and recovery --------------------------------------------------------------------
    DEFAULT_MAX_RETRIES: int = Field(3, ge=0, le=100, description="default `max_retries` of a new schedule")
    DEFAULT_RETRY_DELAY: int = Field(
        300, ge=0, le=86400, description="default `retry_delay` of a new schedule: first backoff step, in seconds"
    )
    RETRY_BACKOFF_CAP_SECONDS: int = Field(3600, ge=1, le=86400, description="longest delay of one retry, in seconds")
    DEAD_LETTER_SUBJECT: str = Field(
        "evt.scheduler.execution.dead_letter",
        min_length=1,
        max_length=255,
        description="where a run that finally failed is published once, unless its schedule names its own subject",
    )
    REENQUEUE_AFTER_SECONDS: int = Field(
        15,
        ge=1,
        le=3600,
        description="a run handed over this long ago and not started is handed over again by the sweep, in seconds",
    )

    # --- Authentication and security -------------------------------------------------------------
    # AUTH_ENABLED is on by default; `make run` (the local development run) turns it off.
    AUTH_ENABLED: bool = Field(True, description="require an API key on every API request")
    API_KEY_CACHE_SECONDS: float = Field(
        10.0, ge=0, le=600, description="how long a verified API key is cached (bounds revocation delay), in seconds"
    )
    COMMAND_WHITELIST: str = Field("cmd.>", description="comma-separated NATS subject patterns a schedule may target")
    RATE_LIMIT_WRITES: str = Field(
        "60/minute",
        description="writes per principal, shared through Redis (e.g. '10/second;500/hour'); empty = off",
    )
    METRICS_PUBLIC: bool = Field(True, description="serve /metrics without an API key when AUTH_ENABLED is on")

    # --- Retention and housekeeping --------------------------------------------------------------
    EXECUTION_HISTORY_RETENTION_DAYS: int = Field(
        30, ge=1, le=3650, description="finished executions older than this are deleted hourly, in days"
    )

    # --- Observability ---------------------------------------------------------------------------
    LOG_LEVEL: str = Field("INFO", description="level of the logs on stderr (DEBUG, INFO, WARNING, ERROR)")
    # The worker and the ticker serve /metrics, /live and /ready on ports of their own (runtime.probes);
    # the API serves them on API_PORT. A worker started with `-p N` serves one port per process, from
    # WORKER_METRICS_PORT upwards; the ticker's default lies below that range.
    METRICS_HOST: str = Field(
        "127.0.0.1", description="address the worker's and the ticker's metrics and probe servers listen on"
    )
    WORKER_METRICS_PORT: int = Field(
        9191,
        ge=0,
        le=65535,
        description="TCP port of the first worker process's /metrics, /live and /ready; process i of "
        "`dramatiq -p N` listens on this + i; 0 = no server",
    )
    TICKER_METRICS_PORT: int = Field(
        9190, ge=0, le=65535, description="TCP port of the ticker's /metrics, /live and /ready; 0 = no server"
    )
    LOG_FORMAT: Literal["json", "console"] = Field(
        "json",
        description="log lines on stderr: 'json' (one JSON object per line) or 'console' (readable, for a terminal)",
    )
    OTEL_EXPORTER_OTLP_ENDPOINT: str = Field(
        "",
        description="OTLP/HTTP endpoint receiving OpenTelemetry spans (e.g. http://localhost:4318); empty = "
        "tracing off (traceparent headers still travel with the runs)",
    )

    @field_validator("DEFAULT_TIMEZONE")
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

    @field_validator("DEAD_LETTER_SUBJECT")
    @classmethod
    def _dead_letters(cls, value: str) -> str:
        from core.subjects import default_dead_letter_problem

        problem = default_dead_letter_problem(value)
        if problem:
            raise ValueError(problem)
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


def old_names(name: str) -> list[str]:
    """The names a field is still read under besides its own (its old environment variables)."""
    field = Settings.model_fields.get(name)
    alias = field.validation_alias if field is not None else None
    if not isinstance(alias, AliasChoices):
        return []
    return [choice for choice in alias.choices if isinstance(choice, str) and choice != name]


def _label(name: str) -> str:
    """The variable as an operator may have spelt it: `NEW (or OLD)` for a renamed one."""
    olds = old_names(name)
    return f"{name} (or {' / '.join(olds)})" if olds else name


def describe_error(error: ValidationError) -> str:
    """One line naming each bad variable and why, e.g. `API_PORT: Input should be ... (got 'abc')`."""
    parts = []
    for item in error.errors():
        name = ".".join(str(p) for p in item["loc"]) or "settings"
        reason = item["msg"].removeprefix("Value error, ")
        parts.append(f"{_label(name)}: {reason} {_shown(name, item.get('input'))}")
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
