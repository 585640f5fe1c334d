"""The benchmark runner on a tiny workload: the report has its keys and sane values (never timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_run_reports_every_fire_once(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    # burst of 20 once-schedules; 50 interval schedules of period 2 s measured for 5 s after 1 s warm-up
    done = subprocess.run(
        [sys.executable, "-m", "bench.runner", "--tiny", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert {"machine", "settings", "results", "started", "finished"} <= report.keys()
    assert report["machine"]["cores"] >= 1
    burst, steady, backfill = report["results"]

    assert burst["workload"] == "burst" and burst["n"] == 20
    assert burst["expected"] == burst["received"] == 20
    assert burst["missed"] == burst["duplicates"] == burst["duplicate_slots"] == burst["unexpected"] == 0
    assert burst["jetstream_stored"] == 20  # every publish went through JetStream
    assert burst["lag"]["count"] == 20
    lag = burst["lag"]
    assert lag["p50_ms"] <= lag["p90_ms"] <= lag["p99_ms"] <= lag["max_ms"]
    assert burst["last_command_after_due_s"] >= burst["first_command_after_due_s"]

    assert steady["workload"] == "steady" and steady["n"] == 50 and steady["period_s"] == 2
    # 50 schedules × 5 s / 2 s: 2 or 3 slots each in the window, depending on the phase
    assert 100 <= steady["expected"] <= 150
    assert steady["received"] == steady["expected"] and steady["lag"]["count"] == steady["expected"]
    assert steady["missed"] == steady["duplicates"] == steady["duplicate_slots"] == steady["unexpected"] == 0
    assert steady["jetstream_stored_total"] >= steady["received"]

    # 20 schedules of period 2 s for 2.5 s without and 2.5 s with a backfill of 25 past slots, 10 a second
    assert backfill["workload"] == "backfill" and backfill["backfill_slots_recorded"] == 25
    for window in ("without_backfill", "with_backfill"):
        res = backfill[window]
        assert res["received"] == res["expected"] > 0 and res["missed"] == res["duplicates"] == 0
    assert sum(backfill["backfill_runs_at_end"].values()) == 25

    for result in (burst, steady):
        processes = result["processes"]
        assert {"api", "ticker", "worker"} <= processes.keys()
        for name in ("api", "ticker", "worker"):
            assert processes[name]["cpu_seconds"] >= 0 and processes[name]["peak_rss_mb"] > 10
