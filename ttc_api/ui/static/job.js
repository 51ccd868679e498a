// The job page: live progress, budgets, usage, the best answer and its path, the event
// timeline, the parameters, webhook deliveries and the pause/resume/cancel actions.

import { base, getJSON, initialData, postJSON } from "./api.js";
import { confirmAction } from "./dialog.js";
import {
  badge, fmtCost, fmtInt, fmtScore, fmtTime, h, preview, TERMINAL_JOB, throttle,
} from "./dom.js";
import { JobWatch } from "./live.js";
import { renderSelection } from "./selection.js";

const initial = initialData();
let job = initial.job;
const jobPath = `/v1/jobs/${job.id}`;
let liveBest = null; // from best_changed events while the job runs
let shownBestNode = undefined;
const TIMELINE_MAX = 300;

const $ = (id) => document.getElementById(id);

function dl(target, pairs) {
  target.replaceChildren(
    ...pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
  );
}

function bar(label, used, limit, fmt = fmtInt) {
  const frac = limit > 0 ? Math.min(1, used / limit) : 0;
  return h(
    "div",
    { class: "budget" },
    h("span", { class: "budget-label" }, label),
    h("meter", { min: 0, max: 1, value: frac, low: 0.7, high: 0.9, optimum: 0, "aria-label": label }),
    h("span", { class: "budget-num" }, `${fmt(used)} / ${fmt(limit)} (${Math.round(frac * 100)}%)`),
  );
}

function secondsUsed() {
  if (!job.started_at) return 0;
  const end = job.finished_at ? Date.parse(job.finished_at) : Date.now();
  return Math.max(0, (end - Date.parse(job.started_at)) / 1000);
}

function renderProgress() {
  const p = job.progress;
  $("job-status").replaceChildren(badge(job.status));
  const parts = [
    h("p", {}, `Step ${p.step} · ${fmtInt(p.nodes)} nodes · ${fmtInt(p.failed_nodes)} failed · ${p.pending_batches} batches in flight`),
  ];
  if (p.planned_samples) parts.push(bar("nodes", p.nodes, p.planned_samples)); // of what it can make
  $("progress").replaceChildren(...parts);
  const b = job.budget || {};
  // Budgets count what the expansion cache served as if generated (the same tree either way).
  const saved = job.usage.cache || {};
  const used = {
    max_tokens: [job.usage.completion_tokens + (saved.completion_tokens_saved || 0), fmtInt, "completion tokens"],
    max_requests: [job.usage.requests + (saved.requests_saved || 0), fmtInt, "requests"],
    max_nodes: [p.nodes, fmtInt, "nodes"],
    max_seconds: [secondsUsed(), (x) => `${Number(x).toFixed(1)}s`, "seconds"],
    max_cost: [job.usage.cost + (saved.cost_saved || 0), fmtCost, "cost"],
  };
  const bars = Object.entries(used)
    .filter(([name]) => b[name] !== undefined && b[name] !== null)
    .map(([name, [value, fmt, label]]) => bar(label, value, b[name], fmt));
  $("budgets").replaceChildren(...(bars.length ? bars : [h("p", { class: "muted" }, "No budget set.")]));
  const u = job.usage;
  dl($("usage"), [
    ["Prompt tokens", fmtInt(u.prompt_tokens)],
    ["Completion tokens", fmtInt(u.completion_tokens)],
    ["Total tokens", fmtInt(u.total_tokens)],
    ["Requests", fmtInt(u.requests)],
    ["Cost", fmtCost(u.cost)],
    ...(saved.hits
      ? [["From the cache", `${fmtInt(saved.hits)} samples · ${fmtInt(saved.prompt_tokens_saved + saved.completion_tokens_saved)} tokens · ${fmtInt(saved.requests_saved)} requests saved`]]
      : []),
    ...(job.replay_of
      ? [["Replay of", h("a", { href: `${base}/ui/jobs/${job.replay_of.source_job_id}` }, job.replay_of.source_job_id)]]
      : []),
    ["Created", fmtTime(job.created_at)],
    ["Started", fmtTime(job.started_at)],
    ["Finished", fmtTime(job.finished_at)],
  ]);
  const live = !TERMINAL_JOB.has(job.status);
  $("act-pause").disabled = !(job.status === "queued" || job.status === "running");
  $("act-resume").disabled = job.status !== "paused";
  $("act-cancel").disabled = !live;
}

