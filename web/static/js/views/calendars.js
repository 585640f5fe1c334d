// #/calendars — the exclusion calendars: each with its entries and the schedules that use it, a form to
// create or replace one, and delete (refused while a schedule lists it).
import { gql, ERROR_FIELDS } from "../api.js";
import { h, toast, errorBlock, confirmAction } from "../ui.js";

const LIST = `{ calendars { name description timezone dates ranges { start end } yearly windows usedBy version createdBy } }`;
const SAVED = `{ __typename ... on Calendar { name version } ${ERROR_FIELDS} }`;
const CREATE = `mutation($i: CalendarInput!) { r: createCalendar(input: $i) ${SAVED} }`;
const UPDATE = `mutation($name: String!, $i: CalendarInput!) { r: updateCalendar(name: $name, input: $i) ${SAVED} }`;
const DELETE = `mutation($name: String!) { r: deleteCalendar(name: $name) { __typename ${ERROR_FIELDS} } }`;

const lines = (text) => text.split(/[\n,]+/).map((s) => s.trim()).filter(Boolean);

export async function render(main) {
  document.title = "Calendars · Scheduler";
  const list = h("div", { id: "calendar-list" });
  const errorEl = h("div", { class: "dialog-error", role: "alert", id: "calendar-error", hidden: true });
  const field = (id, label, control, hint) => h("div", { class: "field" }, h("label", { for: id }, label), control, hint ? h("p", { class: "hint" }, hint) : null);
  const inputs = {
    name: h("input", { id: "cal-name", type: "text", required: true, placeholder: "public-holidays", autocomplete: "off" }),
    timezone: h("input", { id: "cal-timezone", type: "text", placeholder: "UTC", autocomplete: "off" }),
    dates: h("textarea", { id: "cal-dates", rows: 3, placeholder: "2026-12-25" }),
    ranges: h("textarea", { id: "cal-ranges", rows: 2, placeholder: "2026-12-24..2027-01-01" }),
    yearly: h("textarea", { id: "cal-yearly", rows: 2, placeholder: "12-25" }),
    windows: h("textarea", { id: "cal-windows", rows: 2, placeholder: "* * * * sat,sun" }),
  };
  let editing = null;  // the calendar being replaced, or null for a new one
  const save = h("button", { type: "submit", class: "btn btn-primary", id: "cal-save" }, "Create calendar");
  const form = h("form", { id: "calendar-form", novalidate: true },
    h("div", { class: "form-grid" },
      field("cal-name", "Name", inputs.name, "Lower-case letters, digits, '.', '_' and '-'."),
      field("cal-timezone", "Time zone", inputs.timezone, "Its days are local days here (default UTC)."),
      field("cal-dates", "Dates", inputs.dates, "One per line: YYYY-MM-DD."),
      field("cal-ranges", "Ranges", inputs.ranges, "One per line: start..end, both included."),
      field("cal-yearly", "Every year", inputs.yearly, "One per line: MM-DD."),
      field("cal-windows", "Windows", inputs.windows, "5-field cron expressions of excluded minutes.")),
    errorEl,
    h("div", { class: "actions" }, save, h("button", { type: "button", class: "btn", onclick: () => fill(null) }, "New")));

  main.append(
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Calendars"),
      h("p", { class: "muted" }, "Days and minutes the schedules that list a calendar do not fire in; such slots are recorded skipped."))),
    h("div", { class: "grid-2" }, h("section", { class: "panel", "aria-labelledby": "cal-list-h" }, h("h2", { id: "cal-list-h" }, "All calendars"), list),
      h("section", { class: "panel", "aria-labelledby": "cal-form-h" }, h("h2", { id: "cal-form-h" }, "Create or replace"), form)));

  function fill(calendar) {
    editing = calendar;
    inputs.name.value = calendar?.name || "";
    inputs.timezone.value = calendar?.timezone || "";
    inputs.dates.value = (calendar?.dates || []).join("\n");
    inputs.ranges.value = (calendar?.ranges || []).map((r) => `${r.start}..${r.end}`).join("\n");
    inputs.yearly.value = (calendar?.yearly || []).join("\n");
    inputs.windows.value = (calendar?.windows || []).join("\n");
    save.textContent = calendar ? "Save calendar" : "Create calendar";
    inputs.name.focus();
  }

  async function load() {
    const calendars = (await gql(LIST)).calendars;
    list.replaceChildren(calendars.length ? h("ul", { class: "calendar-list" }, calendars.map((c) => h("li", { "data-calendar": c.name },
      h("strong", {}, c.name), ` (${c.timezone}) — `,
      [c.dates.length && `${c.dates.length} date(s)`, c.ranges.length && `${c.ranges.length} range(s)`, c.yearly.length && `${c.yearly.length} yearly`, c.windows.length && `${c.windows.length} window(s)`].filter(Boolean).join(", ") || "empty",
      h("span", { class: "muted" }, `; used by ${c.usedBy.length} schedule(s)`), " ",
      h("button", { type: "button", class: "btn btn-sm", onclick: () => fill(c) }, "Edit"), " ",
      h("button", { type: "button", class: "btn btn-sm btn-danger", onclick: () => remove(c) }, "Delete"))))
      : h("p", { class: "muted", id: "no-calendars" }, "No calendar yet."));
  }

  async function remove(calendar) {
    const ok = await confirmAction({
      title: "Delete calendar?", body: `“${calendar.name}” is removed; a calendar a schedule lists cannot be deleted.`, confirmLabel: "Delete", danger: true, reason: false,
      action: async () => { const r = (await gql(DELETE, { name: calendar.name })).r; return r.__typename === "DeleteCalendarSuccess" ? null : r; },
    });
    if (ok) { toast(`Deleted “${calendar.name}”.`); load(); }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorEl.hidden = true;
    const input = {
      name: inputs.name.value.trim(),
      timezone: inputs.timezone.value.trim() || "UTC",
      dates: lines(inputs.dates.value),
      ranges: lines(inputs.ranges.value).map((r) => { const [start, end] = r.split(".."); return { start: start.trim(), end: (end || start).trim() }; }),
      yearly: lines(inputs.yearly.value),
      windows: inputs.windows.value.split("\n").map((s) => s.trim()).filter(Boolean),
    };
    if (editing) input.version = editing.version;
    try {
      const r = (await (editing ? gql(UPDATE, { name: editing.name, i: input }) : gql(CREATE, { i: input }))).r;
      if (r.__typename !== "Calendar") { errorBlock(errorEl, r); return; }
      toast(`Saved “${r.name}” (version ${r.version}).`);
      fill(null);
      load();
    } catch (error) {
      errorEl.replaceChildren(h("strong", {}, error.message));
      errorEl.hidden = false;
    }
  });

  await load();
}
