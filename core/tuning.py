"""Behaviour knobs: the service's deliberate engineering constants, in one documented place.

These are not operator settings. Each value follows from how the pieces fit together (a timeout
below another, a bound that keeps one transaction short); changing one means re-reading the
reasoning next to it and, usually, a code review. A knob an operator would reasonably tune for a
deployment belongs in `core.settings.Settings` instead.

Every constant says what it bounds, its unit and why its value. docs/configuration.md lists where
each one acts.
"""

from __future__ import annotations

from datetime import timedelta

# --- Firing: claim, concurrency slots, publish, record (services.firing, core.outcomes) ---------

# A retry message may arrive a little before its run's next_attempt_at, because the worker's and the
# ticker's clocks differ. Within this slack the retry is on time. 5 s covers NTP-synchronised hosts
# with a wide margin and is far below any retry delay (whole seconds, RETRY_BACKOFF_CAP_SECONDS).
EARLY_RETRY_SLACK = timedelta(seconds=5)

# A run that finds every concurrency slot of its schedule busy tries again once its batch has
# released the slots the batch used. A batch starts no new round after this long (seconds), so one
# busy schedule cannot hold the batch's worker thread: 2 s is several publish rounds (each takes
# milliseconds) and small against the default misfire grace (300 s).
ROUNDS_SECONDS = 2.0

# Still busy after its rounds, the run is sent again this much later (milliseconds), while its slot
# is within the misfire grace; past it, the slot is skipped. 1 s lets the runs holding the slots
# finish their publish (milliseconds each) without spinning on the queue.
LOCK_CONFLICT_DEFER_MS = 1000

# A run that failed because one of the service's own dependencies was unreachable (Redis for its
# slot, NATS for its publish) tries again within this many seconds and keeps its attempt while its
# slot is within the misfire grace: the schedule's retry budget is for failures of the target. 5 s
# brings a run back soon after a dependency restarts without a busy loop during a long outage.
OUTAGE_RETRY_CAP_SECONDS = 5

# A worker that cannot record its outcomes (PostgreSQL restarting or unreachable) keeps trying this
# long (seconds), capped by LOCK_TIMEOUT_SECONDS (after which the sweep hands the runs out again).
# 90 s outlasts a PostgreSQL restart or failover and stays below TIME_LIMIT_MS.
RECORD_RETRY_SECONDS = 90
# The pauses between those attempts double from the first to the longest (seconds): the first comes
# back quickly after a blip, the longest keeps a long outage to one attempt per few seconds.
RECORD_RETRY_FIRST_PAUSE_SECONDS = 0.25
RECORD_RETRY_MAX_PAUSE_SECONDS = 4.0

# --- Outbox sweep (services.outbox) --------------------------------------------------------------

# After Redis lost its queues, a rescue hands over at most this many runs of each kind at once; the
# rest wait for REENQUEUE_AFTER_SECONDS. A catch-up after a 60 s outage at 600 fires/s has about
# 36,000 runs outstanding: 50,000 takes them in one pass while keeping one statement bounded.
RESCUE_LIMIT = 50_000

# --- Worker actors (actors.fire, actors.resources) -----------------------------------------------

# Dramatiq's time limit of one fire message, a batch of up to DISPATCH_BATCH_SIZE runs
# (milliseconds). It must exceed RECORD_RETRY_SECONDS, so that a batch waiting out a database
# restart to record its outcomes is not killed while doing so: 120 s leaves 30 s for the publishes.
TIME_LIMIT_MS = 120_000
# Dramatiq hands prefetched messages to its threads lowest priority number first. Runs already late
# (the overdue lane) go before fresh ones, which are on time by DISPATCH_LEAD_MS.
FIRE_PRIORITY = 10
OVERDUE_PRIORITY = 0
# The worker's Redis client (concurrency slots): a command waits at most this long (seconds). It is
# longer than the 2 s of the other clients because one command carries the slots of a whole batch; a
# dead Redis fails the batch's slots, which then take the outage path (OUTAGE_RETRY_CAP_SECONDS).
WORKER_REDIS_SOCKET_TIMEOUT_SECONDS = 5

