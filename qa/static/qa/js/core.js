// What every page module shares: the page's configuration, calls to the REST API with the
// session, building DOM without HTML strings, the interval bar, and the live socket.
//
// Everything a page shows from the API (task data, instructions, names) is untrusted: it only
// ever becomes text nodes or attribute values, never markup.

/** The configuration the view rendered with json_script (organization, role, ids). */
export const config = JSON.parse(document.getElementById("page-config").textContent);

const csrfToken = () => document.querySelector('meta[name="csrf-token"]').content;

/** An API error as the envelope tells it: status, code, message and the fields' reasons. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `The server answered ${status}.`);
    this.status = status;
    this.code = error.code || "";
    this.fields = error.fields || {};
  }
}

/**
 * Call the API as the logged-in user, in the page's organization. Answers
 * `{status, body, headers}`; throws ApiError on 4xx and 5xx.
 */
export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json", "X-Organization": config.organization };
  if (method !== "GET") {
    headers["X-CSRFToken"] = csrfToken();
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(`/api/v1/${path}`, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return { status: response.status, body: parsed, headers: response.headers };
}

/** Every row of a paginated list, following `next` up to `maxPages` pages. */
export async function apiAll(path, { maxPages = 20 } = {}) {
  const rows = [];
  let page = 1;
  const joiner = path.includes("?") ? "&" : "?";
  for (;;) {
    const { body } = await api(`${path}${joiner}page_size=200&page=${page}`);
    rows.push(...body.results);
    if (!body.next || page >= maxPages) return rows;
    page += 1;
  }
}

/** An element: `h("td", {class: "n"}, "text", child)`. Strings become text nodes. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Replace an element's children. */
export function fill(element, ...children) {
  element.replaceChildren();
  for (const child of children.flat()) {
    if (child !== undefined && child !== null && child !== false) element.append(child);
  }
}

export const percent = (value, digits = 0) =>
  value === null || value === undefined ? "—" : `${(value * 100).toFixed(digits)} %`;

export const dateTime = (value) =>
  value ? new Date(value).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "—";

/** A compact moment for tables: "Dec 3, 22:28". */
export const moment = (value) =>
  value ? new Date(value).toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }) : "—";

export const date = (value) =>
  value ? new Date(value).toLocaleDateString(undefined, { dateStyle: "medium" }) : "—";

/**
 * A handling-time figure of the stats (median, p90): the upper bound of its bucket, so "at
 * most" that many seconds or minutes; "—" without any submission.
 */
export const handlingTime = (value) =>
  value === null || value === undefined
    ? "—"
    : value >= 60
      ? `≤ ${(value / 60).toFixed(value % 60 ? 1 : 0)} min`
      : `≤ ${value} s`;

/** Whole days from now until `value` (negative once past). */
export const daysUntil = (value) => Math.round((new Date(value) - Date.now()) / 86_400_000);

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  return element;
}

/**
 * The 95 % interval drawn on a 0–1 scale: the band from low to high, a tick at the mean, and
 * the project's accuracy target as a dashed line. Nothing scored draws an empty scale.
 */
export function intervalBar({ low, high, mean }, { target = null, width = 160 } = {}) {
  const height = 16;
  const x = (value) => (Math.min(1, Math.max(0, value)) * (width - 2) + 1).toFixed(1);
  const bar = svg("svg", {
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    class: "interval",
    role: "img",
    "aria-label":
      low === null || low === undefined
        ? "no gold scored yet"
        : `95 % interval ${percent(low)} to ${percent(high)}, mean ${percent(mean)}`,
  });
  bar.append(svg("rect", { x: 1, y: 7, width: width - 2, height: 2, class: "track" }));
  if (low !== null && low !== undefined) {
    bar.append(
      svg("rect", { x: x(low), y: 3, width: Math.max(1, x(high) - x(low)), height: 10, rx: 2, class: "band" }),
    );
    bar.append(svg("rect", { x: x(mean) - 1, y: 1, width: 2, height: 14, class: "mean" }));
  }
  if (target !== null && target !== undefined) {
    bar.append(svg("line", { x1: x(target), x2: x(target), y1: 0, y2: height, class: "target" }));
  }
  return bar;
}

