// The backfill dialog of a schedule's page (its dry run, then the start), and the panel of its backfills
// with their progress and a cancel button.
import { gql, ERROR_FIELDS } from "../api.js";
import { h, cell, errorBlock, fmtUtc, toast } from "../ui.js";

const BACKFILL = `mutation($id: UUID!, $input: BackfillInput!) { r: backfillSchedule(id: $id, input: $input) { __typename
  ... on BackfillPlan { slotsTotal slotsRecorded slotsToRecord slotsAfterCutoff backfill { id } } ${ERROR_FIELDS} } }`;
const LIST = `query($id: UUID!) { backfills(scheduleId: $id) { id startAt endAt maxPerSecond status runs createdBy createdAt } }`;
const CANCEL = `mutation($sid: UUID!, $id: UUID!) { r: cancelBackfill(scheduleId: $sid, id: $id) { __typename ... on Backfill { status } ${ERROR_FIELDS} } }`;

const planText = (p) => `${p.slotsTotal} slot(s) in the range; ${p.slotsRecorded} already recorded (not fired again); ` +
  `${p.slotsToRecord} to record` + (p.slotsAfterCutoff ? `; ${p.slotsAfterCutoff} later ones the schedule fires itself.` : ".");

/** Open the dialog for `schedule`; resolves true when a backfill started. */
export function openBackfill(schedule) {
  const dialog = document.getElementById("backfill-dialog");
  const form = document.getElementById("backfill-form");
  const planEl = document.getElementById("backfill-plan");
  const errorEl = document.getElementById("backfill-error");
  const dry = document.getElementById("backfill-dry-run");
  const close = document.getElementById("backfill-cancel");
  const opener = document.activeElement;
  document.getElementById("backfill-title").textContent = `Backfill “${schedule.name}”`;
  planEl.textContent = "";
  errorEl.hidden = true;
  const input = (dryRun) => ({
    start: new Date(document.getElementById("backfill-start").value).toISOString(),
    end: new Date(document.getElementById("backfill-end").value).toISOString(),
    maxPerSecond: Number(document.getElementById("backfill-rate").value || 10),
    dryRun,
  });
  return new Promise((resolve) => {
    const run = async (dryRun) => {
      errorEl.hidden = true;
      let body;
      try { body = input(dryRun); } catch { errorEl.replaceChildren(h("strong", {}, "Give both ends of the range.")); errorEl.hidden = false; return; }
      const r = (await gql(BACKFILL, { id: schedule.id, input: body })).r;
      if (r.__typename !== "BackfillPlan") { errorBlock(errorEl, r); return; }
      planEl.textContent = planText(r);
      if (!dryRun) { toast(`Backfill started: ${r.slotsToRecord} run(s).`); finish(true); }
    };
    const onDry = () => run(true);
    const onSubmit = (event) => { event.preventDefault(); run(false); };
    const onClose = () => finish(false);
    function finish(value) {
      dry.removeEventListener("click", onDry);
      form.removeEventListener("submit", onSubmit);
      close.removeEventListener("click", onClose);
      dialog.removeEventListener("close", onClose);
      if (dialog.open) dialog.close();
      if (opener && opener.isConnected) opener.focus();
      resolve(value);
    }
    dry.addEventListener("click", onDry);
    form.addEventListener("submit", onSubmit);
    close.addEventListener("click", onClose);
    dialog.addEventListener("close", onClose);
    dialog.showModal();
    document.getElementById("backfill-start").focus();
  });
}

function withClass(element, name) {
  element.classList.add(name);
  return element;
}

/** The backfills panel of a schedule: refreshed by `refresh()`, and every 2 s while one is running. */
export function backfillsPanel(scheduleId) {
  const body = h("tbody", { id: "backfills-body" });
  const panel = h("section", { class: "panel", "aria-labelledby": "backfills-h", style: "margin-top:1rem", hidden: true },
    h("h2", { id: "backfills-h" }, "Backfills"),
    h("div", { class: "table-wrap" }, h("table", { class: "collapse" },
      h("thead", {}, h("tr", {}, ["Started", "Range (UTC)", "Rate", "Status", "Runs", ""].map((c) => h("th", { scope: "col" }, c)))), body)));
  let timer = null;
  async function refresh() {
    clearTimeout(timer);
    const list = (await gql(LIST, { id: scheduleId })).backfills;
    panel.hidden = list.length === 0;
    body.replaceChildren(...list.map((b) => h("tr", { "data-backfill": b.id },
      cell("Started", fmtUtc(b.createdAt), h("span", { class: "sub" }, ` ${b.createdBy}`)),
      cell("Range (UTC)", `${fmtUtc(b.startAt)} → ${fmtUtc(b.endAt)}`),
      cell("Rate", `${b.maxPerSecond}/s`),
      withClass(cell("Status", b.status), "backfill-status"),
      withClass(cell("Runs", Object.entries(b.runs).map(([k, v]) => `${k} ${v}`).join(", ") || "none"), "backfill-runs"),
      cell("", b.status === "running" ? h("button", { type: "button", class: "btn btn-sm", onclick: () => cancel(b.id) }, "Cancel") : null))));
    if (list.some((b) => b.status === "running")) timer = setTimeout(refresh, 2000);
  }
  async function cancel(id) {
    const r = (await gql(CANCEL, { sid: scheduleId, id })).r;
    toast(r.__typename === "Backfill" ? "Backfill cancelled: its runs not handed over yet are cancelled." : r.message);
    refresh();
  }
  return { panel, refresh, dispose: () => clearTimeout(timer) };
}
