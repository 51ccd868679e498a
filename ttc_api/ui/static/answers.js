// The answer distribution: how the samples spread over answers (the vote, for voting
// strategies) and how the terminal scores are distributed.

import { getJSON, initialData } from "./api.js";
import { fmtInt, h } from "./dom.js";
import { barChart, histogram } from "./charts.js";

const job = initialData().job;
const note = document.getElementById("answers-note");

(async () => {
  try {
    const view = await getJSON(`/ui/api/jobs/${job.id}/answers`);
    const winner = job.result ? job.result.answer : null;
    const correctOf = new Map(view.answers.map((a) => [a.answer, a.correct]));
    const counts = view.votes
      ? Object.entries(view.votes).map(([answer, value]) => ({ answer, value }))
      : view.answers.map((a) => ({ answer: a.answer, value: a.nodes }));
    counts.sort((a, b) => b.value - a.value);
    const bars = counts.slice(0, 30).map(({ answer, value }) => {
      const right = correctOf.get(answer);
      const mark = right === true ? " ✓" : right === false ? " ✗" : "";
      return {
        label: `${answer}${mark}`,
        value,
        cls: `${answer === winner ? "winner" : ""} ${right === true ? "right" : right === false ? "wrong" : ""}`,
        title: `${answer}: ${value}${answer === winner ? " (chosen)" : ""}${mark}`,
      };
    });
    const answers = document.getElementById("answers-chart");
    answers.replaceChildren(
      bars.length ? barChart(bars) : h("p", { class: "muted" }, "No terminal answers yet."),
      h("p", { class: "muted small" }, view.votes ? "The strategy's vote (weighted where the strategy weights it). ✓ right, ✗ wrong against the reference; the chosen answer is outlined." : "Answers of the terminal nodes. ✓ right, ✗ wrong against the reference."),
    );
    const scores = document.getElementById("score-chart");
    scores.replaceChildren(
      view.histogram.length ? histogram(view.histogram) : h("p", { class: "muted" }, "No scored terminals yet."),
      h("p", { class: "muted small" }, "All terminals (light) and the correct ones (dark) per score bin."),
    );
    note.textContent = `${fmtInt(view.terminals)} terminal nodes, ${fmtInt(view.correct_terminals)} correct.`;
  } catch (err) {
    note.textContent = err.message;
  }
})();
