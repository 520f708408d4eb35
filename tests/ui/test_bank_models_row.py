"""The Bank view's ratings-by-model row and its Rebase button, in the real window on the real
embedded Gemma: another model's ratings are counted as such, Rebase asks the current model about
each of their queries in the background, and afterwards every rating's (x, y) has a current-model
rating beside it while the old ones stay."""

from __future__ import annotations

from collections import Counter

import pytest

OTHER = "llama_cpp:another-model.gguf:123:0123456789ab"


@pytest.mark.slow
def test_ratings_by_model_and_rebase_from_the_bank_view(app_window, qtbot, llama_backend):
    # four responses keep each model pass short on a busy machine
    responses = ["card arrival", "refund request", "lost or stolen card", "exchange rate"]
    ctx, window = app_window(profile="Test", responses=responses)
    topics = [("where is my new card", responses[0]), ("I want a refund", responses[1])]
    # 20 queries: three batches of the row's 8, so a cancel can land between two of them
    rated = [(f"{x} ({i})", y) for i in range(10) for x, y in topics]
    for x, y in rated:
        ctx.bank.add_rating("Test", x, responses[2], y, fingerprint=OTHER)
    ctx.inference.use_backend(llama_backend)
    qtbot.waitUntil(lambda: ctx.inference.fingerprint == llama_backend.fingerprint, timeout=60000)
    window.tabs.setCurrentWidget(window.bank_view)
    row = window.bank_view.models_row
    row.refresh()
    qtbot.waitUntil(lambda: "20 can be rebased" in row.label.text(), timeout=60000)
    assert row.label.text().startswith("0 with the current model · 20 with other models")
    assert row.rebase_button.isEnabled()

    def new_ratings():
        return [r for r in ctx.bank.ratings("Test") if r.fingerprint == llama_backend.fingerprint]

    row.rebase_button.click()
    assert row.progress_bar.isVisible() and not row.rebase_button.isEnabled()
    # cancel once the first batch is stored; what was stored stays, the rest waits
    qtbot.waitUntil(lambda: len(new_ratings()) >= 8, timeout=900000)  # the first model pass
    row.cancel_button.click()        # loads the embedder; at load 20 on 2 cores that alone took
    qtbot.waitUntil(lambda: row.rebase_op is None, timeout=900000)    # minutes
    stopped = new_ratings()
    assert 8 <= len(stopped) < len(rated)
    assert not row.progress_bar.isVisible() and not row.cancel_button.isVisible()
    # A count read while the stopped batch was still running can already show this text with the
    # button off; the count the stop itself asks for turns it on: wait for that one.
    qtbot.waitUntil(lambda: f"{len(rated) - len(stopped)} can be rebased" in row.label.text()
                    and row.rebase_button.isEnabled(), timeout=60000)

    row.rebase_button.click()        # resumes: only what is left is asked
    qtbot.waitUntil(lambda: row.rebase_op is None and row.label.text().startswith("20 with the"),
                    timeout=900000)
    ratings = ctx.bank.ratings("Test")
    old = [r for r in ratings if r.fingerprint == OTHER]
    new = [r for r in ratings if r.fingerprint == llama_backend.fingerprint]
    assert len(old) == 20 and len(new) == 20
    # each new rating carries the model's distribution, as a rating made in the Rate view does
    assert set(ctx.bank.model_distributions("Test")[0]) == {r.id for r in new}
    assert Counter((r.instance, r.user_response) for r in new) == Counter(rated)  # each once
    assert {r.id for r in stopped} <= {r.id for r in new}      # the first run's answers kept
    assert not row.rebase_button.isEnabled()          # nothing left to rebase
    assert "20 with other models (20 rebased)" in row.label.text()


def test_the_row_text_names_current_other_rebased_and_paper_ratings():
    from bank_store.rebase import ModelCounts
    from cm_desktop.ui.bank_models_row import counts_text

    assert counts_text(ModelCounts(), None) == "the current model is not loaded yet"
    text = counts_text(ModelCounts(current=2, other=5, by_model={OTHER: 4}, to_rebase=1,
                                   without_instance=1, rebased=2), OTHER)
    assert text == ("2 with the current model · 5 with other models (2 rebased, 1 can be "
                    "rebased) · 1 from a paper file (no query: kept, not used for counts)")
