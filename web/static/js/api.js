// GraphQL over HTTP, with the API-key sign-in used when the API asks for credentials.
import { h, trapFocus } from "./ui.js";

const KEY = "scheduler.apiKey";
export const ENDPOINT = "/graphql";

export class GraphQLRequestError extends Error {
  constructor(message, errors = [], status = 0) {
    super(message);
    this.errors = errors;
    this.status = status;
    this.code = errors[0]?.extensions?.code;
    this.fieldErrors = errors.flatMap((e) => e.extensions?.errors || []);
  }
}

export const apiKey = () => sessionStorage.getItem(KEY);
export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key); else sessionStorage.removeItem(KEY);
  // The Dramatiq dashboard (/dramatiq/) is a server-rendered admin page: a browser navigation sends
  // no header, so the key goes with it as a cookie that only that path and this site receive.
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = key
    ? `scheduler_api_key=${encodeURIComponent(key)}; Path=/dramatiq; SameSite=Strict${secure}`
    : `scheduler_api_key=; Path=/dramatiq; SameSite=Strict; Max-Age=0${secure}`;
  document.getElementById("signout").hidden = !key;
  keyListeners.forEach((fn) => fn(key));
}
const keyListeners = new Set();
export const onKeyChange = (fn) => { keyListeners.add(fn); return () => keyListeners.delete(fn); };

export function authHeaders() {
  const key = apiKey();
  // With a key, the key decides who acts; without one (authentication off), name the dashboard
  // so the audit trail says where a change came from.
  return key ? { Authorization: `Bearer ${key}` } : { "X-Performed-By": "web-dashboard" };
}

const isUnauthenticated = (status, body) =>
  status === 401 || (body?.errors || []).some((e) => e.extensions?.code === "unauthenticated");

let pendingSignIn = null;

/** Show the sign-in dialog (once, however many requests are waiting); resolves true when a key was given. */
export function requestSignIn(message) {
  if (pendingSignIn) return pendingSignIn;
  const dialog = document.getElementById("signin-dialog");
  const form = document.getElementById("signin-form");
  const input = document.getElementById("signin-key");
  const errorEl = document.getElementById("signin-error");
  const cancel = document.getElementById("signin-cancel");
  const opener = document.activeElement;
  input.value = "";
  errorEl.hidden = !message;
  errorEl.replaceChildren(message ? h("span", {}, message) : "");
  pendingSignIn = new Promise((resolve) => {
    const finish = (ok) => {
      form.removeEventListener("submit", onSubmit);
      cancel.removeEventListener("click", onCancel);
      dialog.removeEventListener("close", onCancel);
      if (dialog.open) dialog.close();
      pendingSignIn = null;
      if (opener && opener.isConnected) opener.focus();
      resolve(ok);
    };
    const onSubmit = (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      setApiKey(key);
      finish(true);
    };
    const onCancel = () => finish(false);
    form.addEventListener("submit", onSubmit);
    cancel.addEventListener("click", onCancel);
    dialog.addEventListener("close", onCancel);
    dialog.showModal();
    input.focus();
  });
  return pendingSignIn;
}

/**
 * Run a query or mutation; resolves with `data`. Throws GraphQLRequestError for transport errors and
 * for GraphQL `errors` (typed mutation errors are union members inside `data`, not thrown).
 */
export async function gql(query, variables = {}, { attempt = 0 } = {}) {
  let response;
  try {
    response = await fetch(ENDPOINT, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", ...authHeaders() },
      body: JSON.stringify({ query, variables }),
    });
  } catch (error) {
    throw new GraphQLRequestError(`Network error: ${error.message}`);
  }
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  if (isUnauthenticated(response.status, body)) {
    if (attempt < 3 && await requestSignIn(apiKey() ? "That API key was not accepted." : "")) {
      return gql(query, variables, { attempt: attempt + 1 });
    }
    throw new GraphQLRequestError("Sign-in required", body?.errors || [], 401);
  }
  if (body?.errors?.length) {
    throw new GraphQLRequestError(body.errors.map((e) => e.message).join("; "), body.errors, response.status);
  }
  if (!response.ok || !body) {
    throw new GraphQLRequestError(`HTTP ${response.status} from ${ENDPOINT}`, [], response.status);
  }
  return body.data;
}

