"""Hypothesis properties of the scheduling core (modest example counts to keep the run fast)."""

from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from core.backoff import retry_delay_seconds
from core.cronexpr import next_wall_time, parse_cron
from core.misfire import Catchup, MisfirePolicy, plan_due
from core.rules import DstGap, DstRepeat, Rule, ScheduleType, fires_between, next_fire
from tests.support.cron_oracle import Oracle, cron_expressions, daily_expressions
from tests.support.dst_oracle import MANY_ZONES, oracle, window_centers

UTC = timezone.utc
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MINUTE_CRONS = [
    "0 * * * *",
    "30 1 * * *",
    "30 2 * * *",
    "*/15 * * * *",
    "*/7 * * * *",
    "45 1 * * *",
    "0 0 13 * 5",
    "0 9 * * 1-5",
    "15,45 0-3 * * *",
]
ALL_CRONS = MINUTE_CRONS + ["*/20 * * * * *", "0 0 1 * *", "@weekly", "59 59 23 * * *"]
ZONES_PLUS = MANY_ZONES + ["UTC", "America/Santiago", "Europe/Dublin"]

instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC))
gaps = st.sampled_from(list(DstGap))
repeats = st.sampled_from(list(DstRepeat))


@st.composite
def near_transition(draw):
    """An instant within 12 h of an offset change (or of a fixed date for zones without DST)."""
    zone = draw(st.sampled_from(MANY_ZONES))
    center = window_centers(zone, draw(st.sampled_from([2026, 2027])))[draw(st.integers(0, 1))]
    minutes = draw(st.integers(-12 * 60, 12 * 60))
    seconds = draw(st.integers(0, 59))
    return zone, center + timedelta(minutes=minutes, seconds=seconds)


@SETTINGS
@given(zone=st.sampled_from(ZONES_PLUS), expr=st.sampled_from(ALL_CRONS), after=instants, gap=gaps, repeat=repeats)
def test_cron_fires_strictly_increase(zone, expr, after, gap, repeat):
    rule = Rule(ScheduleType.CRON, zone, expr, dst_gap=gap, dst_repeat=repeat)
    fires = fires_between(rule, after, after + timedelta(days=400), 6)
    assert fires, "every expression here fires within 400 days"
    assert fires[0] > after
    assert all(a < b for a, b in zip(fires, fires[1:]))
    assert all(f.tzinfo is UTC and f.microsecond == 0 for f in fires)
    assert next_fire(rule, after) == fires[0]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    where=near_transition(),
    expr=st.one_of(st.sampled_from(MINUTE_CRONS), daily_expressions),
    gap=gaps,
    repeat=repeats,
    hours=st.integers(1, 8),
)
def test_no_gaps_compared_with_oracle(where, expr, gap, repeat, hours):
    """Around the DST changes of every zone tested, fires agree with the brute-force walk."""
    zone, start = where
    end = start + timedelta(hours=hours)
    rule = Rule(ScheduleType.CRON, zone, expr, dst_gap=gap, dst_repeat=repeat)
    assert fires_between(rule, start, end, 10_000) == oracle(zone, expr, gap, repeat, start, end)


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    expr=cron_expressions,
    start=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31)),
    key=st.text(max_size=8),
)
def test_wall_times_compared_with_the_independent_matcher(expr, start, key):
    """The evaluator's next wall time is the brute-force matcher's, for random expressions of the dialect."""
    start = start.replace(microsecond=0)
    found = next_wall_time(parse_cron(expr, key), start)
    days = (found - start).days + 1 if found is not None else 400
    assert found == Oracle(expr, key).next_at_or_after(start, days)


@SETTINGS
@given(
    start=instants,
    interval=st.integers(1, 10 * 86400),
    after=instants,
    micro=st.integers(0, 999_999),
)
def test_interval_fires_on_the_grid(start, interval, after, micro):
    start = start.replace(microsecond=micro)
    rule = Rule(ScheduleType.INTERVAL, interval_seconds=interval, start_at=start)
    fires = fires_between(rule, after, max(after, start) + timedelta(seconds=interval * 5), 4)
    assert len(fires) == 4
    assert (fires[0] > after and fires[0] - after <= timedelta(seconds=interval)) or fires[0] == start
    for f in fires:
        k, rem = divmod(f - start, timedelta(seconds=interval))
        assert rem == timedelta(0) and k >= 0
    assert all(b - a == timedelta(seconds=interval) for a, b in zip(fires, fires[1:]))


