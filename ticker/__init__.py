"""The ticker: turns due schedules into queued executions. `python -m ticker` runs its loop."""
