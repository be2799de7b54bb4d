// A project's live dashboard: the leaderboard and the alerts feed, kept current by the
// project's live socket without reloading. The socket's snapshot is the leaderboard and the
// hour's stats; its batches bring submissions, scores, stats and alerts.

import {
  api,
  apiAll,
  config,
  moment,
  fill,
  h,
  handlingTime,
  intervalBar,
  liveBadge,
  liveSocket,
  newest,
  percent,
  throttled,
} from "./core.js";

const $ = (id) => document.getElementById(id);
const project = config.project;

let rows = []; // the leaderboard: the accuracy rows, each with its annotator's stats
const usernames = new Map(); // annotator id -> username
const submittedLive = new Map(); // annotator id -> submissions seen on the socket
const hourStats = new Map(); // annotator id -> their stats row of the latest hour
let totalLive = 0;
const flashed = new Set();

/** A figure of the hourly stats over the last 7 days (projects/{id}/stats): "—" without any. */
const statsColumn = (field, title, hint, show) => ({
  title,
  hint,
  num: true,
  cell: (row) => (row.stats && row.stats[field] !== null ? show(row.stats[field]) : "—"),
});

// The leaderboard's columns, in one place.
const COLUMNS = [
  {
    title: "Annotator",
    cell: (row) => h("a", { href: `/qa/projects/${project}/annotators/${row.annotator}/` }, row.username),
  },
  { title: "Accuracy (95 %)", hint: "Gold accuracy with its 95 % interval; the dashed line is the target", cell: (row) => intervalBar(row, { target: config.accuracy_target, width: 120 }) },
  { title: "Mean", num: true, cell: (row) => percent(row.mean, 1) },
  { title: "n", num: true, cell: (row) => String(row.scored) },
  {
    title: "Recent",
    num: true,
    cell: (row) => (row.recent_mean === null ? "—" : `${percent(row.recent_mean, 0)} (${row.recent_n})`),
  },
  statsColumn("throughput_per_hour", "Per hour", "Submissions per hour worked (hours with a submission), last 7 days", (v) => v.toFixed(1)),
  statsColumn("handling_median_seconds", "Median", "Median handling time: the bucket bound half the submissions reach, last 7 days", handlingTime),
  statsColumn("review_pass_rate", "Pass rate", "Review pass rate: accepted / all verdicts on their work, last 7 days", (v) => percent(v, 0)),
  statsColumn("agreement_mean", "Agreement", "Mean agreement with the other annotators of their tasks, last 7 days", (v) => percent(v, 0)),
  { title: "Live", hint: "Submitted since you opened this page", num: true, cell: (row) => String(submittedLive.get(row.annotator) || 0), key: "live" },
  { title: "Hour", hint: "Submitted this hour (UTC)", num: true, cell: (row) => String(hourStats.get(row.annotator)?.submitted ?? 0), key: "hour" },
];

function drawHead() {
  fill(
    $("leaderboard-head"),
    COLUMNS.map((column) => h("th", { class: column.num ? "num" : null, title: column.hint || null }, column.title)),
  );
}

function drawLeaderboard() {
  const body = $("leaderboard").tBodies[0];
  if (!rows.length) {
    fill(body, h("tr", {}, h("td", { colspan: COLUMNS.length, class: "hint" }, "Nobody works on this project yet.")));
    return;
  }
  fill(
    body,
    rows.map((row) =>
      h(
        "tr",
        { dataset: { annotator: row.annotator }, class: flashed.has(row.annotator) ? "flash" : null },
        COLUMNS.map((column) =>
          h("td", { class: column.num ? "num" : null, dataset: column.key ? { key: column.key } : null }, column.cell(row)),
        ),
      ),
    ),
  );
  flashed.clear();
}

/** The accuracy rows, each with its annotator's stats of the last 7 days. */
function showLeaderboard(accuracy, stats) {
  const statsOf = new Map(stats.annotators.map((row) => [row.annotator, row]));
  rows = accuracy.map((row) => ({ ...row, stats: statsOf.get(row.annotator) || null }));
  for (const row of rows) usernames.set(row.annotator, row.username);
  $("stat-scored").textContent = rows.reduce((sum, row) => sum + row.scored, 0);
  drawLeaderboard();
}

const weekStats = () => api(`projects/${project}/stats`).then(({ body }) => body);

