// #/ — the schedules table: filters, cursor paging, per-row lifecycle actions.
import { gql, pauseSchedule, resumeSchedule, triggerSchedule, deleteSchedule } from "../api.js";
import { h, badge, tags, ruleText, fmtLocal, fmtUtc, confirmAction, toast, debounce, pager, cell, lower } from "../ui.js";

const PAGE = 25;
const QUERY = `query($filter: ScheduleFilterInput, $first: Int!, $after: String) {
  schedules(filter: $filter, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id name scheduleType cronExpression intervalSeconds runAt timezone status statusReason pausedUntil
      nextRunAt nextRunAtLocal tags version lastExecution { status scheduledFor } } }
  }
}`;

// Filters survive navigation within the tab.
const state = { search: "", status: "", scheduleType: "", tag: "" };

export async function render(main) {
  document.title = "Schedules · Scheduler";
  const search = h("input", { id: "f-search", type: "search", placeholder: "part of the name", value: state.search, autocomplete: "off" });
  const status = select("f-status", ["", "ACTIVE", "PAUSED", "COMPLETED", "DISABLED"], state.status, "any status");
  const type = select("f-type", ["", "CRON", "INTERVAL", "ONCE", "IMMEDIATE"], state.scheduleType, "any type");
  const tag = h("input", { id: "f-tag", type: "text", placeholder: "e.g. email", value: state.tag, autocomplete: "off" });
  const summary = h("p", { class: "muted small", role: "status", "aria-live": "polite" });
  const body = h("tbody");
  const table = h("table", { class: "collapse", id: "schedules-table" },
    h("thead", {}, h("tr", {}, ["Name", "Type", "Rule", "Time zone", "Status", "Next run", "Last outcome", "Tags", "Actions"].map((c) => h("th", { scope: "col" }, c)))),
    body);
  const pagerBox = h("div");
  const banner = h("div", { class: "banner", role: "alert", hidden: true });

  main.append(
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Schedules"), h("p", { class: "muted" }, "Cron, interval, one-time and immediate schedules, newest first.")),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "btn", id: "refresh", onclick: () => load() }, "Refresh"),
        h("a", { class: "btn btn-primary", href: "#/new" }, "New schedule"))),
    h("form", { class: "filters", role: "search", "aria-label": "Filter schedules", onsubmit: (e) => { e.preventDefault(); load(); } },
      field("f-search", "Search by name", search),
      field("f-status", "Status", status),
      field("f-type", "Type", type),
      field("f-tag", "Tag", tag),
      h("button", { type: "submit", class: "btn" }, "Apply"),
      h("button", { type: "button", class: "btn", onclick: () => { search.value = tag.value = status.value = type.value = ""; load(); } }, "Clear")),
    banner, summary,
    h("div", { class: "table-wrap" }, table),
    h("p", { class: "hint", style: "margin-top:.4rem" }, "Next run shows the schedule's own wall time, then UTC."),
    pagerBox);

  let rows = [];
  let pageInfo = null;
  let total = 0;
  let token = 0;

  function filter() {
    Object.assign(state, { search: search.value.trim(), status: status.value, scheduleType: type.value, tag: tag.value.trim() });
    const f = {};
    if (state.search) f.search = state.search;
    if (state.status) f.status = state.status;
    if (state.scheduleType) f.scheduleType = state.scheduleType;
    if (state.tag) f.tags = state.tag.split(/[\s,]+/).filter(Boolean);
    return Object.keys(f).length ? f : null;
  }

  async function load(more = false) {
    const mine = ++token;
    banner.hidden = true;
    try {
      const data = await gql(QUERY, { filter: filter(), first: PAGE, after: more ? pageInfo?.endCursor : null });
      if (mine !== token) return;
      const conn = data.schedules;
      const nodes = conn.edges.map((e) => e.node);
      rows = more ? rows.concat(nodes) : nodes;
      pageInfo = conn.pageInfo;
      total = conn.totalCount;
      draw();
    } catch (error) {
      if (mine !== token) return;
      banner.textContent = `Could not load schedules: ${error.message}`;
      banner.hidden = false;
    }
  }

  function draw() {
    body.replaceChildren(...rows.map(row));
    if (!rows.length) body.append(h("tr", {}, h("td", { colspan: 9, class: "empty" }, "No schedules match. ", h("a", { href: "#/new" }, "Create one"))));
    summary.textContent = `${total} schedule${total === 1 ? "" : "s"}${filter() ? (total === 1 ? " matches the filter" : " match the filter") : ""}.`;
    pagerBox.replaceChildren(pager({ shown: rows.length, total, hasNext: pageInfo?.hasNextPage, onMore: () => load(true), label: "schedules" }));
  }

  function row(s) {
    const last = s.lastExecution;
    const tr = h("tr", { dataset: { id: s.id, name: s.name } },
      cell("Name", h("a", { href: `#/schedules/${s.id}`, class: "schedule-link" }, s.name)),
      cell("Type", lower(s.scheduleType)),
      cell("Rule", h("code", {}, ruleText(s))),
      cell("Time zone", s.timezone),
      cell("Status", h("span", { class: "status-cell" }, badge(s.status)), s.statusReason ? h("span", { class: "sub" }, s.statusReason) : null,
        s.pausedUntil ? h("span", { class: "sub" }, `until ${fmtUtc(s.pausedUntil)}`) : null),
      cell("Next run", s.nextRunAt ? [h("span", {}, fmtLocal(s.nextRunAtLocal)), h("span", { class: "sub" }, fmtUtc(s.nextRunAt))] : h("span", { class: "muted" }, "—")),
      cell("Last outcome", last ? [badge(last.status), h("span", { class: "sub" }, fmtUtc(last.scheduledFor))] : h("span", { class: "muted" }, "never ran")),
      cell("Tags", tags(s.tags)),
      cell("Actions", actions(s)));
    return tr;
  }

  function replaceRow(updated, flash = true) {
    rows = rows.map((r) => (r.id === updated.id ? { ...r, ...updated } : r));
    const old = body.querySelector(`tr[data-id="${updated.id}"]`);
    const fresh = row(rows.find((r) => r.id === updated.id));
    if (old) {
      const focusedAction = document.activeElement?.closest?.(`tr[data-id="${updated.id}"]`) ? document.activeElement.dataset.action : null;
      old.replaceWith(fresh);
      if (flash) fresh.classList.add("flash");
      if (focusedAction) (fresh.querySelector(`[data-action="${focusedAction}"]`) || fresh.querySelector("button"))?.focus();
    }
  }

  function actions(s) {
    const label = (verb) => `${verb} ${s.name}`;
    const buttons = [];
    if (s.status === "ACTIVE") {
      buttons.push(h("button", { type: "button", class: "btn btn-sm", "data-action": "pause", "aria-label": label("Pause"), onclick: () => lifecycle(s, "pause") }, "Pause"));
    } else if (s.status === "PAUSED") {
      buttons.push(h("button", { type: "button", class: "btn btn-sm", "data-action": "resume", "aria-label": label("Resume"), onclick: () => lifecycle(s, "resume") }, "Resume"));
    }
    buttons.push(h("button", { type: "button", class: "btn btn-sm", "data-action": "trigger", "aria-label": label("Trigger"), onclick: () => trigger(s) }, "Trigger"));
    buttons.push(h("a", { class: "btn btn-sm", href: `#/schedules/${s.id}/edit`, "aria-label": label("Edit") }, "Edit"));
    buttons.push(h("button", { type: "button", class: "btn btn-sm btn-danger", "data-action": "delete", "aria-label": label("Delete"), onclick: () => remove(s) }, "Delete"));
    return h("div", { class: "actions" }, buttons);
  }

  async function lifecycle(s, verb) {
    const done = await confirmAction({
      title: `${verb === "pause" ? "Pause" : "Resume"} schedule?`,
      body: verb === "pause"
        ? `“${s.name}” stops firing until it is resumed, or until the instant below. Slots that fall due meanwhile are recorded as missed (reason: paused).`
        : `“${s.name}” fires again. Slots that fell due during the pause follow its catch-up policy.`,
      confirmLabel: verb === "pause" ? "Pause" : "Resume",
      until: verb === "pause",
      action: async (reason, until) => {
        const result = await (verb === "pause" ? pauseSchedule(s.id, reason, until) : resumeSchedule(s.id, reason));
        if (result.__typename !== "Schedule") return result;
        replaceRow(result);
        return null;
      },
    });
    if (done) toast(`${verb === "pause" ? "Paused" : "Resumed"} “${s.name}”.`);
  }

  async function trigger(s) {
    let executionId = null;
    const done = await confirmAction({
      title: "Trigger a run now?",
      body: `Records a manual execution of “${s.name}” that is published right away (even while paused).`,
      confirmLabel: "Trigger", reason: false,
      action: async () => {
        const result = await triggerSchedule(s.id);
        if (result.__typename !== "TriggerScheduleSuccess") return result;
        executionId = result.executionId;
        return null;
      },
    });
    if (done) toast(`Triggered “${s.name}” (execution ${executionId.slice(0, 8)}).`);
  }

  async function remove(s) {
    const done = await confirmAction({
      title: "Delete schedule?",
      body: `“${s.name}” is removed and never fires again; its execution history and audit trail are kept.`,
      confirmLabel: "Delete", danger: true,
      action: async (reason) => {
        const result = await deleteSchedule(s.id, reason);
        return result.__typename === "DeleteScheduleSuccess" ? null : result;
      },
    });
    if (done) {
      toast(`Deleted “${s.name}”.`);
      rows = rows.filter((r) => r.id !== s.id);
      total -= 1;
      draw();
      document.getElementById("refresh")?.focus();
    }
  }

  const live = debounce(() => load(), 350);
  search.addEventListener("input", live);
  tag.addEventListener("input", live);
  status.addEventListener("change", () => load());
  type.addEventListener("change", () => load());
  await load();
  return () => live.cancel();
}

function field(id, label, control) {
  return h("div", { class: "field" }, h("label", { for: id }, label), control);
}

function select(id, values, current, emptyLabel) {
  return h("select", { id }, values.map((v) => h("option", { value: v, selected: v === current }, v ? lower(v) : emptyLabel)));
}
