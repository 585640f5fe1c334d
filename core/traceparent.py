"""W3C Trace Context `traceparent` values (https://www.w3.org/TR/trace-context/), as pure functions.

This module owns the header's name, its validation and the spans a run's published command names:
`version-traceid-parentid-flags`, lowercase hex, version `00`. A run carries the traceparent of the
request that created or triggered it (`executions.traceparent`); a run without one (a scheduled slot)
starts its own trace, whose trace id is the execution id. The run's span id is derived from the
execution id and the attempt, so every attempt is its own span and the same attempt names the same span.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass

HEADER = "traceparent"
_FORMAT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
SAMPLED = "01"


@dataclass(frozen=True)
class TraceParent:
    trace_id: str  # 32 lowercase hex digits, not all zero
    span_id: str  # 16 lowercase hex digits, not all zero: the parent span
    flags: str = SAMPLED

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def parse(value: str | None) -> TraceParent | None:
    """The traceparent of a header value, or None when it is absent or invalid (an invalid one is
    ignored, as the specification asks). Versions above 00 are read by their first four fields."""
    if not value:
        return None
    found = _FORMAT.match(value.strip().lower())
    if found is None:
        return None
    version, trace_id, span_id, flags, rest = found.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceParent(trace_id, span_id, flags)


def normalized(value: str | None) -> str | None:
    """The header as it is stored with a run (version 00), or None when absent or invalid."""
    parsed = parse(value)
    return parsed.header() if parsed else None


def run_span_id(execution_id: uuid.UUID, attempt: int) -> str:
    """The span id of one attempt of a run: 16 hex digits, never all zero."""
    digest = hashlib.sha256(f"{execution_id}:{attempt}".encode()).hexdigest()[:16]
    return digest if digest != _ZERO_SPAN else "0" * 15 + "1"


def for_run(stored: str | None, execution_id: uuid.UUID, attempt: int) -> TraceParent:
    """The traceparent a run's command carries: the stored request's trace (a new trace named by the
    execution id when there is none), with the attempt's own span as parent."""
    parent = parse(stored)
    trace_id = parent.trace_id if parent else execution_id.hex
    flags = parent.flags if parent else SAMPLED
    return TraceParent(trace_id, run_span_id(execution_id, attempt), flags)
