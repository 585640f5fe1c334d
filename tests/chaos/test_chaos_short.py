"""The short chaos run for CI: ~3 minutes, lighter load, one fault of each kind, ledger asserted.

Runs `python -m tests.chaos.runner --profile short` as a subprocess (its own private PostgreSQL, Redis
and NATS on free ports): ~140 fires/s from 680 schedules (one interval schedule in twenty reports its
completion, with each overlap policy in turn), one kill -9 each of a worker, a ticker and an
API (restarted after a few seconds), Redis restarted empty, NATS down 20 s, PostgreSQL down 15 s (fast
shutdown) and a worker SIGSTOPped for 22 s (LOCK_TIMEOUT_SECONDS=15). The ledger lands in
test-artifacts/chaos/short-ledger.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.harness import ROOT

pytestmark = pytest.mark.slow

OUT = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts")) / "chaos" / "short-ledger.json"


def test_short_chaos_run_ledger_is_clean():
    OUT.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "tests.chaos.runner", "--profile", "short", "--out", str(OUT), "--seed", "20261127"],
        cwd=ROOT,
        timeout=900,
        capture_output=True,
        text=True,
    )
    assert OUT.exists(), (
        f"the runner wrote no ledger (exit {done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    )
    ledger = json.loads(OUT.read_text())
    print(json.dumps({k: v for k, v in ledger.items() if k != "recovery_per_fault"}, indent=2))
    problems = ledger["problems"]

    # the faults really happened, under load
    assert ledger["kills"]["total"] >= 3 and set(ledger["kills"]["by_kind"]) == {"api", "ticker", "worker"}
    assert {f["kind"] for f in ledger["faults"]} >= {"redis_restart", "nats_outage", "pg_outage", "sigstop"}
    assert ledger["fires_per_second_measured"] >= 100, ledger["fires_per_second_measured"]
    # every slot has a row; every row is a command or a recorded reason
    for key in [k for k in problems if k.startswith("slots_missing")] + [
        "not_sent_without_accepted_reason",
        "still_active",
        "core_missing",
        "js_missing",
    ]:
        assert key not in problems, f"{key}: {problems[key]}"
    # JetStream: exactly once per execution id
    assert ledger["stream"]["duplicates"] == 0 and "js_not_exactly_once" not in problems, problems.get(
        "js_not_exactly_once"
    )
    assert ledger["worst_gap_between_publishes_of_one_id_s"] <= ledger["stream"]["duplicate_window_s"]
    # completion reports: the reporting schedules' runs were reported, and none was left waiting or timed out
    reporting = ledger["reporting"]
    assert reporting["reports"]["answers"].get("200", 0) > 0 and reporting["reports"]["unanswered"] == 0, reporting
    assert not any(
        k.startswith(("awaiting", "buffered", "timed_out")) for k in reporting["runs_due_before_cutoff_by_status"]
    ), reporting
    # recovery: due slots published within 30 s of each fault's end; nothing restarted by hand
    assert "recovery_over_30s" not in problems, problems.get("recovery_over_30s")
    assert not ledger["unexpected_exits"] and all(ledger["processes_alive_at_end"].values())
    assert ledger["ok"], problems
    assert done.returncode == 0, done.stdout[-4000:]
