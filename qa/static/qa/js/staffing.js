// The staffing board: projects with their progress against the deadline, and for the chosen
// project who qualifies (and why the others do not), who has room, and who is a member.

import { announce, api, apiAll, date, daysUntil, fill, h, intervalBar, newest, percent } from "./core.js";

const $ = (id) => document.getElementById(id);
let projects = [];
let chosen = null;
const plural = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;
// Project id -> annotations submitted in the last 24 hours.
let submittedToday = new Map();

/**
 * What is left and the pace it needs: annotations still to submit over the days to the
 * deadline; and the forecast, "at today's throughput it finishes on …", where today's
 * throughput is what the project's annotators submitted over the last 24 hours
 * (`GET stats/projects`), per hour.
 */
function pace(project) {
  const p = project.progress || {};
  const left = Math.max(0, (p.annotations_needed || 0) - (p.annotations_submitted || 0));
  if (!project.deadline) return { left, needed: null, late: false };
  const days = (new Date(project.deadline) - Date.now()) / 86_400_000;
  return { left, needed: days > 0 ? left / days : null, late: days <= 0 && left > 0 };
}

function forecast(project, { left }) {
  if (!left) return h("span", {}, "done");
  const perHour = (submittedToday.get(project.id) || 0) / 24;
  if (!perHour) return h("span", { class: "late" }, "no work in the last 24 h");
  const finish = new Date(Date.now() + (left / perHour) * 3_600_000);
  const late = project.deadline && finish > new Date(project.deadline);
  return h(
    "span",
    { class: late ? "late" : null, title: `${perHour.toFixed(1)} annotations an hour over the last 24 hours` },
    `finishes ${date(finish)}`,
    h("div", { class: "hint" }, `at ${perHour.toFixed(1)}/h`),
  );
}

