// Live job events: Server-Sent Events while a job runs, JSON polling otherwise.
//
// The stream (GET /v1/jobs/{id}/events, Accept: text/event-stream) closes after a job's
// final status, so a finished job is polled slowly instead of reconnecting every few
// seconds; an operator action that restarts the job calls wake() to stream again. A
// browser without EventSource, or a stream that fails for good, falls back to polling.

import { base, getJSON } from "./api.js";
import { TERMINAL_JOB } from "./dom.js";

const KINDS = [
  "job_created", "status_changed", "step_planned", "nodes_added", "step_done",
  "best_changed", "node_pruned", "node_expand_requested", "endpoint_trouble", "reaped",
  "adaptive_stop", "auto_decision", "auto_budget", "batch_allocated", "webhook_exhausted",
];
const FAST_POLL_MS = 1500;
const SLOW_POLL_MS = 5000;

export class JobWatch {
  /**
   * @param {string} jobId
   * @param {object} opts  after: last event id already shown; live: whether the job runs;
   *   onEvents(events): new events in order; onMode(text): how updates arrive.
   */
  constructor(jobId, { after = 0, live = true, onEvents, onMode = () => {} }) {
    this.jobId = jobId;
    this.after = after;
    this.onEvents = onEvents;
    this.onMode = onMode;
    this.source = null;
    this.timer = null;
    this.streamBroken = !("EventSource" in window);
    this.stopped = false;
    this.gen = 0;
    if (live) this.wake();
    else this.poll(SLOW_POLL_MS);
  }

  deliver(events) {
    const fresh = events.filter((e) => e.id > this.after);
    if (!fresh.length) return;
    this.after = fresh[fresh.length - 1].id;
    this.onEvents(fresh);
    const final = fresh.some(
      (e) => e.kind === "status_changed" && TERMINAL_JOB.has(e.data && e.data.status),
    );
    if (final) this.rest();
  }

  /** The job runs (again): stream its events, or poll fast without a stream. */
  wake() {
    if (this.stopped) return;
    this.clear();
    if (this.streamBroken) {
      this.poll(FAST_POLL_MS);
      return;
    }
    const url = `${base}/v1/jobs/${encodeURIComponent(this.jobId)}/events?after=${this.after}`;
    const source = new EventSource(url);
    this.source = source;
    const onMessage = (msg) => this.deliver([JSON.parse(msg.data)]);
    for (const kind of KINDS) source.addEventListener(kind, onMessage);
    source.onmessage = onMessage;
    source.onopen = () => this.onMode("live (server-sent events)");
    source.onerror = () => {
      // CONNECTING: the browser retries by itself. CLOSED: the stream failed for good.
      if (source.readyState === EventSource.CLOSED && this.source === source) {
        this.streamBroken = true;
        this.wake();
      }
    };
  }

  /** The job finished: check now and then (another operator may restart it). */
  rest() {
    this.clear();
    this.poll(SLOW_POLL_MS);
  }

  poll(every) {
    this.onMode(every === FAST_POLL_MS ? "live (polling)" : "finished; checking every 5 s");
    const gen = this.gen;
    const tick = async () => {
      try {
        const page = await getJSON(`/v1/jobs/${encodeURIComponent(this.jobId)}/events`, {
          after: this.after,
          limit: 500,
        });
        if (gen !== this.gen) return;
        const restarted = page.data.some(
          (e) => e.kind === "status_changed" && !TERMINAL_JOB.has(e.data && e.data.status),
        );
        this.deliver(page.data);
        if (gen !== this.gen) return; // deliver() saw the job finish and switched mode
        if (every === SLOW_POLL_MS && restarted) {
          this.wake();
          return;
        }
      } catch (err) {
        if (gen !== this.gen) return;
        this.onMode(`updates paused: ${err.message}`);
      }
      this.timer = setTimeout(tick, every);
    };
    this.timer = setTimeout(tick, every);
  }

  clear() {
    this.gen += 1; // any poll in flight finds itself stale and stops
    if (this.source) {
      this.source.close();
      this.source = null;
    }
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  stop() {
    this.stopped = true;
    this.clear();
  }
}
