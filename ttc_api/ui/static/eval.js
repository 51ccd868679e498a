// One eval: live progress, the curves (server-drawn SVG, refreshed as problems finish),
// the table of points, the paired comparisons and the jobs with links to their trees.

import { base, getJSON, initialData, postJSON } from "./api.js";
import { confirmAction } from "./dialog.js";
import { badge, fmtCost, fmtInt, h } from "./dom.js";

const REFRESH_MS = 3000;
const PLOT_MS = 10000;
const JOBS_PAGE = 50;
const DONE = ["succeeded", "failed", "cancelled"];

let ev = initialData().eval;
let jobsOffset = 0;
let plotsAt = null;

const $ = (id) => document.getElementById(id);
const fmt3 = (x) => (x === null || x === undefined ? "–" : x.toFixed(3));

function plotUrl(name, format, rev) {
  const q = rev === undefined ? "" : `?rev=${rev}`;
  return `${base}/v1/evals/${ev.id}/plots/${name}.${format}${q}`;
}

function renderHead() {
  $("eval-title").textContent = `Eval ${ev.name || ev.id.slice(0, 8)}`;
  $("eval-status").replaceChildren(badge(ev.status), ev.ended_by ? ` ended by ${ev.ended_by}` : "");
  $("eval-dataset").textContent =
    `dataset ${ev.dataset.name || ev.dataset.id} · ${fmtInt(ev.dataset.rows)} problems · ` +
    `endpoint ${ev.spec.endpoint} · seeds ${ev.spec.seeds}`;
  $("eval-cancel").disabled = DONE.includes(ev.status);
  const p = ev.progress;
  $("eval-meter").max = p.jobs || 1;
  $("eval-meter").value = p.jobs_done;
  const eta = p.eta_s === null ? "" : ` · ETA ${Math.round(p.eta_s)} s`;
  $("eval-progress-text").textContent =
    `${fmtInt(p.problems_done)}/${fmtInt(p.problems)} problems · ${fmtInt(p.jobs_done)}/${fmtInt(p.jobs)} jobs${eta}`;
  $("eval-usage").textContent =
    `tokens ${fmtInt(p.prompt_tokens)} prompt + ${fmtInt(p.completion_tokens)} completion ` +
    `(${fmtInt(p.thinking_tokens)} thinking) · ${fmtInt(p.requests)} requests · ` +
    `${fmtCost(p.cost)} · ${Math.round(p.elapsed_s)} s · ${fmtInt(p.jobs_failed)} failed jobs`;
}

function renderPlots() {
  // Redrawn as problems finish, at most every PLOT_MS while the eval runs (the server
  // draws them), and once more when it ends.
  const rev = ev.progress.jobs_done;
  const now = Date.now();
  const ended = DONE.includes(ev.status);
  if (plotsAt !== null && (plotsAt.rev === rev || (!ended && now - plotsAt.at < PLOT_MS))) return;
  plotsAt = { rev, at: now };
  for (const [id, name] of [["n", "accuracy_vs_n"], ["tokens", "accuracy_vs_tokens"], ["difficulty", "by_difficulty"]]) {
    $(`plot-${id}`).src = plotUrl(name, "svg", rev);
    $(`plot-${id}-png`).href = plotUrl(name, "png");
    $(`plot-${id}-svg`).href = plotUrl(name, "svg");
  }
  $("difficulty-figure").hidden = !ev.by_difficulty;
}

