// The annotator's page: claim, read the instructions, answer, submit or release, with the
// lease kept alive while they work; beside it their throughput today, kept current by their
// live socket, and their own accuracy (up to yesterday), certifications and exams.

import {
  ApiError,
  announce,
  api,
  apiAll,
  date,
  daysUntil,
  fill,
  h,
  handlingTime,
  intervalBar,
  liveBadge,
  liveSocket,
  percent,
  throttled,
} from "./core.js";
import { renderMarkdown } from "./markdown.js";

const $ = (id) => document.getElementById(id);

// The empty answer each structured kind starts from in the JSON editor.
const EMPTY_PAYLOAD = {
  bbox: { boxes: [] },
  polygon: { polygons: [] },
  keypoints: { instances: [] },
  ner: { spans: [] },
  relations: { spans: [], relations: [] },
  entity_linking: { spans: [] },
  video_tracks: { tracks: [] },
  video_events: { events: [] },
};

let current = null; // the assignment being worked on
let startedAt = 0; // when this page started showing it (performance.now())
let lastActivity = Date.now();
let timers = [];

const notice = $("work-notice");

function stopTimers() {
  timers.forEach(clearInterval);
  timers = [];
}

function showIdle(message, kind = "info") {
  current = null;
  stopTimers();
  $("task").hidden = true;
  $("lease").hidden = true;
  $("idle").hidden = false;
  announce(notice, message || "", kind);
}

function labelsOf(project) {
  return ((project.label_schema && project.label_schema.labels) || []).map((label) => label.name);
}

function answerFields(project) {
  if (project.kind === "classification" || project.kind === "multilabel") {
    const type = project.kind === "classification" ? "radio" : "checkbox";
    return h(
      "fieldset",
      { class: "choices" },
      h("legend", {}, project.kind === "classification" ? "Label (choose one)" : "Labels (choose any)"),
      labelsOf(project).map((name) =>
        h("label", { class: "choice" }, h("input", { type, name: "label", value: name }), name),
      ),
    );
  }
  const initial = JSON.stringify(EMPTY_PAYLOAD[project.kind] || {}, null, 2);
  return [
    h("label", { for: "payload" }, `Answer (${project.kind} payload, JSON)`),
    h("textarea", { id: "payload", rows: 8, spellcheck: "false", class: "json" }, initial),
    h(
      "p",
      { class: "hint" },
      "Coordinates are pixels of the item, text offsets are characters (end exclusive), frames count from 0. Labels: ",
      labelsOf(project).join(", ") || "—",
      ".",
    ),
  ];
}

function itemView(data) {
  const parts = [];
  if (typeof data.text === "string") parts.push(h("blockquote", { class: "item-text" }, data.text));
  parts.push(
    h("details", { open: typeof data.text !== "string" }, h("summary", {}, "Item data (JSON)"),
      h("pre", {}, JSON.stringify(data, null, 2))),
  );
  return parts;
}

function show(assignment) {
  current = assignment;
  startedAt = performance.now();
  const { project, task } = assignment;
  $("idle").hidden = true;
  $("task").hidden = false;
  $("task-project").textContent = project.name;
  $("task-kind").textContent = project.kind;
  $("task-id").textContent = task.id;
  fill($("instructions"), project.instructions ? renderMarkdown(project.instructions) : h("p", { class: "hint" }, "No instructions."));
  fill($("task-data"), itemView(task.data));
  fill($("answer-fields"), answerFields(project));
  showErrors(null);
  keepLease();
}

/** The lease countdown, and a heartbeat while the annotator is active on the page. */
function keepLease() {
  stopTimers();
  const lease = $("lease");
  lease.hidden = false;
  const length = new Date(current.lease_expires_at) - new Date(current.leased_at);
  const tick = () => {
    const left = Math.round((new Date(current.lease_expires_at) - Date.now()) / 1000);
    if (left <= 0) {
      lease.textContent = "Lease expired: the task may go to someone else";
      lease.className = "lease expired";
      return;
    }
    const minutes = Math.floor(left / 60);
    lease.textContent = `Lease ${minutes}:${String(left % 60).padStart(2, "0")} left`;
    lease.className = left < 60 ? "lease warn" : "lease";
  };
  tick();
  timers.push(setInterval(tick, 1000));
  // Extend the lease a third of the way through while someone works here; an idle page lets
  // it lapse, so that an abandoned task goes back to the queue.
  const every = Math.max(15_000, length / 3);
  timers.push(
    setInterval(async () => {
      if (!current || Date.now() - lastActivity > length) return;
      try {
        const { body } = await api(`assignments/${current.id}/heartbeat`, { method: "POST" });
        current.lease_expires_at = body.lease_expires_at;
      } catch (error) {
        if (error instanceof ApiError && [403, 404, 409].includes(error.status)) {
          showIdle(error.message, "error");
        }
      }
    }, every),
  );
}

