"""Turn a schedule body into validated column values, collecting every problem at once.

Type and range checks happened in `services.schemas`; here come the rules that need the settings or
the clock: the schedule rule itself (core.rules), the target subject, the payload size and templates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from core.errors import FieldError, ValidationFailed
from core.misfire import Catchup, MisfirePolicy
from core.rules import Rule, ScheduleType, validate_rule
from core.settings import Settings
from core.subjects import allowed_by, dead_letter_problem, subject_problem
from core.templates import template_problems
from core.timezones import load_zone
from services.payload_schemas import PayloadSchemas
from services.schemas import has_nul

RULE_FIELDS = ("schedule_type", "cron_expression", "interval_seconds", "run_at", "timezone", "start_at", "end_at")
DATETIME_FIELDS = ("run_at", "start_at", "end_at")


@dataclass(frozen=True)
class ValidatedSchedule:
    """Column values ready to store, and the rule they describe."""

    values: dict[str, Any]
    rule: Rule


def _zone_or_none(name: str) -> ZoneInfo | None:
    try:
        return load_zone(name)
    except ValueError:
        return None


def _to_utc(value: datetime | None, zone: ZoneInfo | None) -> datetime | None:
    """Aware datetimes convert to UTC; naive ones are wall time in the schedule's zone."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone or timezone.utc)
    return value.astimezone(timezone.utc)


def in_utc(value: datetime | None, timezone_name: str) -> datetime | None:
    """An input instant in UTC; a naive one is wall time in `timezone_name` (UTC when that is unknown)."""
    return _to_utc(value, _zone_or_none(timezone_name))