// The leaderboard, read again or (from a snapshot) given its accuracy rows.
const loadLeaderboard = newest(
  (accuracy = null) => Promise.all([accuracy || apiAll(`projects/${project}/accuracy`), weekStats()]),
  ([accuracy, stats]) => showLeaderboard(accuracy, stats),
);

/** A stats row of the hour; a row of an earlier hour than the one shown is old news. */
function keepStats(row) {
  const shown = hourStats.get(row.annotator);
  if (shown && shown.hour > row.hour) return false;
  hourStats.set(row.annotator, row);
  return true;
}

const loadProgress = newest(
  () => api(`projects/${project}`),
  ({ body: { progress: p } }) => {
    $("stat-tasks").textContent = `${p.tasks_complete} / ${p.tasks_total}`;
    $("stat-annotations").textContent = `${p.annotations_submitted} / ${p.annotations_needed}`;
  },
);

const EFFECTS = {
  suspend_project: "suspended from the project",
  lower_skill: "skill level lowered",
  suspend_certification: "certification suspended",
  raise_gold_rate: "gold rate raised",
  alert: "alert",
};

/** One quality action, as the list gives it or as its live alert tells it (`label` set). */
function alertItem({ id, annotator, metric, value, threshold, label, created_at, undone_at }, fresh = false) {
  const who = usernames.get(annotator) || `annotator ${annotator}`;
  return h(
    "li",
    { class: [undone_at ? "undone" : "", fresh ? "fresh" : ""].join(" ").trim() || null, dataset: { action: id } },
    h("a", { href: `/qa/projects/${project}/annotators/${annotator}/` }, who),
    ": ",
    label,
    undone_at ? " (undone)" : "",
    h("br"),
    h("span", { class: "when" }, `${metric} ${Number(value).toFixed(2)} crossed ${Number(threshold).toFixed(2)} · ${moment(created_at)}`),
  );
}

let seenActions = null;

const loadAlerts = newest(() => api(`projects/${project}/quality-actions?page_size=30`), drawAlerts);

function drawAlerts({ body }) {
  const before = seenActions;
  seenActions = new Set(body.results.map((action) => action.id));
  fill(
    $("alerts"),
    body.results.length
      ? body.results.map((action) =>
          alertItem(
            { ...action, label: action.effect || EFFECTS[action.action] || action.action },
            before !== null && !before.has(action.id),
          ),
        )
      : h("li", { class: "hint" }, "No quality rule has acted in this project."),
  );
}

/** The snapshot carries the leaderboard and the hour's stats; the rest is fetched. */
async function loadAll(snapshot) {
  hourStats.clear();
  for (const row of snapshot.data.stats) keepStats(row);
  await Promise.all([loadLeaderboard(snapshot.data.leaderboard), loadProgress(), loadAlerts()]);
}

const refreshLeaderboard = throttled(loadLeaderboard, 500);
// Work coming in moves the stats columns; read them again at most every few seconds.
const refreshStats = throttled(loadLeaderboard, 3000);
const refreshProgress = throttled(loadProgress, 1000);
const refreshAlerts = throttled(loadAlerts, 500);

function onEvent({ type, data, at }) {
  if (data.project !== project) return;
  if (type === "annotation.submitted") {
    submittedLive.set(data.annotator, (submittedLive.get(data.annotator) || 0) + 1);
    totalLive += 1;
    $("stat-live").textContent = totalLive;
    const cell = document.querySelector(`tr[data-annotator="${data.annotator}"] td[data-key="live"]`);
    if (cell) cell.textContent = submittedLive.get(data.annotator);
    refreshProgress();
    refreshStats();
  } else if (type === "review.completed" || type === "stats.updated") {
    if (type === "stats.updated") {
      const cell = document.querySelector(`tr[data-annotator="${data.annotator}"] td[data-key="hour"]`);
      if (keepStats(data) && cell) cell.textContent = data.submitted;
    }
    // Their stats moved: throughput, review pass rate, agreement.
    refreshStats();
  } else if (type === "gold.scored") {
    flashed.add(data.annotator);
    refreshLeaderboard();
  } else if (type === "quality.alert") {
    // Shown at once, then the feed is read again for the whole action.
    const list = $("alerts");
    list.querySelector(".hint")?.remove();
    list.prepend(
      alertItem({ ...data, id: data.action, created_at: at, label: EFFECTS[data.effect] || data.effect }, true),
    );
    refreshAlerts();
  }
}

drawHead();
liveSocket({ onSnapshot: loadAll, onEvent, onState: liveBadge($("live")) });