export function initAuth() {
  trapFocus(document.getElementById("signin-dialog"));
  const signout = document.getElementById("signout");
  signout.hidden = !apiKey();
  signout.addEventListener("click", () => { setApiKey(null); location.reload(); });
}

// Fragments shared by the pages.
export const SCHEDULE_FIELDS = `
  id name description scheduleType cronExpression intervalSeconds runAt timezone startAt endAt
  dstGap dstRepeat targetCommand commandPayload deliveryMode requestTimeoutSeconds priority maxRetries
  retryDelay misfireGraceSeconds catchup maxConcurrent maxRuns jitterSeconds tags excludeCalendars status statusReason
  pauseAfterFailures deadLetterSubject completion completionTimeoutSeconds overlapPolicy
  isActive pausedAt pausedUntil nextRunAt nextRunAtLocal lastRunAt runCount createdBy updatedBy createdAt updatedAt version`;

export const EXECUTION_FIELDS = `
  id scheduleId scheduledFor triggerType triggeredBy status reason priority attempts enqueuedAt startedAt
  finishedAt lagMs durationMs lastError publishedSubject createdAt deadLetteredAt completeBy reportedAt result`;

export const ERROR_FIELDS = `... on Error { message code } ... on ValidationError { errors { field message } }
  ... on NotFoundError { errors { field message } } ... on ConflictError { errors { field message } }
  ... on QuotaExceededError { errors { field message } } ... on ForbiddenError { errors { field message } }`;

/** Row-level lifecycle mutations; each resolves to null on success or the typed error. */
const ROW_FIELDS = "id status statusReason version nextRunAt nextRunAtLocal pausedAt pausedUntil";
/** Pause; with `until` (ISO 8601) a snooze: the schedule resumes by itself then. */
export async function pauseSchedule(id, reason, until = null) {
  const d = await gql(`mutation($id: UUID!, $reason: String, $until: DateTime) { r: pauseSchedule(id: $id, reason: $reason, until: $until) { __typename ... on Schedule { ${ROW_FIELDS} } ${ERROR_FIELDS} } }`, { id, reason, until });
  return d.r;
}
export async function resumeSchedule(id, reason) {
  const d = await gql(`mutation($id: UUID!, $reason: String) { r: resumeSchedule(id: $id, reason: $reason) { __typename ... on Schedule { ${ROW_FIELDS} } ${ERROR_FIELDS} } }`, { id, reason });
  return d.r;
}
export async function triggerSchedule(id) {
  const d = await gql(`mutation($id: UUID!) { r: triggerSchedule(id: $id) { __typename ... on TriggerScheduleSuccess { executionId scheduleId status } ${ERROR_FIELDS} } }`, { id });
  return d.r;
}
/** One more attempt of a failed or timed-out run; resolves to null on success or the typed error. */
export async function retryExecution(id) {
  const d = await gql(`mutation($id: UUID!) { r: retryExecution(id: $id) { __typename ... on Execution { id status } ${ERROR_FIELDS} } }`, { id });
  return d.r.__typename === "Execution" ? null : d.r;
}
export async function deleteSchedule(id, reason) {
  const d = await gql(`mutation($id: UUID!, $reason: String) { r: deleteSchedule(id: $id, reason: $reason) { __typename ... on DeleteScheduleSuccess { id } ${ERROR_FIELDS} } }`, { id, reason });
  return d.r;
}

const nameCache = new Map();
/** Names of schedules by id (batched with aliases, cached); deleted ones come back null. */
export async function scheduleNames(ids) {
  const missing = [...new Set(ids)].filter((id) => id && !nameCache.has(id));
  for (let i = 0; i < missing.length; i += 20) {
    const chunk = missing.slice(i, i + 20);
    const vars = Object.fromEntries(chunk.map((id, n) => [`i${n}`, id]));
    const query = `query(${chunk.map((_, n) => `$i${n}: UUID!`).join(", ")}) { ${chunk.map((_, n) => `s${n}: schedule(id: $i${n}) { name }`).join(" ")} }`;
    try {
      const data = await gql(query, vars);
      chunk.forEach((id, n) => nameCache.set(id, data[`s${n}`]?.name ?? null));
    } catch { chunk.forEach((id) => nameCache.set(id, null)); }
  }
  return nameCache;
}
export const cachedName = (id) => nameCache.get(id);
