// #/new and #/schedules/<id>/edit — every field of CreateScheduleInput, a debounced live preview of the
// next fire times, and validation messages next to the fields (ValidationError.errors[].field, camelCase).
import { gql, SCHEDULE_FIELDS, ERROR_FIELDS, GraphQLRequestError } from "../api.js";
import { h, fmtLocal, fmtUtc, toast, debounce, lower, OVERLAP_POLICIES, overlapText } from "../ui.js";

const TYPES = ["CRON", "INTERVAL", "ONCE", "IMMEDIATE"];
// Fields of one schedule type that always have a value (the DST rules of cron): hidden for another type,
// they are not sent, since null is not a value they take.
const KEPT_WHEN_HIDDEN = new Set(["dstGap", "dstRepeat"]);
const RULE_FIELDS = ["scheduleType", "cronExpression", "intervalSeconds", "runAt", "timezone", "startAt", "endAt", "dstGap", "dstRepeat"];

// name, label, kind, extra: {options, optionText (option → its text), only (schedule types),
// when ([field, value]: shown only while that field has that value), hint, required, min, max, placeholder,
// wide (takes a whole row)}
// A group: [legend, wrapper (null, or "details": collapsed), fields, the details' id].
const GROUPS = [
  ["What", null, [
    ["name", "Name", "text", { required: true, placeholder: "daily_summary_emails", hint: "Unique per creator." }],
    ["description", "Description", "text", { placeholder: "Send daily summary emails at 9 AM" }],
    ["targetCommand", "Target command (NATS subject)", "text", { required: true, placeholder: "cmd.notification.send.bulk" }],
    ["tags", "Tags", "text", { placeholder: "email, daily", hint: "Comma or space separated; up to 32, no spaces inside a tag." }],
  ]],
  ["When", null, [
    ["scheduleType", "Schedule type", "select", { options: TYPES, required: true }],
    ["cronExpression", "Cron expression", "text", { only: ["CRON"], placeholder: "0 9 * * *", hint: "5 fields (min hour dom month dow), 6 with a leading seconds field, or @daily, @hourly…; the dialect is beside the preview." }],
    ["intervalSeconds", "Interval (seconds)", "number", { only: ["INTERVAL"], min: 1, placeholder: "3600", hint: "Fixed rate anchored at the start time (default: creation)." }],
    ["runAt", "Run at", "datetime", { only: ["ONCE"], hint: "Wall time in the schedule's time zone." }],
    ["timezone", "Time zone", "tz", { placeholder: "UTC", hint: "IANA name; empty uses the service default." }],
    ["startAt", "Start at", "datetime", { only: ["CRON", "INTERVAL"], hint: "No fire before (wall time in the zone)." }],
    ["endAt", "End at", "datetime", { only: ["CRON", "INTERVAL"], hint: "No fire after." }],
    ["dstGap", "DST gap (spring forward)", "select", { only: ["CRON"], options: ["SHIFT", "SKIP"], hint: "Default: shift to the first valid instant." }],
    ["dstRepeat", "DST repeat (fall back)", "select", { only: ["CRON"], options: ["AUTO", "ONCE", "TWICE"], hint: "Default: auto." }],
    ["excludeCalendars", "Exclude calendars", "text", { placeholder: "public-holidays", hint: "Calendar names (see Calendars), comma separated: their slots are skipped." }],
  ]],
  ["Payload", null, [
    ["commandPayload", "Command payload (JSON object)", "textarea", { placeholder: '{"notification_type": "daily_summary"}', hint: "Strings may use {{scheduled_for}}, {{execution_id}}, {{attempt}}, {{schedule.id}}, {{schedule.name}}." }],
  ]],
  ["Delivery, retries and misfires", "details", [
    ["deliveryMode", "Delivery mode", "select", { options: ["AUTO", "REQUEST"], hint: "auto: JetStream when a stream covers the subject, else core NATS." }],
    ["requestTimeoutSeconds", "Request timeout (s)", "number", { min: 1 }],
    ["priority", "Priority (0–10)", "number", { min: 0, max: 10, placeholder: "5" }],
    ["maxRetries", "Max retries", "number", { min: 0 }],
    ["retryDelay", "Retry delay (s)", "number", { min: 0, hint: "First backoff step; doubles each retry." }],
    ["misfireGraceSeconds", "Misfire grace (s)", "number", { min: 0 }],
    ["catchup", "Catch-up", "select", { options: ["LATEST", "ALL", "NONE"] }],
    ["maxConcurrent", "Max concurrent runs", "number", { min: 1 }],
    ["maxRuns", "Max runs", "number", { min: 1, hint: "Completes after this many fires." }],
    ["jitterSeconds", "Jitter (s)", "number", { min: 0 }],
    ["pauseAfterFailures", "Pause after failed runs", "number", { min: 1, hint: "Pauses the schedule after this many failed runs in a row; empty: never." }],
    ["deadLetterSubject", "Dead-letter subject", "text", { placeholder: "evt.scheduler.execution.dead_letter", hint: "Where a run that finally failed is published; empty: the service default." }],
  ], "advanced"],
  ["Completion and overlap", "details", [
    ["completion", "Completion mode", "select", { options: ["NONE", "REPORT"], optionText: (o) => (o === "REPORT" ? "report: ends when reported" : "none: ends when published"), hint: "report: the run stays awaiting until the target reports its completion, or times out. Default: none." }],
    ["completionTimeoutSeconds", "Completion timeout (s)", "number", { when: ["completion", "REPORT"], min: 1, max: 604800, placeholder: "300", hint: "How long the report may take (up to 7 days); then the attempt times out. Default: 300." }],
    ["overlapPolicy", "Overlap policy", "select", { options: OVERLAP_POLICIES, wide: true, optionText: (o) => overlapText(o), hint: "What a run does while an earlier run of this schedule is still in progress. Default: allow." }],
  ], "completion-overlap"],
];
const ALL = GROUPS.flatMap(([, , fields]) => fields);
const KIND = Object.fromEntries(ALL.map(([name, , kind]) => [name, kind]));

