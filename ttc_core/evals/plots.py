"""Scaling curves as PNG or SVG (matplotlib, no display: ``Figure`` with the Agg and SVG
canvases, safe in a server thread).

* ``accuracy_vs_n``: accuracy against the grid value (log x), one line per arm with its
  95% band; the coverage (pass@k) of the first sampled arm dashed, for reference.
* ``accuracy_vs_tokens``: accuracy against mean tokens per problem (prompt + completion,
  log x): compute on the same axis for every arm, sampled and searched alike.
* ``by_difficulty``: accuracy against the grid value in one panel per difficulty bin.
"""

from __future__ import annotations

import io
from collections import defaultdict
from typing import Any

from matplotlib.figure import Figure

#: Plots an eval has, by name.
PLOTS = ("accuracy_vs_n", "accuracy_vs_tokens", "by_difficulty")
FORMATS = ("png", "svg")
_SIZE = (7.5, 4.6)


def _by_arm(points: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    arms: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for point in points:
        if point.get("accuracy") is not None:
            arms[point["arm"]].append(point)
    return arms


def _axis_label(points: list[dict[str, Any]]) -> str:
    keys = list(dict.fromkeys(p["key"] for p in points))
    return " / ".join(keys) or "n"


def _curves(ax: Any, points: list[dict[str, Any]], x_of: str) -> None:
    coverage_drawn = False
    for arm, rows in _by_arm(points).items():
        rows = sorted(rows, key=lambda r: r[x_of] or 0)
        xs = [r[x_of] for r in rows]
        if any(x is None or x <= 0 for x in xs):
            continue
        ys = [r["accuracy"] for r in rows]
        (line,) = ax.plot(xs, ys, marker="o", label=arm)
        bands = [r for r in rows if r.get("ci95")]
        if bands:
            ax.fill_between(
                [r[x_of] for r in bands],
                [r["ci95"][0] for r in bands],
                [r["ci95"][1] for r in bands],
                color=line.get_color(),
                alpha=0.18,
                linewidth=0,
            )
        passes = [r for r in rows if r.get("pass_at_k") is not None]
        if passes and not coverage_drawn:
            coverage_drawn = True
            ax.plot(
                [r[x_of] for r in passes],
                [r["pass_at_k"] for r in passes],
                linestyle="--",
                color="0.45",
                label="pass@k (coverage)",
            )
    ax.set_xscale("log", base=2 if x_of == "value" else 10)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("accuracy")
    ax.grid(True, which="both", alpha=0.3)


def render(summary: dict[str, Any], name: str, fmt: str, *, title: str = "") -> bytes:
    """One plot of an eval's summary (``aggregation.summarize``) as PNG or SVG bytes."""
    if name not in PLOTS:
        raise ValueError(f"unknown plot {name!r}; plots: {', '.join(PLOTS)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
    points = list(summary.get("points") or [])
    if name == "by_difficulty":
        fig = _difficulty_figure(summary.get("by_difficulty"), points)
    else:
        fig = Figure(figsize=_SIZE, layout="constrained")
        ax = fig.subplots()
        x_of = "value" if name == "accuracy_vs_n" else "mean_tokens"
        _curves(ax, points, x_of)
        ax.set_xlabel(_axis_label(points) if x_of == "value" else "mean tokens per problem")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize="small")
    if title:
        fig.suptitle(title, fontsize="medium")
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {}
    fig.savefig(buffer, format=fmt, dpi=110, metadata=metadata)
    return buffer.getvalue()


def _difficulty_figure(breakdown: dict[str, Any] | None, points: list[dict[str, Any]]) -> Figure:
    bins = (breakdown or {}).get("bins") or []
    fig = Figure(figsize=(max(4.0, 3.6 * max(1, len(bins))), 3.8), layout="constrained")
    axes = fig.subplots(1, max(1, len(bins)), squeeze=False)[0]
    if not bins:
        axes[0].text(0.5, 0.5, "no difficulty known yet", ha="center", va="center")
        axes[0].set_axis_off()
        return fig
    for ax, group in zip(axes, bins, strict=True):
        _curves(ax, group["points"], "value")
        ax.set_title(f"{group['label']} ({group['problems']} problems)", fontsize="small")
        ax.set_xlabel(_axis_label(points))
    axes[0].legend(loc="lower right", fontsize="x-small")
    source = breakdown.get("source") if breakdown else None
    if source == "probe":
        fig.supxlabel("difficulty: 1 - pass@1 of the sampled arms, in thirds", fontsize="small")
    return fig
