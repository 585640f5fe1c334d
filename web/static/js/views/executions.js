// #/executions — runs in progress (running, retrying, awaiting their completion report), buffered runs,
// recent failures and timeouts and dead letters (with a Retry button), misfires (with reason) and a live
// event feed.
import { gql, EXECUTION_FIELDS, scheduleNames, cachedName, retryExecution } from "../api.js";
import { h, badge, fmtUtc, fmtMs, debounce, cell, lower, shortId, pager, toast, ago } from "../ui.js";
import { subscriptions, EXECUTION_EVENTS, liveIndicator } from "../ws.js";

const RUNNING = `query { runningExecutions { ${EXECUTION_FIELDS} } }`;
const BY_STATUS = `query($status: [ExecutionStatus!], $deadLettered: Boolean, $after: String) {
  executions(status: $status, deadLettered: $deadLettered, first: 20, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { ${EXECUTION_FIELDS} } } }
}`;

export async function render(main) {
  document.title = "Executions · Scheduler";
  const [live, disposeLive] = liveIndicator(document);
  const feed = h("ol", { class: "feed", id: "event-feed", reversed: true });
  const feedEmpty = h("p", { class: "muted small", id: "feed-empty" }, "Waiting for execution events…");
  const sections = {
    running: section("running", "Running, retrying and awaiting", "Being published now, waiting for a retry, or published and awaiting the target's completion report (until the report is due).",
      ["Schedule", "Slot (UTC)", "Status", "Attempts", "Started", "Report due", "Lag", "Last error"]),
    buffered: section("buffered", "Buffered", "Waiting for an earlier run of their schedule to end (overlap buffer_one or buffer_all); they start in slot order.",
      ["Schedule", "Slot (UTC)", "Status", "Trigger", "Recorded"]),
    failed: section("failed", "Recent failures and timeouts", "Out of retries: the command was not delivered, or its completion report did not come in time. Retry gives a run one more attempt.",
      ["Schedule", "Slot (UTC)", "Status", "Trigger", "Attempts", "Finished", "Duration", "Error", "Actions"]),
    dead: section("dead", "Dead letters", "Failed or timed-out runs published to their dead-letter subject, until they are retried.",
      ["Schedule", "Slot (UTC)", "Status", "Attempts", "Dead-lettered", "Error", "Actions"]),
    misfires: section("misfires", "Misfires", "Slots that did not fire (missed or skipped), with the reason.",
      ["Schedule", "Slot (UTC)", "Status", "Reason", "Recorded"]),
  };

  main.append(
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Executions"), h("p", { class: "muted" }, "What is running or waiting, what failed or timed out and what did not fire.")),
      h("div", { class: "actions" }, h("button", { type: "button", class: "btn", onclick: () => loadAll() }, "Refresh"))),
    h("section", { class: "panel", "aria-labelledby": "feed-h" }, h("h2", { id: "feed-h" }, "Live events ", live), feedEmpty, feed),
    sections.running.el, sections.buffered.el, sections.failed.el, sections.dead.el, sections.misfires.el);

  const scheduleCell = (e) => {
    const name = cachedName(e.scheduleId);
    return cell("Schedule", h("a", { href: `#/schedules/${e.scheduleId}` }, name || `schedule ${shortId(e.scheduleId)}`),
      name === null ? h("span", { class: "sub" }, "deleted") : null);
  };
  const errorCell = (label, e) => cell(label, e.lastError ? h("span", { class: "sub", style: "color:var(--bad)" }, e.lastError) : h("span", { class: "muted" }, "—"));

  async function loadRunning() {
    const list = (await gql(RUNNING)).runningExecutions;
    await scheduleNames(list.map((e) => e.scheduleId));
    sections.running.fill(list.map((e) => h("tr", { dataset: { id: e.id, status: e.status } },
      scheduleCell(e), cell("Slot (UTC)", fmtUtc(e.scheduledFor)), cell("Status", badge(e.status)),
      h("td", { class: "num", "data-label": "Attempts" }, String(e.attempts)), cell("Started", fmtUtc(e.startedAt)),
      cell("Report due", e.completeBy ? [fmtUtc(e.completeBy), h("span", { class: "sub" }, ago(e.completeBy))] : h("span", { class: "muted" }, "—")),
      h("td", { class: "num", "data-label": "Lag" }, fmtMs(e.lagMs)), errorCell("Last error", e))), "Nothing is running right now.");
  }

  const retryCell = (e) => cell("Actions", h("button", {
    type: "button", class: "btn btn-sm", "data-action": "retry", "aria-label": `Retry execution ${shortId(e.id)}`,
    onclick: async (event) => {
      const button = event.currentTarget;  // null once the handler has awaited
      button.disabled = true;
      const problem = await retryExecution(e.id).catch((error) => ({ message: error.message }));
      if (problem) { toast(`Not retried: ${problem.message}`, "error"); button.disabled = false; return; }
      toast(`Retrying execution ${shortId(e.id)}.`);
      loadAll();
    },
  }, "Retry"));

  function paged(key, filter, rowOf, emptyText) {
    let items = [], info = null, total = 0;
    return async function load(more = false) {
      const conn = (await gql(BY_STATUS, { ...filter, after: more ? info?.endCursor : null })).executions;
      const nodes = conn.edges.map((e) => e.node);
      items = more ? items.concat(nodes) : nodes;
      info = conn.pageInfo;
      total = conn.totalCount;
      await scheduleNames(items.map((e) => e.scheduleId));
      sections[key].fill(items.map(rowOf), emptyText,
        pager({ shown: items.length, total, hasNext: info.hasNextPage, onMore: () => load(true), label: "executions" }));
    };
  }
  const loadBuffered = paged("buffered", { status: ["BUFFERED"] }, (e) => h("tr", { dataset: { id: e.id, status: e.status } },
    scheduleCell(e), cell("Slot (UTC)", fmtUtc(e.scheduledFor)), cell("Status", badge(e.status)), cell("Trigger", e.triggerType),
    cell("Recorded", fmtUtc(e.createdAt))), "No run is waiting for an earlier one.");
  const loadFailed = paged("failed", { status: ["FAILED", "TIMED_OUT"] }, (e) => h("tr", { dataset: { id: e.id, status: e.status } },
    scheduleCell(e), cell("Slot (UTC)", fmtUtc(e.scheduledFor)), cell("Status", badge(e.status)), cell("Trigger", e.triggerType),
    h("td", { class: "num", "data-label": "Attempts" }, String(e.attempts)), cell("Finished", fmtUtc(e.finishedAt)),
    h("td", { class: "num", "data-label": "Duration" }, fmtMs(e.durationMs)), errorCell("Error", e), retryCell(e)), "No failures.");
  const loadDead = paged("dead", { deadLettered: true }, (e) => h("tr", { dataset: { id: e.id, status: e.status } },
    scheduleCell(e), cell("Slot (UTC)", fmtUtc(e.scheduledFor)), cell("Status", badge(e.status)),
    h("td", { class: "num", "data-label": "Attempts" }, String(e.attempts)), cell("Dead-lettered", fmtUtc(e.deadLetteredAt)),
    errorCell("Error", e), retryCell(e)), "No dead letters.");
  const loadMisfires = paged("misfires", { status: ["MISSED", "SKIPPED"] }, (e) => h("tr", { dataset: { id: e.id } },
    scheduleCell(e), cell("Slot (UTC)", fmtUtc(e.scheduledFor)), cell("Status", badge(e.status)),
    cell("Reason", h("code", {}, e.reason || "—")), cell("Recorded", fmtUtc(e.finishedAt || e.createdAt))), "No misfires.");

  const loaders = { running: loadRunning, buffered: loadBuffered, failed: loadFailed, dead: loadDead, misfires: loadMisfires };
  const safe = (key) => loaders[key]().catch((error) => sections[key].fail(error));
  const loadAll = () => Promise.all(Object.keys(loaders).map(safe));
  const later = Object.fromEntries(Object.keys(loaders).map((key) => [key, debounce(() => safe(key), 500)]));

  await loadAll();

  const unsubscribe = subscriptions.subscribe(EXECUTION_EVENTS, { scheduleId: null }, {
    next: async (data) => {
      const e = data.executionEvents;
      await scheduleNames([e.scheduleId]);
      feedEmpty.hidden = true;
      const name = cachedName(e.scheduleId) || `schedule ${shortId(e.scheduleId)}`;
      feed.prepend(h("li", { class: "flash", dataset: { status: e.status, schedule: e.scheduleId } },
        h("time", { class: "muted mono", datetime: e.at || "" }, fmtUtc(e.at || new Date().toISOString()).slice(11, 19)),
        badge(e.status), h("a", { href: `#/schedules/${e.scheduleId}` }, name),
        h("span", { class: "muted" }, `${e.event}${e.attempt ? ` · attempt ${e.attempt}` : ""}${e.scheduledFor ? ` · slot ${fmtUtc(e.scheduledFor)}` : ""}`),
        e.reason ? h("code", {}, e.reason) : null,
        e.error ? h("span", { style: "color:var(--bad)" }, e.error) : null));
      while (feed.children.length > 50) feed.lastElementChild.remove();
      later.running();
      if (e.status === "FAILED" || e.status === "TIMED_OUT" || e.event === "retried") { later.failed(); later.dead(); }
      // A run starts buffered, and leaves the buffer when the run before it ends.
      if (e.status === "BUFFERED" || sections.buffered.el.querySelector(`tr[data-id="${e.executionId}"]`)) later.buffered();
      if (e.status === "MISSED" || e.status === "SKIPPED") later.misfires();
    },
    error: (errors) => console.warn("subscription error", errors),
  });
  return () => { unsubscribe(); disposeLive(); Object.values(later).forEach((d) => d.cancel()); };
}

function section(key, title, hint, columns) {
  const body = h("tbody", { id: `${key}-body` });
  const footer = h("div");
  const el = h("section", { class: "panel", "aria-labelledby": `${key}-h`, id: `section-${key}` },
    h("h2", { id: `${key}-h` }, title), h("p", { class: "hint", style: "margin-bottom:.5rem" }, hint),
    h("div", { class: "table-wrap" }, h("table", { class: "collapse" },
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))), body)),
    footer);
  return {
    el,
    fill(rows, emptyText, pagerEl = null) {
      body.replaceChildren(...rows);
      if (!rows.length) body.append(h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, emptyText)));
      footer.replaceChildren(pagerEl || "");
    },
    fail(error) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, `Could not load: ${error.message}`)));
    },
  };
}
