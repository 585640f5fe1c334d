// A small graphql-transport-ws client: connection_init → connection_ack, subscribe/next/error/complete,
// ping/pong, and reconnection with exponential backoff (subscriptions are re-sent after each ack).
import { apiKey, requestSignIn } from "./api.js";

const PROTOCOL = "graphql-transport-ws";

export class SubscriptionClient {
  constructor(url) {
    this.url = url;
    this.socket = null;
    this.acked = false;
    this.subs = new Map();      // id → {query, variables, sink}
    this.nextId = 1;
    this.attempt = 0;
    this.retryTimer = null;
    this.idleTimer = null;
    this.state = "closed";      // closed | connecting | open
    this.stateListeners = new Set();
  }

  onState(fn) { this.stateListeners.add(fn); fn(this.state); return () => this.stateListeners.delete(fn); }
  setState(state) { this.state = state; this.stateListeners.forEach((fn) => fn(state)); }

  /** Subscribe; `sink` has next(data), error(errors), complete(). Returns an unsubscribe function. */
  subscribe(query, variables, sink) {
    const id = String(this.nextId++);
    this.subs.set(id, { query, variables, sink });
    clearTimeout(this.idleTimer);
    if (this.socket && this.acked) this.sendSubscribe(id);
    else this.connect();
    return () => {
      if (!this.subs.delete(id)) return;
      if (this.socket && this.acked) this.send({ id, type: "complete" });
      if (!this.subs.size) this.idleTimer = setTimeout(() => this.close(), 2000);
    };
  }

  connect() {
    if (this.socket || this.retryTimer) return;
    this.setState("connecting");
    const socket = new WebSocket(this.url, PROTOCOL);
    this.socket = socket;
    this.acked = false;
    socket.onopen = () => {
      const key = apiKey();
      socket.send(JSON.stringify({ type: "connection_init", payload: key ? { Authorization: `Bearer ${key}` } : {} }));
    };
    socket.onmessage = (event) => this.receive(socket, event.data);
    socket.onclose = (event) => this.closed(socket, event);
    socket.onerror = () => { /* onclose follows */ };
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  sendSubscribe(id) {
    const sub = this.subs.get(id);
    if (sub) this.send({ id, type: "subscribe", payload: { query: sub.query, variables: sub.variables || {} } });
  }

  receive(socket, raw) {
    if (socket !== this.socket) return;
    let message;
    try { message = JSON.parse(raw); } catch { return; }
    switch (message.type) {
      case "connection_ack":
        this.acked = true;
        this.attempt = 0;
        this.setState("open");
        for (const id of this.subs.keys()) this.sendSubscribe(id);
        break;
      case "ping":
        this.send({ type: "pong", payload: message.payload });
        break;
      case "next": {
        const sub = this.subs.get(message.id);
        if (!sub) break;
        if (message.payload?.errors?.length) sub.sink.error?.(message.payload.errors);
        if (message.payload?.data) sub.sink.next(message.payload.data);
        break;
      }
      case "error": {
        const sub = this.subs.get(message.id);
        this.subs.delete(message.id);
        sub?.sink.error?.(message.payload);
        break;
      }
      case "complete": {
        const sub = this.subs.get(message.id);
        this.subs.delete(message.id);
        sub?.sink.complete?.();
        break;
      }
      default: break;
    }
  }

  async closed(socket, event) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.acked = false;
    if (!this.subs.size) { this.setState("closed"); return; }
    this.setState("connecting");
    // 4401 Unauthorized / 4403 Forbidden: ask for an API key before trying again.
    if (event.code === 4401 || event.code === 4403) {
      const ok = await requestSignIn(apiKey() ? "That API key was not accepted." : "");
      if (!ok) { this.setState("closed"); return; }
    }
    const delay = Math.min(30000, 1000 * 2 ** this.attempt) * (0.75 + Math.random() * 0.5);
    this.attempt = Math.min(this.attempt + 1, 5);
    this.retryTimer = setTimeout(() => { this.retryTimer = null; if (this.subs.size) this.connect(); }, delay);
  }

  /** Reconnect at once (e.g. after a new API key). */
  restart() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const socket = this.socket;
    this.socket = null;
    if (socket) { socket.onclose = null; socket.close(1000); }
    this.attempt = 0;
    if (this.subs.size) this.connect();
  }

  close() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.subs.size) return;
    const socket = this.socket;
    this.socket = null;
    this.acked = false;
    if (socket) { socket.onclose = null; socket.close(1000); }
    this.setState("closed");
  }
}

const wsUrl = () => `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`;
export const subscriptions = new SubscriptionClient(wsUrl());

export const EXECUTION_EVENTS = `subscription($scheduleId: UUID) {
  executionEvents(scheduleId: $scheduleId) { event executionId scheduleId status attempt scheduledFor at reason error }
}`;

/** A "● live" indicator bound to the client's state. Returns [element, dispose]. */
export function liveIndicator(document_) {
  const el = document_.createElement("span");
  el.className = "live";
  el.setAttribute("role", "status");
  const labels = { open: "live", connecting: "connecting…", closed: "offline" };
  const dispose = subscriptions.onState((state) => { el.className = `live ${state}`; el.textContent = labels[state]; el.dataset.state = state; });
  return [el, dispose];
}
