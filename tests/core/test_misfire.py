from datetime import datetime, timedelta, timezone

import pytest

from core.misfire import Catchup, MisfirePolicy, SlotPlan, plan_ahead, plan_due
from core.rules import Rule, ScheduleType

UTC = timezone.utc


def u(*a):
    return datetime(*a, tzinfo=UTC)


EVERY_MIN = Rule(ScheduleType.CRON, cron_expression="* * * * *")
HOURLY = Rule(ScheduleType.CRON, cron_expression="0 * * * *")
NOW = u(2026, 5, 1, 12, 0, 30)


def minutes(h0, m0, h1, m1):
    out, t = [], u(2026, 5, 1, h0, m0)
    while t <= u(2026, 5, 1, h1, m1):
        out.append(t)
        t += timedelta(minutes=1)
    return tuple(out)


# rows: id, rule, next_run_at, now, policy, runs_so_far, max_runs, expected (fire, missed, unrecorded, next, exhausted)
ROWS = [
    (
        "on-time",
        EVERY_MIN,
        u(2026, 5, 1, 12),
        NOW,
        MisfirePolicy(60, Catchup.LATEST),
        0,
        None,
        ((u(2026, 5, 1, 12),), (), 0, u(2026, 5, 1, 12, 1), False),
    ),
    (
        "not-due",
        EVERY_MIN,
        u(2026, 5, 1, 12, 1),
        NOW,
        MisfirePolicy(60, Catchup.LATEST),
        0,
        None,
        ((), (), 0, u(2026, 5, 1, 12, 1), False),
    ),
    (
        "grace-edge-inclusive",
        HOURLY,
        u(2026, 5, 1, 12),
        u(2026, 5, 1, 12, 1),
        MisfirePolicy(60, Catchup.NONE),
        0,
        None,
        ((u(2026, 5, 1, 12),), (), 0, u(2026, 5, 1, 13), False),
    ),
    (
        "late-none",
        HOURLY,
        u(2026, 5, 1, 12),
        u(2026, 5, 1, 12, 1, 1),
        MisfirePolicy(60, Catchup.NONE),
        0,
        None,
        ((), (u(2026, 5, 1, 12),), 0, u(2026, 5, 1, 13), False),
    ),
    (
        "late-latest",
        HOURLY,
        u(2026, 5, 1, 12),
        u(2026, 5, 1, 12, 1, 1),
        MisfirePolicy(60, Catchup.LATEST),
        0,
        None,
        ((u(2026, 5, 1, 12),), (), 0, u(2026, 5, 1, 13), False),
    ),
    # outage 09:00..12:00 hourly, grace 60 s, now 12:30: latest fires only 12:00 (the most recent old slot)
    (
        "outage-latest",
        HOURLY,
        u(2026, 5, 1, 9),
        u(2026, 5, 1, 12, 30),
        MisfirePolicy(60, Catchup.LATEST),
        0,
        None,
        ((u(2026, 5, 1, 12),), (u(2026, 5, 1, 9), u(2026, 5, 1, 10), u(2026, 5, 1, 11)), 0, u(2026, 5, 1, 13), False),
    ),
    # same outage but 12:00 is still in grace: it fires, the old ones do not
    (
        "outage-latest-in-grace",
        HOURLY,
        u(2026, 5, 1, 9),
        u(2026, 5, 1, 12, 0, 30),
        MisfirePolicy(60, Catchup.LATEST),
        0,
        None,
        ((u(2026, 5, 1, 12),), (u(2026, 5, 1, 9), u(2026, 5, 1, 10), u(2026, 5, 1, 11)), 0, u(2026, 5, 1, 13), False),
    ),
    (
        "outage-all",
        HOURLY,
        u(2026, 5, 1, 9),
        u(2026, 5, 1, 12, 30),
        MisfirePolicy(60, Catchup.ALL),
        0,
        None,
        ((u(2026, 5, 1, 9), u(2026, 5, 1, 10), u(2026, 5, 1, 11), u(2026, 5, 1, 12)), (), 0, u(2026, 5, 1, 13), False),
    ),
    (
        "outage-all-capped",
        HOURLY,
        u(2026, 5, 1, 9),
        u(2026, 5, 1, 12, 30),
        MisfirePolicy(60, Catchup.ALL, max_catchup=2),
        0,
        None,
        ((u(2026, 5, 1, 11), u(2026, 5, 1, 12)), (u(2026, 5, 1, 9), u(2026, 5, 1, 10)), 0, u(2026, 5, 1, 13), False),
    ),
    (
        "outage-none",
        HOURLY,
        u(2026, 5, 1, 9),
        u(2026, 5, 1, 12, 30),
        MisfirePolicy(60, Catchup.NONE),
        0,
        None,
        ((), (u(2026, 5, 1, 9), u(2026, 5, 1, 10), u(2026, 5, 1, 11), u(2026, 5, 1, 12)), 0, u(2026, 5, 1, 13), False),
    ),
    (
        "recorded-cap",
        HOURLY,
        u(2026, 5, 1, 9),
        u(2026, 5, 1, 12, 30),
        MisfirePolicy(60, Catchup.NONE, max_recorded_missed=1),
        0,
        None,
        ((), (u(2026, 5, 1, 12),), 3, u(2026, 5, 1, 13), False),
    ),
    (
        "recorded-zero",
        HOURLY,
        u(2026, 5, 1, 9),
        u(2026, 5, 1, 12, 30),
        MisfirePolicy(60, Catchup.NONE, max_recorded_missed=0),
        0,
        None,
        ((), (), 4, u(2026, 5, 1, 13), False),
    ),
    # every minute, grace 3 min: 11:57:30.. in grace -> 11:58, 11:59, 12:00 fire
    (
        "grace-window",
        EVERY_MIN,
        u(2026, 5, 1, 11, 50),
        NOW,
        MisfirePolicy(180, Catchup.NONE),
        0,
        None,
        (minutes(11, 58, 12, 0), minutes(11, 50, 11, 57), 0, u(2026, 5, 1, 12, 1), False),
    ),
    (
        "grace-window-latest",
        EVERY_MIN,
        u(2026, 5, 1, 11, 50),
        NOW,
        MisfirePolicy(180, Catchup.LATEST),
        0,
        None,
        (minutes(11, 58, 12, 0), minutes(11, 50, 11, 57), 0, u(2026, 5, 1, 12, 1), False),
    ),
    # max_runs: 1 left -> the earliest chosen slot fires, the schedule is exhausted
    (
        "max-runs",
        HOURLY,
        u(2026, 5, 1, 9),
        u(2026, 5, 1, 12, 30),
        MisfirePolicy(60, Catchup.ALL),
        4,
        5,
        ((u(2026, 5, 1, 9),), (u(2026, 5, 1, 10), u(2026, 5, 1, 11), u(2026, 5, 1, 12)), 0, None, True),
    ),
    (
        "max-runs-already",
        HOURLY,
        u(2026, 5, 1, 12),
        u(2026, 5, 1, 12, 0, 30),
        MisfirePolicy(60, Catchup.ALL),
        5,
        5,
        ((), (u(2026, 5, 1, 12),), 0, None, True),
    ),
    (
        "max-runs-not-yet",
        HOURLY,
        u(2026, 5, 1, 12),
        u(2026, 5, 1, 12, 0, 30),
        MisfirePolicy(60, Catchup.ALL),
        3,
        5,
        ((u(2026, 5, 1, 12),), (), 0, u(2026, 5, 1, 13), False),
    ),
    (
        "once-fires-and-completes",
        Rule(ScheduleType.ONCE, run_at=u(2026, 5, 1, 12)),
        u(2026, 5, 1, 12),
        NOW,
        MisfirePolicy(60, Catchup.LATEST),
        0,
        None,
        ((u(2026, 5, 1, 12),), (), 0, None, True),
    ),
    (
        "once-missed",
        Rule(ScheduleType.ONCE, run_at=u(2026, 5, 1, 10)),
        u(2026, 5, 1, 10),
        NOW,
        MisfirePolicy(60, Catchup.NONE),
        0,
        None,
        ((), (u(2026, 5, 1, 10),), 0, None, True),
    ),
    (
        "end-at-completes",
        Rule(ScheduleType.CRON, cron_expression="0 * * * *", end_at=u(2026, 5, 1, 12)),
        u(2026, 5, 1, 12),
        NOW,
        MisfirePolicy(60, Catchup.LATEST),
        0,
        None,
        ((u(2026, 5, 1, 12),), (), 0, None, True),
    ),
    (
        "interval",
        Rule(ScheduleType.INTERVAL, interval_seconds=600, start_at=u(2026, 5, 1)),
        u(2026, 5, 1, 11, 30),
        NOW,
        MisfirePolicy(60, Catchup.LATEST),
        0,
        None,
        (
            (u(2026, 5, 1, 12),),
            (u(2026, 5, 1, 11, 30), u(2026, 5, 1, 11, 40), u(2026, 5, 1, 11, 50)),
            0,
            u(2026, 5, 1, 12, 10),
            False,
        ),
    ),
]


