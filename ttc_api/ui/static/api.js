// Talks to the /v1 API with the login cookie (same origin); errors become ApiError with
// the problem+json fields, and a lost login sends the browser back to the login form.

export const base = document.body.dataset.base || "";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.field = problem.field || null;
  }
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

async function request(method, path, params, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(base + path + query(params), init);
  if (res.status === 401) {
    const next = location.pathname + location.search;
    location.assign(`${base}/ui/login?next=${encodeURIComponent(next)}`);
    throw new ApiError(401, { title: "Log in again" });
  }
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, data || {});
  return data;
}

export const getJSON = (path, params) => request("GET", path, params);
export const postJSON = (path, body) => request("POST", path, undefined, body);

/** The JSON a page was rendered with (see base.html). */
export function initialData() {
  const node = document.getElementById("initial-data");
  return node ? JSON.parse(node.textContent) : {};
}
