"""Per-process CPU of a chaos run, sampled from /proc once a second (Linux only).

Every process on the machine is charged to the nearest ancestor that has a name here (a service process,
a private server, the runner itself), so a Dramatiq worker's child processes count as that worker and
PostgreSQL's backends as PostgreSQL. What a restart or a kill takes away is kept: a process that exited
between two samples is charged what it used up to its last sample.

The TSV (`<ledger>.cpu.tsv`: epoch, name, CPU seconds in the interval before it) shows where a catch-up
after a fault spends the machine's two cores.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _read_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used so far by `pid`), or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS


def snapshot() -> dict[int, tuple[int, float]]:
    """Every process: pid -> (parent pid, CPU seconds so far)."""
    table: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read_stat(int(entry))
            if stat is not None:
                table[int(entry)] = stat
    return table


def charge(table: dict[int, tuple[int, float]], roots: dict[int, str]) -> dict[int, str]:
    """pid -> the name of its nearest named ancestor (itself included); unnamed lines are left out."""
    owner: dict[int, str] = {}
    for pid in table:
        seen, cur = [], pid
        while cur in table and cur not in roots and cur not in owner and cur > 1:
            seen.append(cur)
            cur = table[cur][0]
        name = roots.get(cur) or owner.get(cur)
        if name is not None:
            for p in seen + [pid]:
                owner[p] = name
    return owner


class CpuSampler:
    """Samples once a second until stopped; `roots()` names the processes to charge (read each time, so
    restarted processes are followed)."""

    def __init__(self, roots: Callable[[], dict[int, str]], out: Path, interval: float = 1.0) -> None:
        self.roots = roots
        self.out = out
        self.interval = interval
        self.rows: list[tuple[float, str, float]] = []
        self._last: dict[int, float] = {}

    def sample(self, now: float) -> None:
        table = snapshot()
        owner = charge(table, self.roots())
        used: dict[str, float] = {}
        for pid, name in owner.items():
            cpu = table[pid][1]
            used[name] = used.get(name, 0.0) + max(0.0, cpu - self._last.get(pid, 0.0))
        self._last = {pid: table[pid][1] for pid in owner}
        self.rows.extend((now, name, seconds) for name, seconds in sorted(used.items()))

    async def run(self, stopped: Callable[[], bool]) -> None:
        self.sample(time.time())  # the baseline: what the processes used before the run is not charged
        self.rows.clear()
        while not stopped():
            await asyncio.sleep(self.interval)
            await asyncio.to_thread(self.sample, time.time())

    def save(self) -> None:
        with open(self.out, "w") as fh:
            fh.write("epoch\tname\tcpu_seconds\n")
            for at, name, seconds in self.rows:
                fh.write(f"{at:.1f}\t{name}\t{seconds:.3f}\n")
