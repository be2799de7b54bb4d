// One annotator in one project, for a QA lead: accuracy with its interval, the trend of gold
// scores, gold results, quality actions (with undo) and the audit log, kept current live.

import {
  ApiError,
  api,
  config,
  dateTime,
  fill,
  moment,
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
const { project, annotator } = config;

let figures = null; // this project's accuracy row
// Their latest gold scores here, oldest first: {at, score, task, annotation}; read on each
// snapshot, then added to (or, rescored, replaced) as they arrive.
let scores = [];
const GOLD_READ = 200;
const GOLD_ROWS = 20;
let submittedLive = 0;

// -- accuracy --------------------------------------------------------------------------

function accuracyTable(rows, key, heading) {
  if (!rows.length) return null;
  return h(
    "table",
    { class: "figures" },
    h("thead", {}, h("tr", {}, h("th", {}, heading), h("th", {}, "95 % interval"), h("th", { class: "num" }, "Mean"), h("th", { class: "num" }, "n"), h("th", { class: "num" }, "Recent"))),
    h(
      "tbody",
      {},
      rows.map((row) =>
        h(
          "tr",
          { class: key === "name" && row.project === project ? "selected" : null },
          h("td", {}, row[key]),
          h("td", {}, intervalBar(row, { width: 120 })),
          h("td", { class: "num" }, percent(row.mean, 1)),
          h("td", { class: "num" }, String(row.scored)),
          h("td", { class: "num" }, row.recent_mean === null || row.recent_mean === undefined ? "—" : percent(row.recent_mean, 0)),
        ),
      ),
    ),
  );
}

const loadAccuracy = newest(
  () => api(`annotators/${annotator}/accuracy`),
  ({ body }) => {
    figures = body.projects.find((row) => row.project === project) || null;
    $("fig-mean").textContent = figures ? percent(figures.mean, 1) : "—";
    $("fig-interval").textContent = figures && figures.low !== null ? `${percent(figures.low)} – ${percent(figures.high)}` : "—";
    $("fig-n").textContent = figures ? figures.scored : "0";
    $("fig-recent").textContent = figures && figures.recent_mean !== null ? percent(figures.recent_mean, 0) : "—";
    const tables = [
      accuracyTable(body.projects, "name", "Project"),
      accuracyTable(body.kinds, "kind", "Kind"),
      accuracyTable(body.domains, "domain", "Domain"),
    ].filter(Boolean);
    fill($("accuracy-all"), tables.length ? tables : h("p", { class: "hint" }, "No gold scored yet."));
    drawTrend();
  },
);

// -- work: the hourly stats of the last 7 days, what reviewers found, labels vs consensus ---

const loadWork = newest(
  () => api(`annotators/${annotator}/stats`),
  ({ body }) => {
    const row = body.projects.find((p) => p.project === project) || null;
    const shown = (value, format) => (row && value !== null && value !== undefined ? format(value) : "—");
    $("work-submitted").textContent = row ? row.submitted : "0";
    $("work-throughput").textContent = shown(row?.throughput_per_hour, (v) => v.toFixed(1));
    $("work-median").textContent = handlingTime(row?.handling_median_seconds);
    $("work-p90").textContent = handlingTime(row?.handling_p90_seconds);
    $("work-pass").textContent = shown(row?.review_pass_rate, (v) => percent(v, 0));
    $("work-agreement").textContent = shown(row?.agreement_mean, (v) => percent(v, 0));
  },
);

function drawConfusion({ classes, confusion }) {
  const total = confusion.reduce((sum, cells) => sum + cells.reduce((a, b) => a + b, 0), 0);
  $("confusion-card").hidden = false;
  if (!total) {
    fill($("confusion"), h("tbody", {}, h("tr", {}, h("td", { class: "hint" }, "No task of theirs has a consensus yet."))));
    return;
  }
  fill(
    $("confusion"),
    h("thead", {}, h("tr", {}, h("th", {}, "consensus ↓ · given →"), classes.map((name) => h("th", { class: "num" }, name)))),
    h(
      "tbody",
      {},
      confusion.map((cells, i) =>
        h(
          "tr",
          {},
          h("th", {}, classes[i]),
          cells.map((count, j) =>
            h("td", { class: ["num", i === j ? "agree" : count ? "confused" : ""].join(" ").trim() }, count ? String(count) : "·"),
          ),
        ),
      ),
    ),
  );
}

const loadErrors = newest(
  () => api(`projects/${project}/annotators/${annotator}/errors`),
  ({ body }) => {
    fill(
      $("error-tags").tBodies[0],
      body.error_tags.length
        ? body.error_tags.map((tag) =>
            h("tr", {}, h("td", {}, h("code", {}, tag.code)), h("td", {}, tag.description), h("td", { class: "num" }, String(tag.count))),
          )
        : h("tr", {}, h("td", { colspan: 3, class: "hint" }, "No reviewer tagged an error in their work here.")),
    );
    if (body.confusion) drawConfusion(body.confusion);
  },
);

// -- the trend chart (plotly.js, served from the plotly package) -------------------------

function drawTrend() {
  if (!window.Plotly) return; // the library loads deferred; it draws on "load"
  // Gold checks in order, numbered: a trend over checks reads the same whether they came a
  // second or a day apart; the hover tells when.
  const first = Math.max(0, figures ? figures.scored - scores.length : 0);
  const checks = scores.map((_, i) => first + i + 1);
  const when = scores.map((s) => `task ${s.task} · ${dateTime(s.at)}`);
  const running = scores.map((_, i) => scores.slice(0, i + 1).reduce((sum, s) => sum + s.score, 0) / (i + 1));
  const shapes = [];
  if (figures && figures.low !== null) {
    shapes.push({ type: "rect", xref: "paper", x0: 0, x1: 1, y0: figures.low, y1: figures.high, fillcolor: "#8fb3dc", opacity: 0.35, line: { width: 0 } });
    shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: figures.mean, y1: figures.mean, line: { color: "#1d3557", width: 1.5 } });
  }
  if (config.accuracy_target !== null) {
    shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: config.accuracy_target, y1: config.accuracy_target, line: { color: "#c0392b", width: 1.5, dash: "dot" } });
  }
  const traces = [
    { x: checks, y: scores.map((s) => s.score), text: when, mode: "markers", name: "gold score", marker: { color: "#1d3557", size: 8 } },
    { x: checks, y: running, mode: "lines", name: "running mean", line: { color: "#2e9d57" } },
  ];
  const layout = {
    margin: { l: 44, r: 10, t: 10, b: 40 },
    yaxis: { range: [-0.02, 1.02], tickformat: ".0%" },
    xaxis: { title: { text: "gold check" }, range: [first + 0.5, first + Math.max(5, scores.length) + 0.5], dtick: scores.length > 20 ? undefined : 1 },
    shapes,
    showlegend: true,
    legend: { orientation: "h", x: 1, xanchor: "right", y: 1.12 },
    annotations: scores.length
      ? []
      : [{ xref: "paper", yref: "paper", x: 0.5, y: 0.5, showarrow: false, text: "Waiting for gold scores…", font: { color: "#5b6773" } }],
  };
  window.Plotly.react($("trend"), traces, layout, { displayModeBar: false, responsive: true });
}

