// #/schedules/<id> — one schedule: rule, next fire times, stats, chart, executions (live), audit trail.
import { gql, SCHEDULE_FIELDS, EXECUTION_FIELDS, pauseSchedule, resumeSchedule, triggerSchedule, deleteSchedule } from "../api.js";
import { h, badge, tags, ruleText, fmtLocal, fmtUtc, fmtMs, confirmAction, toast, debounce, pager, cell, lower, shortId, ago, overlapText, completionText } from "../ui.js";
import { outcomeChart } from "../chart.js";
import { openBackfill, backfillsPanel } from "./backfill.js";
import { subscriptions, EXECUTION_EVENTS, liveIndicator } from "../ws.js";

const DETAIL = `query($id: UUID!) {
  schedule(id: $id) {
    ${SCHEDULE_FIELDS}
    nextFireTimes(count: 10) { at localTime note }
    stats { total successRate byStatus { status count } durationMs { p50 p95 max } lagMs { p50 p95 max } lastOutcome lastRunAt }
  }
}`;
const EXECUTIONS = `query($id: UUID!, $first: Int!, $after: String) {
  schedule(id: $id) { executions(first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { ${EXECUTION_FIELDS} } } } }
}`;
const CHART = `query($id: UUID!) { executions(scheduleId: $id, first: 100) { edges { node { id scheduledFor status lagMs durationMs } } } }`;
const ONE = `query($id: UUID!) { execution(id: $id) { ${EXECUTION_FIELDS} } }`;
const AUDIT = `query($id: ID!, $after: String) {
  auditLog(filter: { scheduleId: $id }, first: 20, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { node { id at actor action reason correlationId before after } }
  }
}`;

