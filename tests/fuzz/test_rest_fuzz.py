"""Property-based fuzzing of every REST operation in the app's own OpenAPI description (schemathesis).

The spec is loaded from the running server's /openapi.json. For each operation, schemathesis
generates positive (schema-valid) and negative (schema-violating) requests, sends them over real
HTTP with a per-request timeout, and checks each response:

* not_a_server_error           no 5xx;
* status_code_conformance      the status is one the operation documents (see `_status_code_conformance`);
* content_type_conformance     the Content-Type is the documented one for that status;
* response_schema_conformance  the body validates against the documented schema (problem+json for 4xx).

Part of the positive cases use ids of schedules and executions that exist, so that the handlers'
real logic runs rather than a 404 on a random UUID. Every operation gets its own fixed Hypothesis
seed (stable across runs, different between operations). All failures are collected and reported
together; the test also asserts how many cases ran, so that it cannot silently test nothing.
"""

from __future__ import annotations

import json
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.fuzz import FuzzServer, seed_backfills_and_calendars, seed_data

PROBLEM = "application/problem+json"
REQUEST_TIMEOUT_SECONDS = 10.0  # a response slower than this is a hang: the case fails
POSITIVE_EXAMPLES = 150  # per operation
NEGATIVE_EXAMPLES = 100  # per operation (operations without inputs have no negative cases)
MIN_TOTAL_CASES = 2000
BASE_SEED = 20240611
# Served by the GraphQL router, which FastAPI lists in the OpenAPI document with no request or response
# description (a bare `200`); tests/fuzz/test_graphql_fuzz.py fuzzes it from its GraphQL schema instead.
NOT_REST = {"/graphql"}
# DELETE removes the schedules the other operations are pointed at: it runs last.
RUN_LAST = ("DELETE /api/v1/schedules/{schedule_id}",)


def _status_code_conformance(ctx, response, case):
    """status_code_conformance, except for the 400 that FastAPI answers when it cannot read a JSON body
    at all (bytes that are not UTF-8, e.g. `curl -d $'\\xff' -H 'Content-Type: application/json'`).

    The service answers it as a well-formed problem (`code: http_error`, `errors: [{field: body}]`), but
    api/problems.py PROBLEM_RESPONSES does not document 400, so the plain check reports "undocumented
    status code". That is a documentation gap, not a crash (see the proposed PROBLEM_RESPONSES patch in
    the report); until it lands, such a 400 passes here only if it is exactly that problem. Once 400 is
    documented, the plain check (and response_schema_conformance) judge it and this branch is unused.
    """
    documented = case.operation.definition.raw.get("responses", {})
    if response.status_code == 400 and "400" not in documented:
        assert _is_problem(response, 400), f"400 that is not a problem+json body: {response.text[:500]!r}"
        return True
    return status_code_conformance(ctx, response, case)


CHECKS = [not_a_server_error, _status_code_conformance, content_type_conformance, response_schema_conformance]


def _is_problem(response, status: int) -> bool:
    if not (response.headers.get("content-type") or [""])[0].startswith(PROBLEM):
        return False
    body = json.loads(response.content)
    return (
        body.get("status") == status
        and isinstance(body.get("code"), str)
        and isinstance(body.get("errors"), list)
        and all(isinstance(e, dict) and {"field", "message"} <= e.keys() for e in body["errors"])
    )


@dataclass
class Tally:
    cases: Counter = field(default_factory=Counter)  # (operation, mode) -> cases sent
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.cases.values())


# The OpenAPI schema cannot say that a cron schedule needs `cron_expression`, an interval one
# `interval_seconds`, ..., nor which strings are valid cron expressions or time zones: almost every
# purely generated schedule body is rejected with 422. Part of the positive cases therefore keep the
# generated body but replace its timing fields by one of these consistent rules, so that creation,
# preview and update run past validation with the other fields (name, tags, payload, retries...) fuzzed.
RULE_FIELDS = (
    "target_command",
    "schedule_type",
    "cron_expression",
    "interval_seconds",
    "run_at",
    "timezone",
    "start_at",
    "end_at",
)
RULES = [
    {"schedule_type": "cron", "cron_expression": "*/10 * * * *"},
    {"schedule_type": "cron", "cron_expression": "30 2 * * 1-5", "timezone": "America/New_York"},
    {"schedule_type": "interval", "interval_seconds": 3600},
    {"schedule_type": "immediate"},
]
REPAIRED = {"POST /api/v1/schedules", "POST /api/v1/schedules/preview", "PUT /api/v1/schedules/{schedule_id}"}


def _repair(case, rule: dict):
    if isinstance(case.body, dict):
        body = {k: v for k, v in case.body.items() if k not in RULE_FIELDS and k != "version"}
        # COMMAND_WHITELIST defaults to `cmd.>`
        case.body = {**body, **rule, **({"target_command": "cmd.fuzz.run"} if rule else {})}
    return case