function renderResult() {
  const r = job.result;
  const best = r ? { node_id: r.node_id, answer: r.answer, score: r.score } : liveBest;
  const box = $("result");
  if (!best) {
    box.replaceChildren(h("p", { class: "muted" }, job.error ? `Failed: ${job.error}` : "No answer yet."));
  } else {
    const items = [
      ["Answer", h("strong", { id: "best-answer" }, best.answer ?? "–")],
      ["Score", fmtScore(best.score)],
    ];
    if (r) {
      items.push(["Correct", r.correct === null || r.correct === undefined ? "unknown" : r.correct ? "yes" : "no"]);
      items.push(["Ended by", r.ended_by || "–"]);
    } else {
      items.push(["", h("span", { class: "muted" }, "current best while the search runs")]);
    }
    if (best.node_id) {
      items.push(["Node", h("a", { href: `${base}/ui/jobs/${job.id}/tree?node=${best.node_id}` }, "open in the tree")]);
    }
    if (r && r.details && r.details.votes) {
      items.push(["Votes", h("a", { href: `${base}/ui/jobs/${job.id}/answers` }, `${Object.keys(r.details.votes).length} answers: see the distribution`)]);
    }
    const list = h("dl", { class: "kv" });
    dl(list, items);
    box.replaceChildren(list, r && r.text ? h("pre", { class: "answer-text" }, r.text) : null);
  }
  const nodeId = best ? best.node_id : null;
  if (nodeId !== shownBestNode) {
    shownBestNode = nodeId;
    renderBestPath(nodeId);
    renderSelection($("why"), job.id);
  }
}

async function renderBestPath(nodeId) {
  const list = $("best-path");
  if (!nodeId) {
    list.replaceChildren(h("li", { class: "muted" }, "–"));
    return;
  }
  try {
    const node = await getJSON(`${jobPath}/nodes/${nodeId}`);
    if (shownBestNode !== nodeId) return;
    list.replaceChildren(
      ...node.path
        .filter((n) => n.parent_id !== null)
        .map((n) =>
          h(
            "li",
            { class: "best" },
            h("a", { href: `${base}/ui/jobs/${job.id}/tree?node=${n.id}` }, `depth ${n.depth}`),
            ` score ${fmtScore(n.score)}`,
            n.step_score !== null && n.step_score !== undefined ? ` · PRM ${fmtScore(n.step_score)}` : "",
            h("div", { class: "steptext" }, preview(n.text, 400)),
          ),
        ),
    );
  } catch (err) {
    list.replaceChildren(h("li", { class: "error" }, err.message));
  }
}

function describe(e) {
  const d = e.data || {};
  switch (e.kind) {
    case "status_changed":
      return `status → ${d.status}${d.action ? ` (${d.action})` : ""}${d.answer !== undefined && d.answer !== null ? `, answer ${d.answer}` : ""}`;
    case "step_planned":
      return `step ${d.step}: ${d.samples} samples in ${d.batches} batches`;
    case "nodes_added":
      return `${d.nodes} nodes saved${d.failed ? `, ${d.failed} failed` : ""} (${fmtInt(d.completion_tokens)} tokens)`;
    case "step_done":
      return `step ${d.step} done: ${fmtInt(d.nodes)} nodes, best ${fmtScore(d.best_score)}`;
    case "best_changed":
      return `best → ${d.answer ?? "?"} (score ${fmtScore(d.score)})`;
    case "node_pruned":
      return `pruned ${d.nodes} nodes under ${String(d.node_id).slice(0, 8)}`;
    case "node_expand_requested":
      return `expand ${String(d.node_id).slice(0, 8)} with ${d.k} more`;
    default:
      return Object.entries(d).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
  }
}

function addEvents(events) {
  const list = $("timeline");
  for (const e of events) {
    if (e.kind === "best_changed") liveBest = e.data;
    list.prepend(
      h(
        "li",
        { class: `ev ev-${e.kind}` },
        h("time", { datetime: e.created_at }, new Date(e.created_at).toLocaleTimeString()),
        h("span", { class: "ev-kind" }, e.kind),
        h("span", {}, describe(e)),
      ),
    );
  }
  while (list.children.length > TIMELINE_MAX) list.lastElementChild.remove();
}

