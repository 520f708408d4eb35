"""How fast the Bank view's heatmap repaints, against painting each cell with QPainter.fillRect.

The heatmap builds one QImage with a pixel per cell (numpy colour map) and draws it scaled once;
the baseline is the obvious per-cell loop over the same colours. Both paint the same widget size,
offscreen, so the ratio is what a person feels while zooming or scrolling a big response set.

    python3 benchmarks/heatmap_bench.py [--sizes 77 150 300] [--cell 10] [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PySide6.QtCore import QRect  # noqa: E402
from PySide6.QtGui import QColor, QImage, QPainter  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def _matrix(r: int, seed: int = 0):
    from bank_store.records import TransitionMatrix

    rng = np.random.default_rng(seed)
    counts = rng.poisson(0.3, size=(r, r)).astype(np.int64)
    np.fill_diagonal(counts, 20)
    raw = rng.poisson(0.5, size=(max(1, r // 10), r)).astype(np.int64)
    return TransitionMatrix([f"response {i}" for i in range(r)], counts,
                            [f"raw {i}" for i in range(len(raw))], raw)


def _paint_per_cell(target: QImage, colours: np.ndarray, cell: int) -> None:
    """Baseline: one fillRect per cell (what a naive heatmap does in paintEvent)."""
    painter = QPainter(target)
    rows, cols = colours.shape[:2]
    for i in range(rows):
        for j in range(cols):
            r, g, b = colours[i, j]
            painter.fillRect(QRect(j * cell, i * cell, cell, cell), QColor(int(r), int(g), int(b)))
    painter.end()


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def main(argv=None) -> int:
    from cm_desktop.ui.heatmap import TransitionHeatmap, _rgb, colour_values

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[77, 150, 300])
    parser.add_argument("--cell", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    app = QApplication.instance() or QApplication([])  # noqa: F841 (needed for widgets)

    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus, "
          f"python {platform.python_version()}, Qt offscreen")
    print(f"{'responses':>9} {'baseline ms':>12} {'heatmap ms':>11} {'speed-up':>9}")
    for r in args.sizes:
        matrix = _matrix(r)
        widget = TransitionHeatmap()
        widget.set_cell_size(args.cell)
        widget.set_matrix(matrix)
        counts = np.vstack([matrix.counts, matrix.raw_counts])
        colours = _rgb(colour_values(counts), counts)
        g = widget.grid_rect()
        # both paint the grid only (labels are the same text either way), same pixel size
        canvas = QImage(g.width(), g.height(), QImage.Format_RGB32)

        def ours():
            widget._rebuild()  # colour map + image, as on a data or log-scale change
            p = QPainter(canvas)
            p.drawImage(QRect(0, 0, g.width(), g.height()), widget.image())
            p.end()

        base = _time(lambda: _paint_per_cell(canvas, colours, args.cell), args.repeats)
        mine = _time(ours, args.repeats)
        print(f"{r:>9} {base * 1e3:>12.2f} {mine * 1e3:>11.2f} {base / mine:>8.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
