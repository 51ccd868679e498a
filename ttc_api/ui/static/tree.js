// The tree inspector: an indented, virtualized tree of a job's nodes with lazy paging,
// search by status/score/text, jump to the best node, keyboard navigation (WAI-ARIA tree
// pattern with aria-activedescendant), node detail and the node actions, kept live.

import { ApiError, getJSON, initialData } from "./api.js";
import { badge, fmtInt, TERMINAL_JOB, throttle } from "./dom.js";
import { JobWatch } from "./live.js";
import { expandNode, pruneNode } from "./nodeactions.js";
import { renderDetail } from "./nodepanel.js";
import { renderSelection } from "./selection.js";
import { PAGE, TreeModel } from "./treemodel.js";
import { moreRow, nodeRow } from "./treerows.js";
import { VirtualRows } from "./vlist.js";

const ROW_HEIGHT = 28;
const initial = initialData();
let job = initial.job;
const jobPath = `/v1/jobs/${job.id}`;
const $ = (id) => document.getElementById(id);
const viewport = $("tree");
const panel = $("detail");
const note = $("tree-note");

let mode = "tree"; // or "search"
let active = 0;
let detailId = null;
let bestIds = new Set();
let liveBest = null;
const search = { params: null, ids: [], next: null, done: true, loading: null };

const model = new TreeModel(job.id, job.root_node_id, () => changed());
const list = new VirtualRows(viewport, $("tree-spacer"), ROW_HEIGHT, renderRow, afterRender);

let currentRows = [];
const rows = () => currentRows;
const failedLoads = new Set(); // pages that failed: not retried on every scroll frame

function searchRows() {
  const out = search.ids.map((id) => ({ id, level: 1 }));
  if (!search.done) out.push({ more: "search", level: 1 });
  return out;
}

function changed() {
  currentRows = mode === "tree" ? model.rows : searchRows();
  const n = currentRows.length;
  if (active >= n) active = Math.max(0, n - 1);
  list.setCount(n);
}

function rowId(row) {
  return row.more ? `more-${row.more}` : `${mode === "tree" ? "row" : "res"}-${row.id}`;
}

function renderRow(i) {
  const row = rows()[i];
  const common = { id: rowId(row), index: i, level: row.level, active: i === active };
  if (row.more) {
    loadMore(row.more);
    const loaded = row.more === "search" ? search.ids.length : (model.kids.get(row.more)?.ids.length ?? 0);
    return moreRow({ ...common, loaded, total: model.nodes.get(row.more)?.children });
  }
  const node = model.nodes.get(row.id);
  const expandable = mode === "tree" && node.children > 0;
  return nodeRow(node, {
    ...common,
    best: bestIds.has(node.id),
    expandable,
    expanded: expandable && model.expanded.has(node.id),
    showDepth: mode === "search",
  });
}

function afterRender() {
  const row = rows()[active];
  const el = row && document.getElementById(rowId(row));
  if (el) viewport.setAttribute("aria-activedescendant", el.id);
  else viewport.removeAttribute("aria-activedescendant");
}

// Render synchronously when the active row moves, so aria-activedescendant always names
// an element that exists.
function moveTo(i, center = false) {
  const n = rows().length;
  if (!n) return;
  active = Math.max(0, Math.min(n - 1, i));
  list.scrollToIndex(active, center);
  list.render();
}

function loadMore(key) {
  if (key === "search") {
    if (!search.loading) search.loading = setTimeout(loadSearchPage, 0);
  } else if (!model.loading.has(key) && !failedLoads.has(key)) {
    setTimeout(
      () =>
        model.loadPage(key).catch((err) => {
          failedLoads.add(key);
          showError(err);
        }),
      0,
    );
  }
}

function showError(err) {
  note.textContent = err instanceof ApiError && err.field ? `${err.field}: ${err.message}` : err.message;
}

