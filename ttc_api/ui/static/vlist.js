// A virtualized list: a spacer as tall as every row together, and absolutely placed
// elements for the rows in (or near) view only. Rows have one fixed height, so the rows
// on screen follow from scrollTop alone and the DOM stays small at any row count.

const OVERSCAN = 8;

export class VirtualRows {
  /** renderRow(i) builds row i; afterRender() runs once the rows on screen are placed. */
  constructor(viewport, spacer, rowHeight, renderRow, afterRender = () => {}) {
    this.viewport = viewport;
    this.spacer = spacer;
    this.rowHeight = rowHeight;
    this.renderRow = renderRow;
    this.afterRender = afterRender;
    this.count = 0;
    this.frame = null;
    viewport.addEventListener("scroll", () => this.schedule(), { passive: true });
    window.addEventListener("resize", () => this.schedule());
  }

  setCount(count) {
    this.count = count;
    this.spacer.style.height = `${count * this.rowHeight}px`;
    this.schedule();
  }

  schedule() {
    if (this.frame === null) {
      this.frame = requestAnimationFrame(() => {
        this.frame = null;
        this.render();
      });
    }
  }

  render() {
    const rh = this.rowHeight;
    const top = this.viewport.scrollTop;
    const first = Math.max(0, Math.floor(top / rh) - OVERSCAN);
    const last = Math.min(this.count, Math.ceil((top + this.viewport.clientHeight) / rh) + OVERSCAN);
    const rows = [];
    for (let i = first; i < last; i++) {
      const el = this.renderRow(i);
      el.style.top = `${i * rh}px`;
      rows.push(el);
    }
    this.spacer.replaceChildren(...rows);
    this.afterRender();
  }

  /** Scroll just enough to show row i (the keyboard's active row). */
  scrollToIndex(i, center = false) {
    const rh = this.rowHeight;
    const view = this.viewport;
    const y = i * rh;
    if (center) view.scrollTop = Math.max(0, y - view.clientHeight / 2);
    else if (y < view.scrollTop) view.scrollTop = y;
    else if (y + rh > view.scrollTop + view.clientHeight) view.scrollTop = y + rh - view.clientHeight;
  }
}
