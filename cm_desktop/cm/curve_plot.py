"""The learning-curve picture: accuracy against ratings, one line per method, one panel per order.

matplotlib is imported here only (Agg, no display), so nothing else pays for it.
"""

from __future__ import annotations

from pathlib import Path

# One look per method, kept the same across datasets so pictures compare at a glance.
STYLE = {
    "model": ("#7f7f7f", ":", "o"),
    "knn": ("#1f77b4", "--", "s"),
    "logreg": ("#17becf", "--", "D"),
    "logreg-tuned": ("#9467bd", "--", "d"),
    "cm-paper": ("#bcbd22", "-.", "v"),
    "cm-marginal": ("#ff7f0e", "-.", "^"),
    "cm-instance": ("#2ca02c", "-", "P"),
    "cm-evidence": ("#d62728", "-", "*"),
}


def _tick_sizes(sizes: list[int], min_ratio: float = 1.6) -> list[int]:
    """The sizes to label on a log axis: each at least `min_ratio` times the last one labelled
    (200, 250, 300 side by side would overprint), always the largest."""
    ticks: list[int] = []
    for s in sizes:
        if not ticks or s >= ticks[-1] * min_ratio:
            ticks.append(s)
    if sizes and ticks[-1] != sizes[-1]:
        ticks[-1] = sizes[-1]
    return ticks


def plot_curves(result: dict, out: str | Path, title: str | None = None) -> Path:
    """Write the PNG for a `cm curve` JSON result; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = result["rows"]
    orders = list(dict.fromkeys(r["order"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    if not orders:
        raise ValueError("no rows to plot")
    fig, axes = plt.subplots(1, len(orders), figsize=(5.2 * len(orders), 4.2), sharey=True,
                             squeeze=False)
    for ax, order in zip(axes[0], orders):
        for method in methods:
            pts = sorted((r["size"], r["accuracy"]) for r in rows
                         if r["order"] == order and r["method"] == method)
            color, line, marker = STYLE.get(method, ("black", "-", "."))
            ax.plot([s for s, _ in pts], [a for _, a in pts], line, color=color, marker=marker,
                    markersize=5, linewidth=2 if method.startswith("cm-e") else 1.4, label=method)
        ax.set_xscale("log")
        ax.set_xticks(_tick_sizes(sorted({r["size"] for r in rows})))
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.minorticks_off()
        ax.set_xlabel("ratings in the bank")
        ax.set_title(f"{order} order")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel(f"accuracy on {result.get('n', '?')} held-out queries")
    axes[0][-1].legend(loc="lower right", fontsize=8)
    name = title or Path(str(result.get("dataset", ""))).parent.name or str(result.get("dataset"))
    fig.suptitle(f"{name}: {result.get('responses', '?')} responses, pool {result.get('pool', '?')}")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
