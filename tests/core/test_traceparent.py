"""W3C traceparent parsing and the spans a run's command names (core.traceparent)."""

from __future__ import annotations

import uuid

import pytest

from core.traceparent import TraceParent, for_run, normalized, parse, run_span_id

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_header_is_parsed_and_written_back_unchanged():
    parsed = parse(VALID)
    assert parsed == TraceParent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01")
    assert parsed.header() == VALID
    assert normalized("  " + VALID.upper() + " ") == VALID


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero span id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # version 00 has four fields
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace id
    ],
)
def test_an_invalid_header_is_ignored(value):
    assert parse(value) is None
    assert normalized(value) is None


def test_a_later_version_is_read_by_its_first_four_fields():
    assert normalized("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future") == VALID


def test_a_run_with_a_request_keeps_its_trace_and_names_its_own_span():
    execution_id = uuid.uuid4()
    first = for_run(VALID, execution_id, 1)
    assert first.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert first.span_id not in ("00f067aa0ba902b7", "0" * 16)
    assert first.span_id == run_span_id(execution_id, 1)
    assert for_run(VALID, execution_id, 2).span_id != first.span_id  # each attempt is its own span
    assert parse(first.header()) == first


def test_a_run_without_a_request_starts_a_trace_named_by_its_execution_id():
    execution_id = uuid.uuid4()
    mine = for_run(None, execution_id, 1)
    assert mine.trace_id == execution_id.hex
    assert mine.flags == "01"
    assert for_run(None, uuid.uuid4(), 1).trace_id != mine.trace_id
