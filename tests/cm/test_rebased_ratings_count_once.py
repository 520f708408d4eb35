"""After a rebase each rated (x, y) counts once: the current model's rating stands for the old
model's one it was asked for, so the user's answer is not a neighbour twice, the leave-one-out
never finds a held-out rating's old twin, and CM sees what a bank made with the current model
alone would give. Real SQLite; rebase answers come from a fixed rule (what the model says is not
the point here), so no model is needed."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from bank_store.rebase import counted, model_counts, rebase
from cm_desktop.cm import marginalize as mz
from cm_desktop.cm.evaluate import counts_matrix, leave_one_out_agreement
from cm_desktop.cm.retrieval import HashedNgramEmbedder, RatingIndex

RESPONSES = ["alarm", "music", "weather"]
OLD = "llama_cpp:old-model.gguf:100:aaaaaaaaaaaa"
NEW = "llama_cpp:new-model.gguf:200:bbbbbbbbbbbb"
# (x, the user's y); the old model said "alarm" to all of them
RATED = [("wake me up at six", "alarm"), ("set an alarm for seven", "alarm"),
         ("play some jazz music", "music"), ("play my rock playlist", "music"),
         ("will it rain today", "weather"), ("how is the weather tomorrow", "weather"),
         ("play music by queen", "music")]
QUERIES = ["wake me up at six", "play some music", "is it going to rain", "set an alarm"]


def new_model_says(x: str) -> str:
    """The current model's y' for the rebase: right about music, wrong elsewhere."""
    return "music" if "play" in x else "weather"


@pytest.fixture
def banks(bank):
    """'rebased': the old model's ratings, then a rebase onto NEW; 'own': NEW's ratings only."""
    bank.create_profile("rebased", RESPONSES)
    bank.create_profile("own", RESPONSES)
    for x, y in RATED:
        bank.add_rating("rebased", x, "alarm", y, fingerprint=OLD)
        bank.add_rating("own", x, new_model_says(x), y, fingerprint=NEW)
    report = rebase(bank, "rebased", NEW, new_model_says)
    assert report.added == len(RATED) and report.remaining == 0
    assert len(bank.ratings("rebased")) == 2 * len(RATED)      # the old ratings are kept
    return bank


def rows(index: RatingIndex) -> Counter:
    return Counter((x, index.responses[m], index.responses[u], bool(c)) for x, m, u, c in
                   zip(index.instances, index.model_idx, index.user_idx, index.current))


def test_a_rebased_instance_is_one_rating_in_the_index(banks):
    embedder = HashedNgramEmbedder()
    rebased = RatingIndex(banks, "rebased", embedder, NEW)
    own = RatingIndex(banks, "own", embedder, NEW)
    assert len(rebased) == len(RATED)
    assert rows(rebased) == rows(own)
    assert rebased.current.all()
    np.testing.assert_array_equal(counts_matrix(rebased), counts_matrix(own))


def test_neighbour_votes_hear_each_users_answer_once(banks):
    embedder = HashedNgramEmbedder()
    rebased = RatingIndex(banks, "rebased", embedder, NEW)
    own = RatingIndex(banks, "own", embedder, NEW)
    for q in QUERIES:
        vec = embedder.encode([q])[0]
        got = rebased.nearest(vec, 4)
        want = own.nearest(vec, 4)
        shown = [rebased.instances[nb.index] for nb in got]
        assert len(set(shown)) == len(shown), f"{q!r}: an instance votes twice: {shown}"
        assert ([(rebased.instances[nb.index], rebased.user_idx[nb.index]) for nb in got]
                == [(own.instances[nb.index], own.user_idx[nb.index]) for nb in want])
        sims = np.array([nb.similarity for nb in got])
        vote = mz.instance_vote(rebased.user_idx[[nb.index for nb in got]],
                                mz.kernel_weights(sims, 0.05), len(RESPONSES))
        own_vote = mz.instance_vote(own.user_idx[[nb.index for nb in want]],
                                    mz.kernel_weights(np.array([nb.similarity for nb in want]),
                                                      0.05), len(RESPONSES))
        np.testing.assert_allclose(vote, own_vote)


def test_the_held_out_agreement_does_not_find_a_ratings_old_twin(banks):
    # Before, the held-out current rating's old-model twin (the same x, the same y) was its
    # nearest neighbour at similarity 1: CM "predicted" every held-out answer from itself.
    embedder = HashedNgramEmbedder()
    assert (leave_one_out_agreement(banks, "rebased", embedder, fingerprint=NEW)
            == leave_one_out_agreement(banks, "own", embedder, fingerprint=NEW))


def test_a_stopped_rebase_counts_each_instance_once_as_whichever_model_has_it(bank):
    bank.create_profile("p", RESPONSES)
    for x, y in RATED:
        bank.add_rating("p", x, "alarm", y, fingerprint=OLD)
    bank.add_rating("p", RATED[0][0], "alarm", RATED[0][1], fingerprint=OLD,
                    created="2026-01-01T00:00:00+00:00")          # the same (x, y) rated twice
    bank.add_ratings("p", [{"instance": "", "model_response": "alarm",   # a paper file's
                            "user_response": "music", "source": "imported"}])
    asked = []
    rebase(bank, "p", NEW, lambda x: asked.append(x) or new_model_says(x),
           should_stop=lambda: len(asked) >= 3, batch=1)
    index = RatingIndex(bank, "p", HashedNgramEmbedder(), NEW)
    kept = Counter((x, bool(c)) for x, c in zip(index.instances, index.current))
    # the rated-twice instance was asked first: both its ratings now count as NEW's, once each
    assert kept[(RATED[0][0], True)] == 2 and kept[(RATED[0][0], False)] == 0
    for x, _ in RATED[1:3]:
        assert kept[(x, True)] == 1 and kept[(x, False)] == 0
    for x, _ in RATED[3:]:                   # not asked yet: the old model's (x, y) still votes
        assert kept[(x, False)] == 1 and kept[(x, True)] == 0
    assert "" not in index.instances         # no x to be near, no y' that may steer
    c = model_counts(bank, "p", NEW)
    assert (c.current, c.rebased, c.to_rebase, c.without_instance) == (4, 4, 4, 1)
    # with no current model known every rating counts, as before fingerprints were compared
    everything = counted(bank.ratings("p"), None)
    assert len(everything) == len(bank.ratings("p")) and all(cur for _, cur in everything)


def test_a_paper_file_changes_nothing_cm_uses(bank, tmp_path):
    """A paper file's ratings (no query, the paper's model's y') neither steer the counts nor
    vote as neighbours: importing one leaves CM's held-out agreement where it was (seen in the
    app before: importing the paper's banking77 bank moved it from 40% to 31%)."""
    import json

    from bank_store.formats import import_file

    responses = [f"meaning {i}" for i in range(8)]
    bank.create_profile("p", responses)
    topics = ["card", "refund", "transfer", "pin", "fee", "top up", "cash", "account"]
    for i, topic in enumerate(topics):        # the current model's: y' is always meaning 0
        for j in range(3):
            bank.add_rating("p", f"question {j} about my {topic}", responses[0], responses[i],
                            fingerprint=NEW)
    embedder = HashedNgramEmbedder()
    before = leave_one_out_agreement(bank, "p", embedder, fingerprint=NEW)
    index_before = rows(RatingIndex(bank, "p", embedder, NEW))
    paper = tmp_path / "paper.json"           # the paper's y' -> [y]: many pairs, no queries
    paper.write_text(json.dumps({a: [b for b in responses if b != a] for a in responses}),
                     encoding="utf-8")
    assert import_file(bank, str(paper), "p").added == 8 * 7
    assert leave_one_out_agreement(bank, "p", embedder, fingerprint=NEW) == before
    assert rows(RatingIndex(bank, "p", embedder, NEW)) == index_before
