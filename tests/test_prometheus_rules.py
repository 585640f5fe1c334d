"""ops/prometheus and ops/grafana: the alert rules, their unit tests and the dashboard.

- promtool checks the Prometheus config and the rules and runs the rule unit tests (ops/prometheus/
  tests.yml). promtool must be on PATH (Debian's `prometheus` package; `.ci/run` installs it): without
  it these tests fail, they are not skipped.
- The unit tests can fail: with every alert made to never fire, and then to always fire, promtool
  reports a failure for every alert (each has a firing case and a not-firing case).
- Every alert has a severity, a summary, a description and a runbook pointing to a section of
  docs/operations.md that exists.
- The metric names the rules and the dashboard read are ones the service exports (found in the
  source: `Counter("...")`, `Histogram("...")`, `...MetricFamily("...")`), ones announced below, `up`, or
  recorded by the rules; an alert on a metric not exported yet says so in its description.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "ops" / "prometheus"
RULES = PROMETHEUS / "rules.yml"
RULE_TESTS = PROMETHEUS / "tests.yml"
DASHBOARDS = ROOT / "ops" / "grafana" / "dashboards"
DATASOURCES = ROOT / "ops" / "grafana" / "provisioning" / "datasources"
OPERATIONS = ROOT / "docs" / "operations.md"
# Where the service defines its metrics (prometheus_client constructors, collectors' metric families).
METRIC_SOURCES = ("runtime", "api", "actors", "ticker", "services", "housekeeping")

# Metrics being added alongside these rules and not exported yet: name -> kind.
ANNOUNCED: dict[str, str] = {}
# Written by Prometheus itself for every scrape target.
SCRAPE_SERIES = {"up"}
# What a panel or rule of the dashboard must cover (metric families, by name prefix).
DASHBOARD_COVERS = {
    "schedule_fire_lag_seconds",
    "schedule_executions_total",
    "schedule_execution_duration_seconds",
    "schedule_misfires_total",
    "ticker_batch_size",
    "ticker_batch_duration_seconds",
    "http_requests_total",
    "http_request_duration_seconds",
    "up",
}

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}
_KEYWORDS |= {"inf", "nan"}


# --- helpers -----------------------------------------------------------------------------------------


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels, keywords or durations)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", text):
        if match.group(1).lower() not in _KEYWORDS:
            names.add(match.group(1))
    return names


def series_of(name: str, kind: str) -> set[str]:
    """The series names prometheus_client writes for a metric defined as `name` of `kind`."""
    if kind == "counter":
        base = name.removesuffix("_total")
        return {f"{base}_total", f"{base}_created"}
    if kind in ("histogram", "summary"):
        suffixes = ("_bucket", "_sum", "_count", "_created") if kind == "histogram" else ("_sum", "_count", "_created")
        return {name, *(name + suffix for suffix in suffixes)}
    return {name}


def exported_series() -> set[str]:
    """Every series name the service's source defines (constructors and collector metric families)."""
    kinds = {"Counter": "counter", "Histogram": "histogram", "Gauge": "gauge", "Summary": "summary"}
    pattern = re.compile(r"\b(Counter|Histogram|Gauge|Summary)(?:MetricFamily)?\(\s*\"([a-zA-Z_:][\w:]*)\"")
    names = set()
    for package in METRIC_SOURCES:
        for path in (ROOT / package).rglob("*.py"):
            for kind, name in pattern.findall(path.read_text()):
                names |= series_of(name, kinds[kind])
    return names


def announced_series() -> set[str]:
    return set().union(*(series_of(name, kind) for name, kind in ANNOUNCED.items()))


def rule_groups() -> list[dict]:
    return yaml.safe_load(RULES.read_text())["groups"]


def alerts() -> list[dict]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def recorded() -> set[str]:
    return {rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule}


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a document's headings: lower case, punctuation dropped, spaces to dashes."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail(
            "promtool is not on PATH: install it (Debian: `apt-get install -y prometheus`, which .ci/run does; "
            "stop the Prometheus server the package may start) to test ops/prometheus",
            pytrace=False,
        )
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def failing_alerts(output: str) -> set[str]:
    """The alert names promtool's unit-test output reports as failing."""
    return set(re.findall(r"alertname: (\w+), time:", output))


# --- promtool ----------------------------------------------------------------------------------------


def test_promtool_checks_the_config_and_the_rules():
    config = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr
    rules = promtool("check", "rules", str(RULES))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    count = sum(len(group["rules"]) for group in rule_groups())
    assert f"SUCCESS: {count} rules found" in rules.stdout


