"""Another model's ratings do not steer the current model: their y' statistics stay out of the
counts and the candidate sets (their (x, y) still vote as neighbours) until a rebase asks the
current model, after which they count. Real embedded Gemma, real SQLite."""

from __future__ import annotations

import pytest

from bank_store.rebase import rebase
from cm_desktop.cm.engine import CMEngine
from cm_desktop.cm.evaluate import leave_one_out_agreement
from cm_desktop.cm.retrieval import HashedNgramEmbedder

RESPONSES = ["alarm", "music", "weather", "cooking"]
QUERY = "wake me up at seven tomorrow"
OTHER = "llama_cpp:another-model.gguf:123:0123456789ab"
RATED = ["wake me up at six tomorrow", "wake me up at eight tomorrow", "wake me at seven",
         "set an alarm for nine"]

pytestmark = pytest.mark.slow


def _engine(backend, bank, **kw):
    return CMEngine(backend, bank, "p", embedder=HashedNgramEmbedder(), **kw)


def test_another_models_counts_do_not_steer_until_rebased(llama_backend, bank):
    bank.create_profile("p", RESPONSES)
    engine = _engine(llama_backend, bank, variant="paper")
    y_model = engine.propose(QUERY).model_response
    target = next(r for r in RESPONSES if r != y_model)
    for x in RATED:   # another model said y_model here; the user meant target
        bank.add_rating("p", x, y_model, target, fingerprint=OTHER)
    engine.refresh()
    assert engine.counts.sum() == 0                       # no y' statistics from the other model
    assert len(engine.index) == len(RATED)                # their (x, y) are still there
    paper = engine.decide(QUERY)
    assert paper.candidates == [] and paper.chosen == y_model
    assert leave_one_out_agreement(bank, "p", HashedNgramEmbedder(),
                                   fingerprint=llama_backend.fingerprint)["n"] == 0
    # the instance rule still hears the neighbours' y (the user's), not the other model's y'
    instance = _engine(llama_backend, bank, variant="instance").decide(QUERY)
    assert instance.neighbours and all(y == target for _, y, _ in instance.neighbours)

    report = rebase(bank, "p", llama_backend.fingerprint,
                    lambda x: engine.responses[engine.model_pass(x).model_index])
    assert report.added == len(RATED) and report.remaining == 0
    engine.refresh()
    assert engine.counts.sum() == len(RATED)              # now the current model's counts
    assert len(engine.index) == len(RATED)                # each (x, y) once, as the current's
    ratings = bank.ratings("p")
    assert len(ratings) == 2 * len(RATED)                 # the old ones are kept
    assert sorted(r.fingerprint for r in ratings) == sorted(
        [OTHER] * len(RATED) + [llama_backend.fingerprint] * len(RATED))
