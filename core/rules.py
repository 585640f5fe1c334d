"""Schedule rules and their fire instants.

All instants (parameters and results) are aware datetimes; results are always UTC
(`datetime.timezone.utc`). Naive inputs raise ValueError. Durations are in seconds. Cron rules are
evaluated on the local wall clock of `Rule.timezone`; interval, once and immediate rules are pure
UTC arithmetic.

DST handling for cron ("segments" algorithm): a zone's UTC offset is constant between two
transitions, so inside such a segment wall time and instants map one-to-one
(`instant = wall - offset`). Starting from the current segment we ask the cron evaluator for the first
matching wall time at or after the current wall time and keep it if its instant lies before the
segment end. Otherwise, at the segment end:

* spring forward (offset grows): wall times in [end + old, end + new) do not exist. If the cron
  matches one of them and `dst_gap` is ``shift``, the fire happens at the transition instant itself
  (merged with a regular fire at that instant, since instants are unique); with ``skip`` nothing.
* fall back (offset shrinks by d): the next segment starts by repeating the last d of wall time.
  If repeats are allowed the search continues from the transition; otherwise from transition + d,
  so the repeated wall times only fire at their FIRST occurrence.

`dst_repeat` ``auto`` allows repeats only when the cron's hour field is exactly ``*`` (an hourly
job keeps running through the repeated hour; a daily 01:30 job runs once).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

from core.cronexpr import CronSpec, matches, next_wall_time, parse_cron
from core.errors import FieldError
from core.timezones import (
    PROBE_STEP,
    UTC,
    from_wall,
    is_ambiguous,
    load_zone,
    next_transition,
    require_aware,
    to_wall,
)

# Bounded search: next_fire gives up (returns None) when no fire exists this far ahead.
SEARCH_HORIZON = timedelta(days=5 * 366)
_SECOND = timedelta(seconds=1)


class ScheduleType(StrEnum):
    CRON = "cron"
    INTERVAL = "interval"
    ONCE = "once"
    IMMEDIATE = "immediate"


class DstGap(StrEnum):
    SHIFT = "shift"  # a non-existent local time fires at the end of the gap
    SKIP = "skip"  # ... or not at all


class DstRepeat(StrEnum):
    AUTO = "auto"  # TWICE when the cron hour field is exactly "*", else ONCE
    ONCE = "once"  # a repeated local time fires at its first occurrence only
    TWICE = "twice"  # ... or at both occurrences


@dataclass(frozen=True)
class Rule:
    """When a schedule fires. Datetimes must be aware (UTC); validate with `validate_rule`."""

    schedule_type: ScheduleType
    timezone: str = "UTC"
    cron_expression: str | None = None
    interval_seconds: int | None = None
    run_at: datetime | None = None  # aware UTC; the single fire of once/immediate
    start_at: datetime | None = None  # aware UTC; no fire before it; interval anchor
    end_at: datetime | None = None  # aware UTC; no fire after it (inclusive)
    dst_gap: DstGap = DstGap.SHIFT
    dst_repeat: DstRepeat = DstRepeat.AUTO
    hash_key: str = ""  # chooses the values of a cron's H fields: the schedule's id


@dataclass(frozen=True)
class _Compiled:
    kind: ScheduleType
    zone: ZoneInfo
    spec: CronSpec | None
    gap_shift: bool
    allow_repeat: bool
    step: timedelta | None
    run_at: datetime | None
    start: datetime | None
    end: datetime | None


@lru_cache(maxsize=4096)
def _compile(rule: Rule) -> _Compiled:
    """Parse and normalize a rule once (rules are immutable, and next_fire is hot)."""
    kind = ScheduleType(rule.schedule_type)
    spec = None
    step = None
    if kind is ScheduleType.CRON:
        if not rule.cron_expression:
            raise ValueError("cron schedules need a cron_expression")
        spec = parse_cron(rule.cron_expression, rule.hash_key)
    elif kind is ScheduleType.INTERVAL:
        if not _is_int(rule.interval_seconds) or rule.interval_seconds <= 0:  # type: ignore[operator]
            raise ValueError("interval schedules need a positive interval_seconds")
        if rule.start_at is None:
            raise ValueError("interval schedules need start_at (the anchor of the first fire)")
        step = timedelta(seconds=rule.interval_seconds)  # type: ignore[arg-type]
    repeat = DstRepeat(rule.dst_repeat)
    allow_repeat = repeat is DstRepeat.TWICE or (
        repeat is DstRepeat.AUTO and spec is not None and spec.hour_is_wildcard
    )
    aware = lambda v, n: None if v is None else require_aware(v, n)  # noqa: E731
    return _Compiled(
        kind=kind,
        zone=load_zone(rule.timezone),
        spec=spec,
        gap_shift=DstGap(rule.dst_gap) is DstGap.SHIFT,
        allow_repeat=allow_repeat,
        step=step,
        run_at=aware(rule.run_at, "run_at"),
        start=aware(rule.start_at, "start_at"),
        end=aware(rule.end_at, "end_at"),
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def next_fire(rule: Rule, after: datetime) -> datetime | None:
    """First fire instant STRICTLY after `after` (aware), within [start_at, end_at]; else None.

    Cron searches at most `SEARCH_HORIZON` (5 years) ahead so it always terminates.
    """
    c = _compile(rule)
    after = require_aware(after, "after")
    try:
        return _next_fire(c, after)
    except OverflowError:  # beyond datetime.max: there is no next fire
        return None


def _next_fire(c: _Compiled, after: datetime) -> datetime | None:
    if c.kind is ScheduleType.CRON:
        # Cron fires are whole seconds: the first candidate is the next whole second.
        t = after.replace(microsecond=0) + _SECOND
        if c.start is not None and c.start > t:
            t = c.start if not c.start.microsecond else c.start.replace(microsecond=0) + _SECOND
        horizon = t + SEARCH_HORIZON
        if c.end is not None and c.end < horizon:
            horizon = c.end
        return _cron_first_at_or_after(c, t, horizon) if t <= horizon else None
    if c.kind is ScheduleType.INTERVAL:
        assert c.start is not None and c.step is not None
        # Fixed rate, no drift: start + k*step with k >= 0, computed arithmetically.
        if after < c.start:
            candidate = c.start
        else:
            candidate = c.start + ((after - c.start) // c.step + 1) * c.step
    else:  # once / immediate: the single run_at
        candidate = c.run_at
        if candidate is None or candidate <= after:
            return None
        if c.start is not None and candidate < c.start:
            return None
    if c.end is not None and candidate > c.end:
        return None
    return candidate


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    return instant.astimezone(zone).utcoffset()  # type: ignore[return-value]


def _cron_first_at_or_after(c: _Compiled, t: datetime, horizon: datetime) -> datetime | None:
    """First cron fire instant >= t (whole seconds, UTC) and <= horizon; see module docstring."""
    zone, spec = c.zone, c.spec
    assert spec is not None
    o = _offset(zone, t)
    # If t is exactly a spring-forward transition, gap wall times shifted onto t must fire at t:
    # the segment loop below would start at the post-gap wall time and never see them.
    if c.gap_shift:
        o_before = _offset(zone, t - _SECOND)
        if o_before < o:
            w = next_wall_time(spec, to_wall(t, o_before))
            if w is not None and w < to_wall(t, o):
                return t
    while True:
        w = next_wall_time(spec, to_wall(t, o))
        if w is None:
            return None
        cand = from_wall(w, o)
        local = cand.astimezone(zone)
        # Fast path: same offset and within one probe step => no transition in between
        # (timezones.PROBE_STEP assumption). Otherwise look for the segment end up to cand.
        if cand - t <= PROBE_STEP and local.utcoffset() == o:
            end = None
        else:
            end = next_transition(zone, t, until=min(cand, horizon))
            if end is None and cand > horizon:
                return None
        if end is None:  # cand lies inside the current segment
            if local.fold and not c.allow_repeat:
                # Second occurrence of a repeated wall time: jump past the repeated range.
                first = w.replace(tzinfo=zone, fold=0).astimezone(UTC)
                entered = next_transition(zone, first, until=cand) or cand
                t = entered + (cand - first)
                if t > horizon:
                    return None
                continue
            return cand if cand <= horizon else None
        o_new = _offset(zone, end)
        if o_new > o:  # spring forward: walls in [end+o, end+o_new) do not exist
            if c.gap_shift and w < to_wall(end, o_new):
                return end
            t = end
        else:  # fall back by (o - o_new): the next segment repeats that much wall time
            t = end if c.allow_repeat else end + (o - o_new)
        o = o_new
        if t > horizon:
            return None


def fires_between(rule: Rule, after: datetime, until: datetime, limit: int) -> list[datetime]:
    """Fires in (after, until], ascending, at most `limit` of them."""
    until = require_aware(until, "until")
    out: list[datetime] = []
    t = after
    while len(out) < limit:
        f = next_fire(rule, t)
        if f is None or f > until:
            break
        out.append(f)
        t = f
    return out


@dataclass(frozen=True)
class FirePreview:
    at_utc: datetime  # the fire instant, UTC
    local_time: datetime  # the same instant in the rule's zone (aware)
    note: str | None  # set when DST shifted or repeated this fire


def preview(rule: Rule, after: datetime, count: int, until: datetime | None = None) -> list[FirePreview]:
    """The first `count` fires strictly after `after` (and not after `until`), with local time and DST notes."""
    c = _compile(rule)
    out: list[FirePreview] = []
    t = after
    for _ in range(max(count, 0)):
        f = next_fire(rule, t)
        if f is None or (until is not None and f > until):
            break
        local = f.astimezone(c.zone)
        note = _dst_note(c, f, local) if c.spec is not None else None
        out.append(FirePreview(at_utc=f, local_time=local, note=note))
        t = f
    return out


def _dst_note(c: _Compiled, f: datetime, local: datetime) -> str | None:
    assert c.spec is not None
    wall = local.replace(tzinfo=None, fold=0)
    fmt = (lambda d: d.strftime("%H:%M:%S")) if c.spec.has_seconds else (lambda d: d.strftime("%H:%M"))
    o_before = _offset(c.zone, f - _SECOND)
    if o_before < local.utcoffset():  # f is a spring-forward transition instant
        gap_wall = next_wall_time(c.spec, to_wall(f, o_before))
        if gap_wall is not None and gap_wall < wall:
            note = (
                f"{fmt(gap_wall)} does not exist on {gap_wall.date().isoformat()} (DST gap): "
                f"shifted to {fmt(wall)} {local.tzname()}"
            )
            if matches(c.spec, wall):
                note += f" (merged with the regular {fmt(wall)} run)"
            return note
    if is_ambiguous(c.zone, wall):
        which = "second occurrence" if local.fold else "first occurrence"
        suffix = "" if c.allow_repeat else " only"
        return f"{fmt(wall)} occurs twice (DST ends): {which}{suffix}"
    return None


def jitter_offset_seconds(schedule_key: str, slot: datetime, jitter_seconds: int) -> float:
    """Deterministic delay in [0, jitter_seconds) seconds for one slot of one schedule.

    A hash of (key, slot instant in UTC) spreads schedules sharing a slot; the same inputs always
    give the same offset, so a retried tick computes the same due time.
    """
    if jitter_seconds <= 0:
        return 0.0
    slot_utc = require_aware(slot, "slot")
    digest = hashlib.blake2b(f"{schedule_key}|{slot_utc.isoformat()}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * jitter_seconds


# ---------------------------------------------------------------- validation

_ALL_TYPES = ", ".join(t.value for t in ScheduleType)


def validate_rule(rule: Rule, now: datetime, lookahead_days: int) -> list[FieldError]:
    """Every problem with `rule` as FieldErrors (empty list = valid). `now` must be aware."""
    now = require_aware(now, "now")
    errors: list[FieldError] = []
    horizon = timedelta(days=lookahead_days)

    kind = _check_vocabularies(rule, errors)
    dates = _check_dates(rule, errors)
    run_at, start_at, end_at = dates["run_at"], dates["start_at"], dates["end_at"]
    if kind is not None:
        _check_fields_fit_the_type(rule, kind, errors)
    _check_type_requirements(rule, kind, run_at, now, lookahead_days, errors)
    if start_at is not None and end_at is not None and end_at <= start_at:
        errors.append(FieldError("end_at", "must be after start_at"))

    # Reachability checks need an otherwise valid rule.
    if errors or kind not in (ScheduleType.CRON, ScheduleType.INTERVAL):
        return errors
    _check_reachable(rule, kind, now, start_at, end_at, horizon, lookahead_days, errors)
    return errors


def _check_vocabularies(rule: Rule, errors: list[FieldError]) -> ScheduleType | None:
    """Checks schedule_type, timezone, dst_gap and dst_repeat; returns the schedule type, or None when unknown."""
    try:
        kind: ScheduleType | None = ScheduleType(rule.schedule_type)
    except ValueError:
        kind = None
        errors.append(
            FieldError("schedule_type", f"unknown schedule type {rule.schedule_type!r}; use one of {_ALL_TYPES}")
        )
    try:
        load_zone(rule.timezone)
    except ValueError:
        errors.append(FieldError("timezone", f"unknown time zone {rule.timezone!r}"))
    for name, enum in (("dst_gap", DstGap), ("dst_repeat", DstRepeat)):
        try:
            enum(getattr(rule, name))
        except ValueError:
            choices = ", ".join(e.value for e in enum)
            errors.append(FieldError(name, f"unknown value {getattr(rule, name)!r}; use one of {choices}"))
    return kind


def _check_dates(rule: Rule, errors: list[FieldError]) -> dict[str, datetime | None]:
    """run_at, start_at and end_at by name; one that is not an aware datetime is an error and None here."""
    dates: dict[str, datetime | None] = {}
    for name in ("run_at", "start_at", "end_at"):
        value = getattr(rule, name)
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
            errors.append(FieldError(name, "must be a timezone-aware (UTC) datetime"))
            value = None
        dates[name] = value
    return dates


def _check_fields_fit_the_type(rule: Rule, kind: ScheduleType, errors: list[FieldError]) -> None:
    """Rule fields that belong to another schedule type are errors."""
    if kind is not ScheduleType.CRON and rule.cron_expression is not None:
        errors.append(FieldError("cron_expression", "only valid for cron schedules"))
    if kind is not ScheduleType.INTERVAL and rule.interval_seconds is not None:
        errors.append(FieldError("interval_seconds", "only valid for interval schedules"))
    if kind in (ScheduleType.CRON, ScheduleType.INTERVAL) and rule.run_at is not None:
        errors.append(FieldError("run_at", "only valid for once and immediate schedules"))
    if kind in (ScheduleType.ONCE, ScheduleType.IMMEDIATE):
        for name in ("start_at", "end_at"):
            if getattr(rule, name) is not None:
                errors.append(FieldError(name, "only valid for cron and interval schedules"))


def _check_type_requirements(
    rule: Rule,
    kind: ScheduleType | None,
    run_at: datetime | None,
    now: datetime,
    lookahead_days: int,
    errors: list[FieldError],
) -> None:
    """The fields each schedule type requires, and their ranges."""
    err = lambda f, m: errors.append(FieldError(f, m))  # noqa: E731
    if kind is ScheduleType.CRON:
        if not rule.cron_expression:
            err("cron_expression", "required for cron schedules")
        else:
            try:
                parse_cron(rule.cron_expression)
            except ValueError as exc:
                err("cron_expression", str(exc))
    elif kind is ScheduleType.INTERVAL:
        seconds = rule.interval_seconds
        if seconds is None:
            err("interval_seconds", "required for interval schedules")
        elif not _is_int(seconds):
            err("interval_seconds", "must be a whole number of seconds")
        elif seconds <= 0:
            err("interval_seconds", "must be greater than 0")
        elif seconds > lookahead_days * 86400:
            err("interval_seconds", f"must be at most {lookahead_days} days ({lookahead_days * 86400} s)")
        if rule.start_at is None:
            err("start_at", "required for interval schedules (the anchor of the first run)")
    elif kind is ScheduleType.ONCE:
        if rule.run_at is None:
            err("run_at", "required for once schedules")
        elif run_at is not None and run_at < now:
            err("run_at", "must not be in the past")
        elif run_at is not None and run_at > now + timedelta(days=lookahead_days):
            err("run_at", f"must be within the next {lookahead_days} days")


def _check_reachable(
    rule: Rule,
    kind: ScheduleType,
    now: datetime,
    start_at: datetime | None,
    end_at: datetime | None,
    horizon: timedelta,
    lookahead_days: int,
    errors: list[FieldError],
) -> None:
    """A valid cron or interval rule fires within the horizon, and before end_at when it has one."""
    base = max(now, start_at) if start_at is not None else now
    first = next_fire(rule, base - timedelta(microseconds=1))
    if kind is ScheduleType.CRON:
        open_rule = Rule(**{**rule.__dict__, "end_at": None})
        first_open = next_fire(open_rule, base - timedelta(microseconds=1))
        if first_open is None or first_open > base + horizon:
            errors.append(FieldError("cron_expression", f"never fires within {lookahead_days} days"))
            return
    if end_at is not None and first is None:
        errors.append(FieldError("end_at", "the schedule never fires before end_at"))
