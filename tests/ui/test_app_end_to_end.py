"""End to end, on the real window, the real Gemma model and a real SQLite bank:
rate five queries (keys as a user presses them) → the bank changes → undo/redo → chat on a
similar query uses the new rating (visible in Why) → 👍 → export → import into a fresh profile
shows the same bank."""

from __future__ import annotations

import json

import numpy as np

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTableView

# query -> how the user answers in the Rate view: a label typed into the filter, "enter" (accept
# the model's proposal) or "2" (the second of the top candidates)
RATINGS = {
    "When will my card arrive?": "card arrival",
    "I lost my card, what should I do?": "lost or stolen card",
    "What is the exchange fee that is charged?": "exchange charge",
    "How do I top up my account?": "enter",
    "Why was my card payment declined?": "2",
}
SIMILAR = "When is my new card going to arrive?"


def _wait_for_proposal(qtbot, rate, wait_ms):
    qtbot.waitUntil(lambda: rate.current is not None and rate.current.trace is not None, timeout=wait_ms)
    return rate.current


@pytest.mark.slow
def test_rate_chat_export_import(app_window, llama_backend, qtbot, tmp_path, model_wait_ms):
    ctx, window = app_window("Test")
    bank = ctx.bank
    ctx.inference.use_backend(llama_backend)
    qtbot.waitUntil(lambda: ctx.inference.fingerprint is not None, timeout=10_000)
    dataset = tmp_path / "queries.jsonl"
    dataset.write_text("".join(json.dumps({"input": q, "label": "ignored"}) + "\n" for q in RATINGS))

    rate = window.rate_view
    window.tabs.setCurrentWidget(rate)
    rate.open_dataset(str(dataset))
    expected, beliefs = {}, {}
    for _ in range(len(RATINGS)):
        item = _wait_for_proposal(qtbot, rate, model_wait_ms)
        action = RATINGS[item.text]
        model_said = item.trace.model_response
        beliefs[item.text] = item.trace.model_p
        if action == "enter":
            qtbot.keyClick(rate.filter_edit, Qt.Key_Return)
            chosen = model_said
        elif action == "2":
            from cm_desktop.cm.choices import top_choices
            chosen = top_choices(item.trace)[1][0]
            qtbot.keyClick(rate.filter_edit, Qt.Key_2)
        else:
            qtbot.keyClicks(rate.filter_edit, action)
            assert rate.all_list.currentItem().text() == action
            qtbot.keyClick(rate.filter_edit, Qt.Key_Return)
            chosen = action
        expected[item.text] = (model_said, chosen)
        assert rate.current is not item, "the view moved on to the next query"

    # the bank changed: exactly the five ratings, with the model's and the user's responses
    qtbot.waitUntil(lambda: bank.rating_count("Test") == 5, timeout=10_000)
    got = {r.instance: (r.model_response, r.user_response) for r in bank.ratings("Test")}
    assert got == expected
    assert all(r.source == "rated" and r.fingerprint == llama_backend.fingerprint for r in bank.ratings("Test"))
    assert "Rated 5 since opening" in rate.counts_label.text() and "remaining 0" in rate.counts_label.text()

    # Ctrl+Z undoes the last rating in the bank and brings its query back; Redo restores it
    last_query = list(expected)[-1]
    window.undo_action.trigger()
    # the bank write comes first, then the view puts the query back: wait for both
    qtbot.waitUntil(lambda: bank.rating_count("Test") == 4 and rate.current is not None
                    and rate.current.text == last_query, timeout=10_000)
    assert rate.current is not None and rate.current.text == last_query
    window.redo_action.trigger()
    qtbot.waitUntil(lambda: bank.rating_count("Test") == 5, timeout=10_000)
    assert {r.instance for r in bank.ratings("Test")} == set(expected)
    # beside each rating, the model's whole distribution when it proposed (kept through undo/redo)
    qtbot.waitUntil(lambda: len(bank.model_distributions("Test")[0]) == 5, timeout=10_000)
    ids, stored = bank.model_distributions("Test")
    by_id = dict(zip(ids, stored))
    for r in bank.ratings("Test"):
        assert len(beliefs[r.instance]) == len(bank.get_profile("Test").responses)
        np.testing.assert_allclose(by_id[r.id], beliefs[r.instance], rtol=1e-5, atol=1e-7)

    # chat on a similar query: the Why panel shows the new rating among the nearest rated instances
    chat = window.chat_view
    window.tabs.setCurrentWidget(chat)
    with qtbot.waitSignal(chat.reply_finished, timeout=model_wait_ms):
        qtbot.keyClicks(chat.input, SIMILAR)
        qtbot.keyClick(chat.input, Qt.Key_Return)
    reply = chat.replies[-1]
    trace = reply.trace
    assert trace is not None and trace.variant == "evidence"
    neighbour_texts = [x for x, _y, _s in trace.neighbours]
    assert "When will my card arrive?" in neighbour_texts
    reply.why_button.click()
    assert reply.why_panel.isVisible()
    why = reply.why_panel.text()
    assert "When will my card arrive?" in why and "card arrival" in why
    assert trace.chosen in reply.header.text()
    assert reply.answers["personal"].strip(), "an answer was streamed into the reply"
    assert reply.body.text() == reply.answers["personal"]
    # the bank's candidate set for the model's response is what the panel shows
    for response, n in bank.candidate_set("Test", trace.model_response):
        assert f"{response} ×{n}" in why

    # 👍 records (x, y', chosen)
    reply.up_button.click()
    qtbot.waitUntil(lambda: bank.rating_count("Test") == 6, timeout=10_000)
    newest = bank.ratings("Test")[-1]
    assert (newest.instance, newest.model_response, newest.user_response) == (SIMILAR, trace.model_response,
                                                                             trace.chosen)

    # undo the 👍, then 👎: pick what was meant from the full set (typed filter) instead
    window.undo_action.trigger()
    qtbot.waitUntil(lambda: bank.rating_count("Test") == 5 and reply.down_button.isEnabled(), timeout=10_000)
    dialog = chat.thumbs_down(reply)
    suggested = [dialog.suggestions.item(i).data(Qt.UserRole) for i in range(dialog.suggestions.count())]
    assert [r for r, _n in trace.candidates] == suggested[:len(trace.candidates)]
    qtbot.keyClicks(dialog.filter_edit, "delivery estimate")
    assert dialog.all_list.currentItem().data(Qt.UserRole) == "card delivery estimate"
    dialog._ok()
    qtbot.waitUntil(lambda: bank.rating_count("Test") == 6, timeout=10_000)
    newest = bank.ratings("Test")[-1]
    assert (newest.instance, newest.model_response, newest.user_response) == (
        SIMILAR, trace.model_response, "card delivery estimate")

    # a pick rewrites the reply for the picked meaning: wait for that reply to be written
    qtbot.waitUntil(lambda: not chat.is_busy() and reply.trace.chosen == "card delivery estimate"
                    and bool(reply.answers["personal"].strip()), timeout=model_wait_ms)
    trace = reply.trace
    # the raw/personalized toggle shows the model's own response (and its answer) and back
    reply.raw_button.click()
    assert reply.header.text() == f"Raw model → {trace.model_response}"
    qtbot.waitUntil(lambda: not chat.is_busy(), timeout=model_wait_ms)
    assert reply.body.text() == reply.answers["raw"] and reply.answers["raw"].strip()
    reply.raw_button.click()
    assert reply.header.text() == f"→ {trace.chosen}" and reply.body.text() == reply.answers["personal"]

    # Esc stops a reply that is still being worked on; the view stays usable
    with qtbot.waitSignal(chat.reply_finished, timeout=model_wait_ms):
        stopped = chat.send("Can I get a refund?")
        qtbot.keyClick(chat.input, Qt.Key_Escape)
    assert stopped.trace is None and "Stopped" in stopped.body.text()
    qtbot.waitUntil(lambda: not chat.is_busy(), timeout=model_wait_ms)
    assert not chat.stop_button.isEnabled() and bank.rating_count("Test") == 6

    # export, then import into a fresh profile: the same bank
    from bank_store import formats
    from cm_desktop.ui.ops import BankQuery, BankWrite

    export_path = tmp_path / "export.json"
    done = []
    BankQuery(window, lambda job: formats.export_native(job.bank, "Test", export_path)).success(done.append).run()
    qtbot.waitUntil(lambda: bool(done), timeout=10_000)
    done.clear()
    (BankWrite(window, lambda job: formats.import_file(job.bank, export_path, "Imported copy"), profile="Imported copy")
     .success(done.append).run())
    qtbot.waitUntil(lambda: bool(done), timeout=10_000)
    assert bank.counts("Imported copy") == bank.counts("Test")
    assert bank.rating_count("Imported copy") == 6
    assert bank.get_profile("Imported copy").responses == bank.get_profile("Test").responses

    # ... and the window shows it: switch profile, the Bank view lists the same entries
    window.refresh_profiles(select="Imported copy")
    qtbot.waitUntil(lambda: ctx.profile == "Imported copy", timeout=5_000)
    window.tabs.setCurrentWidget(window.bank_view)
    table = window.bank_view.findChild(QTableView)
    qtbot.waitUntil(lambda: table.model().rowCount() == len(bank.counts("Test")), timeout=10_000)
