// DOM helpers, formatting, toasts and the confirmation dialog.

/** Build an element: h("a", {href: "#/"}, "text", child). Text is always set as text, never HTML. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const SVG_NS = "http://www.w3.org/2000/svg";
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) if (value !== undefined && value !== null) el.setAttribute(key, String(value));
  for (const child of children.flat()) if (child !== null && child !== undefined) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

export const lower = (v) => (v == null ? "" : String(v).toLowerCase());
export const badge = (status) => h("span", { class: `badge ${lower(status)}` }, lower(status) || "—");
export const tags = (list) => (list && list.length ? list.map((t) => h("span", { class: "tag" }, t)) : h("span", { class: "muted" }, "—"));

/** "2026-11-27T09:00:00-05:00" → "2026-11-27 09:00:00 −05:00" (keeps the zone's wall time). */
export function fmtLocal(iso) {
  if (!iso) return "—";
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|[+-]\d{2}:\d{2})?$/.exec(iso);
  if (!m) return iso;
  const offset = !m[3] ? "" : m[3] === "Z" || m[3] === "+00:00" ? " UTC" : ` ${m[3]}`;
  return `${m[1]} ${m[2]}${offset}`;
}

/** Any instant → "2026-11-27 14:00:00 UTC". */
export function fmtUtc(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toISOString().replace("T", " ").replace(/\.\d{3}Z$/, " UTC");
}

/** An instant in the browser's own zone, short. */
export function fmtBrowser(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  return `${(ms / 60000).toFixed(1)} min`;
}

export function fmtSeconds(total) {
  if (total % 86400 === 0) return `${total / 86400} d`;
  if (total % 3600 === 0) return `${total / 3600} h`;
  if (total % 60 === 0) return `${total / 60} min`;
  return `${total} s`;
}

export function ago(iso) {
  if (!iso) return "";
  const diff = (Date.now() - new Date(iso).getTime()) / 1000;
  const abs = Math.abs(diff);
  const unit = abs < 60 ? [Math.round(abs), "s"] : abs < 3600 ? [Math.round(abs / 60), "min"] : abs < 86400 ? [Math.round(abs / 3600), "h"] : [Math.round(abs / 86400), "d"];
  return diff >= 0 ? `${unit[0]} ${unit[1]} ago` : `in ${unit[0]} ${unit[1]}`;
}

/** The human-readable rule of a schedule. */
export function ruleText(s) {
  switch (s.scheduleType) {
    case "CRON": return `cron ${s.cronExpression} (${s.timezone})`;
    case "INTERVAL": {
      const n = s.intervalSeconds;
      return n % 60 === 0 && n >= 60 ? `every ${n} s (${fmtSeconds(n)})` : `every ${n} s`;
    }
    case "ONCE": return `once at ${fmtLocal(s.runAt)}${s.timezone ? ` (${s.timezone})` : ""}`;
    case "IMMEDIATE": return "immediately, once";
    default: return lower(s.scheduleType);
  }
}

export const shortId = (id) => (id ? String(id).slice(0, 8) : "");

/** Overlap policies: what a run does while an earlier run of its schedule is still in progress. */
export const OVERLAP_POLICIES = ["ALLOW", "SKIP", "BUFFER_ONE", "BUFFER_ALL", "CANCEL_OTHER"];
const OVERLAP_HINTS = {
  ALLOW: "run anyway (max concurrent still caps)",
  SKIP: "record the new slot skipped",
  BUFFER_ONE: "keep at most one waiting run",
  BUFFER_ALL: "keep every waiting run, in order",
  CANCEL_OTHER: "send a cancel notice to <target>.cancel, cancel the earlier run, start the new one",
};
/** "skip: record the new slot skipped"; the cancel notice names `target` when given. */
export const overlapText = (policy, target) =>
  `${lower(policy)}: ${(OVERLAP_HINTS[policy] || "").replace("<target>", target || "<target>")}`;

/** When a run ends: "none: …" or "report: …; timeout 300 s (5 min)". */
export function completionText(s) {
  if (s.completion !== "REPORT") return "none: a run ends when it is published";
  const n = s.completionTimeoutSeconds;
  const timeout = n % 60 === 0 ? `${n} s (${fmtSeconds(n)})` : `${n} s`;
  return `report: a run ends when the target reports its completion; timeout ${timeout}`;
}

export function toast(message, kind = "info", ms = 4500) {
  const box = document.getElementById("toasts");
  const el = h("div", { class: `toast ${kind}` }, message);
  box.append(el);
  setTimeout(() => el.remove(), ms);
}