// -- gold results ----------------------------------------------------------------------

const loadGold = newest(
  () => api(`projects/${project}/annotators/${annotator}/gold-scores?limit=${GOLD_READ}`),
  ({ body }) => {
    scores = body.reverse().map((s) => ({ at: s.scored_at, score: s.score, task: s.task, annotation: s.annotation }));
    drawGold();
    drawTrend();
  },
);

function addGold(score) {
  const known = scores.findIndex((s) => s.annotation === score.annotation);
  if (known >= 0) scores[known] = score;
  else scores.push(score);
  if (scores.length > GOLD_READ) scores.shift();
  drawGold();
}

function drawGold() {
  const body = $("gold").tBodies[0];
  if (!scores.length) {
    fill(body, h("tr", {}, h("td", { colspan: 4, class: "hint" }, "No gold scored here yet: results arrive as they are scored.")));
    return;
  }
  fill(
    body,
    scores.slice(-GOLD_ROWS).reverse().map((s) =>
      h("tr", {}, h("td", {}, moment(s.at)), h("td", {}, String(s.task)), h("td", {}, String(s.annotation)), h("td", { class: "num" }, s.score.toFixed(2))),
    ),
  );
}

// -- quality actions and undo ----------------------------------------------------------

function undoForm(action) {
  const input = h("input", { type: "text", name: "reason", placeholder: "Why undo it?", "aria-label": "Reason to undo", required: true });
  const form = h(
    "form",
    {
      class: "undo-form",
      onsubmit: async (event) => {
        event.preventDefault();
        if (!input.value.trim()) {
          input.focus();
          return;
        }
        try {
          await api(`quality-actions/${action.id}/undo`, { method: "POST", body: { reason: input.value.trim() } });
          await Promise.all([loadActions(), loadAudit()]);
        } catch (error) {
          form.replaceWith(h("p", { class: "error" }, error instanceof ApiError ? error.message : String(error)));
        }
      },
    },
    input,
    h("button", { type: "submit", class: "small" }, "Undo"),
  );
  return form;
}

