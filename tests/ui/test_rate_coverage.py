"""The Rate view's coverage-driven order on the real window and the real model: the queue is ranked
neediest first by the engine's rule, ranked again after each rating, a typed query stays first, and
switching the order off keeps the queue as it is."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt

from cm_desktop.cm.engine import CMEngine
from cm_desktop.ui.resource_files import SAMPLE_PROFILE_NAME

RESPONSES = ["alarm", "music", "cooking", "weather"]
SEEDED = [("wake me up at six", "alarm", "alarm"), ("set an alarm for eight", "alarm", "alarm"),
          ("play some jazz", "music", "music"), ("put on my playlist", "music", "music")]
QUERIES = ["wake me up at seven", "play a song by queen", "how do I bake bread",
           "is it going to rain tomorrow", "an alarm with music at six", "boil an egg",
           "set an alarm for nine", "what is the forecast", "play the radio"]


@pytest.fixture(autouse=True)
def _hashed_embedder(monkeypatch):
    # the app's torch-free embedder: the ranking's rule is the same on any encoder
    monkeypatch.setenv("CM_EMBEDDER", "hashed")


def _doubts(ctx, llama_backend, texts):
    """What the engine's rule says on the bank as it is now (a fresh engine, no window):
    text -> (need, the two answers it hesitates between)."""
    engine = CMEngine(llama_backend, ctx.bank, "Moods", strategy="vanilla")
    doubt = engine.coverage_doubt(texts)
    return {t: (float(need), (engine.responses[a], engine.responses[b]))
            for t, need, (a, b) in zip(texts, doubt.need, doubt.between)}


def _needs(ctx, llama_backend, texts):
    return {t: need for t, (need, _) in _doubts(ctx, llama_backend, texts).items()}


def _seeded_window(app_window, llama_backend, qtbot):
    """The window on the Moods profile with the seeded ratings and the real model loaded."""
    ctx, window = app_window("Moods", responses=RESPONSES)
    for x, ym, yu in SEEDED:
        ctx.bank.add_rating("Moods", x, ym, yu)
    ctx.inference.use_backend(llama_backend)
    qtbot.waitUntil(lambda: ctx.inference.fingerprint is not None, timeout=10_000)
    return ctx, window


def _ranked_by(rate, needs):
    """The queue's order is the needs' order, neediest first."""
    got = [needs[it.text] for it in rate.queue]
    return got == sorted(got, reverse=True)


@pytest.mark.slow
def test_the_queue_is_ranked_by_the_bank_and_again_after_a_rating(app_window, llama_backend, qtbot,
                                                                  tmp_path, model_wait_ms):
    ctx, window = _seeded_window(app_window, llama_backend, qtbot)
    rate = window.rate_view
    window.tabs.setCurrentWidget(rate)
    assert rate.coverage_box.isChecked()            # the default order
    dataset = tmp_path / "queries.jsonl"
    dataset.write_text("".join(json.dumps({"input": q, "label": "alarm"}) + "\n" for q in QUERIES))
    rate.open_dataset(str(dataset))

    # the first query is the dataset's first (nothing was ranked yet); the rest is ranked
    qtbot.waitUntil(lambda: bool(rate.queue) and all(it.need is not None for it in rate.queue),
                    timeout=model_wait_ms)
    assert rate.current.text == QUERIES[0]
    doubts = _doubts(ctx, llama_backend, QUERIES[1:])
    needs = {t: need for t, (need, _) in doubts.items()}
    assert {it.text: it.need for it in rate.queue} == pytest.approx(needs, abs=1e-6)
    assert {it.text: it.between for it in rate.queue} == {t: b for t, (_, b) in doubts.items()}
    assert _ranked_by(rate, needs)
    assert len(set(needs.values())) > 1             # an order, not a tie
    assert rate.doubt_label.text() == ""            # the first query was asked unranked

    # a rating changes the bank: the queue is ranked again by the new bank
    qtbot.waitUntil(lambda: rate.current.trace is not None, timeout=model_wait_ms)
    qtbot.keyClicks(rate.filter_edit, "cooking")
    qtbot.keyClick(rate.filter_edit, Qt.Key_Return)
    qtbot.waitUntil(lambda: ctx.bank.rating_count("Moods") == len(SEEDED) + 1, timeout=10_000)
    # the next query is the neediest, and the card says which two answers the bank weighed
    head = max(needs, key=needs.get)
    assert rate.current.text == head
    first, second = doubts[head][1]
    assert rate.doubt_label.text() == f"Asked now: your ratings leave it between “{first}” and “{second}”."
    assert first != second and {first, second} <= set(RESPONSES)
    after = _needs(ctx, llama_backend, [it.text for it in rate.queue])
    assert after != pytest.approx({t: needs[t] for t in after}, abs=1e-6)
    qtbot.waitUntil(lambda: {it.text: it.need for it in rate.queue} == pytest.approx(after, abs=1e-6),
                    timeout=model_wait_ms)
    assert _ranked_by(rate, after)

    # a typed query is asked before the ranked ones, and stays first through a ranking
    rate.add_edit.setText("turn the oven on")
    qtbot.keyClick(rate.add_edit, Qt.Key_Return)
    assert rate.queue[0].text == "turn the oven on"
    rate._rank_queue()
    qtbot.waitUntil(lambda: not rate._rank_running(), timeout=model_wait_ms)
    assert rate.queue[0].text == "turn the oven on"

    # the doubt was the other profile's bank's: dropped at a switch (the sample profile, no ratings
    # here, has none to tell)
    ctx.set_profile(SAMPLE_PROFILE_NAME)
    qtbot.waitUntil(lambda: ctx.profile == SAMPLE_PROFILE_NAME, timeout=5_000)
    assert rate.doubt_label.text() == "" and all(it.between is None for it in rate.queue)
    ctx.set_profile("Moods")
    qtbot.waitUntil(lambda: ctx.profile == "Moods", timeout=5_000)
    qtbot.waitUntil(lambda: all(it.need is not None for it in rate.queue if not it.pinned),
                    timeout=model_wait_ms)

    # switched off, the order stays as it is: a bank change ranks nothing; the card says no why
    rate.coverage_box.setChecked(False)
    assert rate.doubt_label.text() == ""
    order = [it.text for it in rate.queue]
    ctx.bank.add_rating("Moods", "bake me a cake", "cooking", "cooking")
    ctx.bank_changed.emit("Moods")
    assert not rate._rank_running() and [it.text for it in rate.queue] == order


@pytest.mark.slow
def test_a_ranking_that_gives_way_queues_itself_again(app_window, llama_backend, qtbot, tmp_path,
                                                      model_wait_ms, monkeypatch):
    import cm_desktop.ui.rate_view as rate_view_module

    tries = []

    class GivesWayOnce:
        """Reads as 'a proposal is waiting' on the first try's first check."""

        def __init__(self, token, worker, priority):
            tries.append(priority)
            self._first = len(tries) == 1
            self._token = token

        @property
        def cancelled(self):
            return self._first or self._token.cancelled

    monkeypatch.setattr(rate_view_module, "GiveWay", GivesWayOnce)
    ctx, window = _seeded_window(app_window, llama_backend, qtbot)
    rate = window.rate_view
    rate.load_queries([rate_view_module.Query(q) for q in QUERIES])
    qtbot.waitUntil(lambda: bool(rate.queue) and all(it.need is not None for it in rate.queue),
                    timeout=model_wait_ms)
    assert len(tries) >= 2 and tries[0] == rate_view_module.Priority.NORMAL
    assert _ranked_by(rate, _needs(ctx, llama_backend, [it.text for it in rate.queue]))
