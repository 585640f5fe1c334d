"""Loading the service's settings in a fresh interpreter, as a process does at start."""

from __future__ import annotations

import subprocess
import sys

from tests.support.harness import ROOT


def load_settings_in_a_process(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `load_settings()` with exactly `env` (plus the repository on PYTHONPATH); returns the result."""
    return subprocess.run(
        [sys.executable, "-c", "from core.settings import load_settings; load_settings()"],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
    )
