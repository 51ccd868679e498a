// The graph view: a job's tree (or the subtree under ?node=) as boxes and edges, readable
// at any size. It opens fitted to the root and the best path; large subtrees are
// collapsed with a count and open on a click; the canvas zooms (wheel, + / -), pans
// (drag, arrow keys) and fits (F). Each box shows the step's first words, the score, the
// MCTS visits and value, and a duplicate mark when a sibling has the same text.
//
// Nodes arrive breadth-first, a page at a time (GET /v1/jobs/{id}/nodes?under=...); the
// first page is drawn at once and later pages only update the counts, so a 10,000-node
// tree paints as fast as a small one. Panning moves one transform, never the boxes.

import { base, getJSON, initialData } from "./api.js";
import { fmtInt, fmtScore, nodeStatus, preview, svg } from "./dom.js";
import { GraphModel } from "./graphmodel.js";

const FIRST_PAGE = 300; // enough for the first view's budget: painted at once
const PAGE = 1000;
const MAX_LOAD = 20000;
const BOX_W = 164;
const BOX_H = 58;
const GAP_X = 16;
const GAP_Y = 46;
const MIN_SCALE = 0.05;
const MAX_SCALE = 3;

const initial = initialData();
const job = initial.job;
const note = document.getElementById("graph-note");
const target = document.getElementById("graph");
const topId = new URL(location.href).searchParams.get("node") || job.root_node_id;
const model = new GraphModel(topId);

let view = { x: 0, y: 0, k: 1 };
let world = null;
let canvas = null;
let laid = null;
let loaded = 0;
let complete = false;
let userMoved = false; // until the reader pans or zooms, later pages keep the best path in view

function apply() {
  if (world) world.setAttribute("transform", `translate(${view.x},${view.y}) scale(${view.k})`);
  target.dataset.scale = view.k.toFixed(4);
}

let frame = 0;
function schedule() {
  if (!frame) frame = requestAnimationFrame(() => { frame = 0; apply(); });
}

/** Fit a box [x0, y0, x1, y1] (world units) into the canvas, at most at scale 1. */
function fitTo([x0, y0, x1, y1], maxScale = 1) {
  const rect = target.getBoundingClientRect();
  const pad = 24;
  const k = Math.max(MIN_SCALE, Math.min(maxScale, (rect.width - 2 * pad) / Math.max(1, x1 - x0), (rect.height - 2 * pad) / Math.max(1, y1 - y0)));
  view = { k, x: (rect.width - k * (x0 + x1)) / 2, y: pad - k * y0 };
  if (k * (y1 - y0) < rect.height - 2 * pad) view.y = (rect.height - k * (y0 + y1)) / 2;
  schedule();
}

function bounds(ids) {
  const pos = laid.pos;
  const boxes = ids.map((id) => pos.get(id)).filter(Boolean);
  if (!boxes.length) return [0, 0, BOX_W, BOX_H];
  return [
    Math.min(...boxes.map((b) => b.x)),
    Math.min(...boxes.map((b) => b.y)),
    Math.max(...boxes.map((b) => b.x)) + BOX_W,
    Math.max(...boxes.map((b) => b.y)) + BOX_H,
  ];
}

const fitAll = () => fitTo([0, 0, laid.width, laid.height]);
const fitBest = () => fitTo(bounds([topId, ...[...model.best].filter((id) => laid.pos.has(id))]));

function zoomAt(factor, cx, cy) {
  userMoved = true;
  const k = Math.max(MIN_SCALE, Math.min(MAX_SCALE, view.k * factor));
  view = { k, x: cx - ((cx - view.x) * k) / view.k, y: cy - ((cy - view.y) * k) / view.k };
  schedule();
}

function boxLines(node) {
  if (node.parent_id === null) return [`prompt (root)`, preview(job.prompt || node.text || "", 26)];
  const words = preview(node.text || "(empty step)", 24);
  const stats = [`s ${fmtScore(node.score)}`];
  const meta = node.meta || {};
  if (meta.visits !== undefined) stats.push(`N ${fmtInt(meta.visits)}`);
  if (meta.q !== undefined && meta.q !== null) stats.push(`Q ${fmtScore(meta.q)}`);
  const first = `#${node.child_index}${node.answer !== null && node.answer !== undefined ? ` → ${preview(String(node.answer), 10)}` : ""}`;
  return [first, words, stats.join(" · ")];
}