async function toggle(i) {
  const row = rows()[i];
  if (!row || row.more || mode !== "tree") return;
  if (model.expanded.has(row.id)) model.collapse(row.id);
  else if (model.hasChildren(row.id)) await model.expand(row.id).catch(showError);
}

function parentIndex(i) {
  const level = rows()[i].level;
  for (let j = i - 1; j >= 0; j--) if (rows()[j].level < level) return j;
  return i;
}

viewport.addEventListener("keydown", async (e) => {
  const all = rows();
  const row = all[active];
  if (!row) return;
  switch (e.key) {
    case "ArrowDown":
      moveTo(active + 1);
      break;
    case "ArrowUp":
      moveTo(active - 1);
      break;
    case "Home":
      moveTo(0);
      break;
    case "End":
      moveTo(all.length - 1);
      break;
    case "PageDown":
      moveTo(active + Math.floor(viewport.clientHeight / ROW_HEIGHT));
      break;
    case "PageUp":
      moveTo(active - Math.floor(viewport.clientHeight / ROW_HEIGHT));
      break;
    case "ArrowRight":
      if (mode === "tree" && !row.more && model.hasChildren(row.id)) {
        if (!model.expanded.has(row.id)) await toggle(active);
        else moveTo(active + 1); // enter: the first child
        moveTo(active);
      }
      break;
    case "ArrowLeft":
      if (mode === "tree" && !row.more && model.expanded.has(row.id)) {
        model.collapse(row.id);
        moveTo(active);
      } else if (mode === "tree") moveTo(parentIndex(active));
      break;
    case "Enter":
    case " ":
      if (!row.more) openDetail(row.id);
      break;
    default:
      return;
  }
  e.preventDefault();
});

viewport.addEventListener("click", async (e) => {
  const el = e.target.closest(".row");
  if (!el || el.dataset.index === undefined) return;
  const i = Number(el.dataset.index);
  viewport.focus({ preventScroll: true });
  if (e.target.closest(".twisty")) {
    active = i;
    await toggle(i);
    moveTo(active);
    return;
  }
  moveTo(i);
  openDetail(el.dataset.nodeId);
});

viewport.addEventListener("dblclick", async (e) => {
  const el = e.target.closest(".row");
  if (el && el.dataset.index !== undefined && !e.target.closest(".twisty")) {
    await toggle(Number(el.dataset.index));
    moveTo(active);
  }
});

async function openDetail(nodeId) {
  detailId = nodeId;
  try {
    const detail = await getJSON(`${jobPath}/nodes/${nodeId}`);
    if (detailId !== nodeId) return;
    model.nodes.set(nodeId, { ...(model.nodes.get(nodeId) || {}), ...detail });
    renderDetail(panel, detail, {
      jobId: job.id,
      params: job.params,
      bestIds,
      onPrune: prune,
      onExpand: expandAgain,
      onReveal: mode === "search" ? (node) => revealNode(node.id) : null,
    });
  } catch (err) {
    showError(err);
  }
}

async function prune(node) {
  try {
    const res = await pruneNode(jobPath, node);
    if (!res) return;
    note.textContent = `pruned ${fmtInt(res.pruned)} nodes`;
    job = res.job;
    model.markPruned(node.id);
    list.render();
    openDetail(node.id);
  } catch (err) {
    showError(err);
  }
}

async function expandAgain(node) {
  try {
    const res = await expandNode(jobPath, node);
    if (!res) return;
    job = res.job;
    note.textContent = `asked for ${res.k} more children`;
    renderStatus();
    if (watch) watch.wake();
    refreshTree();
  } catch (err) {
    showError(err);
  }
}

async function revealNode(nodeId) {
  const detail = await getJSON(`${jobPath}/nodes/${nodeId}`);
  for (const n of detail.path) if (!model.nodes.has(n.id)) model.nodes.set(n.id, n);
  await model.reveal(detail.path.map((n) => n.id));
  setMode("tree");
  const i = model.rows.findIndex((r) => r.id === nodeId);
  moveTo(i < 0 ? 0 : i, true);
  viewport.focus({ preventScroll: true });
  openDetail(nodeId);
}

