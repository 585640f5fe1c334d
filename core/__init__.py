"""Pure domain core: settings, typed errors, schedule math, misfire planning, backoff, states.

Nothing in this package performs I/O or reads the clock: `now` is always a parameter.
"""