function projectRow(project) {
  const p = project.progress || {};
  const share = p.annotations_needed ? p.annotations_submitted / p.annotations_needed : 0;
  const figures = pace(project);
  const days = project.deadline ? daysUntil(project.deadline) : null;
  return h(
    "tr",
    { class: chosen && chosen.id === project.id ? "selected" : null, dataset: { project: project.id } },
    h(
      "td",
      {},
      h("button", { type: "button", class: "link", onclick: () => choose(project) }, project.name),
      h("div", { class: "hint" }, `${project.kind} · ${project.status}`),
    ),
    h(
      "td",
      {},
      h("div", { class: "progress wide", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": Math.round(share * 100), "aria-label": `${project.name} progress` },
        h("span", { style: `width: ${Math.min(100, share * 100).toFixed(1)}%` })),
      h("div", { class: "hint" }, `${p.annotations_submitted || 0} / ${p.annotations_needed || 0} annotations (${percent(share)})`),
    ),
    h(
      "td",
      { class: figures.late ? "late" : null },
      project.deadline ? date(project.deadline) : "none",
      days !== null ? h("div", { class: "hint" }, days < 0 ? `${plural(-days, "day")} ago` : `in ${plural(days, "day")}`) : null,
    ),
    h("td", { class: "num" }, figures.late ? h("span", { class: "late" }, "overdue") : figures.needed === null ? "—" : `${figures.needed.toFixed(1)}/day`),
    h("td", {}, forecast(project, figures)),
  );
}

function drawProjects() {
  fill(
    $("projects").tBodies[0],
    projects.length ? projects.map(projectRow) : h("tr", {}, h("td", { colspan: 5, class: "hint" }, "No projects yet.")),
  );
}

const loadProjects = newest(
  () => {
    const since = new Date(Date.now() - 86_400_000).toISOString();
    return Promise.all([apiAll("projects/"), api(`stats/projects?since=${encodeURIComponent(since)}`)]);
  },
  ([all, today]) => {
    projects = all.filter((project) => project.status !== "archived");
    submittedToday = new Map(today.body.projects.map((row) => [row.project, row.submitted]));
    drawProjects();
  },
);

function staffingRow(row) {
  const load = row.load;
  const accuracy = row.accuracy.kind;
  let action = null;
  if (row.is_member) {
    action = h("button", { type: "button", class: "small", onclick: () => remove(row) }, "Remove");
  } else if (row.qualified) {
    action = h("button", { type: "button", class: "small primary", onclick: () => add(row) }, "Add");
  }
  return h(
    "tr",
    { dataset: { annotator: row.annotator } },
    h("td", {}, h("strong", {}, row.username), row.name ? h("div", { class: "hint" }, row.name) : null),
    h(
      "td",
      { class: row.qualified ? null : "reasons" },
      row.qualified
        ? h("span", { class: "badge ok" }, "qualified")
        : h("ul", { class: "reasons-list" }, row.reasons.map((reason) => h("li", {}, reason))),
    ),
    h("td", { class: "num" }, row.skill_level === null ? "—" : String(row.skill_level)),
    h(
      "td",
      { class: "num" },
      `${load.live_tasks}/${load.max_concurrent_tasks}`,
      h("div", {}, h("span", { class: `badge ${load.has_room ? "ok" : "warn"}` }, load.has_room ? "has room" : "full")),
    ),
    h("td", {}, accuracy ? [intervalBar(accuracy, { width: 90 }), h("div", { class: "hint" }, `${percent(accuracy.mean)} of ${accuracy.scored}`)] : h("span", { class: "hint" }, "no gold yet")),
    h("td", { class: "nowrap" }, row.is_member ? h("span", { class: "badge active" }, "member") : null, " ", action),
  );
}

/** A reviewer, ranked against the project's reviewer layers (`review-staffing`). */
function reviewerRow(row) {
  const load = row.load;
  let action = null;
  if (row.is_member) {
    action = h("button", { type: "button", class: "small", onclick: () => remove(row) }, "Remove");
  } else if (row.qualified) {
    action = h("button", { type: "button", class: "small primary", onclick: () => add(row, "reviewer") }, "Add");
  }
  const layers = row.layers.length
    ? h(
        "ul",
        { class: "reasons-list" },
        row.layers.map((layer) =>
          layer.qualified
            ? h("li", { class: "qualified" }, h("span", { class: "badge ok" }, `${layer.name}: qualified`))
            : h("li", {}, `${layer.name}: ${layer.reasons.join("; ")}`),
        ),
      )
    : h("span", { class: "hint" }, "no reviewer layer");
  return h(
    "tr",
    { dataset: { reviewer: row.annotator } },
    h("td", {}, h("strong", {}, row.username), row.name ? h("div", { class: "hint" }, row.name) : null),
    h("td", {}, layers),
    h("td", { class: "num" }, row.skill_level === null ? "—" : String(row.skill_level)),
    h(
      "td",
      { class: "num" },
      `${load.live_reviews_here}/${load.project_max_concurrent_tasks}`,
      h("div", {}, h("span", { class: `badge ${load.has_room ? "ok" : "warn"}` }, load.has_room ? "has room" : "full")),
    ),
    h("td", { class: "nowrap" }, row.is_member ? h("span", { class: "badge active" }, "reviewer") : null, " ", action),
  );
}

// The chosen project's staffing; a late answer for a project chosen before is not drawn.
const loadStaffing = newest(
  (project) => Promise.all([api(`projects/${project.id}/staffing`), api(`projects/${project.id}/review-staffing`)]),
  ([{ body }, { body: reviewers }], project) => drawStaffing(project, body, reviewers),
);

function drawStaffing(project, body, reviewers) {
  const table = (rows) =>
    h(
      "table",
      { class: "figures" },
      h("thead", {}, h("tr", {}, ["Annotator", "Qualified", "Level", "Load", `Accuracy in ${project.kind}`, ""].map((title) => h("th", {}, title)))),
      h("tbody", {}, rows.map(staffingRow)),
    );
  const scroll = (rows) => h("div", { class: "scroll" }, table(rows));
  const qualified = body.filter((row) => row.qualified);
  const others = body.filter((row) => !row.qualified);
  const available = qualified.filter((row) => row.load.has_room && row.status === "active").length;
  fill(
    $("staffing"),
    h("h3", {}, `Qualified (${qualified.length}, ${available} with room)`),
    qualified.length ? scroll(qualified) : h("p", { class: "hint" }, "Nobody qualifies yet."),
    h("h3", {}, `Not qualified (${others.length})`),
    others.length ? scroll(others) : h("p", { class: "hint" }, "Everyone qualifies."),
    h("h3", {}, `Reviewers (${reviewers.filter((row) => row.qualified).length} qualified)`),
    reviewers.length
      ? h(
          "div",
          { class: "scroll" },
          h(
            "table",
            { class: "figures", id: "reviewers" },
            h("thead", {}, h("tr", {}, ["Reviewer", "Layers", "Level", "Reviews held", ""].map((title) => h("th", {}, title)))),
            h("tbody", {}, reviewers.map(reviewerRow)),
          ),
        )
      : h("p", { class: "hint" }, "No reviewers in the organization."),
  );
}

async function choose(project) {
  chosen = project;
  $("staffing-project").textContent = `${project.name} · needs ${project.kind} level ${project.required_skill_level}${project.required_domains.length ? ` and ${project.required_domains.join(", ")}` : ""}`;
  announce($("staffing-notice"), "");
  drawProjects();
  await loadStaffing(project);
}

async function change(row, request, done) {
  try {
    await request();
    announce($("staffing-notice"), done, "ok");
  } catch (error) {
    announce($("staffing-notice"), error.message, "error");
  }
  await Promise.all([loadStaffing(chosen), loadProjects()]);
}

const add = (row, role = "annotator") =>
  change(
    row,
    () => api(`projects/${chosen.id}/members`, { method: "POST", body: { annotators: [row.annotator], role } }),
    `${row.username} joined ${chosen.name}${role === "reviewer" ? " as a reviewer" : ""}.`,
  );

const remove = (row) =>
  change(
    row,
    () => api(`projects/${chosen.id}/members/${row.annotator}`, { method: "DELETE" }),
    `${row.username} left ${chosen.name}; their live tasks there went back to the queue.`,
  );

loadProjects()
  .then(() => {
    if (projects.length) return choose(projects[0]);
    return null;
  })
  .catch((error) => announce($("staffing-notice"), error.message, "error"));
