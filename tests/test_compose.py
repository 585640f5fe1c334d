"""docker-compose.yml, Dockerfile and .dockerignore, checked without a Docker engine.

The structure (every service has an image or a build, health checks where others wait on them, ports on
127.0.0.1 only, a scalable worker, valid depends_on conditions) and that every command the containers
run exists in this project: `python -m X` resolves to a module or package here, `dramatiq`/`periodiq`
are installed next to this interpreter, and the modules they load are packages of the repository.
The monitoring services (Prometheus, Grafana): their mounts exist in the repository and are read-only,
the files land where the configuration looks for them, and every scrape target names a compose service.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
APP_SERVICES = {"migrate", "api", "ticker", "worker", "housekeeping"}
MONITORING_SERVICES = {"prometheus", "grafana"}
PROMETHEUS_CONFIG = ROOT / "ops" / "prometheus" / "prometheus.yml"
# Scrape job -> (compose service, port); the worker's and ticker's are WORKER_METRICS_PORT, TICKER_METRICS_PORT.
SCRAPE_PORTS = {
    "scheduler-api": ("api", 8008),
    "scheduler-worker": ("worker", 9191),
    "scheduler-ticker": ("ticker", 9190),
}


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
    assert {"postgres", "redis", "nats", *APP_SERVICES, *MONITORING_SERVICES} <= set(services)


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


def host_side(port: str) -> str:
    """The host part of `127.0.0.1:HOST:CONTAINER`, a ${VAR:-default} replaced by its default."""
    host = str(port).split(":", 1)[1].rsplit(":", 1)[0]
    return re.sub(r"\$\{[^:}]*:-([^}]*)\}", lambda m: m.group(1), host)


def test_worker_scales(services):
    worker = services["worker"]
    assert "container_name" not in worker
    # Its one published port is a host range: every replica gets a port of its own.
    [port] = worker["ports"]
    first, last = (int(p) for p in host_side(port).split("-"))
    assert last - first >= 2 and str(port).endswith(":9191")
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


def test_worker_and_ticker_publish_their_metrics_port_and_probe_it():
    """Each container's metrics port is the one its process listens on, and its health check asks it."""
    from core.settings import Settings

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name, setting in (("worker", "WORKER_METRICS_PORT"), ("ticker", "TICKER_METRICS_PORT")):
        service = services[name]
        port = str(service["environment"][setting])
        assert port == str(Settings.model_fields[setting].default), (name, port)
        assert [str(p).rsplit(":", 1)[1] for p in service["ports"]] == [port], name
        assert f"http://127.0.0.1:{port}/live" in " ".join(health_words(service)), name
        assert service["environment"]["METRICS_HOST"] == "0.0.0.0", name


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