function renderPoints() {
  const rows = (ev.points || []).map((p) =>
    h(
      "tr",
      { "data-arm": p.arm, "data-value": p.value },
      h("td", {}, p.arm),
      h("td", {}, p.key),
      h("td", { class: "num" }, fmtInt(p.value)),
      h("td", { class: "num" }, fmtInt(p.problems)),
      h("td", { class: "num" }, `${p.estimated ? "~" : ""}${fmt3(p.accuracy)}`),
      h("td", {}, p.ci95 ? `[${fmt3(p.ci95[0])}, ${fmt3(p.ci95[1])}]` : "–"),
      h("td", { class: "num" }, fmt3(p.pass_at_k)),
      h("td", { class: "num" }, p.mean_tokens === null ? "–" : fmtInt(Math.round(p.mean_tokens))),
      h("td", { class: "num" }, p.mean_requests === null ? "–" : p.mean_requests.toFixed(1)),
      h("td", { class: "num" }, fmtCost(p.mean_cost)),
      h("td", { class: "num" }, p.mean_wall_s === null ? "–" : p.mean_wall_s.toFixed(2)),
    ),
  );
  $("points-body").replaceChildren(...rows);
  const cmp = (ev.comparisons || []).map((c) =>
    h(
      "tr",
      {},
      h("td", {}, c.arm_a),
      h("td", {}, c.arm_b),
      h("td", { class: "num" }, `${c.key}=${c.value}`),
      h("td", { class: "num" }, c.difference === undefined ? "–" : c.difference.toFixed(3)),
      h("td", {}, c.ci95 ? `[${fmt3(c.ci95[0])}, ${fmt3(c.ci95[1])}]` : "–"),
      h("td", { class: "num" }, c.mcnemar_p === undefined ? "–" : c.mcnemar_p.toFixed(4)),
      h("td", { class: "num" }, fmtInt(c.problems)),
    ),
  );
  $("cmp-body").replaceChildren(...cmp);
  $("cmp-empty").hidden = cmp.length > 0;
}

async function loadJobs() {
  const page = await getJSON(`/v1/evals/${ev.id}/jobs`, { offset: jobsOffset, limit: JOBS_PAGE });
  const rows = page.data.map((j) =>
    h(
      "tr",
      { "data-job-id": j.job_id },
      h("td", {}, h("a", { href: `${base}${j.tree_url}` }, j.job_id.slice(0, 8))),
      h("td", {}, j.arm),
      h("td", { class: "num" }, `${j.key}=${j.value}`),
      h("td", {}, j.problem_id || String(j.problem)),
      h("td", { class: "num" }, String(j.seed_index)),
      h("td", {}, badge(j.status)),
      h("td", {}, j.correct === null ? "–" : j.correct ? "right" : "wrong"),
    ),
  );
  $("eval-jobs-body").replaceChildren(...rows);
  $("jobs-prev").disabled = jobsOffset === 0;
  $("jobs-next").disabled = page.next_offset === null;
}

function render() {
  renderHead();
  renderPlots();
  renderPoints();
}

async function refresh() {
  try {
    ev = await getJSON(`/v1/evals/${ev.id}`);
    render();
    await loadJobs();
    $("eval-error").textContent = "";
  } catch (err) {
    $("eval-error").textContent = `refresh failed: ${err.message}`;
  }
  if (!DONE.includes(ev.status)) setTimeout(refresh, REFRESH_MS);
}

$("eval-cancel").addEventListener("click", async () => {
  const ok = await confirmAction({
    title: "Cancel this eval?",
    message: "Its live jobs stop and no job starts again; what they generated is kept.",
    confirmLabel: "Cancel eval",
    danger: true,
  });
  if (!ok) return;
  try {
    const done = await postJSON(`/v1/evals/${ev.id}/cancel`);
    ev = { ...ev, status: done.status, ended_by: done.ended_by, progress: done.progress };
    render();
  } catch (err) {
    $("eval-error").textContent = `cancel failed: ${err.message}`;
  }
});
$("jobs-prev").addEventListener("click", () => {
  jobsOffset = Math.max(0, jobsOffset - JOBS_PAGE);
  loadJobs();
});
$("jobs-next").addEventListener("click", () => {
  jobsOffset += JOBS_PAGE;
  loadJobs();
});

render();
loadJobs();
if (!DONE.includes(ev.status)) setTimeout(refresh, REFRESH_MS);
