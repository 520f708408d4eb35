"""The user's own learning curve, painted: held-out agreement of the raw model and of CM as the
bank grew (`cm.user_curve`), and the panel that loads it in the background.

`UserCurvePlot` only paints what it is given (QPainter, no plotting library in the app).
`UserCurvePanel` owns the computation for one view: a bank query per load, superseding the older
one; the curve is cached in the bank, so a reload evaluates only ratings that are new.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

from cm_desktop.cm.user_curve import WINDOW, UserCurve, compute_user_curve
from cm_desktop.ui.ops import BankQuery
from cm_desktop.ui.plain import plain_label, set_plain

MODEL_COLOUR = QColor(214, 120, 40)     # orange: the raw model
CM_COLOUR = QColor(33, 113, 181)        # the heatmap's blue: CM with the bank


def _pct(x: float) -> str:
    return f"{100.0 * float(x):.0f}%"


def curve_summary(curve: UserCurve, window: int = WINDOW) -> str:
    """One line under the plot: the latest windowed figures and what they are over."""
    n = len(curve)
    if n == 0:
        return ("No ratings of your own yet: rate in the Rate view and the curve starts here."
                if curve.total_ratings == 0 else
                "No ratings of your own yet (the bank's ratings were imported or estimated).")
    _, model, cm = curve.windowed(window)
    over = f"your last {window} of {n} ratings" if n > window else \
        f"your {n} rating{'s' if n != 1 else ''}"
    return f"Held out, over {over}: raw model {_pct(model[-1])} · with CM {_pct(cm[-1])}"


class UserCurvePlot(QWidget):
    """Agreement (0-100%) against the number of the user's ratings: one line per method."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.curve: UserCurve | None = None
        self.message = "computing…"
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setMinimumHeight(100)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        return QSize(480, 120)

    def set_curve(self, curve: UserCurve | None, message: str = "") -> None:
        self.curve, self.message = curve, message
        self.update()

    def series(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What is drawn: (x, model, cm), empty without a curve."""
        if self.curve is None:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        return self.curve.windowed(WINDOW)

    def plot_rect(self) -> QRectF:
        fm = QFontMetrics(self.font())
        left = fm.horizontalAdvance("100%") + 8
        legend = fm.horizontalAdvance("raw model") + 40
        return QRectF(left, fm.height() // 2 + 2, max(self.width() - left - legend - 8, 40),
                      max(self.height() - 2 * fm.height() - 6, 30))

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        pal = self.palette()
        painter.fillRect(self.rect(), pal.base())
        fm = QFontMetrics(self.font())
        rect = self.plot_rect()
        text_colour = pal.text().color()
        muted = pal.placeholderText().color()
        # axes and grid: 0, 50, 100%
        for frac in (0.0, 0.5, 1.0):
            y = rect.bottom() - frac * rect.height()
            painter.setPen(QPen(QColor(0, 0, 0, 60 if frac == 0.0 else 25), 1))
            painter.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
            painter.setPen(muted)
            label = f"{int(frac * 100)}%"
            painter.drawText(QPointF(rect.left() - fm.horizontalAdvance(label) - 4,
                                     y + fm.ascent() / 2 - 1), label)
        x, model, cm = self.series()
        n = len(x)
        if n == 0:
            painter.setPen(muted)
            painter.drawText(rect, Qt.AlignCenter | Qt.TextWordWrap, self.message)
            return
        x_max = max(n, 2)

        def point(i: int, v: float) -> QPointF:
            return QPointF(rect.left() + (x[i] - 1) / (x_max - 1) * rect.width(),
                           rect.bottom() - float(v) * rect.height())

        for values, colour, style in ((model, MODEL_COLOUR, Qt.DashLine), (cm, CM_COLOUR, Qt.SolidLine)):
            path = QPainterPath(point(0, values[0]))
            for i in range(1, n):
                path.lineTo(point(i, values[i]))
            painter.setPen(QPen(colour, 2, style))
            painter.drawPath(path)
            painter.setBrush(colour)
            painter.drawEllipse(point(n - 1, values[-1]), 2.5, 2.5)
            painter.setBrush(Qt.NoBrush)
        # x axis: first and last rating numbers
        painter.setPen(muted)
        base = rect.bottom() + fm.ascent() + 2
        painter.drawText(QPointF(rect.left(), base), "1")
        last = f"{n} ratings"
        painter.drawText(QPointF(rect.right() - fm.horizontalAdvance(last), base), last)
        # legend at the right, each entry beside its line's last value
        lx = rect.right() + 10
        for label, colour, style, y in (("with CM", CM_COLOUR, Qt.SolidLine, rect.top() + fm.height()),
                                        ("raw model", MODEL_COLOUR, Qt.DashLine,
                                         rect.top() + 2.2 * fm.height())):
            painter.setPen(QPen(colour, 2, style))
            painter.drawLine(QPointF(lx, y - fm.ascent() / 2 + 1), QPointF(lx + 18, y - fm.ascent() / 2 + 1))
            painter.setPen(text_colour)
            painter.drawText(QPointF(lx + 24, y), label)


class UserCurvePanel(QWidget):
    """The plot and its one-line summary; `load(profile)` computes in the background."""

    curve_loaded = Signal(object)     # the UserCurve shown, or the exception

    def __init__(self, ctx, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.curve: UserCurve | None = None   # None while a load runs
        self._profile: str | None = None      # whose curve the plot shows
        self._op = None
        self.plot = UserCurvePlot(self)
        self.summary = plain_label("", wrap=True)
        self.summary.setObjectName("muted")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.summary)

    def load(self, profile: str | None) -> None:
        """Show `profile`'s curve (None: nothing); cached points are read, new ones evaluated."""
        self.curve = None
        if self._op is not None and not self._op.done:
            self._op.cancel()
        if not profile:
            self._profile = None
            self.plot.set_curve(None, "No profile selected")
            set_plain(self.summary, "")
            return
        if profile != self._profile:      # the same profile's curve stays up until the new one
            self._profile = profile
            self.plot.set_curve(None, "computing…")
            set_plain(self.summary, "")
        self._op = (BankQuery(self, lambda job: compute_user_curve(job.bank, profile, cancel=job.cancel))
                    .supersedes((id(self), "curve"))
                    .labelled("Your learning curve")
                    .success(self._loaded)
                    .failure(self._failed)
                    .run())

    def is_loading(self) -> bool:
        return self._op is not None and not self._op.done

    def _loaded(self, curve: UserCurve) -> None:
        self.curve = curve
        self.plot.set_curve(curve, curve_summary(curve) if len(curve) == 0 else "")
        set_plain(self.summary, curve_summary(curve))
        self.curve_loaded.emit(curve)

    def _failed(self, exc: BaseException) -> None:
        # Not worth a dialog: the rest of the view is fine; say why in place.
        self.plot.set_curve(None, f"not available ({type(exc).__name__}: {exc})")
        set_plain(self.summary, "")
        self.curve_loaded.emit(exc)