function showErrors(error) {
  const box = $("answer-errors");
  if (!error) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  const reasons = Object.entries(error.fields || {}).flatMap(([path, messages]) =>
    (Array.isArray(messages) ? messages : [messages]).map((message) =>
      h("li", {}, h("code", { class: "path" }, path), ": ", String(message)),
    ),
  );
  // The reasons name their paths; the message repeats them, so it stands alone only without.
  fill(
    box,
    h("p", {}, reasons.length ? "The answer was not accepted:" : error.message),
    reasons.length ? h("ul", {}, reasons) : null,
  );
  box.hidden = false;
}

function payloadFromForm() {
  const { kind } = current.project;
  const form = $("answer");
  if (kind === "classification") {
    const chosen = form.querySelector('input[name="label"]:checked');
    if (!chosen) throw { message: "Choose a label.", fields: { "payload.label": ["Choose one."] } };
    return { label: chosen.value };
  }
  if (kind === "multilabel") {
    return { labels: [...form.querySelectorAll('input[name="label"]:checked')].map((box) => box.value) };
  }
  try {
    return JSON.parse($("payload").value);
  } catch (error) {
    throw { message: "The answer is not valid JSON.", fields: { payload: [error.message] } };
  }
}

/** Why no task came (a claim's 200, or a submit's `next`), each project with its reasons. */
function showNoClaim(message, projects) {
  showIdle(message, "warn");
  const reasons = (projects || []).map((project) =>
    h("li", {}, h("strong", {}, project.name), ": ", project.reasons.join("; ") || "—"),
  );
  fill($("claim-reasons"), reasons);
  $("claim-reasons").hidden = !reasons.length;
}

async function claim() {
  $("claim").disabled = true;
  $("claim-reasons").hidden = true;
  try {
    const { status, body, headers } = await api("claims/", { method: "POST", body: {} });
    if (status === 201) {
      announce(notice, "");
      show(body);
    } else if (status === 204) {
      showIdle(headers.get("X-Reason") || "Nothing is open for you right now. Try again later.");
    } else {
      showNoClaim(body.message, body.projects);
    }
  } catch (error) {
    showIdle(error.message, "error");
  } finally {
    $("claim").disabled = false;
  }
}

async function submit(event) {
  event.preventDefault();
  let payload;
  try {
    payload = payloadFromForm();
  } catch (error) {
    showErrors(error);
    return;
  }
  const lasted = (Date.now() - new Date(current.leased_at)) / 1000;
  const activeSeconds = Math.floor(Math.min((performance.now() - startedAt) / 1000, lasted));
  const button = event.submitter;
  // "Submit and next" takes the next task in the same request; "Submit and stop" does not.
  const next = !button || button.id === "submit-next";
  if (button) button.disabled = true;
  $("claim-reasons").hidden = true;
  try {
    const { body } = await api(`assignments/${current.id}/submit`, {
      method: "POST",
      body: { payload, active_seconds: Math.max(0, activeSeconds), next },
    });
    if (!next) {
      showIdle("Submitted. Claim the next task when you are ready.", "ok");
    } else if (body.next.assignment) {
      show(body.next.assignment);
      announce(notice, "Submitted. Here is your next task.", "ok");
    } else if (body.next.outcome === "none_available") {
      showIdle(`Submitted. ${body.next.message}`, "ok");
    } else {
      showNoClaim(`Submitted. ${body.next.message}`, body.next.projects);
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 400) showErrors(error);
    else showIdle(error.message, "error");
  } finally {
    if (button) button.disabled = false;
  }
}

async function release() {
  try {
    await api(`assignments/${current.id}/release`, { method: "POST" });
    showIdle("Released: the task goes back to the queue for someone else.");
  } catch (error) {
    showIdle(error.message, "error");
  }
}

/** Today's throughput so far, in total (me/stats `today`). */
async function loadToday() {
  const { body } = await api("me/stats");
  const { total } = body.today;
  $("today-submitted").textContent = total.submitted;
  $("today-per-hour").textContent = total.throughput_per_hour === null ? "—" : total.throughput_per_hour.toFixed(1);
  $("today-median").textContent = handlingTime(total.handling_median_seconds);
}