@pytest.mark.parametrize(
    "rule,next_run_at,now,policy,runs,max_runs,expected", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_plan_table(rule, next_run_at, now, policy, runs, max_runs, expected):
    plan = plan_due(rule, next_run_at, now, policy, runs_so_far=runs, max_runs=max_runs)
    assert plan == SlotPlan(*expected)


def test_replanning_at_same_now_adds_nothing():
    policy = MisfirePolicy(60, Catchup.ALL)
    plan = plan_due(HOURLY, u(2026, 5, 1, 9), u(2026, 5, 1, 12, 30), policy)
    again = plan_due(HOURLY, plan.next_run_at, u(2026, 5, 1, 12, 30), policy)
    assert again == SlotPlan((), (), 0, plan.next_run_at, False)


def test_huge_interval_backlog_is_exact_and_bounded():
    rule = Rule(ScheduleType.INTERVAL, interval_seconds=1, start_at=u(2026, 1, 1))
    now = u(2026, 2, 1, 0, 0, 0, 500000)
    plan = plan_due(rule, u(2026, 1, 1), now, MisfirePolicy(10, Catchup.LATEST))
    due = 31 * 86400 + 1
    assert len(plan.fire) == 10 and plan.fire[0] == u(2026, 1, 31, 23, 59, 51) and plan.fire[-1] == u(2026, 2, 1)
    assert len(plan.missed) == 1000 and plan.missed[-1] == u(2026, 1, 31, 23, 59, 50)
    assert len(plan.fire) + len(plan.missed) + plan.missed_unrecorded == due
    assert plan.next_run_at == u(2026, 2, 1, 0, 0, 1)


def test_huge_cron_backlog_is_bounded_and_approximately_counted():
    rule = Rule(ScheduleType.CRON, cron_expression="* * * * * *")  # every second
    now = u(2026, 2, 1, 0, 0, 0, 500000)
    plan = plan_due(rule, u(2026, 1, 1), now, MisfirePolicy(10, Catchup.ALL, max_catchup=5, max_recorded_missed=20))
    assert plan.fire == tuple(u(2026, 1, 31, 23, 59, 56) + timedelta(seconds=i) for i in range(5))
    assert plan.missed == tuple(u(2026, 1, 31, 23, 59, 36) + timedelta(seconds=i) for i in range(20))
    due = 31 * 86400 + 1
    total = len(plan.fire) + len(plan.missed) + plan.missed_unrecorded
    assert abs(total - due) <= due * 0.001


def test_bursty_cron_backlog():
    # 60 fires in the 09:00 hour on weekdays only: the jump estimate is rough but bounded.
    rule = Rule(ScheduleType.CRON, cron_expression="* 9 * * 1-5")
    now = u(2026, 5, 1, 9, 30, 10)  # a Friday
    plan = plan_due(
        rule, u(2025, 5, 1, 9), now, MisfirePolicy(30, Catchup.LATEST, max_catchup=10, max_recorded_missed=50)
    )
    assert plan.fire == (u(2026, 5, 1, 9, 30),)
    assert plan.missed[-1] == u(2026, 5, 1, 9, 29)
    assert len(plan.missed) == 50
    assert plan.next_run_at == u(2026, 5, 1, 9, 31)
    exact = 261 * 60 + 31  # weekdays 2025-05-01..2026-04-30 (261) plus 09:00..09:30 today
    total = len(plan.fire) + len(plan.missed) + plan.missed_unrecorded
    assert abs(total - exact) <= exact * 0.1


def test_naive_rejected():
    with pytest.raises(ValueError):
        plan_due(HOURLY, datetime(2026, 5, 1), NOW, MisfirePolicy(60, Catchup.ALL))
    with pytest.raises(ValueError):
        plan_due(HOURLY, NOW, datetime(2026, 5, 1), MisfirePolicy(60, Catchup.ALL))


def test_ticker_latency_within_on_time_is_not_a_misfire():
    """Grace 0 with catchup `none` still fires a slot the ticker sees a moment late."""
    rule = Rule(ScheduleType.INTERVAL, interval_seconds=60, start_at=datetime(2026, 5, 1, tzinfo=timezone.utc))
    slot = datetime(2026, 5, 1, 0, 1, tzinfo=timezone.utc)
    policy = MisfirePolicy(0, Catchup.NONE, on_time_seconds=1.0)
    assert plan_due(rule, slot, slot + timedelta(milliseconds=300), policy).fire == (slot,)
    late = plan_due(rule, slot, slot + timedelta(seconds=2), policy)
    assert late.fire == () and late.missed == (slot,)
    exact = MisfirePolicy(0, Catchup.NONE)
    assert plan_due(rule, slot, slot + timedelta(milliseconds=300), exact).fire == ()


def test_plan_ahead_fires_the_stored_slot_and_moves_to_the_next():
    slot = u(2026, 5, 1, 12, 1)
    plan = plan_ahead(EVERY_MIN, slot)
    assert plan.fire == (slot,) and plan.missed == () and plan.missed_unrecorded == 0
    assert plan.next_run_at == u(2026, 5, 1, 12, 2) and not plan.exhausted


def test_plan_ahead_respects_max_runs_and_the_end_of_a_rule():
    slot = u(2026, 5, 1, 12, 1)
    last = plan_ahead(EVERY_MIN, slot, runs_so_far=2, max_runs=3)
    assert last.fire == (slot,) and last.exhausted and last.next_run_at is None
    spent = plan_ahead(EVERY_MIN, slot, runs_so_far=3, max_runs=3)
    assert spent.fire == () and spent.exhausted
    once = Rule(ScheduleType.ONCE, run_at=slot)
    only = plan_ahead(once, slot)
    assert only.fire == (slot,) and only.exhausted and only.next_run_at is None
