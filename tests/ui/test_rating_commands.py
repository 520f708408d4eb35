"""The undoable rating write: the rating and the model's distribution in one transaction, and a
distribution that no longer fits the response set never costs the rating."""

from __future__ import annotations

import numpy as np

from cm_desktop.ui.rating_commands import AddRatingCommand


def test_a_rating_keeps_its_distribution_through_undo_and_redo(app_window, qtbot):
    ctx, window = app_window("Test", responses=["alarm", "music", "weather"])
    bank = ctx.bank
    ctx.undo_stack().push(AddRatingCommand(ctx, "Test", "wake me at six", "music", "alarm",
                                           parent_widget=window,
                                           model_distribution=[0.2, 0.7, 0.1]))
    qtbot.waitUntil(lambda: len(bank.model_distributions("Test")[0]) == 1, timeout=10_000)
    np.testing.assert_allclose(bank.model_distributions("Test")[1][0], [0.2, 0.7, 0.1], rtol=1e-6)
    ctx.undo_stack().undo()
    qtbot.waitUntil(lambda: bank.ratings("Test") == [], timeout=10_000)
    ctx.undo_stack().redo()
    qtbot.waitUntil(lambda: len(bank.model_distributions("Test")[0]) == 1, timeout=10_000)
    assert [r.instance for r in bank.ratings("Test")] == ["wake me at six"]


def test_a_distribution_for_another_response_set_is_dropped_and_the_rating_kept(app_window,
                                                                                qtbot):
    ctx, window = app_window("Test", responses=["alarm", "music", "weather"])
    bank = ctx.bank
    # proposed while the profile had two responses: the vector no longer says which is which
    ctx.undo_stack().push(AddRatingCommand(ctx, "Test", "play jazz", "music", "music",
                                           parent_widget=window, model_distribution=[0.3, 0.7]))
    qtbot.waitUntil(lambda: len(bank.ratings("Test")) == 1, timeout=10_000)
    assert bank.model_distributions("Test")[0] == []
    ctx.undo_stack().undo()
    qtbot.waitUntil(lambda: bank.ratings("Test") == [], timeout=10_000)
    ctx.undo_stack().redo()
    qtbot.waitUntil(lambda: len(bank.ratings("Test")) == 1, timeout=10_000)
    assert bank.model_distributions("Test")[0] == []