const loadActions = newest(
  () => api(`annotators/${annotator}/quality-actions?page_size=50`),
  ({ body }) => {
    fill(
      $("actions"),
      body.results.length
        ? body.results.map((action) =>
            h(
              "li",
              { class: action.undone_at ? "undone" : null, dataset: { action: action.id } },
              h("strong", {}, action.effect || action.action),
              action.project !== project ? h("span", { class: "hint" }, ` (project ${action.project})`) : null,
              h("br"),
              h("span", { class: "when" }, `${action.metric} ${action.value.toFixed(2)} crossed ${action.threshold.toFixed(2)} · ${moment(action.created_at)}`),
              action.undone_at
                ? h("div", { class: "when" }, `Undone ${moment(action.undone_at)}: ${action.undo_reason}`)
                : config.can_undo
                  ? undoForm(action)
                  : null,
            ),
          )
        : h("li", { class: "hint" }, "No quality rule has acted on this annotator."),
    );
  },
);

// -- audit -----------------------------------------------------------------------------

const loadAudit = newest(
  () => api(`audit-events/?annotator=${annotator}&page_size=30`),
  ({ body }) => {
    fill(
      $("audit").tBodies[0],
      body.results.length
        ? body.results.map((event) =>
            h(
              "tr",
              {},
              h("td", {}, moment(event.at)),
              h("td", {}, h("strong", {}, event.verb), " ", event.target_repr, event.reason ? h("div", { class: "hint" }, event.reason) : null),
              h("td", {}, event.actor),
            ),
          )
        : h("tr", {}, h("td", { colspan: 3, class: "hint" }, "Nothing audited yet.")),
    );
  },
);

async function loadAll() {
  await Promise.all([loadAccuracy(), loadGold(), loadActions(), loadAudit(), loadWork(), loadErrors()]);
}

// Work coming in moves their stats, a verdict their tags, a task's consensus their labels.
const refreshWork = throttled(() => Promise.all([loadWork(), loadErrors()]), 3000);

const refreshAccuracy = throttled(loadAccuracy, 500);
const refreshActions = throttled(() => Promise.all([loadActions(), loadAudit()]), 500);

function onEvent({ type, data, at }) {
  if (data.annotator !== annotator) return;
  if (type === "gold.scored" && data.project === project) {
    addGold({ at, score: data.score, task: data.task, annotation: data.annotation });
    refreshAccuracy();
  } else if (type === "annotation.submitted" && data.project === project) {
    submittedLive += 1;
    $("fig-live").textContent = submittedLive;
    refreshWork();
  } else if ((type === "review.completed" || type === "stats.updated") && data.project === project) {
    refreshWork();
  } else if (type === "quality.alert") {
    refreshActions();
  }
}

window.addEventListener("load", drawTrend);
liveSocket({ onSnapshot: loadAll, onEvent, onState: liveBadge($("live")) });
