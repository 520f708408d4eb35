"""The user's own learning curve on the real window: the Bank view's plot appears and grows by one
evaluated point per new rating (old points are read from the cache, not recomputed), and the Rate
view says when the curve has flattened and offers the coverage order."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QColor

from cm_desktop.ui.curve_hint import FLAT_TEXT
from cm_desktop.ui.rating_commands import AddRatingCommand
from cm_desktop.ui.resource_files import sample_responses
from cm_desktop.ui.user_curve_plot import CM_COLOUR, MODEL_COLOUR

R = list(sample_responses())


@pytest.fixture(autouse=True)
def _hashed_embedder(monkeypatch):
    # the app's torch-free embedder: these tests are about the views, not MiniLM
    monkeypatch.setenv("CM_EMBEDDER", "hashed")


def _flat(n: int):
    """The model is right every time: nothing for the bank to add."""
    return [(f"question number {i} about {R[i % 7]}", R[i % 7], R[i % 7]) for i in range(n)]


def _rising():
    """50 new meanings the model gets wrong, then the same 50 questions again: CM has learnt them.
    The questions do not name their meaning (the response-text prior would know it at once)."""
    qs = [(f"here is my question number {i}", R[0], R[i + 1]) for i in range(50)]
    return qs + qs


def _seed(ctx, ratings, profile="Test"):
    for x, ym, yu in ratings:
        ctx.bank.add_rating(profile, x, ym, yu)


def _has_colour(image, colour: QColor, tolerance: int = 40) -> bool:
    """Some pixel close to `colour` (antialiasing blends the line's edges)."""
    arr = np.frombuffer(image.constBits(), dtype=np.uint8).reshape(image.height(), image.bytesPerLine())
    arr = arr[:, :image.width() * 4].reshape(image.height(), image.width(), 4)   # BGRA
    want = np.array([colour.blue(), colour.green(), colour.red()])
    return bool((np.abs(arr[..., :3].astype(int) - want).max(axis=2) <= tolerance).any())


def test_the_bank_view_plots_the_curve_and_a_new_rating_adds_one_point(app_window, qtbot):
    from PySide6.QtGui import QImage

    ctx, window = app_window("Test")
    _seed(ctx, _rising()[:60])
    view = window.bank_view
    panel = view.curve_panel
    window.tabs.setCurrentWidget(view)
    qtbot.waitUntil(lambda: panel.curve is not None and len(panel.curve) == 60, timeout=60000)
    assert (panel.curve.reused, panel.curve.computed) == (0, 60)
    x, model, cm = panel.plot.series()
    assert list(x) == list(range(1, 61)) and len(model) == len(cm) == 60
    assert panel.plot.isVisible() and panel.plot.height() >= 100
    image = panel.plot.grab().toImage().convertToFormat(QImage.Format_ARGB32)
    assert _has_colour(image, CM_COLOUR) and _has_colour(image, MODEL_COLOUR)
    assert panel.summary.text().startswith("Held out, over your last 25 of 60 ratings")

    # one more rating through the Rate view's own undoable write
    x_new, ym, yu = _rising()[60]
    ctx.undo_stack().push(AddRatingCommand(ctx, "Test", x_new, ym, yu, parent_widget=window))
    qtbot.waitUntil(lambda: panel.curve is not None and len(panel.curve) == 61, timeout=60000)
    assert (panel.curve.reused, panel.curve.computed) == (60, 1)
    assert len(panel.plot.series()[0]) == 61
    # the question was rated before: CM gets it right where the model does not
    assert panel.curve.cm_agrees[-1] and not panel.curve.model_agrees[-1]

    ctx.undo_stack().undo()
    qtbot.waitUntil(lambda: panel.curve is not None and len(panel.curve) == 60, timeout=60000)
    assert (panel.curve.reused, panel.curve.computed) == (60, 0)


def test_the_rate_view_says_when_the_curve_has_flattened_and_offers_coverage(app_window, qtbot):
    ctx, window = app_window("Test")
    ctx.settings.coverage_order = False
    rate = window.rate_view
    rate.coverage_box.setChecked(False)
    hint = rate.curve_hint
    _seed(ctx, _flat(100))
    ctx.bank_changed.emit("Test")        # as every write announces itself
    qtbot.waitUntil(lambda: hint.curve is not None and len(hint.curve) == 100, timeout=60000)
    assert hint.curve.flattened()
    assert hint.isVisible() and hint.label.text() == FLAT_TEXT
    assert hint.button.isVisible()
    hint.button.click()
    assert rate.coverage_box.isChecked() and ctx.settings.coverage_order
    assert hint.isVisible() and not hint.button.isVisible()
    assert "coverage order is on" in hint.label.text()


def test_no_flattened_hint_while_the_bank_still_pays_off(app_window, qtbot):
    ctx, window = app_window("Test")
    hint = window.rate_view.curve_hint
    _seed(ctx, _rising())
    ctx.bank_changed.emit("Test")
    qtbot.waitUntil(lambda: hint.curve is not None and len(hint.curve) == 100, timeout=60000)
    gain, _ = hint.curve.recent_change()
    assert gain > 0.5
    assert not hint.isVisible()


def test_no_curve_is_computed_for_the_hint_below_100_ratings(app_window, qtbot):
    ctx, window = app_window("Test")
    hint = window.rate_view.curve_hint
    _seed(ctx, _flat(99))
    loaded = []
    hint.curve_loaded.connect(loaded.append)
    ctx.bank_changed.emit("Test")
    qtbot.waitUntil(lambda: bool(loaded), timeout=60000)
    assert loaded == [None] and not hint.isVisible()
    from cm_desktop.cm.retrieval import default_embedder
    from cm_desktop.cm.user_curve import curve_rule

    assert ctx.bank.curve_rows("Test", curve_rule(default_embedder().name, R)) == []
