"""Retry backoff: capped exponential delay with caller-supplied jitter (pure, no randomness here).

Formula (seconds)::

    raw   = min(cap_seconds, base_seconds * 2 ** (retry_number - 1))
    delay = raw * (1 - jitter / 2)          # jitter in [0, 1] supplied by the caller

So jitter 0 gives the plain exponential sequence base, 2*base, 4*base, ... capped at
`cap_seconds`; jitter spreads retries DOWNWARD into (raw/2, raw] so the cap is never exceeded.
For a fixed jitter the delay is monotone non-decreasing in `retry_number` (raw is, and the factor
is constant). The caller draws jitter (e.g. `random.random()` or a hash) to keep this pure.
"""

from __future__ import annotations

DEFAULT_BACKOFF_CAP_SECONDS = 3600

# 2**63 * any sane base exceeds any sane cap; stop doubling there to avoid float overflow.
_MAX_DOUBLINGS = 63


def retry_delay_seconds(retry_number: int, base_seconds: float, cap_seconds: float, jitter: float) -> float:
    """Delay in seconds before retry number `retry_number` (1 = the first retry)."""
    if retry_number < 1:
        raise ValueError("retry_number starts at 1 (the first retry)")
    if base_seconds < 0 or cap_seconds < 0:
        raise ValueError("base_seconds and cap_seconds must not be negative")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError("jitter must be within [0, 1]")
    doublings = retry_number - 1
    if doublings >= _MAX_DOUBLINGS:
        raw = float(cap_seconds) if base_seconds > 0 else 0.0
    else:
        raw = min(float(cap_seconds), base_seconds * float(2**doublings))
    return raw * (1.0 - jitter / 2.0)


def whole_seconds_ms(delay_ms: float) -> int:
    """A queue delay rounded UP to the whole second, in ms: never shorter than asked, and runs whose
    delays round alike travel in one message (negative or zero: 0, at once)."""
    return max(0, -(-int(delay_ms) // 1000) * 1000)