export async function render(main, [id]) {
  const data = await gql(DETAIL, { id });
  let schedule = data.schedule;
  if (!schedule) {
    document.title = "Not found · Scheduler";
    main.append(h("h1", {}, "Schedule not found"), h("p", {}, "It does not exist or was deleted. ", h("a", { href: "#/" }, "Back to the schedules")));
    return;
  }
  document.title = `${schedule.name} · Scheduler`;

  const head = h("div", { class: "page-head" });
  const statsBox = h("ul", { class: "stats", "aria-label": "Statistics" });
  const ruleBox = h("section", { class: "panel", "aria-labelledby": "rule-h" });
  const fireBox = h("section", { class: "panel", "aria-labelledby": "fire-h" });
  const chartBox = h("div", { id: "chart-box" });
  const execBody = h("tbody", { id: "executions-body" });
  const execPager = h("div");
  const auditBody = h("tbody", { id: "audit-body" });
  const auditPager = h("div");
  const [live, disposeLive] = liveIndicator(document);
  const backfills = backfillsPanel(id);

  main.append(head, statsBox,
    h("div", { class: "grid-2" }, ruleBox, fireBox),
    h("section", { class: "panel", "aria-labelledby": "chart-h", style: "margin-top:1rem" }, h("h2", { id: "chart-h" }, "Outcomes and lag"), chartBox),
    backfills.panel,
    h("section", { class: "panel", "aria-labelledby": "exec-h" },
      h("h2", { id: "exec-h" }, "Executions ", live),
      h("div", { class: "table-wrap" }, h("table", { class: "collapse", id: "executions-table" },
        h("thead", {}, h("tr", {}, ["Slot (UTC)", "Trigger", "Status", "Attempts", "Lag", "Duration", "Reason / error"].map((c) => h("th", { scope: "col" }, c)))),
        execBody)),
      execPager),
    h("section", { class: "panel", "aria-labelledby": "audit-h" },
      h("h2", { id: "audit-h" }, "Audit trail"),
      h("div", { class: "table-wrap" }, h("table", { class: "collapse", id: "audit-table" },
        h("thead", {}, h("tr", {}, ["When (UTC)", "Actor", "Action", "Changes", "Reason", "Correlation"].map((c) => h("th", { scope: "col" }, c)))),
        auditBody)),
      auditPager));

  function drawHead() {
    const s = schedule;
    const buttons = [h("a", { class: "btn", href: `#/schedules/${s.id}/edit` }, "Edit")];
    if (s.status === "ACTIVE") buttons.push(h("button", { type: "button", class: "btn", "data-action": "pause", onclick: () => lifecycle("pause") }, "Pause"));
    if (s.status === "PAUSED") buttons.push(h("button", { type: "button", class: "btn", "data-action": "resume", onclick: () => lifecycle("resume") }, "Resume"));
    buttons.push(h("button", { type: "button", class: "btn", "data-action": "trigger", onclick: trigger }, "Trigger now"));
    buttons.push(h("button", { type: "button", class: "btn", "data-action": "backfill", onclick: backfill }, "Backfill…"));
    buttons.push(h("button", { type: "button", class: "btn btn-danger", "data-action": "delete", onclick: remove }, "Delete"));
    head.replaceChildren(
      h("div", {},
        h("p", { class: "small" }, h("a", { href: "#/" }, "← Schedules")),
        h("h1", {}, s.name, " ", h("span", { id: "schedule-status" }, badge(s.status))),
        h("p", { class: "muted" }, h("code", {}, ruleText(s)), s.description ? ` — ${s.description}` : "")),
      h("div", { class: "actions" }, buttons));

    const st = s.stats;
    const stat = (k, v) => h("li", {}, h("span", { class: "v" }, v), h("span", { class: "k" }, k));
    statsBox.replaceChildren(
      stat("runs", String(s.runCount)),
      stat("success rate", st.successRate == null ? "—" : `${Math.round(st.successRate * 1000) / 10} %`),
      stat("lag p50 / p95", `${fmtMs(st.lagMs.p50)} / ${fmtMs(st.lagMs.p95)}`),
      stat("duration p50 / p95", `${fmtMs(st.durationMs.p50)} / ${fmtMs(st.durationMs.p95)}`),
      stat("last outcome", st.lastOutcome ? lower(st.lastOutcome) : "—"),
      stat("next run", s.nextRunAt ? ago(s.nextRunAt) : "—"));

    const prop = (k, v) => [h("dt", {}, k), h("dd", {}, v ?? h("span", { class: "muted" }, "—"))];
    ruleBox.replaceChildren(h("h2", { id: "rule-h" }, "Rule and delivery"), h("dl", { class: "props" },
      prop("Rule", h("code", { id: "rule-text" }, ruleText(s))),
      prop("Type", lower(s.scheduleType)),
      prop("Time zone", s.timezone),
      prop("Status", s.statusReason ? `${lower(s.status)} — ${s.statusReason}` : lower(s.status)),
      s.pausedUntil ? prop("Paused until", h("span", { id: "paused-until" }, `${fmtUtc(s.pausedUntil)} (resumes by itself)`)) : [],
      prop("Next run", s.nextRunAt ? `${fmtLocal(s.nextRunAtLocal)} (${fmtUtc(s.nextRunAt)})` : null),
      prop("Last run", s.lastRunAt ? fmtUtc(s.lastRunAt) : null),
      prop("Window", s.startAt || s.endAt ? `${s.startAt ? fmtUtc(s.startAt) : "…"} → ${s.endAt ? fmtUtc(s.endAt) : "…"}` : null),
      prop("DST", `gap: ${lower(s.dstGap)}, repeat: ${lower(s.dstRepeat)}`),
      prop("Target", h("code", {}, s.targetCommand)),
      prop("Delivery", s.deliveryMode === "REQUEST" ? `request (timeout ${s.requestTimeoutSeconds} s)` : "auto"),
      prop("Priority", String(s.priority)),
      prop("Retries", `${s.maxRetries}, first delay ${s.retryDelay} s`),
      prop("Misfires", `grace ${s.misfireGraceSeconds} s, catch-up ${lower(s.catchup)}`),
      prop("On failure", `${s.pauseAfterFailures ? `pause after ${s.pauseAfterFailures} failed runs in a row` : "never pause"}; dead letters to ${s.deadLetterSubject || "the service default"}`),
      prop("Completion", h("span", { id: "completion-text" }, completionText(s))),
      prop("Overlap", h("span", { id: "overlap-text" }, overlapText(s.overlapPolicy, s.targetCommand))),
      prop("Concurrency", `max ${s.maxConcurrent}${s.maxRuns ? `, max runs ${s.maxRuns}` : ""}${s.jitterSeconds ? `, jitter ≤ ${s.jitterSeconds} s` : ""}`),
      prop("Tags", tags(s.tags)),
      prop("Payload", h("pre", { class: "json" }, JSON.stringify(s.commandPayload, null, 2))),
      prop("Created", `${fmtUtc(s.createdAt)} by ${s.createdBy}`),
      prop("Updated", `${fmtUtc(s.updatedAt)}${s.updatedBy ? ` by ${s.updatedBy}` : ""} · version ${s.version}`),
      prop("Id", h("code", {}, s.id))));

    const fires = s.nextFireTimes || [];
    fireBox.replaceChildren(h("h2", { id: "fire-h" }, "Next 10 fire times"),
      fires.length
        ? h("ol", { class: "fire-list", id: "next-fires" }, fires.map((f) => h("li", {},
            h("span", {}, h("strong", {}, fmtLocal(f.localTime)), f.note ? [" ", h("span", { class: "note" }, f.note)] : null),
            h("span", { class: "utc" }, fmtUtc(f.at)))))
        : h("p", { class: "muted" }, s.status === "PAUSED" ? "Paused: no upcoming fire times until resumed." : "No upcoming fire times."),
      h("p", { class: "hint" }, `Wall time in ${s.timezone}; UTC below. A note marks a time shifted by a DST gap or repeated in a DST overlap.`));
  }

  async function refreshHead() {
    try {
      const fresh = (await gql(DETAIL, { id })).schedule;
      if (fresh) { schedule = fresh; drawHead(); }
    } catch { /* keep the old view */ }
  }

  async function lifecycle(verb) {
    const ok = await confirmAction({
      title: `${verb === "pause" ? "Pause" : "Resume"} schedule?`,
      body: verb === "pause" ? `“${schedule.name}” stops firing until it is resumed, or until the instant below.` : `“${schedule.name}” fires again; slots due during the pause follow its catch-up policy.`,
      confirmLabel: verb === "pause" ? "Pause" : "Resume",
      until: verb === "pause",
      action: async (reason, until) => {
        const r = await (verb === "pause" ? pauseSchedule(id, reason, until) : resumeSchedule(id, reason));
        return r.__typename === "Schedule" ? null : r;
      },
    });
    if (ok) { toast(`${verb === "pause" ? "Paused" : "Resumed"} “${schedule.name}”.`); await refreshHead(); loadAudit(); head.querySelector("[data-action=pause],[data-action=resume]")?.focus(); }
  }

  async function trigger() {
    const ok = await confirmAction({
      title: "Trigger a run now?", body: `Records a manual execution of “${schedule.name}”, published right away.`, confirmLabel: "Trigger", reason: false,
      action: async () => { const r = await triggerSchedule(id); return r.__typename === "TriggerScheduleSuccess" ? null : r; },
    });
    if (ok) { toast("Triggered: the run appears below when the worker picks it up."); loadAudit(); }
  }

  async function backfill() {
    if (await openBackfill(schedule)) { await backfills.refresh(); loadAudit(); }
  }

  async function remove() {
    const ok = await confirmAction({
      title: "Delete schedule?", body: `“${schedule.name}” never fires again; history and audit trail are kept.`, confirmLabel: "Delete", danger: true,
      action: async (reason) => { const r = await deleteSchedule(id, reason); return r.__typename === "DeleteScheduleSuccess" ? null : r; },
    });
    if (ok) { toast(`Deleted “${schedule.name}”.`); location.hash = "#/"; }
  }

  // Executions table with cursor paging and live upserts.
  let executions = [];
  let execInfo = null;
  let execTotal = 0;
  function execRow(e) {
    return h("tr", { dataset: { id: e.id, status: e.status } },
      cell("Slot (UTC)", fmtUtc(e.scheduledFor)),
      cell("Trigger", e.triggerType, e.triggeredBy ? h("span", { class: "sub" }, e.triggeredBy) : null),
      cell("Status", badge(e.status)),
      h("td", { class: "num", "data-label": "Attempts" }, String(e.attempts)),
      h("td", { class: "num", "data-label": "Lag" }, fmtMs(e.lagMs)),
      h("td", { class: "num", "data-label": "Duration" }, fmtMs(e.durationMs)),
      cell("Reason / error", e.lastError ? h("span", { class: "sub", style: "color:var(--bad)" }, e.lastError) : e.reason || (completion(e) ? null : h("span", { class: "muted" }, "—")), completion(e)));
  }
  /** Where a run with completion report stands: its report deadline, or when and what it reported. */
  function completion(e) {
    if (e.status === "AWAITING" && e.completeBy) return h("span", { class: "sub" }, `report due by ${fmtUtc(e.completeBy)}`);
    if (!e.reportedAt) return null;
    const result = e.result ? JSON.stringify(e.result) : "";
    return h("span", { class: "sub" }, `reported ${fmtUtc(e.reportedAt)}`,
      result ? [" · ", h("code", { title: result }, result.length > 60 ? `${result.slice(0, 57)}…` : result)] : null);
  }
  function drawExecutions() {
    execBody.replaceChildren(...executions.map(execRow));
    if (!executions.length) execBody.append(h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No executions yet. They appear here live.")));
    execPager.replaceChildren(pager({ shown: executions.length, total: execTotal, hasNext: execInfo?.hasNextPage, onMore: () => loadExecutions(true), label: "executions" }));
  }
  async function loadExecutions(more = false) {
    const d = await gql(EXECUTIONS, { id, first: 25, after: more ? execInfo?.endCursor : null });
    const conn = d.schedule?.executions;
    if (!conn) return;
    const nodes = conn.edges.map((e) => e.node);
    executions = more ? executions.concat(nodes) : nodes;
    execInfo = conn.pageInfo;
    execTotal = conn.totalCount;
    drawExecutions();
  }
  async function upsertExecution(executionId) {
    const e = (await gql(ONE, { id: executionId })).execution;
    if (!e) return;
    const known = executions.findIndex((x) => x.id === e.id);
    if (known >= 0) executions[known] = e;
    else {
      executions.unshift(e);
      executions.sort((a, b) => (a.scheduledFor < b.scheduledFor ? 1 : -1));
      execTotal += 1;
    }
    drawExecutions();
    execBody.querySelector(`tr[data-id="${e.id}"]`)?.classList.add("flash");
  }

  async function loadChart() {
    try {
      const d = await gql(CHART, { id });
      chartBox.replaceChildren(outcomeChart(d.executions.edges.map((e) => e.node)));
    } catch (error) {
      chartBox.replaceChildren(h("p", { class: "banner" }, `Chart unavailable: ${error.message}`));
    }
  }

  let audit = [];
  let auditInfo = null;
  let auditTotal = 0;
  async function loadAudit(more = false) {
    const d = await gql(AUDIT, { id, after: more ? auditInfo?.endCursor : null });
    const conn = d.auditLog;
    audit = more ? audit.concat(conn.edges.map((e) => e.node)) : conn.edges.map((e) => e.node);
    auditInfo = conn.pageInfo;
    auditTotal = conn.totalCount;
    auditBody.replaceChildren(...audit.map((a) => h("tr", {},
      cell("When (UTC)", fmtUtc(a.at)),
      cell("Actor", a.actor),
      cell("Action", h("strong", {}, a.action)),
      cell("Changes", changes(a)),
      cell("Reason", a.reason || h("span", { class: "muted" }, "—")),
      cell("Correlation", h("code", { title: a.correlationId || "" }, shortId(a.correlationId) || "—")))));
    if (!audit.length) auditBody.append(h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No audit entries.")));
    auditPager.replaceChildren(pager({ shown: audit.length, total: auditTotal, hasNext: auditInfo?.hasNextPage, onMore: () => loadAudit(true), label: "entries" }));
  }

  drawHead();
  await Promise.all([loadExecutions(), loadChart(), loadAudit(), backfills.refresh()]);

  const refreshLater = debounce(() => { loadChart(); refreshHead(); }, 1200);
  const unsubscribe = subscriptions.subscribe(EXECUTION_EVENTS, { scheduleId: id }, {
    next: (data) => {
      const event = data.executionEvents;
      upsertExecution(event.executionId).catch(() => {});
      refreshLater();
    },
    error: (errors) => console.warn("subscription error", errors),
  });
  return () => { unsubscribe(); disposeLive(); refreshLater.cancel(); backfills.dispose(); };
}

/** The keys an audit entry changed, e.g. "status: active → paused". */
function changes(entry) {
  const before = entry.before || {}, after = entry.after || {};
  if (!entry.before && entry.after) return h("span", { class: "muted" }, "created");
  if (entry.before && !entry.after) return h("span", { class: "muted" }, "removed");
  const skip = new Set(["updated_at", "updatedAt", "version", "updated_by", "updatedBy"]);
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])]
    .filter((k) => !skip.has(k) && JSON.stringify(before[k]) !== JSON.stringify(after[k]));
  if (!keys.length) return h("span", { class: "muted" }, "—");
  const show = (v) => (v === null || v === undefined ? "∅" : typeof v === "object" ? JSON.stringify(v) : String(v));
  const trim = (t) => (t.length > 40 ? `${t.slice(0, 37)}…` : t);
  return h("ul", { style: "margin:0;padding-left:1rem" }, keys.slice(0, 6).map((k) => h("li", {}, h("code", {}, k), `: ${trim(show(before[k]))} → ${trim(show(after[k]))}`)),
    keys.length > 6 ? h("li", { class: "muted" }, `… ${keys.length - 6} more`) : null);
}
