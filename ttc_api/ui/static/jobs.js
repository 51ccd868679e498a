// The jobs list: filters in the URL, cursor paging (a stack of cursors for "Newer"),
// and an auto-refresh of the page on screen.

import { base, getJSON } from "./api.js";
import { badge, fmtAge, fmtCost, fmtInt, h } from "./dom.js";

const PAGE_SIZE = 25;
const REFRESH_MS = 3000;

const body = document.getElementById("jobs-body");
const empty = document.getElementById("jobs-empty");
const statusSel = document.getElementById("filter-status");
const strategySel = document.getElementById("filter-strategy");
const newer = document.getElementById("page-newer");
const older = document.getElementById("page-older");
const auto = document.getElementById("auto-refresh");
const refreshed = document.getElementById("refreshed");

const url = new URL(location.href);
statusSel.value = url.searchParams.get("status") || "";
strategySel.value = url.searchParams.get("strategy") || "";

let cursors = [null]; // cursors[i] opens page i; the last one is the page on screen
let nextCursor = null;
let timer = null;

function progress(job) {
  const p = job.progress;
  if (p.planned_samples) {
    const pct = Math.min(100, Math.round((100 * p.nodes) / p.planned_samples));
    return h(
      "span",
      { class: "progress-cell" },
      h("meter", { min: 0, max: p.planned_samples, value: Math.min(p.nodes, p.planned_samples), "aria-label": "nodes of the planned total" }),
      ` ${fmtInt(p.nodes)}/${fmtInt(p.planned_samples)} (${pct}%)`,
    );
  }
  return `step ${p.step} · ${fmtInt(p.nodes)} nodes`;
}

function row(job) {
  const link = h("a", { href: `${base}/ui/jobs/${job.id}` }, job.id.slice(0, 8));
  return h(
    "tr",
    { "data-job-id": job.id },
    h("td", {}, link),
    h("td", {}, badge(job.status)),
    h("td", {}, job.strategy),
    h("td", {}, job.endpoint),
    h("td", {}, progress(job)),
    h("td", { class: "num" }, fmtInt(job.usage.total_tokens)),
    h("td", { class: "num" }, fmtCost(job.usage.cost)),
    h("td", { class: "num", title: job.created_at }, fmtAge(job.created_at)),
  );
}

async function load() {
  const page = await getJSON("/ui/api/jobs", {
    status: statusSel.value,
    strategy: strategySel.value,
    cursor: cursors[cursors.length - 1],
    limit: PAGE_SIZE,
  });
  body.replaceChildren(...page.data.map(row));
  empty.hidden = page.data.length > 0;
  nextCursor = page.next_cursor;
  older.disabled = !nextCursor;
  newer.disabled = cursors.length <= 1;
  refreshed.textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function schedule() {
  clearTimeout(timer);
  if (auto.checked) {
    timer = setTimeout(async () => {
      try {
        await load();
      } catch (err) {
        refreshed.textContent = `refresh failed: ${err.message}`;
      }
      schedule();
    }, REFRESH_MS);
  }
}

async function reload() {
  try {
    await load();
  } catch (err) {
    refreshed.textContent = `could not load jobs: ${err.message}`;
  }
  schedule();
}

function filtersChanged() {
  const params = new URLSearchParams();
  if (statusSel.value) params.set("status", statusSel.value);
  if (strategySel.value) params.set("strategy", strategySel.value);
  history.replaceState(null, "", `${location.pathname}${params.size ? `?${params}` : ""}`);
  cursors = [null];
  reload();
}

statusSel.addEventListener("change", filtersChanged);
strategySel.addEventListener("change", filtersChanged);
document.getElementById("job-filters").addEventListener("submit", (e) => e.preventDefault());
auto.addEventListener("change", schedule);
older.addEventListener("click", () => {
  if (!nextCursor) return;
  cursors.push(nextCursor);
  reload();
});
newer.addEventListener("click", () => {
  if (cursors.length > 1) cursors.pop();
  reload();
});

reload();