// Their own submissions bring their stats of the hour (stats.updated, throughput alone): today's
// sums are read again, at most once a second.
const refreshToday = throttled(loadToday, 1000);

function accuracyTable(rows, key, heading) {
  if (!rows.length) return null;
  return h(
    "table",
    { class: "figures" },
    h("thead", {}, h("tr", {}, h("th", {}, heading), h("th", {}, "95 % interval"), h("th", { class: "num" }, "Mean"), h("th", { class: "num" }, "n"))),
    h(
      "tbody",
      {},
      rows.map((row) =>
        h(
          "tr",
          {},
          h("td", {}, row[key]),
          h("td", {}, intervalBar(row, { width: 110 })),
          h("td", { class: "num" }, percent(row.mean)),
          h("td", { class: "num" }, row.scored),
        ),
      ),
    ),
  );
}

async function loadAccuracy() {
  try {
    const { body } = await api("me/accuracy");
    const tables = [accuracyTable(body.projects, "name", "Project"), accuracyTable(body.kinds, "kind", "Kind")];
    fill(
      $("accuracy"),
      tables.some(Boolean)
        ? tables
        : h("p", { class: "hint" }, "No gold checks counted yet: your first figures show the day after your first checks."),
    );
  } catch (error) {
    fill($("accuracy"), h("p", { class: "error" }, error.message));
  }
}

async function loadCertifications() {
  try {
    const rows = await apiAll("certifications/");
    fill(
      $("certifications"),
      rows.length
        ? rows.map((cert) => {
            const days = cert.expires_at ? daysUntil(cert.expires_at) : null;
            const soon = days !== null && days >= 0 && days < 30;
            return h(
              "li",
              { class: soon ? "soon" : "" },
              h("strong", {}, cert.domain),
              " ",
              h("span", { class: `badge ${cert.status}` }, cert.status),
              h("br"),
              h(
                "span",
                { class: "hint" },
                cert.expires_at
                  ? `${days < 0 ? "Expired" : "Expires"} ${date(cert.expires_at)}${days >= 0 ? ` (in ${days} days)` : ""}`
                  : "No expiry",
              ),
            );
          })
        : h("li", { class: "hint" }, "None yet."),
    );
  } catch (error) {
    fill($("certifications"), h("li", { class: "error" }, error.message));
  }
}

const EXAM_REASONS = {
  attempt_in_progress: "attempt in progress",
  attempts_exhausted: "no attempts left",
  exam_cooldown: "cooling down after a fail",
  already_passed: "passed",
  annotator_not_active: "not while suspended",
};

async function loadExams() {
  try {
    const exams = await apiAll("me/exams");
    fill(
      $("exams"),
      exams.length
        ? exams.map((exam) =>
            h(
              "li",
              {},
              h("strong", {}, exam.name),
              " ",
              exam.renewal_due ? h("span", { class: "badge warn" }, "renewal due") : null,
              exam.available ? h("span", { class: "badge open" }, "open") : h("span", { class: "badge" }, EXAM_REASONS[exam.reason] || exam.reason),
              h("br"),
              h(
                "span",
                { class: "hint" },
                [exam.kind, exam.domain, `${exam.item_count} ${exam.item_count === 1 ? "item" : "items"}`].filter(Boolean).join(" · "),
                exam.cooldown_until ? ` · again from ${date(exam.cooldown_until)}` : "",
                exam.attempts_left !== null ? ` · ${exam.attempts_left} attempts left` : "",
                exam.certification_expires_at ? ` · certified until ${date(exam.certification_expires_at)}` : "",
              ),
            ),
          )
        : h("li", { class: "hint" }, "No exams open."),
    );
  } catch (error) {
    fill($("exams"), h("li", { class: "error" }, error.message));
  }
}

async function resume() {
  // A task already held (another tab, a reload) is shown again rather than claimed anew.
  try {
    const { body } = await api("assignments/?status=active");
    if (body.results.length) show(body.results[0]);
  } catch (error) {
    announce(notice, error.message, "error");
  }
}

for (const type of ["keydown", "pointerdown", "input"]) {
  document.addEventListener(type, () => (lastActivity = Date.now()), { passive: true });
}
$("claim").addEventListener("click", claim);
$("answer").addEventListener("submit", submit);
$("release").addEventListener("click", release);
resume();
liveSocket({
  onSnapshot: loadToday,
  onEvent: ({ type }) => {
    if (type === "stats.updated") refreshToday();
  },
  onState: liveBadge($("live")),
});
loadAccuracy();
loadCertifications();
loadExams();
