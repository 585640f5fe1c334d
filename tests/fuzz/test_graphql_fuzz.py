"""Property-based fuzzing of the GraphQL API at /graphql (schemathesis + hypothesis-graphql).

The schema is introspected from the running server; every root Query and Mutation field is an
operation for which queries (with generated arguments and selections) are sent over real HTTP with a
per-request timeout. Each response must be:

* not a 5xx;
* a GraphQL response: a JSON object with `data` and/or `errors` (and nothing but those and
  `extensions`), `errors` a non-empty list of objects each with a string `message`;
* free of masked internal errors: the schema's MaskErrors extension turns any exception a resolver
  did not translate into "Unexpected error.", so that message is a bug (an unhandled exception);
* consistent with the query and schema (schemathesis's own GraphQL response validation).

Expected client errors (a validation error, an unknown id) are fine: the API reports them as GraphQL
errors with `extensions.code`, or as typed union members for mutations.
"""

from __future__ import annotations

import json
import time
import zlib
from collections import Counter

import graphql
import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.graphql import nodes

from tests.support.fuzz import FuzzServer, seed_data

REQUEST_TIMEOUT_SECONDS = 10.0
EXAMPLES = {GenerationMode.POSITIVE: 80, GenerationMode.NEGATIVE: 25}  # per operation
MIN_TOTAL_CASES = 1000
BASE_SEED = 20240612
MASKED = "Unexpected error."
TOP_LEVEL = {"data", "errors", "extensions"}


# Text as a client may send it: any code point, NUL included, now and then among plain words.
TEXT = st.one_of(st.text(max_size=20), st.sampled_from(["", "x\x00y", "\x00", "cmd.fuzz.run", "UTC", "é✓"]))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    # An object literal's keys are GraphQL names; NUL and other text go in the values.
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), inner, max_size=3)
    ),
    max_leaves=8,
)
# Offsets matter: 0001-01-01T00:00+01:00 is a valid datetime that is out of PostgreSQL's range in UTC.
DATETIMES = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(
        ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2030-01-01T00:00:00", "2030-03-31T02:30:00+02:00"]
    ),
)


def _register_scalars(schedule_ids: list[str], execution_ids: list[str]) -> None:
    """Strategies for the schema's custom scalars: existing ids half of the time (so that mutations reach
    the database), offsets on datetimes, any JSON (with NUL and non-ASCII text) for payloads."""
    known = st.sampled_from(schedule_ids + execution_ids)
    schemathesis.graphql.scalar("UUID", st.one_of(known, known, st.uuids().map(str)).map(nodes.String))
    schemathesis.graphql.scalar("DateTime", DATETIMES.map(nodes.String))
    schemathesis.graphql.scalar("JSON", JSON_VALUES.map(_json_node))


def _json_node(value) -> graphql.ValueNode:
    if value is None:
        return graphql.NullValueNode()
    if isinstance(value, bool):
        return graphql.BooleanValueNode(value=value)
    if isinstance(value, int):
        return graphql.IntValueNode(value=str(value))
    if isinstance(value, float):
        return graphql.FloatValueNode(value=repr(value))
    if isinstance(value, str):
        return graphql.StringValueNode(value=value)
    if isinstance(value, list):
        return graphql.ListValueNode(values=tuple(_json_node(v) for v in value))
    return graphql.ObjectValueNode(
        fields=tuple(
            graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=_json_node(v)) for k, v in value.items()
        )
    )


def assert_graphql_response(case, response) -> None:
    assert response.status_code < 500, f"{response.status_code}: {response.text[:1000]}"
    body = json.loads(response.content)
    assert isinstance(body, dict), f"not a JSON object: {response.text[:500]}"
    assert body.keys() & {"data", "errors"}, f"neither data nor errors: {body}"
    assert body.keys() <= TOP_LEVEL, f"unexpected top-level keys {sorted(body.keys() - TOP_LEVEL)}"
    if "errors" in body:
        errors = body["errors"]
        assert isinstance(errors, list) and errors, f"errors must be a non-empty list: {errors!r}"
        for error in errors:
            assert isinstance(error, dict) and isinstance(error.get("message"), str), f"malformed error {error!r}"
            assert error["message"] != MASKED, f"a resolver raised an unhandled exception (masked): {error}"
    else:
        assert isinstance(body["data"], dict), f"no errors but data is {body['data']!r}"
    if response.status_code == 200:
        # Schemathesis: the data matches the query's selections and the schema's types.
        case.operation.schema.validate_response(case.operation, response, case=case)


def _fuzz_operation(
    operation,
    mode: GenerationMode,
    max_examples: int,
    session: requests.Session,
    cases: Counter,
    statuses: Counter,
    failures: list[str],
) -> None:
    label = operation.label

    @hypothesis.seed(BASE_SEED + zlib.crc32(f"{label} {mode.value}".encode()))
    @hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        cases[(label, mode.value)] += 1
        response = case.call(session=session, timeout=REQUEST_TIMEOUT_SECONDS)
        statuses[response.status_code] += 1
        try:
            assert_graphql_response(case, response)
        except (Exception, BaseExceptionGroup) as error:  # schemathesis raises BaseExceptionGroups
            raise AssertionError(f"{error}\n\nrequest body:\n{json.dumps(case.body)[:3000]}") from None

    try:
        run()
    except (Exception, BaseExceptionGroup) as error:  # every operation runs; all failures are reported at the end
        failures.append(f"{label} [{mode.value}]: {type(error).__name__}: {error}")


def test_every_graphql_operation_survives_fuzzing(fuzz_server: FuzzServer) -> None:
    started = time.monotonic()
    schema = schemathesis.graphql.from_url(f"{fuzz_server.base_url}/graphql", timeout=REQUEST_TIMEOUT_SECONDS)
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {op.label for op in operations}
    _register_scalars(*seed_data(fuzz_server.base_url, "graphql"))
    assert {
        "Query.schedules",
        "Query.previewSchedule",
        "Mutation.createSchedule",
        "Mutation.bulkScheduleOperation",
    } <= labels

    cases: Counter = Counter()
    statuses: Counter = Counter()
    failures: list[str] = []
    with requests.Session() as session:
        for operation in operations:
            for mode, max_examples in EXAMPLES.items():
                _fuzz_operation(operation, mode, max_examples, session, cases, statuses, failures)
    elapsed = time.monotonic() - started
    total = sum(cases.values())

    print(
        f"\nGraphQL fuzz (schemathesis {schemathesis.__version__}): {total} cases over {len(operations)} "
        f"operations in {elapsed:.1f}s"
    )
    for (label, mode), count in sorted(cases.items()):
        print(f"  {count:5d}  {mode:8s} {label}")
    print("  statuses:", dict(sorted(statuses.items())))

    assert not failures, "\n\n".join(failures)
    assert total >= MIN_TOTAL_CASES, f"only {total} GraphQL cases ran"
    assert {label for label, _ in cases} == labels, "some operations ran no case"
