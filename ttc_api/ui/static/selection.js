// "Why this answer": the strategy's selection rule in words, the chosen node's numbers
// with the runner-up's beside them (and, for MCTS, the most-visited root child), and the
// duplicates among sibling answers. Data: GET /v1/jobs/{id}/selection.

import { base, getJSON } from "./api.js";
import { fmtInt, fmtScore, h } from "./dom.js";

const num = (x) => (x === null || x === undefined ? "–" : typeof x === "number" && !Number.isInteger(x) ? fmtScore(x) : fmtInt(x));

function row(label, c, jobId) {
  if (!c) return null;
  const name = c.node_id
    ? h("a", { href: `${base}/ui/jobs/${jobId}/tree?node=${c.node_id}` }, c.depth === null ? `#${c.child_index}` : `#${c.child_index} (depth ${c.depth})`)
    : "–";
  return h(
    "tr",
    { "data-role": label },
    h("th", { scope: "row" }, label),
    h("td", {}, name),
    h("td", {}, c.answer ?? "–"),
    h("td", {}, num(c.score)),
    h("td", {}, num(c.votes)),
    h("td", {}, num(c.visits)),
    h("td", {}, num(c.value)),
  );
}

/** Fill ``box`` with the explanation of a job's selection. */
export async function renderSelection(box, jobId) {
  let why;
  try {
    why = await getJSON(`/v1/jobs/${jobId}/selection`);
  } catch (err) {
    box.replaceChildren(h("p", { class: "muted" }, `Selection: ${err.message}`));
    return;
  }
  const rows = [
    row("chosen", why.chosen, jobId),
    row("runner-up", why.runner_up, jobId),
    why.chosen_root_child ? row("chosen path's root child", why.chosen_root_child, jobId) : null,
    why.most_visited ? row("most-visited root child", why.most_visited, jobId) : null,
  ].filter(Boolean);
  box.replaceChildren(
    h("p", { class: "why-summary", "data-rule": why.rule }, why.summary),
    rows.length
      ? h(
          "table",
          { class: "why-table" },
          h("thead", {}, h("tr", {}, ...["", "node", "answer", "score", "votes", "visits", "value"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, ...rows),
        )
      : null,
    why.note ? h("p", { class: "why-note" }, why.note) : null,
  );
}
