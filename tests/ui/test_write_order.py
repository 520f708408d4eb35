"""Bank writes from every view go through one write queue: fired as fast as a person never could,
rate / delete / undo / redo leave the bank exactly as the same actions do one at a time."""

from __future__ import annotations

import random
import sqlite3
from collections import Counter

from PySide6.QtWidgets import QApplication

from cm_desktop.cm.engine import Trace
from cm_desktop.ui.background_op import live_ops
from cm_desktop.ui.rate_queue import QueueItem
from cm_desktop.datasets import Query

RESPONSES = ["yes", "no", "maybe"]
PAIRS = [(a, b) for a in RESPONSES for b in RESPONSES]
N_ACTIONS = 200


def _actions(seed: int) -> list[tuple]:
    rng = random.Random(seed)
    actions = []
    for i in range(N_ACTIONS):
        kind = rng.choices(["rate", "delete", "undo", "redo"], weights=[4, 2, 3, 2])[0]
        if kind == "rate":
            actions.append(("rate", f"query number {i}", rng.choice(RESPONSES), rng.choice(RESPONSES)))
        elif kind == "delete":
            actions.append(("delete", tuple(rng.sample(PAIRS, rng.choice([1, 2])))))
        else:
            actions.append((kind,))
    return actions


def _do(window, action) -> None:
    """One action, the way the window does it: the Rate view rates its current query, the Bank
    view deletes entries, Edit ▸ Undo / Redo."""
    kind = action[0]
    if kind == "rate":
        _kind, query, model_said, meant = action
        rate = window.rate_view
        trace = Trace(query=query, strategy="vanilla", variant="none", model_response=model_said,
                      model_top=[(model_said, 1.0)], candidates=[], chosen=model_said, rule="model",
                      passes=1, seconds=0.0)
        rate.current = QueueItem(Query(query), trace=trace)
        rate.rate(meant)
    elif kind == "delete":
        window.bank_view.delete_pairs("Test", list(action[1]))
    elif kind == "undo":
        window.undo_action.trigger()
    else:
        window.redo_action.trigger()


def _writes_pending() -> bool:
    return any(op.is_write and not op.done for op in live_ops())


def _ratings(ctx) -> Counter:
    return Counter((r.instance, r.model_response, r.user_response) for r in ctx.bank.ratings("Test"))


def _group_by(path) -> dict:
    """The counts straight from the ratings table, with a connection of our own."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT r.model_response, r.user_response, COUNT(*) FROM ratings r"
                            " JOIN profiles p ON p.id = r.profile_id WHERE p.name = 'Test'"
                            " GROUP BY r.model_response, r.user_response").fetchall()
    return {(a, b): n for a, b, n in rows}


def test_rapid_rate_delete_undo_redo_equal_the_same_actions_one_by_one(app_window, qtbot, tmp_path,
                                                                     monkeypatch):
    # The Bank view's agreement figure embeds the rated queries: the app's torch-free embedder
    # keeps this test about the writes (the engine's tests cover MiniLM).
    monkeypatch.setenv("CM_EMBEDDER", "hashed")
    actions = _actions(seed=20261202)
    kinds = Counter(a[0] for a in actions)
    assert min(kinds.values()) >= 20, kinds      # every kind of action is well represented

    fast_ctx, fast = app_window("Test", responses=RESPONSES, bank_name="fast.sqlite3")
    slow_ctx, slow = app_window("Test", responses=RESPONSES, bank_name="slow.sqlite3")
    for ctx in (fast_ctx, slow_ctx):   # the same few entries to start from
        for i, (a, b) in enumerate(PAIRS):
            ctx.bank.add_rating("Test", f"seed query {i}", a, b)
    fast.tabs.setCurrentWidget(fast.bank_view)   # its reloads read while the writes run

    # As fast as it can: no waiting; now and then the event loop runs the callbacks in between.
    rng = random.Random(7)
    for action in actions:
        _do(fast, action)
        if rng.random() < 0.2:
            QApplication.processEvents()
    qtbot.waitUntil(lambda: not _writes_pending(), timeout=60_000)

    # One by one: each action's write finished before the next action.
    for action in actions:
        _do(slow, action)
        qtbot.waitUntil(lambda: not _writes_pending(), timeout=10_000)

    assert fast_ctx.undo_stack().count() == slow_ctx.undo_stack().count()
    assert fast_ctx.undo_stack().index() == slow_ctx.undo_stack().index()
    assert _ratings(fast_ctx) == _ratings(slow_ctx)
    fast_counts = fast_ctx.bank.counts("Test")
    assert fast_counts == slow_ctx.bank.counts("Test")
    assert fast_counts == _group_by(tmp_path / "fast.sqlite3") == _group_by(tmp_path / "slow.sqlite3")
    assert sum(fast_counts.values()) > 0
    assert not fast_ctx.open_error_boxes() and not slow_ctx.open_error_boxes()
    # the Bank view caught up with the last write and shows the same entries
    view = fast.bank_view
    qtbot.waitUntil(lambda: not view.is_loading() and view.snapshot is not None, timeout=10_000)
    assert {(e.model_response, e.user_response): e.count for e in view.snapshot.entries} == fast_counts
