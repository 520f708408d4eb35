"""The Bank view on the GUI thread: heatmap repaint and table sort, each against the obvious way.

Heatmap: one QImage with a pixel per cell (numpy colour map) drawn scaled once, against one
QPainter.fillRect per cell over the same colours, same pixel size, offscreen.
Table: the source model's keyed Python sort (what BankView does), against QSortFilterProxyModel's
own sort on a sort role (data() called per comparison), on the same entries.

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
    _bench_table_sort(args.sizes)
    return 0


def _bench_table_sort(sizes) -> None:
    from PySide6.QtCore import QSortFilterProxyModel, Qt

    from cm_desktop.cm.bank_summary import BankEntry
    from cm_desktop.ui.bank_table import COL_COUNT, COL_MODEL, SORT_ROLE, BankFilterProxy, BankTableModel

    print(f"{'entries':>9} {'proxy sort ms':>14} {'keyed sort ms':>14} {'speed-up':>9}")
    for r in sizes:
        rng = np.random.default_rng(r)
        # a dense bank: every (y', y) pair of r/2 responses rated, counts skewed to the diagonal
        half = max(2, r // 2)
        entries = [BankEntry(f"model response {i}", f"user response {j}", int(rng.integers(1, 40)),
                             float(rng.random()), i == j) for i in range(half) for j in range(half)]

        def timed(proxy_cls) -> float:
            model = BankTableModel()
            model.set_entries(entries)
            proxy = proxy_cls()
            proxy.setSortRole(SORT_ROLE)
            proxy.setSourceModel(model)
            t0 = time.perf_counter()
            for column, order in ((COL_COUNT, Qt.DescendingOrder), (COL_MODEL, Qt.AscendingOrder)):
                proxy.sort(column, order)
            return (time.perf_counter() - t0) / 2

        base = timed(QSortFilterProxyModel)
        mine = timed(BankFilterProxy)
        print(f"{len(entries):>9} {base * 1e3:>14.1f} {mine * 1e3:>14.1f} {base / mine:>8.1f}x")


if __name__ == "__main__":
    raise SystemExit(main())
