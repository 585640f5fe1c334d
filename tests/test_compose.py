"""docker-compose.yml, Dockerfile and .dockerignore, checked without a Docker engine.

The structure (every service has an image or a build, health checks where others wait on them, ports on
127.0.0.1 only, a scalable worker, valid depends_on conditions) and that every command the containers
run exists in this project: `python -m X` resolves to a module or package here, `dramatiq`/`periodiq`
are installed next to this interpreter, and the modules they load are packages of the repository.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
APP_SERVICES = {"migrate", "api", "ticker", "worker", "housekeeping"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def argv(value) -> list[str]:
    """A compose `command`/`test` as a list of words (string form split like a shell would)."""
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(word) for word in value]


def health_words(service: dict) -> list[str]:
    test = argv(service["healthcheck"]["test"])
    if test and test[0] in ("CMD", "CMD-SHELL"):
        words = test[1:]
        return shlex.split(" ".join(words)) if test[0] == "CMD-SHELL" else words
    return test


def module_exists(dotted: str) -> bool:
    """A module or package of the repository (not of site-packages: the image runs from /app)."""
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def runnable_module(dotted: str) -> bool:
    """What `python -m dotted` runs: a module file, or a package with __main__.py."""
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()


def test_expected_services(services):
    assert {"postgres", "redis", "nats", *APP_SERVICES} <= set(services)


def test_every_service_has_an_image_or_a_build(services):
    for name, service in services.items():
        assert service.get("image") or service.get("build"), name
    assert services["postgres"]["image"].split(":")[1].startswith("15")
    assert services["redis"]["image"].split(":")[1].startswith("7")
    for name in APP_SERVICES:
        assert services[name].get("build") == ".", name


def test_ports_bound_to_loopback_only(services):
    for name, service in services.items():
        for port in service.get("ports", []):
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", (name, port)
            else:
                assert str(port).startswith("127.0.0.1:"), (name, port)
                assert len(re.sub(r"\$\{[^}]*\}", "X", str(port)).split(":")) == 3, (name, port)
    assert any(p.endswith(":8008") for p in services["api"]["ports"])


def test_worker_scales(services):
    worker = services["worker"]
    assert "ports" not in worker and "container_name" not in worker
    assert worker["environment"]["dramatiq_worker_timeout"] == "20"
    assert argv(worker["command"]) == [
        "python",
        "-m",
        "runtime.worker",
        "actors",
        "housekeeping",
        "-p",
        "1",
        "-t",
        "16",
    ]


def test_health_checks(services):
    assert health_words(services["postgres"])[0] == "pg_isready"
    assert health_words(services["redis"])[:2] == ["redis-cli", "ping"]
    nats = " ".join(health_words(services["nats"]))
    assert "/healthz" in nats
    monitor = argv(services["nats"]["command"])
    assert "-m" in monitor and monitor[monitor.index("-m") + 1] in nats
    assert "/ready" in " ".join(health_words(services["api"]))
    for service in services.values():
        if "healthcheck" in service:
            assert service["healthcheck"].get("interval") and service["healthcheck"].get("retries"), service


def test_depends_on_conditions(services):
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: use the long form with conditions"
        for target, spec in depends.items():
            assert target in services and target != name, (name, target)
            condition = spec["condition"]
            assert condition in CONDITIONS, (name, target, condition)
            if condition == "service_healthy":
                assert "healthcheck" in services[target], (name, target)
            if condition == "service_completed_successfully":
                assert str(services[target].get("restart", "no")) == "no", (name, target)
    for name in APP_SERVICES - {"migrate"}:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_nats_has_jetstream_and_a_volume(compose, services):
    nats = services["nats"]
    assert "-js" in argv(nats["command"])
    store = argv(nats["command"])[argv(nats["command"]).index("-sd") + 1]
    volumes = [v.split(":") for v in nats["volumes"]]
    assert any(target == store and source in compose["volumes"] for source, target in volumes)


def test_app_environment(services):
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgresql+asyncpg://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:6379")
        assert env["NATS_URL"] == "nats://nats:4222"
    assert services["api"]["environment"]["API_HOST"] == "0.0.0.0"
    assert str(services["api"]["environment"]["API_PORT"]) == "8008"


def test_commands_exist_in_the_project(services):
    expected = {
        "migrate": "runtime.migrate",
        "api": "api",
        "ticker": "ticker",
        "worker": "runtime.worker",
        "housekeeping": "runtime.periodic",
    }
    for name in APP_SERVICES:
        command = argv(services[name]["command"])
        assert command[:2] == ["python", "-m"], (name, command)
        assert runnable_module(command[2]), (name, command)
        assert expected[name] == command[2]
        if name in ("worker", "housekeeping"):  # Dramatiq's and periodiq's arguments: the actor modules
            modules = [word for word in command[3:] if not word.startswith("-") and not word.isdigit()]
            assert modules, (name, command)
            for module in modules:
                assert module_exists(module), (name, module)
    assert argv(services["housekeeping"]["command"]) == ["python", "-m", "runtime.periodic", "actors", "housekeeping"]


def test_dockerfile():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", text, re.M)
    assert re.search(r"^WORKDIR /app$", text, re.M)
    assert "PYTHONPATH=/app" in text
    assert re.search(r"pip install \.( |$)", text, re.M)
    pin = re.search(r"dramatiq-dashboard==[\d.]+", (ROOT / "Makefile").read_text()).group(0)
    assert f"pip install --no-deps {pin}" in text
    # Everything it copies exists; every top-level package the service imports is copied.
    copied = set()
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), source
            copied.add(source.rstrip("/"))
    for package in (
        "core",
        "models",
        "services",
        "api",
        "gql",
        "ticker",
        "actors",
        "housekeeping",
        "runtime",
        "migrations",
        "web",
    ):
        assert package in copied, package
    assert {"pyproject.toml", "README.md", "alembic.ini"} <= copied


def test_dockerignore_keeps_local_state_out():
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".data", ".git", ".env"} <= ignored
    assert not {"core", "api", "runtime", "migrations", "pyproject.toml", "README.md"} & ignored
