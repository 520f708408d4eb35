"""Conversations in the real Chat view on a real SQLite bank: a two-turn conversation that is back
after a restart, guidance edited in the Bank view reaching the next reply's prompt (real model),
and, without a model, delete + undo and the Markdown export."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from cm_desktop.cm import chat as cm_chat
from cm_desktop.ui.resource_files import sample_responses

MODEL_WAIT_MS = 900_000     # a wait on state: on 2 busy cores one reply took minutes
GUIDANCE = "Cards arrive within 3-5 working days; offer to track it in the app."


def _two_turns(bank, profile: str = "Test") -> int:
    conv = bank.create_conversation(profile)
    bank.add_message(conv.id, "user", "Where is my card?")
    bank.add_message(conv.id, "assistant", "It should arrive in 3-5 working days.",
                     response="card arrival")
    bank.add_message(conv.id, "user", "and how long does that take?")
    bank.add_message(conv.id, "assistant", "Usually a week at most.", response="card arrival")
    return conv.id


def _chat_on_the_model(app_window, llama_backend, qtbot):
    """The window on the sample responses with the real model loaded, its Chat view shown."""
    ctx, window = app_window("Test", responses=sample_responses())
    ctx.inference.use_backend(llama_backend)
    qtbot.waitUntil(lambda: ctx.inference.fingerprint is not None, timeout=10_000)
    window.tabs.setCurrentWidget(window.chat_view)
    return ctx, window, window.chat_view


def _shown(chat) -> list[tuple[str, str]]:
    return [(r.query, r.answers["personal"]) for r in chat.replies]


def test_the_last_conversation_is_open_again_after_a_restart(app_window, qtbot):
    ctx, window = app_window("Test", bank_name="bank.sqlite3")
    older = ctx.bank.create_conversation("Test", "older")
    ctx.bank.add_message(older.id, "user", "hello")
    cid = _two_turns(ctx.bank)
    assert window.shutdown(15)
    ctx2, window2 = app_window(None, bank_name="bank.sqlite3")
    ctx2.set_profile("Test")
    chat = window2.chat_view
    qtbot.waitUntil(lambda: chat.conversation.id == cid and len(chat.replies) == 2, timeout=15000)
    assert _shown(chat) == [("Where is my card?", "It should arrive in 3-5 working days."),
                            ("and how long does that take?", "Usually a week at most.")]
    # the reply keeps the response it was written for (its note in a base model's prompt)
    assert chat.history[-1] == {"role": "assistant", "content": "Usually a week at most.",
                                "meaning": "card arrival"}
    qtbot.waitUntil(lambda: chat.conversation_list.list.count() == 2, timeout=15000)
    assert chat.conversation_list.list.currentItem().data(Qt.UserRole) == cid


def test_delete_and_undo_of_a_conversation_keeps_its_ratings(app_window, qtbot):
    ctx, window = app_window("Test")
    cid = _two_turns(ctx.bank)
    rating = ctx.bank.add_rating("Test", "Where is my card?", "card arrival", "card arrival")
    chat = window.chat_view
    chat.open_conversation(cid)
    qtbot.waitUntil(lambda: chat.conversation.id == cid and len(chat.replies) == 2, timeout=15000)
    chat.conversation_list.delete_current()
    qtbot.waitUntil(lambda: ctx.bank.conversations("Test") == [] and not chat.replies,
                    timeout=15000)
    assert chat.conversation.id is None
    assert ctx.bank.ratings("Test") == [rating]
    window.undo_action.trigger()
    qtbot.waitUntil(lambda: [c.id for c in ctx.bank.conversations("Test")] == [cid],
                    timeout=15000)
    assert len(ctx.bank.conversation(cid).messages) == 4
    qtbot.waitUntil(lambda: chat.conversation_list.list.count() == 1, timeout=15000)


def test_new_conversation_rename_and_search(app_window, qtbot):
    ctx, window = app_window("Test")
    cid = _two_turns(ctx.bank)
    chat = window.chat_view
    chat.open_conversation(cid)          # made after the window opened
    qtbot.waitUntil(lambda: chat.conversation.id == cid, timeout=15000)
    chat.conversation_list.rename_current("My card")
    qtbot.waitUntil(lambda: ctx.bank.conversation(cid).title == "My card", timeout=15000)
    window.tabs.setCurrentWidget(chat)
    chat.input.setFocus()
    qtbot.keyClick(chat.input, Qt.Key_N, Qt.ControlModifier)
    assert chat.conversation.id is None and not chat.replies
    lst = chat.conversation_list
    qtbot.keyClicks(lst.search, "week at")          # text of a reply, not of the title
    qtbot.waitUntil(lambda: lst.list.count() == 1 and lst.summaries[0].id == cid, timeout=15000)
    lst.search.clear()
    qtbot.keyClicks(lst.search, "nothing like this")
    qtbot.waitUntil(lambda: lst.list.count() == 0, timeout=15000)


def test_markdown_export(app_window, qtbot, tmp_path):
    ctx, window = app_window("Test")
    cid = _two_turns(ctx.bank)
    chat = window.chat_view
    chat.open_conversation(cid)          # made after the window opened
    qtbot.waitUntil(lambda: chat.conversation.id == cid, timeout=15000)
    out = tmp_path / "chat.md"
    chat.export_markdown(str(out))
    qtbot.waitUntil(out.exists, timeout=15000)
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Where is my card?\n")
    assert text.index("It should arrive in 3-5 working days.") < text.index("Usually a week")
    assert "**Assistant (meaning: card arrival):**" in text


@pytest.mark.slow
def test_two_turns_with_the_model_are_kept_and_guidance_from_the_bank_view_reaches_the_prompt(
        app_window, llama_backend, qtbot):
    ctx, window, chat = _chat_on_the_model(app_window, llama_backend, qtbot)
    with qtbot.waitSignal(chat.reply_finished, timeout=MODEL_WAIT_MS):
        chat.send("I ordered a card last week and it has not come")
    first = chat.replies[-1]
    chosen = first.trace.chosen

    # guidance for that response, written in the Bank view's editor
    window.tabs.setCurrentWidget(window.bank_view)
    editor = window.bank_view.guidance_editor
    qtbot.waitUntil(lambda: editor.response_box.count() == len(sample_responses()), timeout=15000)
    editor.select(chosen)
    editor.text_edit.setPlainText(GUIDANCE)
    with qtbot.waitSignal(editor.saved, timeout=15000):
        editor.save_button.click()
    assert ctx.bank.guidance_for("Test", chosen) == GUIDANCE

    window.tabs.setCurrentWidget(chat)
    with qtbot.waitSignal(chat.reply_finished, timeout=MODEL_WAIT_MS):
        chat.send("and how long does that take?")
    second = chat.replies[-1]
    prompt = second.prompts["personal"]
    # the earlier turn is in the prompt; the embedded base model gets the message, then its note
    # as a System line (the nearest text to the reply), which carries the guidance when CM chose
    # the same meaning
    assert {"role": "user", "content": "I ordered a card last week and it has not come"} in prompt
    assert prompt[-2] == {"role": "user", "content": "and how long does that take?"}
    assert prompt[-1]["role"] == "system"
    note = " ".join(m["content"] for m in prompt[-2:])
    assert (GUIDANCE in note) == (second.trace.chosen == chosen)
    # decided on the message alone or together with the first turn, whichever was surer
    assert second.trace.query in cm_chat.decision_texts(
        "and how long does that take?", [{"role": "user", "content": first.query}])
    qtbot.waitUntil(lambda: second.message_id is not None, timeout=15000)
    conv = ctx.bank.conversation(chat.conversation.id)
    assert [m.role for m in conv.messages] == ["user", "assistant"] * 2
    assert [m.text for m in conv.messages if m.role == "assistant"] == \
        [first.answers["personal"], second.answers["personal"]]
    assert conv.messages[3].response == second.trace.chosen

    # after a restart the conversation and its replies are back
    cid = conv.id
    assert window.shutdown(60)
    ctx2, window2 = app_window(None)
    ctx2.set_profile("Test")
    chat2 = window2.chat_view
    qtbot.waitUntil(lambda: chat2.conversation.id == cid and len(chat2.replies) == 2,
                    timeout=15000)
    assert [r.answers["personal"] for r in chat2.replies] == \
        [first.answers["personal"], second.answers["personal"]]
    assert chat2.replies[1].trace.chosen == second.trace.chosen


def test_rating_buttons_are_drawn_icons_not_emoji(app_window, qtbot):
    ctx, window = app_window("Test")
    cid = _two_turns(ctx.bank)
    chat = window.chat_view
    chat.open_conversation(cid)
    qtbot.waitUntil(lambda: len(chat.replies) == 2, timeout=15000)
    for button in (chat.replies[0].up_button, chat.replies[0].down_button):
        assert button.text() == "" and not button.icon().isNull()
        assert not button.icon().pixmap(16, 16).toImage().isNull()


def test_rate_prefetch_pauses_while_the_chat_waits_for_the_model(app_window, qtbot):
    from cm_desktop.datasets import Query

    ctx, window = app_window("Test")
    rate, chat = window.rate_view, window.chat_view
    chat.busy_changed.emit(True)          # as the Chat view does when a message goes out
    assert rate.paused
    rate.load_queries([Query(f"query {i}") for i in range(5)])
    assert rate.current is not None and rate.current.requested
    assert not any(item.requested for item in rate.queue)
    chat.busy_changed.emit(False)
    assert not rate.paused and any(item.requested for item in rate.queue)


def test_the_chat_says_when_it_is_busy(app_window, qtbot):
    ctx, window = app_window("Test")
    chat = window.chat_view
    with qtbot.waitSignals([chat.busy_changed, chat.reply_finished], timeout=15000):
        chat.send("hello")                # no model: the reply fails at once
    qtbot.waitUntil(lambda: not chat.is_busy() and not window.rate_view.paused, timeout=15000)


def test_a_long_unbroken_reply_wraps_and_copy_gives_the_original(app_window, qtbot):
    from PySide6.QtGui import QGuiApplication

    ctx, window = app_window("Test")
    runaway = "You need to buy the " + "1" * 3000
    conv = ctx.bank.create_conversation("Test")
    ctx.bank.add_message(conv.id, "user", "how much?")
    ctx.bank.add_message(conv.id, "assistant", runaway, response="card arrival")
    window.resize(900, 700)
    chat = window.chat_view
    window.tabs.setCurrentWidget(chat)
    chat.open_conversation(conv.id)
    qtbot.waitUntil(lambda: len(chat.replies) == 1, timeout=15000)
    reply = chat.replies[0]
    # the layout settles over several event-loop passes: wait for the state asserted below
    qtbot.waitUntil(lambda: reply.body.height() > 3 * reply.body.fontMetrics().height()
                    and reply.body.width() <= chat.scroll.viewport().width(), timeout=15000)
    assert reply.body.height() > 3 * reply.body.fontMetrics().height()  # it took several lines ...
    assert reply.body.width() <= chat.scroll.viewport().width()   # ... within the view
    assert not chat.scroll.horizontalScrollBar().isVisible()
    reply.copy_button.click()
    assert QGuiApplication.clipboard().text() == runaway


@pytest.mark.slow
def test_the_raw_toggle_while_a_picked_meaning_is_rewritten_shows_the_new_raw_answer(
        app_window, llama_backend, qtbot):
    ctx, window, chat = _chat_on_the_model(app_window, llama_backend, qtbot)
    with qtbot.waitSignal(chat.reply_finished, timeout=MODEL_WAIT_MS):
        chat.send("I ordered a card last week and it has not come")
    with qtbot.waitSignal(chat.reply_finished, timeout=MODEL_WAIT_MS):
        reply = chat.send("and how long does that take?")       # a follow-up: two decisions
    qtbot.waitUntil(lambda: not chat.is_busy(), timeout=MODEL_WAIT_MS)
    before = reply.trace
    assert before.passes == 2 and before.followup
    picked = next(r for r in sample_responses() if r not in (before.chosen, before.model_response))

    dialog = chat.thumbs_down(reply)
    dialog.all_list.setCurrentItem(next(
        dialog.all_list.item(i) for i in range(dialog.all_list.count())
        if dialog.all_list.item(i).data(Qt.UserRole) == picked))
    dialog._ok()
    # at once, before the event loop runs: the meaning is still being chosen again
    reply.raw_button.click()
    qtbot.waitUntil(lambda: not chat.is_busy() and reply.trace.chosen == picked, timeout=MODEL_WAIT_MS)

    # the toggle still says raw, and the reply shows the model's own answer, complete
    assert reply.raw_button.isChecked() and reply.showing == "raw"
    assert reply.header.text() == f"Raw model → {reply.trace.model_response}"
    assert reply.answers["raw"].strip() and reply.body.text() == reply.answers["raw"]
    # the model's response is decided again the same way, on the text decided on before and in
    # one decision, and the raw answer is written for it
    assert reply.trace.model_response == before.model_response != picked
    assert reply.trace.query == before.query and reply.trace.passes == 1
    assert not reply.trace.followup
    assert reply.prompts["raw"] != reply.prompts["personal"]
    reply.raw_button.click()
    assert reply.header.text() == f"→ {picked}"
    assert reply.answers["personal"].strip() and reply.body.text() == reply.answers["personal"]
    qtbot.waitUntil(lambda: reply.message_id is not None, timeout=15000)
    stored = ctx.bank.conversation(chat.conversation.id).messages[-1]
    assert (stored.text, stored.response) == (reply.answers["personal"], picked)


def _cards_chat(app_window, llama_backend, qtbot, rated: dict[str, list[str]]):
    """The window on a "Cards" profile with `rated` ({meant: [texts]}, the model having said "card
    arrival" to each) and the real model, its Chat view shown; and where the profile's tuning is
    kept."""
    from cm_desktop.cm import encoder_tuning as et
    from cm_desktop.cm.retrieval import torch_available
    from cm_desktop.paths import tuned_encoders_dir

    if not torch_available():
        pytest.skip("MiniLM needs torch")
    ctx, window = app_window("Cards", responses=list(rated))
    for meant, texts in rated.items():
        for text in texts:
            ctx.bank.add_rating("Cards", text, "card arrival", meant)
    ctx.inference.use_backend(llama_backend)
    qtbot.waitUntil(lambda: ctx.inference.fingerprint is not None, timeout=10_000)
    window.tabs.setCurrentWidget(window.chat_view)
    return ctx, window, window.chat_view, et.tuned_file(tuned_encoders_dir(), ctx.bank.path,
                                                        "Cards")


def test_on_a_bank_of_four_ratings_per_response_the_encoder_is_tuned_in_idle_time_for_the_next_message(
        app_window, llama_backend, qtbot):
    rated = {"card arrival": ["where is my card", "my card has not come yet",
                              "how long does a new card take", "is my card in the post"],
             "exchange rate": ["what rate do you use for euros", "is the conversion rate fair",
                               "how much is a dollar in pounds", "why was my rate so bad"],
             "lost or stolen card": ["i lost my card", "someone stole my card",
                                     "i cannot find my card", "my wallet with the card is gone"]}
    ctx, window, chat, kept = _cards_chat(app_window, llama_backend, qtbot, rated)
    with qtbot.waitSignal(chat.reply_finished, timeout=MODEL_WAIT_MS):
        chat.send("the card I ordered still is not here")
    # the decision did not wait for the tuning: the frozen encoder, then the tuning in idle time
    first = chat.replies[-1]
    assert first.trace.encoder == "" and "encoder" not in first.why_panel.text()
    qtbot.waitUntil(kept.is_file, timeout=MODEL_WAIT_MS)
    with qtbot.waitSignal(chat.reply_finished, timeout=MODEL_WAIT_MS):
        chat.send("has my card been posted")
    reply = chat.replies[-1]
    assert reply.trace.encoder == "tuned on 12 of your ratings"
    assert "Similarities read through the encoder tuned on 12 of your ratings" in \
        reply.why_panel.text()
    # the conversation keeps the Why as it was
    qtbot.waitUntil(lambda: reply.message_id is not None, timeout=15000)
    stored = ctx.bank.conversation(chat.conversation.id).messages[-1]
    assert stored.trace["encoder"] == "tuned on 12 of your ratings"


def test_a_tuning_in_idle_time_gives_way_to_the_next_message_and_finishes_after_it(
        app_window, llama_backend, qtbot):
    from cm_desktop.ui import idle_tuning

    phrasings = {"card arrival": "my card {} has not arrived yet",
                 "exchange rate": "what exchange rate applies to payment {}",
                 "lost or stolen card": "card number {} was stolen from me"}
    # 80 ratings per response: a tuning of 60 batches, so that a message sent while the first
    # batches run finds it still running on a busy machine too
    rated = {meant: [phrasing.format(i) for i in range(80)]
             for meant, phrasing in phrasings.items()}
    ctx, window, chat, kept = _cards_chat(app_window, llama_backend, qtbot, rated)
    with qtbot.waitSignal(chat.reply_finished, timeout=MODEL_WAIT_MS):
        chat.send("the card I ordered still is not here")
    assert chat.replies[-1].trace.encoder == ""
    # the tuning due after that reply runs in idle time, its progress in the status bar
    qtbot.waitUntil(lambda: window.running_label.text() == idle_tuning.LABEL
                    and window.op_progress.value() >= 2, timeout=MODEL_WAIT_MS)
    assert not kept.exists()
    with qtbot.waitSignal(chat.reply_finished, timeout=MODEL_WAIT_MS):
        chat.send("has my card been posted")
    # the message did not wait behind the tuning (its decision would then read through it)...
    assert chat.replies[-1].trace.encoder == ""
    # ...which queued itself again behind it and finishes
    qtbot.waitUntil(kept.is_file, timeout=MODEL_WAIT_MS)
    with qtbot.waitSignal(chat.reply_finished, timeout=MODEL_WAIT_MS):
        chat.send("is my card in the post")
    assert chat.replies[-1].trace.encoder == "tuned on 240 of your ratings"