/** A short status line that screen readers announce. */
export function announce(element, text, kind = "info") {
  element.className = `notice ${kind}`;
  element.textContent = text;
  element.hidden = !text;
}

/**
 * The organization's live socket (`config.socket`: `/ws/orgs/<slug>/`, or with `?project=<id>`
 * one project's), the session's.
 *
 * The first message is a snapshot of what the page shows: `onSnapshot` draws it (and fetches
 * what it does not carry). Then batches: `onEvent` gets each of their events in order. `seq`
 * counts the socket's messages without gaps: a gap, or a `resync`, reconnects for a fresh
 * snapshot. A socket that closes reconnects with `after=<the last event id>` to receive what it
 * missed, unless the close says access ended (4401, 4403, 4404).
 */
export function liveSocket({ onSnapshot, onEvent, onState = () => {} }) {
  let lastSeq = 0;
  let lastId = null;
  let retry = 500;
  let socket = null;
  const FINAL = new Set([4400, 4401, 4403, 4404]);

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const joiner = config.socket.includes("?") ? "&" : "?";
    const after = lastId === null ? "" : `${joiner}after=${lastId}`;
    socket = new WebSocket(`${scheme}://${location.host}${config.socket}${after}`);
    lastSeq = 0;
    socket.addEventListener("open", () => onState("live"));
    socket.addEventListener("message", (raw) => {
      const message = JSON.parse(raw.data);
      const gap = message.seq !== lastSeq + 1;
      lastSeq = message.seq;
      if (message.type === "resync" || gap) {
        // What the page holds is not to be trusted: start again from a fresh snapshot.
        lastId = null;
        socket.close();
        return;
      }
      if (message.type === "snapshot") {
        // A reconnect's snapshot is followed by what was missed since lastId.
        if (lastId === null) lastId = message.data.cursor;
        refresh(() => onSnapshot(message));
      } else {
        for (const event of message.data.events) {
          if (event.id !== undefined) lastId = Math.max(lastId ?? 0, event.id);
          onEvent(event);
        }
      }
      retry = 500;
    });
    socket.addEventListener("close", (event) => {
      if (FINAL.has(event.code)) {
        onState("closed", event.reason || "The live connection was refused.");
        return;
      }
      onState("reconnecting");
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 15_000);
    });
  }

  connect();
  return { close: () => socket && socket.close() };
}

/**
 * Run a re-fetch and let a failure be told, not thrown: the next event or snapshot fetches
 * again, so a refresh that failed (a deploy, a dropped connection) only waits for it.
 */
export function refresh(fn) {
  Promise.resolve()
    .then(fn)
    .catch((error) => console.warn(`Could not refresh: ${error.message}`));
}

/**
 * A loader that draws only the answer to its newest call: `read(...args)` fetches, `draw(answer,
 * ...args)` shows it. An answer that arrives once a later call has been made is dropped, so a
 * slow answer never overwrites a newer one (a project chosen, then another; a refresh racing the
 * snapshot's).
 */
export function newest(read, draw) {
  let calls = 0;
  return async (...args) => {
    const call = ++calls;
    const answer = await read(...args);
    if (call === calls) draw(answer, ...args);
  };
}

/** Run `fn` at most once per `ms`, trailing: bursts of events cost one re-fetch. */
export function throttled(fn, ms) {
  let timer = null;
  let again = false;
  return () => {
    if (timer) {
      again = true;
      return;
    }
    refresh(fn);
    timer = setTimeout(function tick() {
      timer = null;
      if (again) {
        again = false;
        refresh(fn);
        timer = setTimeout(tick, ms);
      }
    }, ms);
  };
}

/** Show the socket's state in the page's live badge. */
export function liveBadge(element) {
  return (state, reason) => {
    element.dataset.state = state;
    element.textContent = { live: "Live", reconnecting: "Reconnecting…", closed: "Offline" }[state];
    element.title = reason || "";
  };
}
