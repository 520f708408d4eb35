"""A painted heatmap of a profile's transition matrix (rows: model response y', cols: user response y).

Like the paper's figure: each row is normalised by that model response's rating count, so a row
shows where the model's answer y' really goes for this user. Painting goes through a QImage with one
pixel per cell, scaled once by QPainter (no per-cell drawing), so a 150 x 150 response set stays
cheap to repaint while zooming or scrolling. Raw model responses (outside the response set) are
listed as extra rows below a gap, in the order the bank gives them.
"""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontInfo, QFontMetrics, QImage, QPainter, QWheelEvent
from PySide6.QtWidgets import QToolTip, QWidget

# Stops of a light-to-dark blue ramp (position, r, g, b); zero cells stay near-white so an empty
# bank entry and a rare one are told apart at a glance.
_RAMP = np.array(
    [
        (0.0, 239, 243, 255),
        (0.25, 189, 215, 238),
        (0.5, 107, 174, 214),
        (0.75, 33, 113, 181),
        (1.0, 8, 48, 107),
    ],
    dtype=np.float64,
)
_EMPTY_RGB = (250, 250, 250)
_GAP_RGB = (255, 255, 255)

MIN_CELL = 2
MAX_CELL = 48
_LABEL_MIN_CELL = 9  # below this a label cannot be read, so none is drawn
_LABEL_MAX_PX = 180


def colour_values(counts: np.ndarray, *, log_scale: bool = False) -> np.ndarray:
    """Row-normalised intensity in [0, 1] for each cell; NaN where the row has no ratings."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.size == 0:
        return counts.copy()
    if log_scale:
        num = np.log1p(counts)
        den = np.log1p(counts.sum(axis=1, keepdims=True))
    else:
        num = counts
        den = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return values


def _rgb(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(rows, cols, 3) uint8 colours for intensities; cells with no ratings get the empty colour."""
    flat = np.nan_to_num(values, nan=0.0).clip(0.0, 1.0)
    out = np.empty(values.shape + (3,), dtype=np.float64)
    for channel in range(3):
        out[..., channel] = np.interp(flat, _RAMP[:, 0], _RAMP[:, channel + 1])
    out[np.asarray(counts) <= 0] = _EMPTY_RGB
    return out.round().astype(np.uint8)


def tooltip_markup(text: str) -> str:
    """A tooltip showing `text` literally: QToolTip guesses rich text from the string, so bank text
    such as `<img src=...>` is escaped inside an explicit rich-text wrapper."""
    return "<p style='white-space:pre'>" + html.escape(text) + "</p>"


