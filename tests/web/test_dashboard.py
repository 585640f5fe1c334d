"""The web dashboard in real headless Chromium against the real API, ticker and worker.

Every page visited is saved as a full-page screenshot in test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from playwright.sync_api import Page, expect

from tests.support.browser import create_schedule, graphql, shot
from tests.support.harness import unique_subject, wait_until

LIVE = 30_000  # generous deadline for anything that needs the pipeline to fire


def test_create_every_two_seconds_with_preview_then_see_executions_live(page: Page, stack):
    name = f"every-two-{uuid.uuid4().hex[:6]}"
    page.goto("/#/new")
    expect(page.get_by_role("heading", name="New schedule")).to_be_visible()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Target command (NATS subject)").fill(unique_subject())
    page.get_by_label("Schedule type").select_option("CRON")
    page.get_by_label("Cron expression").fill("*/2 * * * * *")
    page.get_by_label("Time zone").fill("Europe/Paris")
    page.get_by_label("Tags").fill("web, fast")

    # The preview shows the next 10 fire times, two seconds apart, before anything is saved.
    fires = page.locator("#preview-list li")
    expect(fires).to_have_count(10)
    expect(page.locator("#preview-state")).to_contain_text("Europe/Paris")
    assert (
        graphql(
            stack, "query($f: ScheduleFilterInput) { schedules(filter: $f) { totalCount } }", {"f": {"search": name}}
        )["schedules"]["totalCount"]
        == 0
    )
    shot(page, "01-form-preview")

    page.get_by_role("button", name="Create schedule").click()
    expect(page).to_have_url(re.compile(r"#/schedules/[0-9a-f-]{36}$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    expect(page.locator("#rule-text")).to_have_text("cron */2 * * * * * (Europe/Paris)")
    expect(page.locator("#next-fires li")).to_have_count(10)
    expect(page.locator("#exec-h .live")).to_have_attribute("data-state", "open", timeout=LIVE)

    # Rows arrive through the executionEvents subscription (the page does not poll): several slots.
    succeeded = page.locator('#executions-body tr[data-status="SUCCEEDED"]')
    expect(succeeded.nth(2)).to_be_visible(timeout=LIVE)
    expect(page.locator("#outcome-chart")).to_be_visible(timeout=LIVE)
    expect(page.locator("#audit-body")).to_contain_text("web-dashboard")
    shot(page, "02-schedule-page-live")

    # The executions page streams every schedule's events.
    page.get_by_role("link", name="Executions", exact=True).click()
    expect(page.get_by_role("heading", name="Executions", level=1)).to_be_visible()
    expect(page.locator("#event-feed li").filter(has_text=name).first).to_be_visible(timeout=LIVE)
    shot(page, "03-executions-page")
    # Stop it firing so the other tests' pages stay small.
    schedule_id = page.locator("#event-feed li").filter(has_text=name).first.get_attribute("data-schedule")
    graphql(stack, "mutation($id: UUID!) { pauseSchedule(id: $id) { __typename } }", {"id": schedule_id})


def table_row(page: Page, schedule: dict):
    """The schedules table filtered down to `schedule`: its row."""
    page.goto("/")
    page.get_by_label("Search by name").fill(schedule["name"])
    expect(page.locator("#schedules-table tbody tr")).to_have_count(1)
    return page.locator(f'#schedules-table tr[data-id="{schedule["id"]}"]')


def test_pause_and_resume_from_the_table_with_confirmation(page: Page, stack):
    schedule = create_schedule(stack, name=f"pausable-{uuid.uuid4().hex[:6]}")
    row = table_row(page, schedule)
    expect(row).to_contain_text("cron 0 9 * * * (America/New_York)")
    expect(row.locator(".status-cell")).to_have_text("active")
    shot(page, "04-schedules-table")

    row.get_by_role("button", name=f"Pause {schedule['name']}").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(schedule["name"])
    dialog.get_by_label("Reason").fill("maintenance window")
    shot(page, "05-pause-dialog")
    dialog.get_by_role("button", name="Pause").click()
    expect(dialog).to_be_hidden()
    expect(row.locator(".status-cell")).to_have_text("paused")
    expect(row.get_by_role("button", name=f"Resume {schedule['name']}")).to_be_visible()

    row.get_by_role("button", name=f"Resume {schedule['name']}").click()
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Resume").click()
    expect(dialog).to_be_hidden()
    expect(row.locator(".status-cell")).to_have_text("active")
    shot(page, "06-schedules-table-resumed")

    # Both changes are in the audit trail on the schedule page, with the reason.
    row.get_by_role("link", name=schedule["name"], exact=True).click()
    audit = page.locator("#audit-body")
    expect(audit).to_contain_text("maintenance window")
    expect(audit.locator("tr")).to_have_count(3)
    shot(page, "07-schedule-page-audit")


def test_snooze_from_the_table_with_the_date_picker(page: Page, stack):
    schedule = create_schedule(stack, name=f"snoozed-{uuid.uuid4().hex[:6]}")
    row = table_row(page, schedule)

    row.get_by_role("button", name=f"Pause {schedule['name']}").click()
    dialog = page.locator("#confirm-dialog")
    dialog.get_by_label("Reason").fill("holiday")
    dialog.get_by_label("Resume by itself at").fill("2099-01-02T09:30")
    shot(page, "05b-snooze-dialog")
    dialog.get_by_role("button", name="Pause").click()
    expect(dialog).to_be_hidden()

    expected = page.evaluate("new Date('2099-01-02T09:30').toISOString()")
    stored = graphql(stack, "query($id: UUID!) { schedule(id: $id) { status pausedUntil } }", {"id": schedule["id"]})
    assert stored["schedule"]["status"] == "PAUSED"
    assert stored["schedule"]["pausedUntil"].replace("+00:00", "Z").startswith(expected[:19])
    expect(row.locator(".status-cell")).to_have_text("paused")
    expect(row).to_contain_text("until 2099-01-02")


def test_a_dead_lettered_run_is_listed_and_retried_from_the_executions_page(page: Page, stack):
    schedule = create_schedule(
        stack, name=f"dead-{uuid.uuid4().hex[:6]}", deliveryMode="REQUEST", requestTimeoutSeconds=1, maxRetries=0
    )
    triggered = graphql(
        stack, "mutation($id: UUID!) { r: triggerSchedule(id: $id) { __typename } }", {"id": schedule["id"]}
    )
    assert triggered["r"]["__typename"] == "TriggerScheduleSuccess"
    page.goto("/#/executions")
    dead = page.locator("#dead-body tr")
    expect(dead.filter(has_text=schedule["name"])).to_have_count(1, timeout=LIVE)
    shot(page, "08b-dead-letters")

    dead.filter(has_text=schedule["name"]).get_by_role("button", name=re.compile("^Retry execution")).click()

    expect(page.locator("#toasts")).to_contain_text("Retrying execution")
    query = "query($id: UUID!) { executions(scheduleId: $id) { edges { node { attempts deadLetteredAt } } } }"

    def dead_again() -> bool:
        (edge,) = graphql(stack, query, {"id": schedule["id"]})["executions"]["edges"]
        return edge["node"]["attempts"] == 2 and edge["node"]["deadLetteredAt"] is not None

    # The retried attempt fails again (nobody answers its requests) and is dead-lettered again.
    wait_until(dead_again, LIVE / 1000, message="the retried attempt, dead-lettered again")
    page.get_by_role("button", name="Refresh").click()
    expect(dead.filter(has_text=schedule["name"])).to_have_count(1)


def utc_text(iso: str) -> str:
    """An instant as the dashboard writes it (fmtUtc): "2026-11-27 14:00:00 UTC"."""
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def trigger(stack, schedule_id: str) -> None:
    triggered = graphql(
        stack, "mutation($id: UUID!) { r: triggerSchedule(id: $id) { __typename } }", {"id": schedule_id}
    )
    assert triggered["r"]["__typename"] == "TriggerScheduleSuccess"


def _fill_completion_and_overlap(page: Page, name: str, subject: str) -> None:
    """The new-schedule form with completion REPORT (timeout 600 s) and overlap SKIP, submitted."""
    page.goto("/#/new")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Target command (NATS subject)").fill(subject)
    page.get_by_label("Cron expression").fill("0 9 * * *")
    page.locator("#completion-overlap > summary").click()
    timeout = page.get_by_label("Completion timeout (s)")
    expect(timeout).to_be_hidden()  # relevant with completion report only
    page.get_by_label("Completion mode").select_option("REPORT")
    expect(timeout).to_be_visible()
    timeout.fill("600")
    overlap = page.get_by_label("Overlap policy")
    expect(overlap.locator("option[value=CANCEL_OTHER]")).to_contain_text(f"cancel notice to {subject}.cancel")
    expect(overlap.locator("option[value=BUFFER_ONE]")).to_have_text("buffer_one: keep at most one waiting run")
    overlap.select_option("SKIP")
    shot(page, "16-form-completion-overlap")
    page.get_by_role("button", name="Create schedule").click()


def _awaiting_on_the_schedule_page(page: Page, stack, schedule_id: str) -> str:
    """Trigger from the schedule page; the run awaits its report: its completeBy, as the page shows it."""
    page.get_by_role("button", name="Trigger now").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Trigger").click()
    awaiting = page.locator('#executions-body tr[data-status="AWAITING"]')
    expect(awaiting).to_have_count(1, timeout=LIVE)
    (edge,) = graphql(
        stack,
        "query($id: UUID!) { executions(scheduleId: $id) { edges { node { status completeBy } } } }",
        {"id": schedule_id},
    )["executions"]["edges"]
    assert edge["node"]["status"] == "AWAITING"
    complete_by = utc_text(edge["node"]["completeBy"])
    expect(awaiting).to_contain_text(f"report due by {complete_by}")
    shot(page, "17-schedule-page-awaiting")
    return complete_by


def _timed_out_is_retried(page: Page, stack, timing_out: dict) -> None:
    """The run that got no report in time is listed with the failures, and a Retry sends it again."""
    timed_out = page.locator("#failed-body tr").filter(has_text=timing_out["name"])
    expect(timed_out.locator(".badge")).to_have_text("timed_out", timeout=LIVE)
    shot(page, "18-executions-awaiting-buffered-timed-out")
    timed_out.get_by_role("button", name=re.compile("^Retry execution")).click()
    expect(page.locator("#toasts")).to_contain_text("Retrying execution")
    query = "query($id: UUID!) { executions(scheduleId: $id) { edges { node { attempts status } } } }"

    def tried_again() -> bool:
        (run,) = graphql(stack, query, {"id": timing_out["id"]})["executions"]["edges"]
        return run["node"]["attempts"] == 2

    wait_until(tried_again, LIVE / 1000, message="the retried attempt of the timed-out run")


def test_completion_and_overlap_from_the_form_to_awaiting_buffered_and_timed_out_runs(page: Page, stack):
    # Runs the executions page shows besides the form's: one that times out (no retry left) and two
    # of a buffer_one schedule, triggered together (the later one waits for the earlier one's report).
    timing_out = create_schedule(
        stack, name=f"times-out-{uuid.uuid4().hex[:6]}", completion="REPORT", completionTimeoutSeconds=1, maxRetries=0
    )
    buffering = create_schedule(
        stack, name=f"buffers-{uuid.uuid4().hex[:6]}", completion="REPORT", overlapPolicy="BUFFER_ONE"
    )
    for schedule_id in (timing_out["id"], buffering["id"], buffering["id"]):
        trigger(stack, schedule_id)

    name = f"reported-{uuid.uuid4().hex[:6]}"
    _fill_completion_and_overlap(page, name, unique_subject())

    expect(page).to_have_url(re.compile(r"#/schedules/[0-9a-f-]{36}$"))
    schedule_id = page.url.rsplit("/", 1)[1]
    stored = graphql(
        stack,
        "query($id: UUID!) { schedule(id: $id) { completion completionTimeoutSeconds overlapPolicy } }",
        {"id": schedule_id},
    )["schedule"]
    assert stored == {"completion": "REPORT", "completionTimeoutSeconds": 600, "overlapPolicy": "SKIP"}
    expect(page.locator("#completion-text")).to_have_text(
        "report: a run ends when the target reports its completion; timeout 600 s (10 min)"
    )
    expect(page.locator("#overlap-text")).to_have_text("skip: record the new slot skipped")
    complete_by = _awaiting_on_the_schedule_page(page, stack, schedule_id)

    page.get_by_role("link", name="Executions", exact=True).click()
    running = page.locator("#running-body tr").filter(has_text=name)
    expect(running.locator(".badge")).to_have_text("awaiting")
    expect(running.locator("td[data-label='Report due']")).to_contain_text(complete_by)
    buffered = page.locator("#buffered-body tr").filter(has_text=buffering["name"])
    expect(buffered).to_have_count(1, timeout=LIVE)
    expect(buffered.locator(".badge")).to_have_text("buffered")
    expect(page.locator("#running-body tr").filter(has_text=buffering["name"]).locator(".badge")).to_have_text(
        "awaiting"
    )
    _timed_out_is_retried(page, stack, timing_out)


def test_validation_message_next_to_the_cron_field(page: Page, stack):
    page.goto("/#/new")
    page.get_by_label("Name").fill("never-fires")
    page.get_by_label("Target command (NATS subject)").fill(unique_subject())
    cron = page.get_by_label("Cron expression")
    cron.fill("0 0 30 2 *")
    # Live, from previewSchedule's error, then again from createSchedule's ValidationError.
    message = page.locator("#err-cronExpression")
    expect(message).to_contain_text("never fires")
    expect(cron).to_have_attribute("aria-invalid", "true")
    page.get_by_role("button", name="Create schedule").click()
    expect(page.locator("#error-summary")).to_contain_text("ValidationError")
    expect(message).to_contain_text("never fires")
    expect(cron).to_be_focused()
    assert "#/new" in page.url
    shot(page, "08-form-validation")

    cron.fill("0 9 * * *")
    expect(message).to_be_empty()
    expect(page.locator("#preview-list li")).to_have_count(10)


def test_links_to_the_dramatiq_dashboard_docs_and_graphiql(page: Page, stack):
    page.goto("/")
    expect(page.get_by_role("link", name="API docs")).to_have_attribute("href", "/docs")
    expect(page.get_by_role("link", name="GraphiQL")).to_have_attribute("href", "/graphql")
    page.get_by_role("link", name="Dramatiq").click()
    expect(page).to_have_url(re.compile(r"/dramatiq/?$"))
    expect(page).to_have_title(re.compile("Dramatiq"))
    shot(page, "09-dramatiq-dashboard")


def test_narrow_viewport_has_no_horizontal_scroll(browser, stack):
    create_schedule(stack, name=f"narrow-{uuid.uuid4().hex[:6]}", tags=["mobile", "check"])
    schedule = create_schedule(
        stack,
        name=f"narrow-interval-{uuid.uuid4().hex[:6]}",
        scheduleType="INTERVAL",
        cronExpression=None,
        intervalSeconds=3600,
        timezone=None,
    )
    context = browser.new_context(base_url=stack.api, viewport={"width": 375, "height": 740}, is_mobile=True)
    page = context.new_page()
    try:
        for path, name, ready in [
            ("/", "10-narrow-schedules", "#schedules-table tbody tr[data-id]"),
            (f"/#/schedules/{schedule['id']}", "11-narrow-schedule-page", "#next-fires li"),
            ("/#/new", "12-narrow-form", "#in-name"),
            ("/#/executions", "13-narrow-executions", "#running-body tr"),
        ]:
            page.goto(path)
            page.wait_for_selector(ready)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 376, f"{path} is {width}px wide at a 375px viewport"
            shot(page, name)
        # The table collapses into labelled cards: the header row is visually hidden.
        page.goto("/")
        page.wait_for_selector("#schedules-table tbody tr[data-id]")
        assert page.locator("#schedules-table thead").bounding_box()["height"] <= 1
        assert page.locator("#schedules-table tbody td[data-label='Rule']").first.is_visible()
    finally:
        context.close()


def test_keyboard_only_dialog_opens_with_enter_and_closes_with_escape(page: Page, stack):
    schedule = create_schedule(stack, name=f"keyboard-{uuid.uuid4().hex[:6]}")
    page.goto(f"/#/schedules/{schedule['id']}")
    expect(page.locator("#next-fires li").first).to_be_visible()
    page.locator("body").focus()
    # Tab from the top of the page to the Pause button.
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.action") == "pause":
            break
    else:
        raise AssertionError("Tab never reached the Pause button")
    focused = page.locator("[data-action=pause]")
    expect(focused).to_be_focused()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused button has no visible focus ring"

    page.keyboard.press("Enter")
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    # Focus moves into the dialog and Tab stays inside it.
    for _ in range(6):
        assert page.evaluate("document.getElementById('confirm-dialog').contains(document.activeElement)")
        page.keyboard.press("Tab")
    shot(page, "14-keyboard-dialog")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(focused).to_be_focused()
    expect(page.locator("#schedule-status")).to_have_text("active")  # nothing happened


def test_sign_in_dialog_on_401_sends_the_key_as_bearer(page: Page, stack):
    seen: list[str | None] = []
    state = {"rejected": False}

    def guard(route):
        auth = route.request.headers.get("authorization")
        seen.append(auth)
        if auth != "Bearer test-key":
            state["rejected"] = True
            route.fulfill(
                status=401,
                content_type="application/json",
                body='{"errors": [{"message": "unauthenticated", "extensions": {"code": "unauthenticated"}}]}',
            )
        else:
            route.continue_()

    page.route("**/graphql", guard)
    page.goto("/")
    dialog = page.locator("#signin-dialog")
    expect(dialog).to_be_visible()
    shot(page, "15-sign-in-dialog")
    dialog.get_by_label("API key").fill("test-key")
    dialog.get_by_role("button", name="Sign in").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("heading", name="Schedules")).to_be_visible()
    expect(page.locator("#schedules-table")).to_be_visible()
    assert state["rejected"] and seen[-1] == "Bearer test-key"
    assert page.evaluate("sessionStorage.getItem('scheduler.apiKey')") == "test-key"
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    dramatiq_cookies = {c["name"]: c for c in page.context.cookies(f"{stack.api}/dramatiq/")}
    assert dramatiq_cookies["scheduler_api_key"]["value"] == "test-key"
    assert dramatiq_cookies["scheduler_api_key"]["sameSite"] == "Strict"
    assert "scheduler_api_key" not in {c["name"] for c in page.context.cookies(f"{stack.api}/")}
    page.get_by_role("button", name="Sign out").click()
    assert "scheduler_api_key" not in {c["name"] for c in page.context.cookies(f"{stack.api}/dramatiq/")}


def test_editing_an_interval_schedule_saves_without_the_hidden_cron_fields(page: Page, stack):
    created = create_schedule(stack, scheduleType="INTERVAL", cronExpression=None, intervalSeconds=3600)
    page.goto(f"/#/schedules/{created['id']}/edit")
    renamed = f"{created['name']}-renamed"
    page.get_by_label("Name").fill(renamed)
    page.get_by_role("button", name="Save changes").click()

    expect(page.locator("#toasts")).to_contain_text(f"Saved “{renamed}” (version 2).")
    stored = graphql(stack, "query($id: UUID!) { schedule(id: $id) { name dstGap } }", {"id": created["id"]})
    assert stored["schedule"] == {"name": renamed, "dstGap": "SHIFT"}


def test_the_edit_form_previews_a_change_before_it_is_saved(page: Page, stack):
    created = create_schedule(stack, cronExpression="0 9 * * *", timezone="UTC")
    page.goto(f"/#/schedules/{created['id']}/edit")
    page.locator("#cron-help summary").click()
    expect(page.locator("#cron-help")).to_contain_text("0 23-3/2 * * *")
    page.get_by_label("Cron expression").fill("H 7 * * *")
    expect(page.locator("#preview-list li").first).to_contain_text("07:")
    page.get_by_role("button", name="Preview the change").click()

    expect(page.locator("#fires-before li")).to_have_count(5)
    expect(page.locator("#fires-after li")).to_have_count(5)
    expect(page.locator("#fires-before li").first).to_contain_text("09:00")
    expect(page.locator("#fires-after li").first).to_contain_text("07:")
    expect(page.locator("#runs-kept")).to_contain_text("No run is in progress.")
    shot(page, "14-edit-preview")
    stored = graphql(stack, "query($id: UUID!) { schedule(id: $id) { cronExpression version } }", {"id": created["id"]})
    assert stored["schedule"] == {"cronExpression": "0 9 * * *", "version": 1}

    # The live preview resolves H with the schedule's id, as the saved schedule will.
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#toasts")).to_contain_text("(version 2)")
    saved = graphql(stack, "query($id: UUID!) { schedule(id: $id) { resolvedCron } }", {"id": created["id"]})
    minute = saved["schedule"]["resolvedCron"].split()[0]
    page.goto(f"/#/schedules/{created['id']}/edit")
    expect(page.locator("#preview-list li").first).to_contain_text(f"07:{int(minute):02d}")


def test_a_backfill_from_the_schedule_page_with_its_dry_run_and_progress(page: Page, stack):
    created = create_schedule(
        stack, scheduleType="INTERVAL", cronExpression=None, intervalSeconds=3600, startAt="2026-01-01T00:00:00Z"
    )
    page.goto(f"/#/schedules/{created['id']}")
    page.get_by_role("button", name="Backfill…").click()
    dialog = page.locator("#backfill-dialog")
    expect(dialog).to_be_visible()
    # The browser runs in UTC here: 01:00 to 05:00 holds five hourly slots.
    page.locator("#backfill-start").fill("2026-01-02T01:00:00")
    page.locator("#backfill-end").fill("2026-01-02T05:00:00")
    page.get_by_label("Runs a second at most").fill("50")
    page.get_by_role("button", name="Dry run").click()
    expect(page.locator("#backfill-plan")).to_contain_text("5 slot(s) in the range; 0 already recorded")
    shot(page, "15-backfill-dry-run")
    page.get_by_role("button", name="Start backfill").click()

    expect(dialog).to_be_hidden()
    row = page.locator("#backfills-body tr").first
    expect(row.locator(".backfill-status")).to_have_text(re.compile("running|completed"))
    expect(row.locator(".backfill-runs")).to_contain_text("5")
    stored = graphql(stack, "query($id: UUID!) { backfills(scheduleId: $id) { runs } }", {"id": created["id"]})
    assert sum(stored["backfills"][0]["runs"].values()) == 5


def test_a_calendar_from_its_page_to_a_schedule_whose_preview_skips_its_days(page: Page, stack):
    page.goto("/#/calendars")
    expect(page.locator("#no-calendars, #calendar-list li").first).to_be_visible()
    name = f"weekends-{uuid.uuid4().hex[:6]}"
    page.get_by_label("Name").fill(name)
    page.get_by_label("Windows").fill("* * * * sat,sun")
    page.get_by_role("button", name="Create calendar").click()
    expect(page.locator(f"[data-calendar='{name}']")).to_contain_text("1 window(s)")
    shot(page, "16-calendars")

    page.goto("/#/new")
    page.get_by_label("Cron expression").fill("0 12 * * *")
    page.get_by_label("Time zone").fill("UTC")
    page.get_by_label("Exclude calendars").fill(name)
    excluded = page.locator("#preview-list li .excluded")
    expect(excluded.first).to_contain_text(f"calendar:{name}")
    assert 2 <= excluded.count() <= 4  # ten daily fires hold two to four weekend days
    page.get_by_label("Exclude calendars").fill("no-such-calendar")
    expect(page.locator("#err-excludeCalendars")).to_contain_text("no calendar named")
