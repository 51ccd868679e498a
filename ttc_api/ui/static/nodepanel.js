// The node detail panel: the path from the root with per-step scores, the full path
// text, the request behind the node (sampling parameters, seed, meta), timings, the
// finish reason, and the node actions (prune, expand again, graph of the subtree).

import { base } from "./api.js";
import { badge, fmtInt, fmtScore, fmtTime, h, nodeStatus, preview } from "./dom.js";

const SAMPLING_KEYS = ["temperature", "top_p", "max_tokens", "stop", "delimiter", "n", "k"];

export function valueVisits(node) {
  const meta = node.meta || {};
  if (meta.visits === undefined && meta.q === undefined) return "";
  return `${meta.q === undefined || meta.q === null ? "–" : fmtScore(meta.q)} / ${meta.visits ?? "–"}`;
}

/**
 * @param {HTMLElement} panel
 * @param {object} detail  GET /v1/jobs/{id}/nodes/{node_id}
 * @param {object} ctx  jobId, params (the job's), bestIds (Set), onPrune(node), onExpand(node),
 *   onReveal(node) (search mode only)
 */
export function renderDetail(panel, detail, ctx) {
  const status = nodeStatus(detail);
  const sampling = {};
  for (const key of SAMPLING_KEYS) {
    if (ctx.params && ctx.params[key] !== undefined) sampling[key] = ctx.params[key];
  }
  const request = { ...sampling, seed: detail.seed, meta: detail.meta };
  const facts = [
    ["Node", h("code", {}, detail.id)],
    ["Role", detail.role],
    ["Answer", detail.answer ?? "–"],
    ["Correct", detail.correct === null || detail.correct === undefined ? "unknown" : detail.correct ? "yes" : "no"],
    ["Score", fmtScore(detail.score)],
    ["PRM step score", fmtScore(detail.step_score)],
    ["Value / visits", valueVisits(detail) || "–"],
    ["Tokens", `${fmtInt(detail.prompt_tokens)} prompt + ${fmtInt(detail.completion_tokens)} completion`],
    ["Latency", detail.latency_ms === null || detail.latency_ms === undefined ? "–" : `${detail.latency_ms.toFixed(0)} ms`],
    ["Finish reason", detail.finish_reason ?? "–"],
    ["Children", fmtInt(detail.children)],
    ["Created", fmtTime(detail.created_at)],
  ];
  const steps = detail.path.filter((n) => n.parent_id !== null);
  const pathTable = h(
    "table",
    { class: "path" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Depth"), h("th", { scope: "col", class: "num" }, "Score"), h("th", { scope: "col", class: "num" }, "PRM"), h("th", { scope: "col" }, "Step"))),
    h(
      "tbody",
      {},
      ...steps.map((n) =>
        h(
          "tr",
          { class: ctx.bestIds.has(n.id) ? "best" : "" },
          h("td", {}, String(n.depth)),
          h("td", { class: "num" }, fmtScore(n.score)),
          h("td", { class: "num" }, fmtScore(n.step_score)),
          h("td", {}, preview(n.text, 90)),
        ),
      ),
    ),
  );
  const actions = h(
    "div",
    { class: "actions", role: "group", "aria-label": "Node actions" },
    h("button", { type: "button", class: "btn danger", id: "node-prune", disabled: detail.parent_id === null || status === "pruned" || status === "failed", onclick: () => ctx.onPrune(detail) }, "Prune subtree"),
    h("button", { type: "button", class: "btn", id: "node-expand", disabled: status === "failed", onclick: () => ctx.onExpand(detail) }, "Expand again"),
    h("a", { class: "btn", href: `${base}/ui/jobs/${ctx.jobId}/graph?node=${detail.id}` }, "Graph of subtree"),
    ctx.onReveal ? h("button", { type: "button", class: "btn", id: "node-reveal", onclick: () => ctx.onReveal(detail) }, "Show in tree") : null,
  );
  const dl = h("dl", { class: "kv" }, ...facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  panel.replaceChildren(
    h("h2", { id: "detail-title" }, `Node #${detail.child_index} at depth ${detail.depth} `, badge(status)),
    actions,
    dl,
    h("h3", {}, "Path and per-step scores"),
    pathTable,
    h("h3", {}, "Full path text"),
    h("pre", { class: "pathtext", id: "detail-path-text" }, detail.path_text || "(the prompt)"),
    h("h3", {}, "Request"),
    h("pre", { class: "json" }, JSON.stringify(request, null, 2)),
  );
}
