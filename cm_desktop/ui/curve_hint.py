"""The Rate view's hint that the user's curve has flattened (`UserCurve.flattened`): more ratings
of the kind being given change little, so it offers the coverage-driven order, which asks where
the bank knows least (`cm.coverage`).

The curve is the Bank view's (`cm.user_curve`, cached in the bank): after each rating only the new
rating is evaluated, in a background bank query. Bursts of ratings are coalesced, and a hidden
view only notes that it is stale.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QPushButton, QWidget

from cm_desktop.cm.user_curve import FLAT_SPAN, UserCurve, compute_user_curve
from cm_desktop.ui.ops import BankQuery
from cm_desktop.ui.plain import plain_label, set_plain

FLAT_TEXT = f"Your last {FLAT_SPAN} ratings changed little; rate where the bank knows least."


class CurveHint(QFrame):
    """Hidden until the curve is flat; `use_coverage` is emitted by its button."""

    use_coverage = Signal()
    curve_loaded = Signal(object)      # the UserCurve it judged, or the exception

    def __init__(self, ctx, coverage_on, parent: QWidget | None = None) -> None:
        """coverage_on: a callable saying whether the coverage order is already on."""
        super().__init__(parent)
        self.ctx = ctx
        self._coverage_on = coverage_on
        self.curve: UserCurve | None = None
        self._op = None
        self._stale = True
        self.setObjectName("curveHint")
        self.label = plain_label("")
        self.button = QPushButton("Use coverage order")
        self.button.setToolTip("Ask first about the queries the bank knows least about.")
        self.button.clicked.connect(self.use_coverage.emit)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(300)
        self._timer.timeout.connect(self.refresh)
        ctx.bank_changed.connect(lambda profile: self.schedule() if profile == ctx.profile else None)
        ctx.profile_changed.connect(lambda _name: self.schedule())
        self.setVisible(False)

    def schedule(self) -> None:
        parent = self.parentWidget()
        if parent is None or parent.isVisible():
            self._timer.start()
        else:
            self._stale = True

    def refresh_if_stale(self) -> None:
        """Called when the Rate view is shown."""
        if self._stale:
            self.refresh()

    def refresh(self) -> None:
        self._timer.stop()
        self._stale = False
        profile = self.ctx.profile
        if not profile:
            self._show(None)
            return
        # Below 2 x FLAT_SPAN ratings nothing is computed (nor the embedder loaded): the hint
        # cannot apply yet.
        self._op = (BankQuery(self, lambda job: compute_user_curve(
                        job.bank, profile, cancel=job.cancel, min_rated=2 * FLAT_SPAN))
                    .supersedes((id(self), "curve"))
                    .labelled("Your learning curve")
                    .success(lambda curve: self._loaded(profile, curve))
                    .failure(self._failed)
                    .run())

    def is_loading(self) -> bool:
        return self._timer.isActive() or (self._op is not None and not self._op.done)

    def _loaded(self, profile: str, curve: UserCurve | None) -> None:
        if profile != self.ctx.profile:
            return
        self._show(curve)
        self.curve_loaded.emit(curve)

    def _failed(self, exc: BaseException) -> None:
        # only a hint: without the curve there is nothing to say
        self._show(None)
        self.curve_loaded.emit(exc)

    def coverage_changed(self) -> None:
        self._show(self.curve)

    def _show(self, curve: UserCurve | None) -> None:
        self.curve = curve
        flat = curve is not None and curve.flattened()
        on = bool(self._coverage_on())
        set_plain(self.label, FLAT_TEXT + (" The coverage order is on: it asks there first."
                                           if on else ""))
        self.button.setVisible(not on)
        self.setVisible(flat)