def nesting_depth(value: Any) -> int:
    """How deeply objects and arrays nest (a flat object is 1); iterative, so never a RecursionError."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item)
    return deepest


def payload_problems(payload: Any, settings: Settings, field: str = "command_payload") -> list[FieldError]:
    if not isinstance(payload, dict):
        return [FieldError(field, "must be a JSON object")]
    if has_nul(payload):  # jsonb holds no NUL character
        return [FieldError(field, "must not contain NUL (\\u0000) characters")]
    depth = nesting_depth(payload)
    if depth > settings.MAX_PAYLOAD_DEPTH:
        return [FieldError(field, f"nests {depth} levels deep; the limit is {settings.MAX_PAYLOAD_DEPTH}")]
    try:
        size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())
    except ValueError:  # Python's json reads NaN/Infinity; standard JSON (and jsonb) has no such numbers
        return [FieldError(field, "contains NaN or Infinity, which are not JSON numbers")]
    if size > settings.MAX_PAYLOAD_BYTES:
        return [FieldError(field, f"is {size} bytes; the limit is {settings.MAX_PAYLOAD_BYTES} bytes")]
    return template_problems(payload, field)


def validate_schedule(
    values: dict[str, Any],
    settings: Settings,
    now: datetime,
    check_rule: bool = True,
    payload_schemas: PayloadSchemas | None = None,
) -> ValidatedSchedule:
    """Normalize and check a complete set of schedule fields (as from ScheduleCreate.model_dump()).

    Fills defaults from the settings, converts datetimes to UTC, and for `immediate` schedules sets
    run_at = now. `check_rule=False` skips the timing checks (an update that leaves the rule alone
    must not fail because a once schedule's run_at has passed). Raises ValidationFailed listing
    every problem.
    """
    values = dict(values)
    errors: list[FieldError] = []
    schedule_type = _normalize_timing(values, settings, now, errors)
    _fill_defaults(values, settings)

    rule = Rule(
        schedule_type=schedule_type,
        timezone=values["timezone"],
        cron_expression=values.get("cron_expression"),
        interval_seconds=values.get("interval_seconds"),
        run_at=values.get("run_at"),
        start_at=values.get("start_at"),
        end_at=values.get("end_at"),
        dst_gap=values.get("dst_gap") or "shift",
        dst_repeat=values.get("dst_repeat") or "auto",
    )
    rule_errors = validate_rule(rule, now, settings.MAX_SCHEDULE_LOOKAHEAD_DAYS) if check_rule else []
    if schedule_type is ScheduleType.IMMEDIATE:
        # run_at = now is by construction, not a user value: never report it as "in the past".
        rule_errors = [e for e in rule_errors if e.field != "run_at"]
    errors.extend(rule_errors)

    errors.extend(_command_problems(values, settings, payload_schemas))
    tags = values.get("tags") or []
    values["tags"] = sorted(set(tags), key=tags.index)
    if errors:
        raise ValidationFailed(errors)
    return ValidatedSchedule(values=values, rule=rule)


def _normalize_timing(
    values: dict[str, Any], settings: Settings, now: datetime, errors: list[FieldError]
) -> ScheduleType:
    """Sets the time zone default, datetimes in UTC, run_at = now for immediate schedules and an interval's
    default anchor in `values`; returns the schedule type."""
    values["timezone"] = values.get("timezone") or settings.DEFAULT_TIMEZONE
    zone = _zone_or_none(values["timezone"])
    for name in DATETIME_FIELDS:
        values[name] = _to_utc(values.get(name), zone)
    schedule_type = ScheduleType(values["schedule_type"])
    if schedule_type is ScheduleType.IMMEDIATE:
        if values.get("run_at") is not None:
            errors.append(FieldError("run_at", "is only valid for once schedules (immediate fires now)"))
        values["run_at"] = now
    if schedule_type is ScheduleType.INTERVAL and values.get("start_at") is None:
        values["start_at"] = now.replace(microsecond=0)
    return schedule_type


def _fill_defaults(values: dict[str, Any], settings: Settings) -> None:
    """Retry, misfire and concurrency fields left unset take the settings' defaults."""
    defaults = {
        "max_retries": settings.DEFAULT_MAX_RETRIES,
        "retry_delay": settings.DEFAULT_RETRY_DELAY,
        "misfire_grace_seconds": settings.DEFAULT_MISFIRE_GRACE_SECONDS,
        "max_concurrent": settings.DEFAULT_MAX_CONCURRENT,
    }
    for name, default in defaults.items():
        if values.get(name) is None:
            values[name] = default


def _command_problems(
    values: dict[str, Any], settings: Settings, payload_schemas: PayloadSchemas | None
) -> list[FieldError]:
    """Problems with the target subject (syntax, whitelist) and the payload (limits, templates, schema)."""
    errors: list[FieldError] = []
    target = values.get("target_command") or ""
    problem = subject_problem(target)
    if problem:
        errors.append(FieldError("target_command", f"is not a valid NATS subject: {problem}"))
    elif not allowed_by(settings.command_whitelist, target):
        errors.append(
            FieldError("target_command", f"is not allowed by COMMAND_WHITELIST ({settings.COMMAND_WHITELIST})")
        )
    errors.extend(_dead_letter_problems(values.get("dead_letter_subject"), settings, payload_schemas))
    payload_errors = payload_problems(values.get("command_payload", {}), settings)
    errors.extend(payload_errors)
    if payload_schemas is not None and not payload_errors and not problem:
        errors.extend(payload_schemas.problems(target, values.get("command_payload", {})))
    return errors


def _dead_letter_problems(
    subject: str | None, settings: Settings, payload_schemas: PayloadSchemas | None
) -> list[FieldError]:
    """A dead-letter subject must be one the scheduler may publish to, and not one whose payload schema
    a dead letter's body would break."""
    if subject is None:
        return []
    problem = dead_letter_problem(subject, settings.DEAD_LETTER_SUBJECT, settings.command_whitelist)
    if problem is None and payload_schemas is not None and payload_schemas.covers(subject):
        problem = "a payload schema covers it, and a dead letter's body does not follow that schema"
    return [FieldError("dead_letter_subject", f"is not a valid dead-letter subject: {problem}")] if problem else []


def rule_of(schedule: Any) -> Rule:
    """The core rule of a stored schedule row."""
    return Rule(
        schedule_type=ScheduleType(schedule.schedule_type),
        timezone=schedule.timezone,
        cron_expression=schedule.cron_expression,
        interval_seconds=schedule.interval_seconds,
        run_at=schedule.run_at,
        start_at=schedule.start_at,
        end_at=schedule.end_at,
        dst_gap=schedule.dst_gap,
        dst_repeat=schedule.dst_repeat,
        hash_key=str(schedule.id),
    )


def misfire_policy_of(schedule: Any, settings: Settings) -> MisfirePolicy:
    """The misfire policy of a stored schedule row (the ticker's wake-up latency is never a misfire)."""
    return MisfirePolicy(
        grace_seconds=schedule.misfire_grace_seconds,
        catchup=Catchup(schedule.catchup),
        on_time_seconds=settings.MISFIRE_ON_TIME_SECONDS,
    )