class TransitionHeatmap(QWidget):
    """Paints a TransitionMatrix; `cell_at(point)` and `tooltip_for(y', y)` are the hover logic."""

    cell_size_changed = Signal(int)
    cell_clicked = Signal(str, str)  # model response, user response

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setAttribute(Qt.WA_OpaquePaintEvent, False)
        self._responses: list[str] = []
        self._raw_responses: list[str] = []
        self._counts = np.zeros((0, 0), dtype=np.int64)  # member rows, then raw rows
        self._log_scale = False
        self._cell = 12  # labels readable (>= _LABEL_MIN_CELL); zoom out for an overview
        self._image: QImage | None = None
        self._row_labels_px = 0
        self._col_labels_px = 0
        self._elided_cache: tuple[list[str], list[str]] | None = None  # cleared by _relayout

    # ----- data -------------------------------------------------------------------------------
    def set_matrix(self, matrix) -> None:
        """Show `matrix` (a bank_store TransitionMatrix, or None to clear)."""
        if matrix is None:
            self._responses, self._raw_responses = [], []
            self._counts = np.zeros((0, 0), dtype=np.int64)
        else:
            self._responses = [str(r) for r in matrix.responses]
            self._raw_responses = [str(r) for r in matrix.raw_model_responses]
            n = len(self._responses)
            member = np.asarray(matrix.counts, dtype=np.int64).reshape(n, n)
            raw = np.asarray(matrix.raw_counts, dtype=np.int64).reshape(len(self._raw_responses), n)
            self._counts = np.vstack([member, raw]) if len(raw) else member
        self._rebuild()

    def set_log_scale(self, on: bool) -> None:
        if bool(on) != self._log_scale:
            self._log_scale = bool(on)
            self._rebuild()

    def log_scale(self) -> bool:
        return self._log_scale

    def set_cell_size(self, px: int) -> None:
        px = max(MIN_CELL, min(MAX_CELL, int(px)))
        if px != self._cell:
            self._cell = px
            self._relayout()
            self.cell_size_changed.emit(px)

    def cell_size(self) -> int:
        return self._cell

    def zoom(self, steps: int) -> None:
        factor = 1.25 ** steps
        new = round(self._cell * factor)
        if new == self._cell:
            new += 1 if steps > 0 else -1
        self.set_cell_size(new)

    def row_labels(self) -> list[str]:
        return list(self._responses) + list(self._raw_responses)

    def col_labels(self) -> list[str]:
        return list(self._responses)

    # ----- geometry ---------------------------------------------------------------------------
    def _gap_rows(self) -> int:
        return 1 if self._raw_responses else 0

    def _show_labels(self) -> bool:
        return self._cell >= _LABEL_MIN_CELL

    def _relayout(self) -> None:
        self._elided_cache = None
        fm = QFontMetrics(self._label_font())
        if self._show_labels() and self._responses:
            widest = max(fm.horizontalAdvance(s) for s in self.row_labels())
            self._row_labels_px = min(_LABEL_MAX_PX, widest) + 8
            widest_col = max(fm.horizontalAdvance(s) for s in self._responses)
            self._col_labels_px = min(_LABEL_MAX_PX, widest_col) + 8
        else:
            self._row_labels_px = 0
            self._col_labels_px = 0
        self.updateGeometry()
        self.resize(self.sizeHint())
        self.update()

    def grid_rect(self) -> QRect:
        """Where the cells are drawn, in widget coordinates."""
        rows = len(self._responses) + self._gap_rows() + len(self._raw_responses)
        cols = len(self._responses)
        return QRect(self._row_labels_px, self._col_labels_px, cols * self._cell, rows * self._cell)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        g = self.grid_rect()
        return QSize(max(g.right() + 2, 40), max(g.bottom() + 2, 40))

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return self.sizeHint()

    def cell_at(self, point: QPoint) -> tuple[str, str] | None:
        """(model response, user response) under `point`, or None off the grid / on the gap row."""
        g = self.grid_rect()
        if not self._responses or not g.contains(point):
            return None
        col = (point.x() - g.left()) // self._cell
        row = (point.y() - g.top()) // self._cell
        n = len(self._responses)
        if col >= n:
            return None
        if row < n:
            return self._responses[row], self._responses[col]
        raw_row = row - n - self._gap_rows()
        if 0 <= raw_row < len(self._raw_responses):
            return self._raw_responses[raw_row], self._responses[col]
        return None

    def cell_centre(self, model_response: str, user_response: str) -> QPoint:
        """Widget point at the centre of the (y', y) cell (what a user would hover)."""
        row = self._row_index(model_response)
        col = self._responses.index(user_response)
        g = self.grid_rect()
        return QPoint(g.left() + col * self._cell + self._cell // 2, g.top() + row * self._cell + self._cell // 2)

    def _row_index(self, model_response: str) -> int:
        if model_response in self._responses:
            return self._responses.index(model_response)
        return len(self._responses) + self._gap_rows() + self._raw_responses.index(model_response)

    def _count_row(self, model_response: str) -> np.ndarray:
        if model_response in self._responses:
            return self._counts[self._responses.index(model_response)]
        return self._counts[len(self._responses) + self._raw_responses.index(model_response)]

    def count(self, model_response: str, user_response: str) -> int:
        return int(self._count_row(model_response)[self._responses.index(user_response)])

    def tooltip_for(self, model_response: str, user_response: str) -> str:
        row = self._count_row(model_response)
        n = int(row[self._responses.index(user_response)])
        total = int(row.sum())
        share = (100.0 * n / total) if total else 0.0
        unit = "rating" if n == 1 else "ratings"
        return f"model said {model_response} → you meant {user_response}: {n} {unit} ({share:.0f}%)"

    # ----- painting ---------------------------------------------------------------------------
    def _rebuild(self) -> None:
        if self._counts.size == 0:
            self._image = None
        else:
            values = colour_values(self._counts, log_scale=self._log_scale)
            rgb = _rgb(values, self._counts)
            n = len(self._responses)
            if self._raw_responses:
                gap = np.empty((1, n, 3), dtype=np.uint8)
                gap[...] = _GAP_RGB
                rgb = np.vstack([rgb[:n], gap, rgb[n:]])
            rows, cols = rgb.shape[:2]
            argb = np.empty((rows, cols, 4), dtype=np.uint8)
            # QImage.Format_RGB32 is 0xffRRGGBB per pixel: little-endian bytes are B, G, R, A.
            argb[..., 0] = rgb[..., 2]
            argb[..., 1] = rgb[..., 1]
            argb[..., 2] = rgb[..., 0]
            argb[..., 3] = 255
            buf = np.ascontiguousarray(argb)
            # copy() detaches the image from the numpy buffer, which is freed when this returns
            self._image = QImage(buf.data, cols, rows, cols * 4, QImage.Format_RGB32).copy()
        self._relayout()

    def image(self) -> QImage | None:
        """The one-pixel-per-cell image (tests read colours from it)."""
        return self._image

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.fillRect(event.rect(), self.palette().base())
        if self._image is None:
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(self.rect(), Qt.AlignCenter, "No ratings yet")
            painter.end()
            return
        g = self.grid_rect()
        painter.setRenderHint(QPainter.SmoothPixmapTransform, False)
        painter.drawImage(g, self._image)
        painter.setPen(QColor(0, 0, 0, 60))  # a frame: empty cells are near-white on white
        painter.drawRect(g.adjusted(0, 0, -1, -1))
        if self._show_labels():
            self._paint_labels(painter, g, event.rect())
        # the diagonal (y' == y) outlined faintly: it is where the model and the user agree
        if self._cell >= 6:
            painter.setPen(QColor(0, 0, 0, 40))
            n = len(self._responses)
            painter.drawLine(g.left(), g.top(), g.left() + n * self._cell, g.top() + n * self._cell)
        painter.end()

    def _label_font(self) -> QFont:
        """The widget's font, shrunk so one label fits in one cell's height."""
        font = QFont(self.font())
        size = QFontInfo(font).pixelSize()
        if size > self._cell - 1:
            font.setPixelSize(max(7, self._cell - 1))
        return font

    def _elided(self) -> tuple[list[str], list[str]]:
        """Row and column labels cut to the label margins, computed once per layout."""
        if self._elided_cache is None:
            fm = QFontMetrics(self._label_font())
            rows = [fm.elidedText(t, Qt.ElideRight, self._row_labels_px - 8) for t in self.row_labels()]
            cols = [fm.elidedText(t, Qt.ElideRight, self._col_labels_px - 8) for t in self._responses]
            self._elided_cache = (rows, cols)
        return self._elided_cache

    def _paint_labels(self, painter: QPainter, g: QRect, clip: QRect) -> None:
        """Only the labels inside `clip` are drawn: a scrolled big matrix repaints a strip."""
        row_texts, col_texts = self._elided()
        painter.setPen(self.palette().text().color())
        painter.setFont(self._label_font())
        # Labels are drawn with drawText on plain strings: nothing from the bank is parsed as markup.
        n = len(self._responses)
        if clip.left() < self._row_labels_px:
            for i, text in enumerate(row_texts):
                row = i if i < n else i + self._gap_rows()
                top = g.top() + row * self._cell
                if top + self._cell < clip.top() or top > clip.bottom():
                    continue
                painter.drawText(QRect(0, top, self._row_labels_px - 4, self._cell),
                                 Qt.AlignRight | Qt.AlignVCenter, text)
        if clip.top() < self._col_labels_px:
            painter.save()
            painter.translate(g.left(), self._col_labels_px - 4)
            painter.rotate(-90)
            for j, text in enumerate(col_texts):
                left = g.left() + j * self._cell
                if left + self._cell < clip.left() or left > clip.right():
                    continue
                painter.drawText(QRect(0, j * self._cell, self._col_labels_px - 4, self._cell),
                                 Qt.AlignLeft | Qt.AlignVCenter, text)
            painter.restore()

    # ----- interaction ------------------------------------------------------------------------
    def event(self, event) -> bool:
        if event.type() == QEvent.ToolTip:
            cell = self.cell_at(event.pos())
            if cell is None:
                QToolTip.hideText()
                event.ignore()
            else:
                QToolTip.showText(event.globalPos(), tooltip_markup(self.tooltip_for(*cell)), self)
            return True
        return super().event(event)

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.FontChange:
            self._relayout()
        super().changeEvent(event)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        cell = self.cell_at(event.position().toPoint())
        if cell is not None and event.button() == Qt.LeftButton:
            self.cell_clicked.emit(*cell)
            event.accept()
            return
        super().mousePressEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        # Ctrl+wheel zooms (as in image viewers); a plain wheel scrolls the surrounding area.
        if event.modifiers() & Qt.ControlModifier:
            steps = 1 if event.angleDelta().y() > 0 else -1
            self.zoom(steps)
            event.accept()
        else:
            super().wheelEvent(event)