def bind_mounts(service: dict) -> list[tuple[str, str, str]]:
    """(source, target, mode) of a service's short-form volumes; mode is "" when none is given."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target, *mode = str(volume).split(":")
        mounts.append((source, target, mode[0] if mode else ""))
    return mounts


def mounted_at(service: dict, container_path: str) -> Path | None:
    """The repository path a container path of the service comes from (through a bind mount), or None."""
    for source, target, _ in bind_mounts(service):
        if source.startswith("./") and (container_path == target or container_path.startswith(target + "/")):
            return ROOT / source[2:] / container_path[len(target) :].lstrip("/")
    return None


def flag(command: list[str], name: str) -> str:
    """The value of a `--name=value` flag of a command."""
    values = [word.split("=", 1)[1] for word in command if word.startswith(f"--{name}=")]
    assert len(values) == 1, (name, command)
    return values[0]


def test_monitoring_images_ports_and_health(services):
    assert services["prometheus"]["image"].startswith("prom/prometheus:v2.")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    assert services["prometheus"]["ports"] == ["127.0.0.1:${PROMETHEUS_HOST_PORT:-9090}:9090"]
    assert services["grafana"]["ports"] == ["127.0.0.1:${GRAFANA_HOST_PORT:-3000}:3000"]
    assert "/-/ready" in " ".join(health_words(services["prometheus"]))
    assert "/api/health" in " ".join(health_words(services["grafana"]))
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    # Monitoring must not hold the application back: no app service waits for it.
    for name in APP_SERVICES:
        assert not MONITORING_SERVICES & set(services[name].get("depends_on", {})), name


def test_monitoring_mounts_exist_and_are_read_only(compose, services):
    for name in MONITORING_SERVICES:
        mounts = bind_mounts(services[name])
        assert mounts, name
        for source, target, mode in mounts:
            if source.startswith("./"):
                assert (ROOT / source[2:]).exists(), (name, source)
                assert mode == "ro", (name, source)
            else:
                assert source in compose["volumes"], (name, source)
            assert target.startswith("/"), (name, target)


def test_prometheus_loads_the_repository_config_and_rules(services):
    prometheus = services["prometheus"]
    config_path = flag(argv(prometheus["command"]), "config.file")
    assert mounted_at(prometheus, config_path) == PROMETHEUS_CONFIG
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    rule_files = config["rule_files"]
    assert rule_files
    for rule_file in rule_files:
        in_container = rule_file if rule_file.startswith("/") else f"{Path(config_path).parent}/{rule_file}"
        source = mounted_at(prometheus, in_container)
        assert source is not None and source.is_file(), rule_file
        assert source == ROOT / "ops" / "prometheus" / "rules.yml"
    # Its data is a named volume, at the storage path it is told to use.
    storage = flag(argv(prometheus["command"]), "storage.tsdb.path")
    assert any(target == storage and not src.startswith(".") for src, target, _ in bind_mounts(prometheus))


def scrape_targets(job: dict) -> list[tuple[str, int]]:
    """(host, port) of a scrape job's static targets and DNS names."""
    targets = []
    for static in job.get("static_configs", []):
        for target in static["targets"]:
            host, port = target.rsplit(":", 1)
            targets.append((host, int(port)))
    for dns in job.get("dns_sd_configs", []):
        targets.extend((name, int(dns["port"])) for name in dns["names"])
    return targets


def test_scrape_targets_name_compose_services(services):
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(SCRAPE_PORTS)
    for name, job in jobs.items():
        assert job.get("metrics_path", "/metrics") == "/metrics", name
        assert scrape_targets(job) == [SCRAPE_PORTS[name]], name
        for host, _ in scrape_targets(job):
            assert host in services, (name, host)
    assert str(services["api"]["environment"]["API_PORT"]) == str(SCRAPE_PORTS["scheduler-api"][1])
    # Scaled services are found through DNS (every container of the service), not as one static name.
    for name in ("scheduler-worker", "scheduler-ticker"):
        assert jobs[name]["dns_sd_configs"] and "static_configs" not in jobs[name], name


def test_grafana_provisioning_lands_where_grafana_reads_it(services):
    grafana = services["grafana"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert "GRAFANA_ADMIN_PASSWORD" in env["GF_SECURITY_ADMIN_PASSWORD"]
    datasources = mounted_at(grafana, "/etc/grafana/provisioning/datasources")
    providers = mounted_at(grafana, "/etc/grafana/provisioning/dashboards")
    assert datasources is not None and list(datasources.glob("*.yml")), datasources
    assert providers is not None and list(providers.glob("*.yml")), providers
    # The datasource is the compose prometheus service, on the port its container listens on.
    for path in datasources.glob("*.yml"):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            url = urlsplit(source["url"])
            assert url.hostname == "prometheus" and url.hostname in services, (path, source["url"])
            container_ports = {str(port).rsplit(":", 1)[1] for port in services[url.hostname]["ports"]}
            assert str(url.port) in container_ports, (path, source["url"])
    # Every dashboard provider reads a mounted directory that holds the repository's dashboards.
    for path in providers.glob("*.yml"):
        for provider in yaml.safe_load(path.read_text())["providers"]:
            folder = mounted_at(grafana, provider["options"]["path"])
            assert folder == ROOT / "ops" / "grafana" / "dashboards", (path, folder)
            assert list(folder.glob("*.json")), folder
    home = mounted_at(grafana, env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home is not None and home.is_file(), home