const PREVIEW = `query($input: ScheduleRuleInput!, $hashKey: String, $calendars: [String!]) { previewSchedule(input: $input, count: 10, hashKey: $hashKey, excludeCalendars: $calendars) { at localTime note excludedBy } }`;
const DRY_RUN = `mutation($id: UUID!, $input: UpdateScheduleInput!) { r: updateSchedule(id: $id, input: $input, dryRun: true) { __typename
  ... on ScheduleEditPreview { fireTimesBefore { at localTime } fireTimesAfter { at localTime } slotsRecorded { scheduledFor status } runsKept { id status scheduledFor } }
  ${ERROR_FIELDS} } }`;
// The cron dialect in brief (docs/cron.md has the whole table).
const DIALECT = [
  ["0 9 * * 1-5", "09:00 Monday to Friday"],
  ["*/20 * * * *", "every 20 minutes"],
  ["0 23-3/2 * * *", "23:00, 01:00, 03:00 (ranges wrap)"],
  ["0 0 L * *", "the last day of the month"],
  ["0 0 L-2 * *", "two days before the last day"],
  ["0 18 LW * *", "the last weekday of the month"],
  ["0 9 15W * *", "the weekday nearest the 15th"],
  ["0 9 * * 5L", "the last Friday"],
  ["0 9 * * 1#2", "the second Monday"],
  ["H H(0-5) * * *", "daily, at a time hashed from the schedule's id"],
  ["15 30 9 * * *", "6 fields: 09:30:15"],
];
const CREATE = `mutation($input: CreateScheduleInput!) { r: createSchedule(input: $input) { __typename ... on Schedule { id name } ${ERROR_FIELDS} } }`;
const UPDATE = `mutation($id: UUID!, $input: UpdateScheduleInput!) { r: updateSchedule(id: $id, input: $input) { __typename ... on Schedule { id name version } ${ERROR_FIELDS} } }`;
const LOAD = `query($id: UUID!) { schedule(id: $id) { ${SCHEDULE_FIELDS} } }`;

let zones = null;