export function debounce(fn, ms) {
  let timer;
  const wrapped = (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

/** Keep Tab / Shift+Tab inside a dialog (showModal already makes the page inert; this closes the browser-chrome gap). */
export function trapFocus(dialog) {
  dialog.addEventListener("keydown", (event) => {
    if (event.key !== "Tab") return;
    const items = [...dialog.querySelectorAll("button, [href], input, select, textarea, [tabindex]:not([tabindex='-1'])")]
      .filter((el) => !el.disabled && !el.closest("[hidden]") && el.offsetParent !== null);
    if (!items.length) return;
    const first = items[0], last = items[items.length - 1];
    if (event.shiftKey && document.activeElement === first) { event.preventDefault(); last.focus(); }
    else if (!event.shiftKey && document.activeElement === last) { event.preventDefault(); first.focus(); }
  });
}

/** The typed error of a mutation as a short sentence plus its field problems. */
export function describeError(result) {
  const problems = (result.errors || []).map((p) => `${p.field}: ${p.message}`);
  return { title: `${result.__typename}: ${result.message}`, problems };
}

export function errorBlock(el, result) {
  const { title, problems } = describeError(result);
  el.replaceChildren(h("strong", {}, title));
  if (problems.length) el.append(h("ul", {}, problems.map((p) => h("li", {}, p))));
  el.hidden = false;
}

/**
 * Ask for confirmation in the <dialog>. `action(reason, until)` runs on confirm; it returns null on success
 * (the dialog closes) or a typed error object (shown in the dialog, which stays open). With `until`, the
 * dialog also asks for an optional instant (a local date and time, passed on as ISO 8601 UTC, or null).
 * Resolves true when the action succeeded, false when cancelled.
 */
export function confirmAction({ title, body, confirmLabel = "Confirm", danger = false, reason = true, until = false, action }) {
  const dialog = document.getElementById("confirm-dialog");
  const form = document.getElementById("confirm-form");
  const ok = document.getElementById("confirm-ok");
  const cancel = document.getElementById("confirm-cancel");
  const errorEl = document.getElementById("confirm-error");
  const reasonInput = document.getElementById("confirm-reason");
  const untilInput = document.getElementById("confirm-until");
  const opener = document.activeElement;
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-body").textContent = body;
  document.getElementById("confirm-reason-row").hidden = !reason;
  reasonInput.value = "";
  document.getElementById("confirm-until-row").hidden = !until;
  untilInput.value = "";
  ok.textContent = confirmLabel;
  ok.disabled = false;
  errorEl.hidden = true;
  dialog.classList.toggle("danger", danger);

  return new Promise((resolve) => {
    let done = false;
    const finish = (value) => {
      if (done) return;
      done = true;
      form.removeEventListener("submit", onSubmit);
      cancel.removeEventListener("click", onCancel);
      dialog.removeEventListener("close", onClose);
      if (dialog.open) dialog.close();
      if (opener && opener.isConnected) opener.focus();
      resolve(value);
    };
    const onCancel = () => finish(false);
    const onClose = () => finish(false);  // Escape (cancel event) closes the dialog
    const onSubmit = async (event) => {
      event.preventDefault();
      ok.disabled = true;
      errorEl.hidden = true;
      try {
        // A datetime-local value is wall time in the browser's zone; Date reads it so.
        const untilValue = until && untilInput.value ? new Date(untilInput.value).toISOString() : null;
        const problem = await action(reasonInput.value.trim() || null, untilValue);
        if (problem) { errorBlock(errorEl, problem); ok.disabled = false; return; }
        finish(true);
      } catch (error) {
        errorEl.replaceChildren(h("strong", {}, error.message || String(error)));
        errorEl.hidden = false;
        ok.disabled = false;
      }
    };
    form.addEventListener("submit", onSubmit);
    cancel.addEventListener("click", onCancel);
    dialog.addEventListener("close", onClose);
    dialog.showModal();
    (reason ? reasonInput : cancel).focus();
  });
}

/** Render a connection's "Load more" pager. */
export function pager({ shown, total, hasNext, onMore, label = "items" }) {
  if (!total) return h("div");
  return h("div", { class: "pager" },
    h("span", {}, `Showing ${shown} of ${total} ${label}`),
    hasNext ? h("button", { type: "button", class: "btn btn-sm", onclick: onMore }, "Load more") : null);
}

export function cell(label, ...content) {
  return h("td", { "data-label": label }, h("div", { class: "cell" }, ...content));
}
