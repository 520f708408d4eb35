"""Conversations on a real SQLite bank: turns, titles, search, regenerate, ratings, delete + undo,
Markdown."""

from __future__ import annotations

import pytest

from bank_store import (BankError, ConversationNotFoundError, DiscrepancyBank,
                        conversation_markdown)
from bank_store.conversations import AUTO_TITLE_CHARS, MAX_MESSAGE_CHARS
from bank_helpers import SMALL_R

A, B, C, D, E, F = SMALL_R
TRACE = {"chosen": A, "model_top": [[A, 0.5], [B, 0.25]], "rule": "instance"}


def _two_turns(bank, title=""):
    conv = bank.create_conversation("P", title)
    bank.add_message(conv.id, "user", "Where is my new card?")
    reply = bank.add_message(conv.id, "assistant", "Cards arrive in 3-5 working days.",
                             response=A, trace=TRACE)
    bank.add_message(conv.id, "user", "and how long does that take?")
    return conv, reply


def test_turns_are_kept_in_order_with_their_meaning_and_trace(small_bank, tmp_path):
    conv, reply = _two_turns(small_bank)
    small_bank.close()
    again = DiscrepancyBank(tmp_path / "bank.sqlite3")
    got = again.conversation(conv.id)
    assert [(m.role, m.text) for m in got.messages] == [
        ("user", "Where is my new card?"), ("assistant", "Cards arrive in 3-5 working days."),
        ("user", "and how long does that take?")]
    assert got.messages[1].response == A and got.messages[1].trace == TRACE
    assert got.messages[0].response is None and got.messages[0].trace is None
    again.close()


def test_first_user_message_titles_an_untitled_conversation(small_bank):
    conv = small_bank.create_conversation("P")
    assert conv.title == ""
    long = "word " * 40
    small_bank.add_message(conv.id, "user", long)
    title = small_bank.conversation(conv.id).title
    assert len(title) == AUTO_TITLE_CHARS and title.endswith("…")
    small_bank.add_message(conv.id, "user", "second")
    assert small_bank.conversation(conv.id).title == title
    named = small_bank.create_conversation("P", "My card")
    small_bank.add_message(named.id, "user", "hello")
    assert small_bank.conversation(named.id).title == "My card"


def test_list_newest_first_with_counts_and_search_over_titles_and_text(small_bank):
    first, _ = _two_turns(small_bank, "Card")
    second = small_bank.create_conversation("P", "Refund 100%_ please")
    small_bank.add_message(second.id, "user", "I want my money back")
    listed = small_bank.conversations("P")
    assert [(c.id, c.messages) for c in listed] == [(second.id, 1), (first.id, 3)]
    assert small_bank.latest_conversation("P").id == second.id
    small_bank.add_message(first.id, "assistant", "ok")
    assert small_bank.latest_conversation("P").id == first.id
    assert [c.id for c in small_bank.conversations("P", search="MONEY")] == [second.id]
    assert [c.id for c in small_bank.conversations("P", search="card")] == [first.id]
    # LIKE wildcards in the search are literal characters
    assert [c.id for c in small_bank.conversations("P", search="100%_")] == [second.id]
    assert small_bank.conversations("P", search="w_nt") == []     # "_" would match "want"
    assert len(small_bank.conversations("P", search="  ")) == 2


def test_conversations_are_per_profile(small_bank):
    small_bank.create_profile("Q", SMALL_R)
    _two_turns(small_bank)
    assert small_bank.conversations("Q") == [] and small_bank.latest_conversation("Q") is None


def test_rename_regenerate_and_rating_link(small_bank):
    conv, reply = _two_turns(small_bank)
    assert small_bank.rename_conversation(conv.id, "  New\nname ").title == "New name"
    rating = small_bank.add_rating("P", "Where is my new card?", A, B)
    small_bank.set_message_rating(reply.id, rating.id)
    new = small_bank.replace_reply(reply.id, "A refund takes 5 days.", response=B, trace=None)
    assert (new.id, new.text, new.response, new.rating_id) == (
        reply.id, "A refund takes 5 days.", B, rating.id)
    assert len(small_bank.conversation(conv.id).messages) == 3
    user_id = small_bank.conversation(conv.id).messages[0].id
    with pytest.raises(BankError, match="not a reply"):
        small_bank.replace_reply(user_id, "x")


def test_delete_keeps_ratings_and_undo_puts_back_the_same_conversation(small_bank):
    conv, reply = _two_turns(small_bank)
    rating = small_bank.add_rating("P", "Where is my new card?", A, A)
    small_bank.set_message_rating(reply.id, rating.id)
    before = small_bank.conversation(conv.id)
    removed = small_bank.delete_conversation(conv.id)
    assert removed == before
    with pytest.raises(ConversationNotFoundError):
        small_bank.conversation(conv.id)
    assert small_bank.conversations("P") == []
    assert small_bank.ratings("P") == [rating]
    # a conversation created meanwhile never takes the deleted one's ids
    other = small_bank.create_conversation("P", "meanwhile")
    small_bank.add_message(other.id, "user", "hi")
    assert other.id != conv.id
    assert small_bank.restore_conversation(removed) == before
    with pytest.raises(BankError, match="already"):
        small_bank.restore_conversation(removed)
    assert {c.id for c in small_bank.conversations("P")} == {conv.id, other.id}


@pytest.mark.parametrize("call, match", [
    (lambda b, cid: b.add_message(cid, "system", "x"), "role"),
    (lambda b, cid: b.add_message(cid, "user", ""), "must not be empty"),
    (lambda b, cid: b.add_message(cid, "user", "x" * (MAX_MESSAGE_CHARS + 1)), "at most"),
    (lambda b, cid: b.add_message(cid, "user", "a\x00b"), "NUL"),
    (lambda b, cid: b.add_message(cid, "user", "x", response=A), "only an assistant"),
    (lambda b, cid: b.add_message(cid, "assistant", "x", trace={"p": float("nan")}), "JSON"),
    (lambda b, cid: b.add_message(cid, "assistant", "x", trace=["not", "a", "dict"]), "dict"),
    (lambda b, cid: b.add_message(cid + 100, "user", "x"), "no conversation"),
    (lambda b, cid: b.add_message("1", "user", "x"), "whole number"),
    (lambda b, cid: b.rename_conversation(cid, "t" * 201), "at most"),
    (lambda b, cid: b.conversations("P", search=5), "must be text"),
])
def test_bad_input_is_one_clear_error_and_changes_nothing(small_bank, call, match):
    conv, _ = _two_turns(small_bank, "kept")
    before = small_bank.conversation(conv.id)
    with pytest.raises(BankError, match=match):
        call(small_bank, conv.id)
    assert small_bank.conversation(conv.id) == before


def test_deleting_the_profile_deletes_its_conversations(small_bank):
    conv, _ = _two_turns(small_bank)
    small_bank.delete_profile("P")
    with pytest.raises(ConversationNotFoundError):
        small_bank.conversation(conv.id)


def test_markdown_has_title_each_turn_and_the_meaning(small_bank):
    conv, _ = _two_turns(small_bank, "Card question")
    text = conversation_markdown(small_bank.conversation(conv.id))
    assert text.startswith("# Card question\n")
    order = [text.index(s) for s in ("**You:**", "Where is my new card?",
                                     f"**Assistant (meaning: {A}):**",
                                     "Cards arrive in 3-5 working days.",
                                     "and how long does that take?")]
    assert order == sorted(order)