RULES = [
    Rule(ScheduleType.CRON, "America/New_York", "*/15 * * * *"),
    Rule(ScheduleType.CRON, "Europe/London", "30 1 * * *", dst_repeat=DstRepeat.TWICE),
    Rule(ScheduleType.CRON, cron_expression="*/20 * * * * *"),
    Rule(ScheduleType.INTERVAL, interval_seconds=45, start_at=datetime(2026, 3, 1, tzinfo=UTC)),
    Rule(
        ScheduleType.INTERVAL,
        interval_seconds=3600,
        start_at=datetime(2026, 3, 1, 0, 0, 0, 123, tzinfo=UTC),
        end_at=datetime(2026, 3, 3, tzinfo=UTC),
    ),
]
policies = st.builds(
    MisfirePolicy,
    grace_seconds=st.integers(0, 4000),
    catchup=st.sampled_from(list(Catchup)),
    max_catchup=st.integers(0, 5),
    max_recorded_missed=st.integers(0, 8),
)


@SETTINGS
@given(
    rule=st.sampled_from(RULES),
    offset=st.integers(0, 3 * 86400),
    late=st.integers(0, 6 * 3600),
    policy=policies,
    runs=st.integers(0, 6),
    max_runs=st.none() | st.integers(1, 8),
)
def test_plan_due_accounts_for_every_slot(rule, offset, late, policy, runs, max_runs):
    first = next_fire(rule, datetime(2026, 3, 1, tzinfo=UTC) + timedelta(seconds=offset))
    assume(first is not None)  # a rule with an end_at may have no fire after the offset
    now = first + timedelta(seconds=late, microseconds=250)
    due = [first] + fires_between(rule, first, now, 100_000)
    plan = plan_due(rule, first, now, policy, runs_so_far=runs, max_runs=max_runs)

    assert set(plan.fire) <= set(due) and set(plan.missed) <= set(due)
    assert set(plan.fire).isdisjoint(plan.missed)
    assert list(plan.fire) == sorted(plan.fire) and list(plan.missed) == sorted(plan.missed)
    assert len(plan.fire) + len(plan.missed) + plan.missed_unrecorded == len(due)
    assert len(plan.missed) <= policy.max_recorded_missed
    if max_runs is not None:
        assert runs + len(plan.fire) <= max(max_runs, runs)
    grace = timedelta(seconds=policy.grace_seconds)
    in_grace = [s for s in due if now - s <= grace]
    # With max_runs the EARLIEST chosen slots fire (the N-th run is the N-th slot); under `all` the old
    # slots are chosen too and come first, so only without a cap do all in-grace slots surely fire.
    budget_ok = max_runs is None or (policy.catchup != Catchup.ALL and runs + len(in_grace) < max_runs)
    if in_grace and budget_ok and len(in_grace) <= max(1, policy.max_catchup):
        assert set(in_grace) <= set(plan.fire)  # in-grace slots fire
    if policy.catchup is Catchup.LATEST and not in_grace and (max_runs is None or runs < max_runs):
        assert plan.fire == (due[-1],)  # an outage yields exactly one run
    if policy.catchup is Catchup.NONE:
        assert all(now - s <= grace for s in plan.fire)
    if not plan.exhausted:
        assert plan.next_run_at is not None and plan.next_run_at > now
        assert plan.next_run_at == next_fire(rule, now)
        # planning again at the same `now` adds nothing
        again = plan_due(rule, plan.next_run_at, now, policy, runs + len(plan.fire), max_runs)
        assert again.fire == () and again.missed == () and again.missed_unrecorded == 0
        assert again.next_run_at == plan.next_run_at
    else:
        assert plan.next_run_at is None


@SETTINGS
@given(
    base=st.floats(0, 1000, allow_nan=False),
    cap=st.floats(0, 100_000, allow_nan=False),
    jitter=st.floats(0, 1, exclude_max=True),
    n=st.integers(1, 200),
)
def test_backoff_capped_and_monotone(base, cap, jitter, n):
    d = retry_delay_seconds(n, base, cap, jitter)
    assert 0 <= d <= cap
    assert retry_delay_seconds(n + 1, base, cap, jitter) >= d