function drawBox(b) {
  if (b.more) {
    return svg(
      "g",
      { class: "gmore", "data-more": b.more.parent, tabindex: 0, role: "button", "aria-label": `show ${b.more.count} more children` },
      svg("rect", { x: b.x, y: b.y, width: BOX_W, height: BOX_H, rx: 5 }),
      svg("text", { x: b.x + BOX_W / 2, y: b.y + BOX_H / 2 + 4, "text-anchor": "middle", class: "glabel" }, `+${fmtInt(b.more.count)} more`),
    );
  }
  const n = model.nodes.get(b.id);
  const status = nodeStatus(n);
  const onBest = model.best.has(n.id);
  const total = model.childTotal(n.id);
  const collapsed = total > 0 && !model.open.has(n.id);
  const dups = model.duplicates(n.id);
  const lines = boxLines(n);
  const parts = [
    svg("title", {}, `${status} · score ${fmtScore(n.score)}${dups ? ` · ${dups} identical siblings` : ""}\n${preview(n.text, 300)}`),
    svg("rect", { x: b.x, y: b.y, width: BOX_W, height: BOX_H, rx: 5, class: `gnode s-${status}${onBest ? " best" : ""}` }),
    ...lines.map((line, i) => svg("text", { x: b.x + 7, y: b.y + 15 + i * 15, class: i === 0 ? "glabel" : "gscore" }, line)),
  ];
  if (dups) parts.push(svg("text", { x: b.x + BOX_W - 6, y: b.y + 15, "text-anchor": "end", class: "gdup", "data-dups": dups }, `dup×${dups}`));
  if (collapsed) {
    parts.push(
      svg("rect", { x: b.x + BOX_W / 2 - 26, y: b.y + BOX_H - 8, width: 52, height: 16, rx: 8, class: "gcount" }),
      svg("text", { x: b.x + BOX_W / 2, y: b.y + BOX_H + 4, "text-anchor": "middle", class: "gcount-text" }, `+${fmtInt(model.hiddenBelow(n.id))}`),
    );
  }
  return svg(
    "g",
    {
      class: `gbox${collapsed ? " collapsed" : ""}`,
      "data-node-id": n.id,
      tabindex: 0,
      role: "treeitem",
      "aria-expanded": total ? String(!collapsed) : undefined,
      "aria-label": lines.join(", "),
    },
    ...parts,
  );
}

function render() {
  const { boxes, edges, width } = model.layout(BOX_W, BOX_H, GAP_X, GAP_Y);
  const pos = new Map(boxes.map((b) => [b.id, b]));
  const height = Math.max(...boxes.map((b) => b.y)) + BOX_H;
  laid = { pos, width, height };
  const paths = edges.map(([from, to]) => {
    const p = pos.get(from);
    const c = pos.get(to);
    const x1 = p.x + BOX_W / 2;
    const y1 = p.y + BOX_H;
    const x2 = c.x + BOX_W / 2;
    const y2 = c.y;
    const my = (y1 + y2) / 2;
    const best = model.best.has(from) && model.best.has(to);
    return svg("path", { d: `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`, class: best ? "edge best" : "edge" });
  });
  world.replaceChildren(svg("g", {}, ...paths), svg("g", {}, ...boxes.map(drawBox)));
  target.dataset.boxes = String(boxes.length);
  apply();
}

async function loadChildren(parentId) {
  let cursor = null;
  do {
    const page = await getJSON(`/v1/jobs/${job.id}/nodes`, { parent_id: parentId, limit: PAGE, cursor });
    model.add(page.data);
    cursor = page.next_cursor;
  } while (cursor && (model.kids.get(parentId) || []).length < (model.shown.get(parentId) || 0) + PAGE);
}

async function onActivate(el) {
  userMoved = true;
  const more = el.closest("[data-more]");
  const box = el.closest("[data-node-id]");
  if (more) {
    const parent = more.dataset.more;
    if (model.open.has(parent) && (model.kids.get(parent) || []).length > (model.shown.get(parent) || 24)) model.showMore(parent);
    else await loadChildren(parent);
  } else if (box) {
    const id = box.dataset.nodeId;
    if (!model.open.has(id) && (model.kids.get(id) || []).length < model.childTotal(id)) await loadChildren(id);
    model.toggle(id);
  } else return;
  render();
}

