"""`make demo`: the service with a few example schedules and a NATS consumer printing what they send."""