async function loadBestPath() {
  const r = job.result;
  const bestId = r ? r.node_id : liveBest;
  if (r && r.details && Array.isArray(r.details.path)) {
    bestIds = new Set(r.details.path);
  } else if (bestId) {
    const detail = await getJSON(`${jobPath}/nodes/${bestId}`);
    bestIds = new Set(detail.path.map((n) => n.id));
  }
  list.render();
}

function setMode(next) {
  mode = next;
  $("f-clear").hidden = mode === "tree";
  viewport.setAttribute("aria-label", mode === "tree" ? "Search tree" : "Search results");
  active = 0;
  changed();
}

async function loadSearchPage() {
  try {
    const params = search.params;
    const page = await getJSON(`${jobPath}/nodes`, { ...params, cursor: search.next, limit: PAGE });
    if (params !== search.params) return;
    for (const node of page.data) {
      model.nodes.set(node.id, node);
      search.ids.push(node.id);
    }
    search.next = page.next_cursor;
    search.done = !page.next_cursor;
    note.textContent = `${fmtInt(search.ids.length)}${search.done ? "" : "+"} matching nodes`;
    changed();
  } catch (err) {
    search.done = true;
    showError(err);
    changed();
  } finally {
    search.loading = null;
  }
}

$("tree-filters").addEventListener("submit", (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  const params = {};
  for (const key of ["status", "min_score", "max_score", "q"]) {
    const value = String(form.get(key) || "").trim();
    if (value) params[key] = value;
  }
  // "terminal" is not a node status: terminal nodes are done nodes that end a path.
  if (params.status === "terminal") {
    delete params.status;
    params.is_terminal = "true";
  }
  if (params.min_score && params.max_score && Number(params.min_score) > Number(params.max_score)) {
    note.textContent = "Score ≥ is above Score ≤: nothing can match.";
    return;
  }
  if (!Object.keys(params).length) {
    setMode("tree");
    note.textContent = "";
    return;
  }
  Object.assign(search, { params, ids: [], next: null, done: false, loading: null });
  note.textContent = "searching…";
  setMode("search");
});

$("f-clear").addEventListener("click", () => {
  setMode("tree");
  note.textContent = "";
  viewport.focus();
});

$("jump-best").addEventListener("click", async () => {
  const bestId = job.result ? job.result.node_id : liveBest;
  if (!bestId) {
    note.textContent = "no best node yet";
    return;
  }
  try {
    await revealNode(bestId);
    note.textContent = "best node";
  } catch (err) {
    showError(err);
  }
});

function renderStatus() {
  $("job-status").replaceChildren(badge(job.status));
}

const refreshTree = throttle(async () => {
  try {
    job = await getJSON(jobPath);
    renderStatus();
    await model.refresh();
    if (job.result) await loadBestPath();
    if (detailId) openDetail(detailId);
  } catch (err) {
    showError(err);
  }
}, 1500);

let watch = null;

(async () => {
  renderStatus();
  try {
    await model.init(initial.root, initial.children);
    const focus = new URL(location.href).searchParams.get("node");
    if (focus) await revealNode(focus);
    await loadBestPath();
  } catch (err) {
    showError(err);
  }
  let after = 0;
  try {
    for (;;) {
      const page = await getJSON(`${jobPath}/events`, { after, limit: 1000 });
      for (const e of page.data) {
        after = e.id;
        if (e.kind === "best_changed") liveBest = e.data.node_id;
      }
      if (page.data.length < 1000) break;
    }
  } catch (err) {
    showError(err);
  }
  watch = new JobWatch(job.id, {
    after,
    live: !TERMINAL_JOB.has(job.status),
    onEvents: (batch) => {
      for (const e of batch) if (e.kind === "best_changed") liveBest = e.data.node_id;
      refreshTree();
    },
    onMode: () => {},
  });
})();

renderSelection($("why"), job.id);
