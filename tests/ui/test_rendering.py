"""Rendering: text from banks, datasets and models is shown as characters, never markup.

`<b>x</b><img src=http://127.0.0.1:1/x.png>` goes in as an instance (a dataset line and a chat
message), a response label (the profile's set, so also the model's proposal and the bank's
candidates) and a model reply; every place the app shows it must hold exactly those characters,
in a widget that renders plain text.
"""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLabel, QListWidget, QMessageBox

HOSTILE = "<b>x</b><img src=http://127.0.0.1:1/x.png>"
RESPONSES = [HOSTILE, "card arrival", "lost or stolen card"]


def _labels_showing(widget, needle: str) -> list[QLabel]:
    return [lab for lab in widget.findChildren(QLabel) if needle in lab.text()]


def _assert_all_plain(widget) -> None:
    """Every label anywhere under `widget` that holds markup-looking text renders it as plain."""
    for label in widget.findChildren(QLabel):
        if "<" in label.text():
            assert label.textFormat() == Qt.PlainText, f"label {label.objectName()!r} may render {label.text()!r}"


@pytest.mark.slow
def test_hostile_text_is_shown_as_characters_everywhere(app_window, llama_backend, qtbot, tmp_path,
                                                       model_wait_ms):
    ctx, window = app_window(HOSTILE, responses=RESPONSES)
    ctx.bank.add_rating(HOSTILE, HOSTILE, HOSTILE, "card arrival")    # a rated instance with markup
    ctx.bank_changed.emit(HOSTILE)
    ctx.inference.use_backend(llama_backend)

    # profile switcher and window title
    combo = window.profile_combo
    assert combo.currentText() == HOSTILE and isinstance(combo, QComboBox)
    assert HOSTILE in window.windowTitle()

    # a dataset line, proposed by the real model over a response set holding the markup label
    dataset = tmp_path / "hostile.jsonl"
    dataset.write_text(json.dumps({"input": HOSTILE, "label": HOSTILE}) + "\n")
    rate = window.rate_view
    rate.open_dataset(str(dataset))
    qtbot.waitUntil(lambda: rate.current is not None and rate.current.trace is not None, timeout=model_wait_ms)
    assert rate.query_label.text() == HOSTILE and rate.query_label.textFormat() == Qt.PlainText
    assert any(HOSTILE in rate.top_list.item(i).text() for i in range(rate.top_list.count()))
    assert HOSTILE in [rate.all_list.item(i).text() for i in range(rate.all_list.count())]
    assert rate.proposal_label.textFormat() == Qt.PlainText
    # picking it with the filter records it exactly
    qtbot.keyClicks(rate.filter_edit, "<b>x")
    assert rate.all_list.currentItem().text() == HOSTILE
    qtbot.keyClick(rate.filter_edit, Qt.Key_Return)
    qtbot.waitUntil(lambda: ctx.bank.rating_count(HOSTILE) == 2, timeout=10_000)
    assert ctx.bank.ratings(HOSTILE)[-1].user_response == HOSTILE
    _assert_all_plain(rate)

    # chat: the message, the chosen response, the Why panel (neighbours, candidates) and a reply
    chat = window.chat_view
    with qtbot.waitSignal(chat.reply_finished, timeout=model_wait_ms):
        chat.send(HOSTILE)
    reply = chat.replies[-1]
    assert _labels_showing(chat, HOSTILE), "the user's message is shown"
    chat.append_streamed(reply, "personal", HOSTILE)          # where streamed pieces arrive
    # long unbroken runs get invisible break points (U+200B) so they wrap; the characters stay
    assert reply.body.text().replace("\u200b", "").endswith(HOSTILE)
    reply.why_button.click()
    assert HOSTILE in reply.why_panel.text()
    for label in (reply.header, reply.body, reply.why_panel):
        assert label.textFormat() == Qt.PlainText
    _assert_all_plain(chat)

    # 👎 offers the set: the markup label is a list item, as characters
    dialog = chat.thumbs_down(reply)
    lists = dialog.findChildren(QListWidget)
    shown = [lw.item(i).data(Qt.UserRole) for lw in lists for i in range(lw.count())]
    assert HOSTILE in shown
    _assert_all_plain(dialog)
    dialog.reject()

    # an error naming the text (a bad dataset file whose name is the markup) is plain too
    bad = tmp_path / "<b>bad<i>.jsonl"
    bad.write_text("{not json\n")
    rate.open_dataset(str(bad))
    qtbot.waitUntil(lambda: bool(ctx.open_error_boxes()), timeout=10_000)
    box: QMessageBox = ctx.open_error_boxes()[-1]
    assert box.textFormat() == Qt.PlainText and "<b>bad<i>.jsonl" in box.text()
    box.close()

    _assert_all_plain(window)