# --- Redis clients of the API, ticker and heartbeat ----------------------------------------------

# Connect and command timeouts (seconds) of the short Redis calls of the API (rate limits, health),
# the ticker (slots, registry) and the heartbeat thread. 2 s is far above a healthy round trip and
# short enough that an unreachable Redis degrades a request or a tick instead of stalling it. The
# connect timeout also applies to the worker's client.
REDIS_SOCKET_TIMEOUT_SECONDS = 2
REDIS_CONNECT_TIMEOUT_SECONDS = 2

# --- Ticker loop (ticker.loop, ticker.__main__) --------------------------------------------------

# After a failed tick or sweep (database or Redis unreachable), the ticker waits this long before
# trying again (seconds): 1 s recovers within a second of the dependency's return without spinning.
ERROR_BACKOFF_SECONDS = 1.0
# The outbox sweep (lost hand-overs, dead workers' runs) runs at least this often (seconds). 1 s
# makes a dead worker's runs go out again within about WORKER_DEAD_AFTER_SECONDS + 1 s.
SWEEP_EVERY_SECONDS = 1.0
# The ticker's LISTEN connection (wake-ups on schedule changes) gives up connecting after this long
# (seconds) and falls back to its timed sleep; 5 s outlasts a slow connect over a busy network.
LISTEN_CONNECT_TIMEOUT_SECONDS = 5
# Connections in the ticker's SQLAlchemy pool: one tick and one sweep run at a time, so 2.
TICKER_DATABASE_POOL_SIZE = 2
# Snoozes ended per outbox sweep (services.lifecycle): each is its own transaction, so a mass snooze
# ending at one instant is resumed over a few sweeps rather than holding up one pass's planning.
SNOOZES_PER_PASS = 100

# --- Database connections (models.db) ------------------------------------------------------------

# A pooled SQLAlchemy connection is replaced after this many seconds: 30 min bounds how long a
# connection lives across server-side changes (failover, pgbouncer rotation) at negligible cost.
DATABASE_POOL_RECYCLE_SECONDS = 1800
# An idle connection of the API's read pool is closed after this many seconds: 5 min gives back
# what a burst opened while keeping connections warm between ordinary reads.
READ_POOL_IDLE_SECONDS = 300.0

# --- NATS connection (runtime.nats_client) -------------------------------------------------------

# The first connect of a process gives up after this long (seconds); callers then fail fast and the
# run takes the outage path. 3 s is above a healthy connect over TLS and keeps start-up responsive.
INITIAL_CONNECT_TIMEOUT_SECONDS = 3.0
# After a failed first connect, callers fail at once for this long (seconds) instead of each waiting
# out its own attempt: otherwise a worker started during a NATS outage spends
# INITIAL_CONNECT_TIMEOUT_SECONDS per event of every run, one after the other.
FAILED_CONNECT_BACKOFF_SECONDS = 1.0
# One connect attempt to one server (seconds), inside INITIAL_CONNECT_TIMEOUT_SECONDS.
NATS_CONNECT_TIMEOUT_SECONDS = 2
# Pause between reconnect attempts of an established connection (seconds): 1 s brings publishing
# back within a second of the server's return.
NATS_RECONNECT_WAIT_SECONDS = 1
# Closing a half-opened client after a failed first connect, and closing the connection at shutdown
# (seconds): a close waits for nothing important, shutdown allows the pending flush to go out.
NATS_ABANDON_TIMEOUT_SECONDS = 1
NATS_CLOSE_TIMEOUT_SECONDS = 5

# --- Worker liveness (services.liveness) ---------------------------------------------------------

# After a clean stop the heartbeat thread is given one interval plus this many seconds to finish its
# beat (a beat waits at most REDIS_SOCKET_TIMEOUT_SECONDS, plus a margin) before the key is deleted.
HEARTBEAT_JOIN_MARGIN_SECONDS = 3
# Redis's epoch of the heartbeats is in whole seconds; the warm-up after a data loss lasts
# WORKER_DEAD_AFTER_SECONDS plus this margin (seconds) to cover the rounding.
WARM_UP_MARGIN_SECONDS = 1

