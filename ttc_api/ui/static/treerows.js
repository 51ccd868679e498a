// One row of the tree inspector, as DOM: a WAI-ARIA treeitem with the step preview,
// scores, tokens and status. Pure builders: the inspector decides what a row shows.

import { badge, fmtInt, fmtScore, h, nodeStatus, preview } from "./dom.js";
import { valueVisits } from "./nodepanel.js";

const INDENT_PX = 16;

/**
 * @param {object} node  as GET /v1/jobs/{id}/nodes returns it
 * @param {object} o  id, index, level, active, best, expandable, expanded, showDepth
 */
export function nodeRow(node, o) {
  const status = nodeStatus(node);
  const label = node.parent_id === null ? "prompt (root)" : preview(node.text) || "(empty step)";
  const twisty = h("span", { class: "twisty", "aria-hidden": "true" }, o.expandable ? (o.expanded ? "▾" : "▸") : "");
  const text = h(
    "span",
    { class: "c-text" },
    twisty,
    h("span", { class: "idx" }, o.showDepth ? `d${node.depth} #${node.child_index}` : `#${node.child_index}`),
    node.answer !== null && node.answer !== undefined ? h("span", { class: "ans" }, `→ ${node.answer}`) : null,
    h("span", { class: "steptext" }, label),
  );
  text.style.paddingLeft = `${(o.level - 1) * INDENT_PX}px`;
  return h(
    "div",
    {
      class: `row s-${status}${o.active ? " active" : ""}${o.best ? " best" : ""}`,
      role: "treeitem",
      id: o.id,
      "aria-level": o.level,
      "aria-expanded": o.expandable ? String(o.expanded) : null,
      "aria-selected": o.active ? "true" : "false",
      "data-node-id": node.id,
      "data-index": o.index,
      title: node.text ? preview(node.text, 600) : null,
    },
    text,
    h("span", { class: "c-num" }, fmtScore(node.score)),
    h("span", { class: "c-num" }, fmtScore(node.step_score)),
    h("span", { class: "c-num" }, valueVisits(node)),
    h("span", { class: "c-num" }, fmtInt(node.completion_tokens)),
    h("span", { class: "c-status" }, badge(status)),
  );
}

/** The row after a partly loaded list of children: rendering it loads the next page. */
export function moreRow(o) {
  const total = o.total === undefined ? "" : ` of ${fmtInt(o.total)}`;
  const text = h("span", { class: "c-text" }, `Loading… (${fmtInt(o.loaded)}${total} shown)`);
  text.style.paddingLeft = `${(o.level - 1) * INDENT_PX + 22}px`;
  return h(
    "div",
    { class: `row more${o.active ? " active" : ""}`, role: "treeitem", id: o.id, "aria-level": o.level, "aria-selected": o.active ? "true" : "false" },
    text,
  );
}
