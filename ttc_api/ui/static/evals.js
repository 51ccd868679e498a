// The evals list: newest first, cursor paging, refreshed every few seconds.

import { base, getJSON } from "./api.js";
import { badge, fmtAge, fmtCost, fmtInt, h } from "./dom.js";

const PAGE_SIZE = 25;
const REFRESH_MS = 3000;

const body = document.getElementById("evals-body");
const empty = document.getElementById("evals-empty");
const newer = document.getElementById("page-newer");
const older = document.getElementById("page-older");
const refreshed = document.getElementById("refreshed");

let cursors = [null];
let nextCursor = null;

function row(ev) {
  const p = ev.progress;
  const arms = (ev.spec.arms || []).map((a) => a.name || a.strategy).join(", ");
  return h(
    "tr",
    { "data-eval-id": ev.id },
    h("td", {}, h("a", { href: `${base}/ui/evals/${ev.id}` }, ev.name || ev.id.slice(0, 8))),
    h("td", {}, badge(ev.status)),
    h("td", {}, `${ev.dataset.name || ev.dataset.id.slice(0, 8)} (${fmtInt(ev.dataset.rows)})`),
    h("td", {}, arms),
    h(
      "td",
      { class: "progress-cell" },
      h("meter", { min: 0, max: p.jobs || 1, value: p.jobs_done, "aria-label": "jobs done" }),
      ` ${fmtInt(p.problems_done)}/${fmtInt(p.problems)} problems`,
    ),
    h("td", { class: "num" }, fmtInt(p.prompt_tokens + p.completion_tokens)),
    h("td", { class: "num" }, fmtCost(p.cost)),
    h("td", { class: "num", title: ev.created_at }, fmtAge(ev.created_at)),
  );
}

async function load() {
  const page = await getJSON("/v1/evals", { cursor: cursors[cursors.length - 1], limit: PAGE_SIZE });
  body.replaceChildren(...page.data.map(row));
  empty.hidden = page.data.length > 0;
  nextCursor = page.next_cursor;
  older.disabled = !nextCursor;
  newer.disabled = cursors.length <= 1;
  refreshed.textContent = `updated ${new Date().toLocaleTimeString()}`;
}

async function tick() {
  try {
    await load();
  } catch (err) {
    refreshed.textContent = `refresh failed: ${err.message}`;
  }
  setTimeout(tick, REFRESH_MS);
}

older.addEventListener("click", () => {
  if (nextCursor) cursors.push(nextCursor);
  load();
});
newer.addEventListener("click", () => {
  if (cursors.length > 1) cursors.pop();
  load();
});

tick();
