"""The chaos runner's CPU sampler: who is charged for a process's CPU, and what a busy process shows."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.support.cpu import CpuSampler, charge


def test_a_process_is_charged_to_its_nearest_named_ancestor():
    # pid -> (parent pid, CPU seconds): a worker with a child and a grandchild; a server under it by
    # name (nearest wins); an unnamed process under init.
    table = {1: (0, 0.0), 10: (1, 1.0), 11: (10, 2.0), 12: (11, 3.0), 30: (12, 0.5), 20: (1, 4.0)}
    owner = charge(table, {10: "worker-1", 12: "postgres"})
    assert owner == {10: "worker-1", 11: "worker-1", 12: "postgres", 30: "postgres"}


def test_a_busy_child_process_shows_its_cpu_under_its_parents_name(tmp_path):
    busy = subprocess.Popen(
        [sys.executable, "-c", "import os, time\nif os.fork() == 0:\n    while True: pass\ntime.sleep(60)"]
    )
    try:
        sampler = CpuSampler(lambda: {busy.pid: "busy"}, tmp_path / "cpu.tsv")
        sampler.sample(time.time())
        sampler.rows.clear()
        time.sleep(1.5)
        sampler.sample(time.time())
        sampler.save()
    finally:
        subprocess.run(["pkill", "-P", str(busy.pid)])
        busy.kill()
        busy.wait()
    used = {name: seconds for _, name, seconds in sampler.rows}
    assert used["busy"] > 0.2  # the forked child spun for 1.5 s (on a shared machine), charged to its parent's name
    assert (tmp_path / "cpu.tsv").read_text().splitlines()[0] == "epoch\tname\tcpu_seconds"
