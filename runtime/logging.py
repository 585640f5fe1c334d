"""Structured logs (structlog over the standard library), one line per event on stderr, for every process.

This module owns the log format. Every line carries `timestamp`, `level`, `logger`, `message`,
`service` (SERVICE_NAME), `process` (one of PROCESSES) and a stable `action` key where the caller
gives one, plus the ids it knows: `correlation_id` (bound per HTTP request and NATS command, or
given per run by the worker), `schedule_id`, `execution_id`. Records of other libraries (uvicorn,
Dramatiq, periodiq), Python warnings and uncaught exceptions go through the same renderer.
`LOG_FORMAT=json` renders one JSON object per line; `LOG_FORMAT=console` a readable line for a terminal.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import IO, Any

import structlog

PROCESSES = ("api", "ticker", "worker", "housekeeping", "launcher")
FORMATS = ("json", "console")


class _Identity:
    """Adds the service and process names to every event (static fields, so they hold in every
    thread and task, unlike context variables bound in one of them)."""

    def __init__(self, service: str, process: str) -> None:
        self.fields = {"service": service, "process": process}

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        for key, value in self.fields.items():
            event.setdefault(key, value)
        return event


def _drop_color_message(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    """uvicorn passes a terminal-coloured copy of its message as an extra: the message says it already."""
    event.pop("color_message", None)
    return event


def _renderers(fmt: str, stream: IO[str]) -> list[Any]:
    if fmt == "console":
        colors = bool(getattr(stream, "isatty", lambda: False)())
        return [structlog.dev.ConsoleRenderer(colors=colors)]
    return [
        structlog.processors.format_exc_info,
        structlog.processors.EventRenamer("message"),
        structlog.processors.JSONRenderer(default=str),
    ]


def _log_uncaught(exc_type, exc, traceback) -> None:
    logging.getLogger("uncaught").critical("uncaught exception", exc_info=(exc_type, exc, traceback))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("uncaught").error(
        "uncaught exception in thread %s", name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback)
    )


def configure_logging(
    level: str = "INFO",
    service: str = "scheduler-service",
    process: str = "api",
    fmt: str = "json",
    stream: IO[str] | None = None,
) -> None:
    """Route structlog, the standard library's logging, Python warnings and uncaught exceptions (of the
    main thread and of other threads) through one renderer on
    `stream` (default: the current `sys.stderr`). Calling it again replaces the configuration (a
    Dramatiq worker process does so after its stderr becomes the pipe to its parent)."""
    if process not in PROCESSES:
        raise ValueError(f"process must be one of {', '.join(PROCESSES)}")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    stream = stream if stream is not None else sys.stderr
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
        _Identity(service, process),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *_renderers(fmt, stream)],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.setLevel(level.upper())  # holds where a library resets the root logger's level (periodiq does)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)
    sys.excepthook, threading.excepthook = _log_uncaught, _log_uncaught_in_thread
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def configure_process(process: str) -> None:
    """Configure logging for one of the service's processes from the settings (LOG_LEVEL, LOG_FORMAT,
    SERVICE_NAME)."""
    from core.settings import get_settings

    settings = get_settings()
    configure_logging(settings.LOG_LEVEL, settings.SERVICE_NAME, process, settings.LOG_FORMAT)