# --- API (api.health, api.app) -------------------------------------------------------------------

# Each dependency check of the health endpoint gives up after this long (seconds): below the usual
# 5 s probe timeout of an orchestrator, above a healthy round trip.
CHECK_TIMEOUT_SECONDS = 2.0
# The API's NATS command listener, when it cannot subscribe, tries again after this long (seconds).
NATS_LISTENER_RETRY_SECONDS = 2

# --- GraphQL (gql.schema, gql.types, gql.subscriptions) ------------------------------------------

# Deepest selection a query may have (levels): the deepest legitimate one is schedules → edges →
# node → executions → edges → node → field.
MAX_DEPTH = 7
# Most tokens one GraphQL document may have: a generous bound for a hand-written query that stops a
# parser-exhausting one.
MAX_TOKENS = 4000
# Most aliases one GraphQL document may have: stops one request from repeating an expensive field.
MAX_ALIASES = 30
# Most upcoming fire times one GraphQL schedule field returns (items).
MAX_FIRE_TIMES = 100
# Events buffered per subscriber before the oldest are dropped (events): a slow client costs bounded
# memory.
QUEUE_LIMIT = 1000

# --- Housekeeping (housekeeping) -----------------------------------------------------------------

# When the hourly purge runs: minute 17 of every hour, away from the top of the hour when user
# schedules cluster.
HOUSEKEEPING_CRON = "17 * * * *"
# Dramatiq's time limit of one purge (milliseconds): 10 min lets a first purge of a large history
# finish while bounding a stuck one.
HOUSEKEEPING_TIME_LIMIT_MS = 600_000
# A worker drops a periodic purge message that waited in the queue longer than this (seconds)
# instead of running it late; the purge is idempotent, so the next hour does the work.
HOUSEKEEPING_SKIP_DELAY_SECONDS = 60

# --- Metrics (runtime.metrics) -------------------------------------------------------------------

# Histogram buckets of the lag and duration metrics (seconds): millisecond resolution where the
# service runs when healthy, then coarse steps up to 5 min for outages and catch-ups.
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# Histogram buckets of the API's request durations (seconds): sub-millisecond reads up to the 10 s of
# a slow bulk request; a request slower than that is an incident whatever its exact time.
HTTP_DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# The schedules gauge counts schedules by type and status with one GROUP BY over the table; a scrape
# within this many seconds of the previous count reuses it (seconds). 5 s is below any usual scrape
# interval (15 s or more), so a single scraper always sees a fresh count, while many scrapers, or a
# scrape storm, cost at most one count per API process per 5 s.
SCHEDULES_GAUGE_CACHE_SECONDS = 5.0
# The ticker's /live answers 503 once its loop has ended no pass for this long (seconds). An idle pass
# ends at least every SWEEP_EVERY_SECONDS and a catch-up pass of many batches in seconds; a loop
# silent for 60 s is stuck, and an orchestrator may restart it.
TICKER_STALL_SECONDS = 60.0

# --- Local run (runtime.launcher, `make run`) ----------------------------------------------------

# The launcher gives its processes this long to stop after SIGTERM before it kills them (seconds):
# a worker finishing a batch and recording it needs a few seconds.
STOP_GRACE_SECONDS = 10
# Each private server (PostgreSQL, Redis, NATS) gets this long to stop (seconds); PostgreSQL's
# checkpoint at shutdown is the slowest.
SERVER_STOP_SECONDS = 30
# Pause before restarting a process that exited (seconds): no tight crash loop.
RESTART_PAUSE_SECONDS = 2
# How long the launcher waits for the API to answer before it prints its banner anyway, marked not
# ready (seconds): covers a first run that initialises the private PostgreSQL.
READY_TIMEOUT_SECONDS = 90