export async function render(main, [id]) {
  const editing = Boolean(id);
  let original = null;
  if (editing) {
    original = (await gql(LOAD, { id })).schedule;
    if (!original) {
      main.append(h("h1", {}, "Schedule not found"), h("p", {}, h("a", { href: "#/" }, "Back to the schedules")));
      return;
    }
  }
  document.title = `${editing ? `Edit ${original.name}` : "New schedule"} · Scheduler`;
  zones ??= typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];

  const controls = {};
  const errors = {};
  const summary = h("div", { class: "error-summary", role: "alert", tabindex: "-1", hidden: true, id: "error-summary" });
  const previewList = h("div", { id: "preview", "aria-live": "polite" }, h("p", { class: "muted" }, "Fill in the rule to see the next fire times."));
  const previewState = h("p", { class: "hint", id: "preview-state" });
  const submit = h("button", { type: "submit", class: "btn btn-primary", id: "save" }, editing ? "Save changes" : "Create schedule");
  const dryRun = editing ? h("button", { type: "button", class: "btn", id: "dry-run" }, "Preview the change") : null;
  const editPreview = h("div", { id: "edit-preview", "aria-live": "polite" });
  const form = h("form", { id: "schedule-form", novalidate: true, "aria-describedby": "error-summary" });

  for (const [legend, wrapper, fields, groupId] of GROUPS) {
    const grid = h("div", { class: "form-grid" }, fields.map(([name, label, kind, extra]) => fieldBlock(name, label, kind, extra)));
    if (wrapper === "details") {
      form.append(h("fieldset", {}, h("details", { id: groupId }, h("summary", {}, legend), grid)));
    } else {
      form.append(h("fieldset", {}, h("legend", {}, legend), grid));
    }
  }
  form.append(h("div", { class: "actions" }, submit, dryRun, h("a", { class: "btn", href: editing ? `#/schedules/${id}` : "#/" }, "Cancel")));

  main.append(
    h("div", { class: "page-head" }, h("div", {},
      h("p", { class: "small" }, h("a", { href: editing ? `#/schedules/${id}` : "#/" }, editing ? `← ${original.name}` : "← Schedules")),
      h("h1", {}, editing ? `Edit “${original.name}”` : "New schedule"),
      h("p", { class: "muted" }, editing ? `Version ${original.version}; only the fields you change are sent.` : "Every field except name, type and target command is optional."))),
    summary,
    h("div", { class: "form-layout" },
      form,
      h("aside", { class: "panel", "aria-labelledby": "preview-h" },
        h("h2", { id: "preview-h" }, "Next fire times"), previewState, previewList, editPreview,
        h("details", { id: "cron-help" }, h("summary", {}, "Cron dialect"),
          h("table", { class: "dialect" }, h("tbody", {}, DIALECT.map(([expr, meaning]) => h("tr", {}, h("td", {}, h("code", {}, expr)), h("td", {}, meaning))))),
          h("p", { class: "hint" }, "Day of month and day of week: a day matching either fires when both are restricted.")))));

  function fieldBlock(name, label, kind, extra = {}) {
    const inputId = `in-${name}`;
    const describedBy = [extra.hint ? `hint-${name}` : null, `err-${name}`].filter(Boolean).join(" ");
    const common = { id: inputId, name, "aria-describedby": describedBy, required: extra.required, placeholder: extra.placeholder };
    let control;
    if (kind === "select") {
      control = h("select", common,
        name === "scheduleType" ? null : h("option", { value: "" }, "default"),
        extra.options.map((o) => h("option", { value: o }, extra.optionText ? extra.optionText(o) : lower(o))));
    } else if (kind === "textarea") {
      control = h("textarea", { ...common, rows: 5, spellcheck: "false" });
    } else if (kind === "number") {
      control = h("input", { ...common, type: "number", inputmode: "numeric", min: extra.min, max: extra.max, step: 1 });
    } else if (kind === "datetime") {
      control = h("input", { ...common, type: "datetime-local", step: 1 });
    } else if (kind === "tz") {
      control = h("input", { ...common, type: "text", list: "tz-list", autocomplete: "off", spellcheck: "false" });
    } else {
      control = h("input", { ...common, type: "text", autocomplete: "off", spellcheck: name === "description" ? "true" : "false" });
    }
    controls[name] = control;
    errors[name] = h("p", { class: "field-error", id: `err-${name}` });
    const dataset = { field: name, only: (extra.only || []).join(" ") };
    if (extra.when) dataset.when = extra.when.join("=");
    const block = h("div", { class: "field", dataset },
      h("label", { for: inputId }, label, extra.required ? h("span", { class: "muted" }, " (required)") : null),
      control,
      extra.hint ? h("p", { class: "hint", id: `hint-${name}` }, extra.hint) : null,
      errors[name]);
    if (kind === "textarea" || extra.wide) block.style.gridColumn = "1 / -1";
    return block;
  }
  form.append(h("datalist", { id: "tz-list" }, zones.map((z) => h("option", { value: z }))));

  // Fill in the values (defaults for a new schedule; the stored ones when editing).
  if (editing) {
    for (const [name] of ALL) controls[name].value = toControl(name, original[name], original.timezone);
  } else {
    controls.scheduleType.value = "CRON";
    controls.timezone.value = "";
  }
  const initial = editing ? values() : null;

  function showForType() {
    const type = controls.scheduleType.value;
    form.querySelectorAll("[data-only]").forEach((block) => {
      const only = block.dataset.only.split(" ").filter(Boolean);
      const [other, wanted] = (block.dataset.when || "").split("=");
      block.hidden = (only.length > 0 && !only.includes(type)) || (Boolean(other) && controls[other].value !== wanted);
    });
  }
  const visible = (name) => !controls[name].closest(".field").hidden;
  // A field shown only for another field's value (completion timeout): while hidden it is not sent.
  const conditional = (name) => Boolean(controls[name].closest(".field").dataset.when);

  /** The overlap options name the cancel notice's subject: `<target command>.cancel`. */
  function nameCancelSubject() {
    const target = controls.targetCommand.value.trim();
    for (const option of controls.overlapPolicy.options) if (option.value) option.textContent = overlapText(option.value, target);
  }

  /** The form as GraphQL input values (null for empty); throws on a payload that is not JSON. */
  function values() {
    const out = {};
    for (const [name] of ALL) {
      const raw = controls[name].value.trim();
      const kind = KIND[name];
      if (raw === "") { out[name] = null; continue; }
      if (kind === "number") out[name] = Number.isFinite(Number(raw)) ? Math.trunc(Number(raw)) : raw;
      else if (kind === "datetime") out[name] = raw.length === 16 ? `${raw}:00` : raw;
      else if (name === "tags" || name === "excludeCalendars") out[name] = raw.split(/[\s,]+/).filter(Boolean);
      else if (name === "commandPayload") out[name] = parseJson(raw);
      else out[name] = raw;
    }
    return out;
  }

  function clearErrors(names = Object.keys(errors)) {
    for (const name of names) {
      errors[name].textContent = "";
      controls[name].removeAttribute("aria-invalid");
    }
  }

  /** Put each problem next to its input; return the ones that have no input. */
  function showErrors(problems) {
    const orphans = [];
    for (const p of problems) {
      const name = String(p.field).split(".").find((part) => part in controls);
      if (!name) { orphans.push(p); continue; }
      errors[name].textContent = errors[name].textContent ? `${errors[name].textContent} ${p.message}` : p.message;
      controls[name].setAttribute("aria-invalid", "true");
      if (controls[name].closest("details")) controls[name].closest("details").open = true;
    }
    return orphans;
  }

  // Live preview, debounced; answers to stale requests are dropped.
  let previewSeq = 0;
  const preview = debounce(async () => {
    const seq = ++previewSeq;
    const v = safeValues();
    const input = {};
    for (const name of RULE_FIELDS) if (visible(name) && v[name] !== null && v[name] !== undefined) input[name] = v[name];
    if ((input.scheduleType === "CRON" && !input.cronExpression) || (input.scheduleType === "INTERVAL" && !input.intervalSeconds) || (input.scheduleType === "ONCE" && !input.runAt)) {
      clearErrors(RULE_FIELDS);
      previewState.textContent = "";
      previewList.replaceChildren(h("p", { class: "muted" }, "Fill in the rule to see the next fire times."));
      return;
    }
    previewState.textContent = "Updating…";
    try {
      const data = await gql(PREVIEW, { input, hashKey: editing ? id : null, calendars: v.excludeCalendars || [] });
      if (seq !== previewSeq) return;
      clearErrors(RULE_FIELDS);
      const fires = data.previewSchedule;
      previewState.textContent = `${fires.length} upcoming, in ${input.timezone || "the default zone"} (UTC below).`;
      previewList.replaceChildren(fires.length
        ? h("ol", { class: "fire-list", id: "preview-list" }, fires.map((f) => h("li", {},
            h("span", {}, h("strong", {}, fmtLocal(f.localTime)), f.note ? [" ", h("span", { class: "note" }, f.note)] : null,
              f.excludedBy ? [" ", h("span", { class: "note excluded" }, `skipped: ${f.excludedBy}`)] : null),
            h("span", { class: "utc" }, fmtUtc(f.at)))))
        : h("p", { class: "muted" }, "This rule has no upcoming fire time."));
    } catch (error) {
      if (seq !== previewSeq) return;
      clearErrors(RULE_FIELDS);
      previewState.textContent = "";
      const orphans = error instanceof GraphQLRequestError && error.fieldErrors.length ? showErrors(error.fieldErrors) : [{ message: error.message }];
      previewList.replaceChildren(h("p", { class: "field-error", id: "preview-error" },
        orphans.length ? orphans.map((p) => p.message).join("; ") : "Fix the highlighted fields to see the fire times."));
    }
  }, 300);

  function safeValues() {
    try { return values(); } catch { const v = {}; for (const name of RULE_FIELDS) v[name] = controls[name].value.trim() || null; v.intervalSeconds = v.intervalSeconds ? Number(v.intervalSeconds) : null; return v; }
  }

  form.addEventListener("input", (event) => {
    const name = event.target.name;
    if (name && errors[name] && !RULE_FIELDS.includes(name)) clearErrors([name]);
    if (RULE_FIELDS.includes(name) || name === "excludeCalendars") preview();
  });
  controls.scheduleType.addEventListener("change", () => { showForType(); preview(); });
  controls.completion.addEventListener("change", showForType);
  controls.targetCommand.addEventListener("input", nameCancelSubject);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    summary.hidden = true;
    clearErrors();
    let v;
    try { v = values(); } catch (error) {
      showSummary([{ field: "commandPayload", message: error.message }]);
      return;
    }
    const type = v.scheduleType;
    let input = {};
    if (editing) {
      input = changes(v);
      if (!input) { toast("Nothing changed."); return; }
    } else {
      for (const [name] of ALL) if (v[name] !== null && visible(name)) input[name] = v[name];
      input.scheduleType = type;
    }
    submit.disabled = true;
    try {
      const data = editing ? await gql(UPDATE, { id, input }) : await gql(CREATE, { input });
      const r = data.r;
      if (r.__typename === "Schedule") {
        toast(editing ? `Saved “${r.name}” (version ${r.version}).` : `Created “${r.name}”.`);
        location.hash = `#/schedules/${r.id}`;
        return;
      }
      showSummary(r.errors || [], `${r.__typename}: ${r.message}`, r.code === "version_conflict");
    } catch (error) {
      showSummary(error.fieldErrors || [], error.message);
    } finally {
      submit.disabled = false;
    }
  });

  /** The fields the edit changes, with the version it expects; null when nothing changed. */
  function changes(v) {
    const input = {};
    for (const [name] of ALL) {
      if ((conditional(name) || KEPT_WHEN_HIDDEN.has(name)) && !visible(name)) continue;
      const value = visible(name) ? v[name] : null;
      if (JSON.stringify(value) !== JSON.stringify(initial[name])) input[name] = value;
    }
    return Object.keys(input).length ? { ...input, version: original.version } : null;
  }

  // The edit's dry run: the fire times before and after it, the late slots it records, the runs it keeps.
  dryRun?.addEventListener("click", async () => {
    summary.hidden = true;
    clearErrors();
    let input;
    try { input = changes(values()); } catch (error) { showSummary([{ field: "commandPayload", message: error.message }]); return; }
    if (!input) { editPreview.replaceChildren(h("p", { class: "muted", id: "edit-preview-none" }, "Nothing changed.")); return; }
    try {
      const r = (await gql(DRY_RUN, { id, input })).r;
      if (r.__typename !== "ScheduleEditPreview") { showSummary(r.errors || [], `${r.__typename}: ${r.message}`, r.code === "version_conflict"); return; }
      const list = (fires, listId) => h("ol", { class: "fire-list", id: listId }, fires.map((f) => h("li", {}, h("strong", {}, fmtLocal(f.localTime)))));
      editPreview.replaceChildren(
        h("h3", {}, "What the change does"),
        h("div", { class: "before-after" },
          h("div", {}, h("h4", {}, "Before"), list(r.fireTimesBefore, "fires-before")),
          h("div", {}, h("h4", {}, "After"), list(r.fireTimesAfter, "fires-after"))),
        h("p", { id: "slots-recorded" }, r.slotsRecorded.length
          ? `${r.slotsRecorded.length} late slot(s) of the old rule are recorded: ${r.slotsRecorded.map((s) => `${fmtUtc(s.scheduledFor)} (${lower(s.status)})`).join(", ")}.`
          : "No late slot of the old rule is recorded."),
        h("p", { id: "runs-kept" }, r.runsKept.length ? `${r.runsKept.length} run(s) already recorded keep their slots.` : "No run is in progress."));
    } catch (error) {
      showSummary(error.fieldErrors || [], error.message);
    }
  });

  function showSummary(problems, title = "Please fix the highlighted fields.", conflict = false) {
    const orphans = showErrors(problems);
    summary.replaceChildren(h("div", {},
      h("strong", {}, title),
      problems.length ? h("ul", {}, problems.map((p) => {
        const name = String(p.field).split(".").find((part) => part in controls);
        return h("li", {}, name ? h("a", { href: `#in-${name}`, onclick: (e) => { e.preventDefault(); controls[name].focus(); } }, `${labelOf(name)}: ${p.message}`) : `${p.field}: ${p.message}`);
      })) : null,
      conflict ? h("p", {}, "Someone else changed this schedule. ", h("button", { type: "button", class: "btn btn-sm", onclick: () => window.dispatchEvent(new HashChangeEvent("hashchange")) }, "Reload the latest version")) : null));
    summary.hidden = false;
    const first = problems.map((p) => String(p.field).split(".").find((part) => part in controls)).find(Boolean);
    if (first && !orphans.length) controls[first].focus(); else summary.focus();
  }

  showForType();
  nameCancelSubject();
  if (editing) preview();
  controls.name.focus();
  return () => preview.cancel();
}

function labelOf(name) {
  return ALL.find(([n]) => n === name)?.[1] || name;
}

function parseJson(raw) {
  let value;
  try { value = JSON.parse(raw); } catch (error) { throw new Error(`not valid JSON (${error.message})`); }
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("must be a JSON object");
  return value;
}

/** A stored value as the control's text. Datetimes become wall time in the schedule's zone. */
function toControl(name, value, tz) {
  if (value === null || value === undefined) return "";
  const kind = KIND[name];
  if (name === "tags" || name === "excludeCalendars") return value.join(", ");
  if (name === "commandPayload") return Object.keys(value).length ? JSON.stringify(value, null, 2) : "";
  if (kind === "datetime") return wallTime(value, tz);
  return String(value);
}

function wallTime(iso, tz) {
  const d = new Date(iso);
  try {
    const parts = Object.fromEntries(new Intl.DateTimeFormat("en-CA", { timeZone: tz || "UTC", hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" })
      .formatToParts(d).map((p) => [p.type, p.value]));
    return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}:${parts.second}`;
  } catch {
    return d.toISOString().slice(0, 19);
  }
}