function renderParameters() {
  const p = initial.parameters;
  const json = (v) => h("pre", { class: "json" }, JSON.stringify(v, null, 2));
  const pairs = [
    ["Strategy", job.strategy],
    ["Endpoint", job.endpoint],
    ["Prompt", p.prompt ? h("pre", { class: "prompt" }, p.prompt) : json(p.messages)],
    ["Params", json(p.params)],
    ["Verifier", json(p.verifier)],
  ];
  if (p.prm) pairs.push(["Step scorer", json(p.prm)]);
  pairs.push(["Reference", p.reference ?? "–"], ["Budget", json(p.budget)], ["Seed", String(p.seed)], ["Tenant", p.tenant]);
  dl($("parameters"), pairs);
}

async function renderDeliveries() {
  const target = $("deliveries");
  if (!initial.deliveries) {
    target.replaceChildren(h("p", { class: "muted" }, "Webhook deliveries: none configured on this server."));
    return;
  }
  const link = h("a", { href: base + initial.deliveries }, "all deliveries (JSON)");
  try {
    const page = await getJSON(initial.deliveries);
    const rows = page.data;
    const items = rows.slice(0, 20).map((d) =>
      h(
        "li",
        {},
        [
          d.event,
          d.status,
          `${d.attempts} attempts`,
          d.last_status_code ? `HTTP ${d.last_status_code}` : d.last_error,
          fmtTime(d.created_at),
        ]
          .filter(Boolean)
          .join(" · "),
      ),
    );
    target.replaceChildren(
      h("h3", {}, "Webhook deliveries"),
      items.length ? h("ul", { class: "deliveries" }, ...items) : h("p", { class: "muted" }, "No deliveries yet."),
      link,
    );
  } catch (err) {
    target.replaceChildren(h("h3", {}, "Webhook deliveries"), h("p", { class: "error" }, err.message), link);
  }
}

const refreshJob = throttle(async () => {
  try {
    job = await getJSON(jobPath);
    renderProgress();
    renderResult();
  } catch (err) {
    $("live-mode").textContent = `refresh failed: ${err.message}`;
  }
}, 1000);

async function act(name, { title, message, danger = false }) {
  const ok = await confirmAction({ title, message, confirmLabel: title, danger });
  if (!ok) return;
  const errorBox = $("action-error");
  errorBox.hidden = true;
  try {
    job = await postJSON(`${jobPath}/${name}`);
    renderProgress();
    renderResult();
    if (watch && !TERMINAL_JOB.has(job.status)) watch.wake();
  } catch (err) {
    errorBox.textContent = `${title} failed: ${err.message}`;
    errorBox.hidden = false;
  }
}

$("act-pause").addEventListener("click", () =>
  act("pause", { title: "Pause job", message: "In-flight expansions finish; nothing new starts until you resume." }),
);
$("act-resume").addEventListener("click", () =>
  act("resume", { title: "Resume job", message: "Continue the search from its saved tree." }),
);
$("act-cancel").addEventListener("click", () =>
  act("cancel", { title: "Cancel job", message: "Stop this job for good. It keeps its tree but cannot be resumed.", danger: true }),
);

renderProgress();
renderResult();
renderParameters();
renderDeliveries();

let watch = null;
(async () => {
  let after = 0;
  try {
    // The history first (pages of 500), then live from the last id.
    for (;;) {
      const page = await getJSON(`${jobPath}/events`, { after, limit: 500 });
      addEvents(page.data);
      if (page.data.length) after = page.data[page.data.length - 1].id;
      if (page.data.length < 500) break;
    }
  } catch (err) {
    $("live-mode").textContent = `events: ${err.message}`;
  }
  watch = new JobWatch(job.id, {
    after,
    live: !TERMINAL_JOB.has(job.status),
    onEvents: (events) => {
      addEvents(events);
      refreshJob();
    },
    onMode: (text) => {
      $("live-mode").textContent = text;
    },
  });
})();
setInterval(() => {
  if (!TERMINAL_JOB.has(job.status)) renderProgress(); // the seconds budget moves on its own
}, 1000);