function wire() {
  let drag = null;
  canvas.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    drag = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y, moved: false };
    canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x;
    const dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = userMoved = true;
    view.x = drag.vx + dx;
    view.y = drag.vy + dy;
    schedule();
  });
  canvas.addEventListener("pointerup", (e) => {
    const click = drag && !drag.moved;
    drag = null;
    if (click) {
      const el = document.elementFromPoint(e.clientX, e.clientY);
      if (el) onActivate(el);
    }
  });
  canvas.addEventListener("dblclick", (e) => {
    const box = e.target.closest && e.target.closest("[data-node-id]");
    if (box) location.assign(`${base}/ui/jobs/${job.id}/tree?node=${box.dataset.nodeId}`);
  });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const rect = target.getBoundingClientRect();
    zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX - rect.left, e.clientY - rect.top);
  }, { passive: false });
  target.addEventListener("keydown", (e) => {
    const rect = target.getBoundingClientRect();
    const step = 60;
    const keys = {
      "+": () => zoomAt(1.25, rect.width / 2, rect.height / 2),
      "=": () => zoomAt(1.25, rect.width / 2, rect.height / 2),
      "-": () => zoomAt(0.8, rect.width / 2, rect.height / 2),
      f: fitAll,
      b: fitBest,
      ArrowLeft: () => { view.x += step; schedule(); },
      ArrowRight: () => { view.x -= step; schedule(); },
      ArrowUp: () => { view.y += step; schedule(); },
      ArrowDown: () => { view.y -= step; schedule(); },
      Enter: () => document.activeElement && onActivate(document.activeElement),
    };
    if (keys[e.key]) {
      userMoved = true;
      e.preventDefault();
      keys[e.key]();
    }
  });
  const rect = () => target.getBoundingClientRect();
  document.getElementById("g-zoom-in").addEventListener("click", () => zoomAt(1.25, rect().width / 2, rect().height / 2));
  document.getElementById("g-zoom-out").addEventListener("click", () => zoomAt(0.8, rect().width / 2, rect().height / 2));
  document.getElementById("g-fit").addEventListener("click", () => { userMoved = true; fitAll(); });
  document.getElementById("g-best").addEventListener("click", () => { userMoved = true; fitBest(); });
  document.getElementById("g-expand").addEventListener("click", () => { model.openInitial(model.nodes.size); render(); fitAll(); });
  document.getElementById("g-collapse").addEventListener("click", () => { model.openInitial(); render(); fitBest(); });
}

async function bestPath() {
  const r = job.result;
  if (!r || !r.node_id) return [];
  const detail = await getJSON(`/v1/jobs/${job.id}/nodes/${r.node_id}`);
  model.add(detail.path);
  return detail.path.map((n) => n.id);
}

function describe() {
  const parts = [`${fmtInt(model.nodes.size)} nodes loaded${complete ? "" : " (loading…)"}`, `${fmtInt(laid.pos.size)} boxes drawn`];
  if (!complete && loaded >= MAX_LOAD) parts[0] = `the first ${fmtInt(MAX_LOAD)} nodes breadth-first`;
  note.textContent = `${parts.join(", ")}. Click a box to open or close it, double-click to inspect it; drag to pan, wheel or +/- to zoom, F to fit, B for the best path.`;
}

async function loadRest(cursor) {
  while (cursor && loaded < MAX_LOAD) {
    const page = await getJSON(`/v1/jobs/${job.id}/nodes`, { under: topId, limit: PAGE, cursor });
    model.add(page.data);
    loaded += page.data.length;
    cursor = page.next_cursor;
    render();
    if (!userMoved) fitBest(); // the new nodes moved the layout under the first view
    describe();
  }
  complete = !cursor;
  target.dataset.loaded = "true";
  describe();
}

(async () => {
  canvas = svg("svg", { class: "gcanvas", role: "tree", "aria-label": "Search tree graph" });
  world = svg("g", {});
  canvas.append(world);
  target.replaceChildren(canvas);
  try {
    const [page, best] = await Promise.all([
      getJSON(`/v1/jobs/${job.id}/nodes`, { under: topId, limit: FIRST_PAGE }),
      bestPath(),
    ]);
    if (!page.data.length) {
      note.textContent = "No such node.";
      return;
    }
    model.add(page.data);
    loaded = page.data.length;
    model.setBest(best);
    model.openInitial();
    render();
    fitBest();
    wire();
    target.dataset.ready = "true";
    describe();
    await loadRest(page.next_cursor);
  } catch (err) {
    note.textContent = err.message;
  }
})();