def _repaired(operation, mode: GenerationMode, **kwargs):
    rules = st.sampled_from(RULES + [{}]) if operation.method.upper() == "PUT" else st.sampled_from(RULES)
    return st.builds(_repair, operation.as_strategy(generation_mode=mode, **kwargs), rules)


def _strategy(operation, mode: GenerationMode, known: dict[str, list[str]], schema):
    """Generated cases. In positive mode, part of them aim their id path parameters at existing rows
    and part of the schedule bodies get consistent timing fields (see RULES)."""
    strategies = [operation.as_strategy(generation_mode=mode)]
    if mode is not GenerationMode.POSITIVE:
        return strategies[0]
    path_names = {p.name for p in operation.path_parameters}
    aim = path_names and path_names <= known.keys()
    existing = st.fixed_dictionaries({name: st.sampled_from(known[name]) for name in sorted(path_names & known.keys())})
    if aim:
        strategies.append(
            existing.flatmap(lambda ids: operation.as_strategy(generation_mode=mode, path_parameters=ids))
        )
    if operation.label in REPAIRED:
        if aim:
            strategies.append(existing.flatmap(lambda ids: _repaired(operation, mode, path_parameters=ids)))
        else:
            strategies.append(_repaired(operation, mode))
    if operation.label == "POST /api/v1/schedules/bulk/create":
        bodies = _repaired(schema["/api/v1/schedules"]["POST"], mode).map(lambda case: case.body)
        strategies.append(
            st.lists(bodies, min_size=1, max_size=3).flatmap(
                lambda items: operation.as_strategy(generation_mode=mode, body={"schedules": items})
            )
        )
    return st.one_of(strategies)


def _has_inputs(operation) -> bool:
    return bool(list(operation.iter_parameters())) or bool(list(operation.body))


def _fuzz_operation(
    operation,
    mode: GenerationMode,
    max_examples: int,
    base_url: str,
    session: requests.Session,
    known: dict[str, list[str]],
    tally: Tally,
) -> None:
    label = operation.label

    @hypothesis.seed(BASE_SEED + zlib.crc32(f"{label} {mode.value}".encode()))
    @hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=False,  # the explicit per-operation seed above makes the run reproducible
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        print_blob=True,
    )
    @given(case=_strategy(operation, mode, known, operation.schema))
    def run(case) -> None:
        tally.cases[(label, mode.value)] += 1
        response = case.call_and_validate(
            base_url=base_url, session=session, checks=CHECKS, timeout=REQUEST_TIMEOUT_SECONDS
        )
        tally.statuses[response.status_code] += 1

    try:
        run()
    except (Exception, BaseExceptionGroup) as error:  # schemathesis raises a FailureGroup (a BaseExceptionGroup)
        tally.failures.append(f"{label} [{mode.value}]: {type(error).__name__}: {error}")


def test_every_rest_operation_survives_fuzzing(fuzz_server: FuzzServer) -> None:
    started = time.monotonic()
    schema = schemathesis.openapi.from_url(f"{fuzz_server.base_url}/openapi.json", timeout=REQUEST_TIMEOUT_SECONDS)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if op.path not in NOT_REST]
    operations.sort(key=lambda op: op.label in RUN_LAST)
    assert len(operations) >= 20, [op.label for op in operations]

    schedule_ids, execution_ids = seed_data(fuzz_server.base_url, "rest")
    known = {"schedule_id": schedule_ids, "execution_id": execution_ids}
    known |= seed_backfills_and_calendars(fuzz_server.base_url, schedule_ids)
    tally = Tally()
    with requests.Session() as session:
        for operation in operations:
            _fuzz_operation(
                operation, GenerationMode.POSITIVE, POSITIVE_EXAMPLES, fuzz_server.base_url, session, known, tally
            )
            if _has_inputs(operation):
                _fuzz_operation(
                    operation, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, fuzz_server.base_url, session, known, tally
                )
    elapsed = time.monotonic() - started

    print(
        f"\nREST fuzz (schemathesis {schemathesis.__version__}): {tally.total} cases over {len(operations)} "
        f"operations in {elapsed:.1f}s"
    )
    for (label, mode), count in sorted(tally.cases.items()):
        print(f"  {count:5d}  {mode:8s} {label}")
    print("  statuses:", dict(sorted(tally.statuses.items())))

    unhandled = [line for line in fuzz_server.log_text().splitlines() if "unhandled error" in line]
    assert not tally.failures, "\n\n".join(tally.failures)
    assert not unhandled, "the API logged unhandled errors:\n" + "\n".join(unhandled[:20])
    assert tally.total >= MIN_TOTAL_CASES, f"only {tally.total} REST cases ran"
    every = {op.label for op in operations}
    assert {label for label, _ in tally.cases} == every, "some operations ran no case"
