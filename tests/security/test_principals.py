"""One resolution of the acting principal for every door: the header orders per operation (REST's
are the reference), case-insensitive header names, and the NATS door answering with the shared
problem document."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from starlette.datastructures import Headers

from api import nats_commands
from core.errors import ValidationFailed
from services.principals import PRINCIPAL_HEADERS, HeaderMap, named_principal, resolve_principal
from services.problems import problem, problem_of, status_of
from tests.support.http import cron_body

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)


def test_rest_header_orders_are_the_reference():
    assert PRINCIPAL_HEADERS["read"] == ()
    assert PRINCIPAL_HEADERS["create"] == ("X-Created-By", "X-Performed-By")
    assert PRINCIPAL_HEADERS["update"] == ("X-Updated-By", "X-Performed-By", "X-Created-By")
    assert PRINCIPAL_HEADERS["delete"] == ("X-Deleted-By", "X-Performed-By")
    assert PRINCIPAL_HEADERS["pause"] == ("X-Paused-By", "X-Performed-By")
    assert PRINCIPAL_HEADERS["resume"] == ("X-Resumed-By", "X-Performed-By")
    assert PRINCIPAL_HEADERS["trigger"] == ("X-Triggered-By", "X-Performed-By")
    assert PRINCIPAL_HEADERS["perform"] == ("X-Performed-By",)
    assert PRINCIPAL_HEADERS["request"][0] == "X-Performed-By"


def test_the_first_header_of_the_order_wins_whatever_the_case():
    pairs = {"x-performed-by": "perry", "X-CREATED-BY": "cora"}
    for headers in (HeaderMap(pairs), Headers(pairs)):
        assert named_principal(headers, PRINCIPAL_HEADERS["create"]) == ("cora", "X-Created-By")
        assert named_principal(headers, PRINCIPAL_HEADERS["delete"]) == ("perry", "X-Performed-By")
        assert named_principal(headers, PRINCIPAL_HEADERS["read"]) == (None, "X-Performed-By")


def test_a_malformed_name_is_refused_under_its_header():
    with pytest.raises(ValidationFailed) as refused:
        named_principal(HeaderMap({"X-Paused-By": "<script>"}), PRINCIPAL_HEADERS["pause"])
    assert refused.value.errors[0].field == "X-Paused-By"


def test_header_map_keeps_strings_only():
    headers = HeaderMap({"Authorization": {"not": "a string"}, "X-API-Key": "sk_x"})
    assert headers.get("authorization") is None and headers.get("x-api-key") == "sk_x"


async def test_without_authentication_the_named_principal_acts_as_admin():
    actor = await resolve_principal(
        HeaderMap({"X-Triggered-By": "tina"}), PRINCIPAL_HEADERS["trigger"], None, False, "corr-1"
    )
    assert (actor.name, actor.role.value, actor.correlation_id) == ("tina", "admin", "corr-1")
    nobody = await resolve_principal(HeaderMap({}), PRINCIPAL_HEADERS["trigger"], None, False, "corr-2")
    assert nobody.name == "anonymous"


def test_problem_documents_have_one_shape():
    error = ValidationFailed.single("name", "is required")
    assert status_of(error) == 422
    assert problem_of(error, "c") == {
        "type": "https://scheduler-service/problems/validation_error",
        "title": "Validation failed",
        "status": 422,
        "detail": "name: is required",
        "code": "validation_error",
        "errors": [{"field": "name", "message": "is required"}],
        "correlation_id": "c",
    }
    assert list(problem(500, "x", "X", "d")) == list(problem_of(error))


class _Service:
    def __init__(self) -> None:
        self.actors = []

    async def create(self, body, actor, now):
        self.actors.append(actor)
        return SimpleNamespace(model_dump=lambda mode: {"name": body.name})


async def _command(operation: str, body: dict, headers: dict, service=None) -> tuple[int, dict]:
    subject = f"{nats_commands.SUBJECT_PREFIX}schedule.{operation}"
    status, reply = await nats_commands.handle(
        service or _Service(), subject, json.dumps(body).encode(), headers, NOW, None, False
    )
    return status, json.loads(reply) if reply else None


async def test_a_nats_command_names_its_principal_in_the_rest_order():
    service = _Service()
    headers = {"x-performed-by": "perry", "X-Updated-By": "ursula", "X-Created-By": "cora"}
    status, reply = await _command("create", cron_body(), headers, service)
    assert status == 201 and reply["name"] == cron_body()["name"]
    assert service.actors[0].name == "cora"
    await _command("create", cron_body(), {"X-Updated-By": "ursula", "X-Performed-By": "perry"}, service)
    assert service.actors[1].name == "perry"


async def test_a_nats_refusal_is_the_shared_problem_document():
    status, reply = await _command("create", cron_body(), {"X-Created-By": "bad<name>", "X-Correlation-ID": "c-9"})
    assert status == 422 and reply == problem_of(
        ValidationFailed.single("X-Created-By", "must be 1-255 letters, digits or . _ @ : + - / characters"), "c-9"
    )
    status, reply = await _command("nope", {}, {})
    assert status == 422 and reply["errors"][0]["field"] == "subject"
