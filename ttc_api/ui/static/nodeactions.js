// The node actions, each confirmed in a dialog first: prune a subtree, expand a node
// again. Both resolve to null when the user cancels; API errors propagate.

import { postJSON } from "./api.js";
import { confirmAction } from "./dialog.js";
import { h } from "./dom.js";

const where = (node) => `node #${node.child_index} at depth ${node.depth}`;

/** Resolves to the prune result ({job, pruned}) or null. */
export async function pruneNode(jobPath, node) {
  const ok = await confirmAction({
    title: "Prune subtree",
    message: `Cut ${where(node)} and everything under it: it is never expanded again, and results in flight under it land pruned.`,
    confirmLabel: "Prune",
    danger: true,
  });
  return ok ? postJSON(`${jobPath}/nodes/${node.id}/prune`) : null;
}

/** Resolves to {job, k} (the job runs again) or null. */
export async function expandNode(jobPath, node) {
  const k = h("input", { type: "number", min: 1, max: 256, value: 4, id: "expand-k", "aria-label": "children to generate" });
  const reopen = node.status === "pruned" ? " (this re-opens it)" : "";
  const ok = await confirmAction({
    title: "Expand again",
    message: `Generate more children of ${where(node)} now${reopen}.`,
    confirmLabel: "Expand",
    extra: h("label", { class: "inline" }, "Children ", k),
  });
  if (!ok) return null;
  const count = Number(k.value);
  return { job: await postJSON(`${jobPath}/nodes/${node.id}/expand`, { k: count }), k: count };
}
