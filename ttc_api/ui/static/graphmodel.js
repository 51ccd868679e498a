// The graph view's model: which nodes of a (possibly huge) tree are drawn, and where.
// Pure: no DOM, no fetch. The view feeds it pages of nodes and asks for a layout.
//
// A tree of 10,000 nodes can't be drawn box by box and still be read, so the graph shows
// a budget of boxes: the best path always, then breadth-first from the top while the
// budget lasts. Every other subtree is collapsed into its parent with a count ("+37"),
// and a parent with many children shows them a chunk at a time ("+940 more").

export const VISIBLE_BUDGET = 120;
export const CHILD_CHUNK = 24;

export class GraphModel {
  constructor(topId) {
    this.topId = topId;
    this.nodes = new Map(); // id -> node as the API returns it
    this.kids = new Map(); // parent id -> [child ids] sorted by child_index
    this.open = new Set(); // nodes whose children are drawn
    this.shown = new Map(); // id -> how many of its children are drawn (chunks)
    this.best = new Set(); // the chosen answer's path
    this.dupOf = new Map(); // id -> the earlier sibling with the same text
  }

  add(nodes) {
    this._below = null;
    const touched = new Set();
    for (const n of nodes) {
      if (this.nodes.has(n.id)) continue;
      this.nodes.set(n.id, n);
      if (n.parent_id !== null && n.parent_id !== undefined) {
        if (!this.kids.has(n.parent_id)) this.kids.set(n.parent_id, []);
        this.kids.get(n.parent_id).push(n.id);
        touched.add(n.parent_id);
      }
    }
    for (const parent of touched) {
      const list = this.kids.get(parent);
      list.sort((a, b) => this.nodes.get(a).child_index - this.nodes.get(b).child_index);
      this._markDuplicates(list);
    }
  }

  _markDuplicates(ids) {
    const first = new Map();
    for (const id of ids) {
      const node = this.nodes.get(id);
      const key = (node.text || "").trim();
      if (!key) continue;
      if (first.has(key)) this.dupOf.set(id, first.get(key));
      else first.set(key, id);
    }
  }

  /** Siblings with the same text as this node (itself included), or 0 if it is unique. */
  duplicates(id) {
    const node = this.nodes.get(id);
    if (!node || node.parent_id === null) return 0;
    const key = (node.text || "").trim();
    if (!key) return 0;
    const same = (this.kids.get(node.parent_id) || []).filter((k) => (this.nodes.get(k).text || "").trim() === key);
    return same.length > 1 ? same.length : 0;
  }

  childTotal(id) {
    const node = this.nodes.get(id);
    const loaded = (this.kids.get(id) || []).length;
    return Math.max(loaded, node && typeof node.children === "number" ? node.children : 0);
  }

  /** Nodes below ``id`` that are known (loaded), or at least its direct children. The
   * counts of every loaded node are worked out once per batch of nodes added. */
  hiddenBelow(id) {
    if (!this._below) {
      this._below = new Map();
      const count = (n) => {
        let total = 0;
        for (const k of this.kids.get(n) || []) total += 1 + count(k);
        this._below.set(n, total);
        return total;
      };
      count(this.topId);
    }
    return Math.max(this._below.get(id) || 0, this.childTotal(id));
  }

  setBest(ids) {
    this.best = new Set(ids);
  }

  /** The first view: the best path open, then breadth-first while the budget lasts. */
  openInitial(budget = VISIBLE_BUDGET) {
    this.open.clear();
    this.shown.clear();
    for (const id of this.best) if (this.kids.has(id)) this.open.add(id);
    let count = this.visibleIds().length;
    const queue = [this.topId];
    while (queue.length) {
      const id = queue.shift();
      const kids = this.kids.get(id) || [];
      if (!kids.length) continue;
      if (!this.open.has(id)) {
        const extra = Math.min(kids.length, CHILD_CHUNK) + (kids.length > CHILD_CHUNK ? 1 : 0);
        if (count + extra > budget) continue;
        this.open.add(id);
        count += extra;
      }
      queue.push(...this._visibleKids(id));
    }
  }

  toggle(id) {
    if (this.open.has(id)) this.open.delete(id);
    else if (this.childTotal(id)) this.open.add(id);
  }

  showMore(id) {
    this.shown.set(id, (this.shown.get(id) || CHILD_CHUNK) + CHILD_CHUNK);
  }

  /** The children of an open node that are drawn: a chunk, plus any on the best path. */
  _visibleKids(id) {
    const kids = this.kids.get(id) || [];
    const limit = this.shown.get(id) || CHILD_CHUNK;
    const out = kids.slice(0, limit);
    for (const k of kids.slice(limit)) if (this.best.has(k)) out.push(k);
    return out;
  }

  visibleIds() {
    const out = [];
    const walk = (id) => {
      out.push(id);
      if (this.open.has(id)) for (const k of this._visibleKids(id)) walk(k);
    };
    if (this.nodes.has(this.topId)) walk(this.topId);
    return out;
  }

  /**
   * A tidy layout of what is drawn: leaves side by side in order, each parent centred
   * over its drawn children. Returns boxes {id, x, y, more?} and edges [from, to].
   */
  layout(boxW, boxH, gapX, gapY) {
    const boxes = [];
    const edges = [];
    let nextX = 0;
    const place = (id, level) => {
      const y = level * (boxH + gapY);
      const kids = this.open.has(id) ? this._visibleKids(id) : [];
      const hiddenKids = this.open.has(id) ? this.childTotal(id) - kids.length : 0;
      let x;
      if (!kids.length && hiddenKids <= 0) {
        x = nextX;
        nextX += boxW + gapX;
      } else {
        const xs = kids.map((k) => {
          const kx = place(k, level + 1);
          edges.push([id, k]);
          return kx;
        });
        if (hiddenKids > 0) {
          const mx = nextX;
          nextX += boxW + gapX;
          boxes.push({ id: `more:${id}`, more: { parent: id, count: hiddenKids }, x: mx, y: y + boxH + gapY });
          edges.push([id, `more:${id}`]);
          xs.push(mx);
        }
        x = (xs[0] + xs[xs.length - 1]) / 2;
      }
      boxes.push({ id, x, y });
      return x;
    };
    if (this.nodes.has(this.topId)) place(this.topId, 0);
    return { boxes, edges, width: Math.max(nextX - gapX, boxW) };
  }
}