def test_rule_unit_tests_pass():
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("mutant", ["vector(0) > 1", "vector(1)"], ids=["never-fires", "always-fires"])
def test_rule_unit_tests_catch_a_broken_alert(tmp_path, mutant):
    """Every alert has a firing case (caught when it never fires) and a quiet one (when it always fires)."""
    document = yaml.safe_load(RULES.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["expr"] = mutant
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(document))
    shutil.copy(RULE_TESTS, tmp_path / "tests.yml")

    result = promtool("test", "rules", "tests.yml", cwd=tmp_path)

    assert result.returncode != 0, result.stdout
    assert failing_alerts(result.stdout + result.stderr) == {rule["alert"] for rule in alerts()}


def test_failing_alerts_reads_promtool_output():
    output = "    alertname: SchedulerMisfires, time: 20m, \n    alertname: SchedulerNoLiveTicker, time: 9m,\n"
    assert failing_alerts(output) == {"SchedulerMisfires", "SchedulerNoLiveTicker"}


def test_every_alert_has_unit_tests_that_fire_and_stay_quiet():
    cases: dict[str, set[bool]] = {}
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    for rule in alerts():
        assert cases.get(rule["alert"]) == {True, False}, rule["alert"]
    assert set(cases) <= {rule["alert"] for rule in alerts()}


# --- annotations and runbooks ------------------------------------------------------------------------


def test_every_alert_has_severity_summary_description_and_a_runbook_section():
    anchors = heading_anchors(OPERATIONS.read_text())
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names)) and len(names) >= 9
    for rule in alerts():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), rule["alert"]
        document, _, anchor = annotations["runbook"].partition("#")
        assert document == "docs/operations.md", rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no heading for #{anchor} in docs/operations.md"


def test_heading_anchors_follow_github():
    assert heading_anchors("## Alerts\n### SchedulerNoLiveWorker\n## Scraping (Prometheus)\n") == {
        "alerts",
        "schedulernoliveworker",
        "scraping-prometheus",
    }


# --- metric names ------------------------------------------------------------------------------------


def test_metric_names_reads_selectors_only():
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{le="1", job=~"x|y"}[5m]))) '
        "/ on (job) group_left b_total offset 5m > bool 1e3 or vector(0) and scheduler:c:rate5m"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "scheduler:c:rate5m"}


def test_the_service_exports_the_metrics_of_runtime_metrics():
    exported = exported_series()
    assert {"schedule_executions_total", "schedule_fire_lag_seconds_bucket", "schedules_total"} <= exported
    assert "ticker_batch_size_count" in exported


def test_rules_read_exported_announced_or_recorded_metrics():
    known = exported_series() | announced_series() | SCRAPE_SERIES | recorded()
    for group in rule_groups():
        for rule in group["rules"]:
            names = metric_names(rule["expr"])
            assert names, rule
            assert names <= known, (rule.get("alert") or rule.get("record"), names - known)


def test_an_alert_on_a_metric_not_exported_yet_says_so():
    exported = exported_series() | SCRAPE_SERIES | recorded()
    for rule in alerts():
        missing = metric_names(rule["expr"]) - exported
        description = " ".join(rule["annotations"]["description"].split())
        waiting = "not exported yet" in description
        assert waiting == bool(missing), (rule["alert"], missing)
        for name in missing:
            assert name in description, (rule["alert"], name)


def dashboard_files() -> list[Path]:
    files = sorted(DASHBOARDS.glob("*.json"))
    assert files, DASHBOARDS
    return files


def panels_of(dashboard: dict) -> list[dict]:
    """Every panel, those inside collapsed rows included; rows themselves are not panels."""
    found = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def test_dashboard_panels_have_a_datasource_and_expressions_on_known_metrics():
    uids = {
        source["uid"]
        for path in DATASOURCES.glob("*.yml")
        for source in yaml.safe_load(path.read_text())["datasources"]
    }
    rule_metrics = set().union(*(metric_names(rule["expr"]) for group in rule_groups() for rule in group["rules"]))
    known = exported_series() | announced_series() | recorded() | rule_metrics
    for path in dashboard_files():
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["title"], path
        panels = panels_of(dashboard)
        assert panels, path
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), path
        for panel in panels:
            where = f"{path.name}: {panel.get('title')}"
            assert panel["datasource"]["uid"] in uids, where
            assert panel["targets"], where
            for target in panel["targets"]:
                assert target.get("datasource", panel["datasource"])["uid"] in uids, where
                names = metric_names(target["expr"])
                assert names, (where, target["expr"])
                assert names <= known, (where, names - known)


def test_dashboard_covers_the_scheduler():
    shown = set()
    for path in dashboard_files():
        for panel in panels_of(json.loads(path.read_text())):
            for target in panel["targets"]:
                shown |= metric_names(target["expr"])
    missing = {family for family in DASHBOARD_COVERS if not any(name.startswith(family) for name in shown)}
    assert not missing
