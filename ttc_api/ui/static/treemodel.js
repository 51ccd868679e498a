// What the tree inspector knows of a job's tree: the nodes loaded so far, which ones are
// expanded, and the flat list of visible rows the virtual list draws.
//
// Children come from GET /v1/jobs/{id}/nodes?parent_id=... one page at a time, only when
// a node is expanded (or a "more" row scrolls into view), so a 100,000-node tree costs
// what is on screen, not what is in the database.

import { getJSON } from "./api.js";

export const PAGE = 200;

export class TreeModel {
  constructor(jobId, rootId, onChange) {
    this.nodesPath = `/v1/jobs/${jobId}/nodes`;
    this.rootId = rootId;
    this.onChange = onChange;
    /** id -> node as the API returns it */
    this.nodes = new Map();
    /** id -> {ids: [], set: Set, next: cursor|null, done: bool} */
    this.kids = new Map();
    this.expanded = new Set();
    this.loading = new Map();
    /** visible rows: {id, level} or {more: parentId, level} */
    this.rows = [];
  }

  /** Start from the root and its first page of children (embedded in the page when
   * the server sent them, else fetched). */
  async init(root, firstPage) {
    if (root && firstPage) {
      this.nodes.set(this.rootId, root);
      this.expanded.add(this.rootId);
      this.addPage(this.rootId, { ids: [], set: new Set(), next: null, done: false }, firstPage);
      this.rebuild();
      return;
    }
    this.nodes.set(this.rootId, await getJSON(`${this.nodesPath}/${this.rootId}`));
    await this.expand(this.rootId);
  }

  addPage(parentId, state, page) {
    for (const node of page.data) {
      this.nodes.set(node.id, node);
      if (!state.set.has(node.id)) {
        state.set.add(node.id);
        state.ids.push(node.id);
      }
    }
    state.next = page.next_cursor;
    state.done = !page.next_cursor;
    this.kids.set(parentId, state);
  }

  hasChildren(id) {
    const node = this.nodes.get(id);
    return !!node && node.children > 0;
  }

  /** Load the next page of a node's children (one request in flight per node). */
  loadPage(parentId) {
    if (this.loading.has(parentId)) return this.loading.get(parentId);
    const state = this.kids.get(parentId) || { ids: [], set: new Set(), next: null, done: false };
    if (state.done) return Promise.resolve();
    const promise = (async () => {
      try {
        const page = await getJSON(this.nodesPath, {
          parent_id: parentId,
          cursor: state.next,
          limit: PAGE,
        });
        this.addPage(parentId, state, page);
      } finally {
        this.loading.delete(parentId);
      }
      this.rebuild();
    })();
    this.loading.set(parentId, promise);
    return promise;
  }

  async expand(id) {
    this.expanded.add(id);
    if (this.kids.has(id)) this.rebuild();
    else {
      this.rebuild(); // shows a "loading" row at once
      await this.loadPage(id);
    }
  }

  collapse(id) {
    this.expanded.delete(id);
    this.rebuild();
  }

  /** Expand every ancestor on a root-to-node path and load the pages that hold it. */
  async reveal(pathIds) {
    for (let i = 0; i + 1 < pathIds.length; i++) {
      const parent = pathIds[i];
      const child = pathIds[i + 1];
      this.expanded.add(parent);
      for (;;) {
        const state = this.kids.get(parent);
        if ((state && state.set.has(child)) || (state && state.done)) break;
        await this.loadPage(parent);
      }
    }
    this.rebuild();
  }

  rebuild() {
    const rows = [];
    const walk = (id, level) => {
      rows.push({ id, level });
      if (!this.expanded.has(id) || !this.hasChildren(id)) return;
      const state = this.kids.get(id);
      if (state) for (const child of state.ids) walk(child, level + 1);
      if (!state || !state.done) rows.push({ more: id, level: level + 1 });
    };
    if (this.nodes.has(this.rootId)) walk(this.rootId, 1);
    this.rows = rows;
    this.onChange();
  }

  /** An operator pruned a node: mark it and what is loaded below it, as the server did. */
  markPruned(id) {
    const stack = [id];
    while (stack.length) {
      const nodeId = stack.pop();
      const node = this.nodes.get(nodeId);
      if (node && (node.status === "done" || node.status === "generated")) node.status = "pruned";
      const state = this.kids.get(nodeId);
      if (state) stack.push(...state.ids);
    }
    this.rebuild();
  }

  /** Re-read what is loaded (the job is live): new children, scores, statuses. */
  async refresh() {
    this.nodes.set(this.rootId, await getJSON(`${this.nodesPath}/${this.rootId}`));
    for (const id of [...this.kids.keys()]) {
      if (!this.expanded.has(id)) continue;
      const state = this.kids.get(id);
      const want = Math.max(state.ids.length, 1);
      const ids = [];
      let cursor = null;
      do {
        const page = await getJSON(this.nodesPath, { parent_id: id, cursor, limit: PAGE });
        for (const node of page.data) {
          this.nodes.set(node.id, node);
          ids.push(node.id);
        }
        cursor = page.next_cursor;
      } while (cursor && ids.length < want);
      this.kids.set(id, { ids, set: new Set(ids), next: cursor, done: !cursor });
    }
    this.rebuild();
  }
}
