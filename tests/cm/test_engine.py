"""The engine end to end on the real embedded Gemma (llama_cpp) and a real SQLite bank."""

from __future__ import annotations

import pytest

from cm_desktop.cancel import CancelToken, Cancelled
from cm_desktop.cm.engine import CMEngine, Trace
from cm_desktop.cm.retrieval import HashedNgramEmbedder

RESPONSES = ["alarm", "music", "weather", "cooking"]
QUERY = "wake me up at seven tomorrow"

pytestmark = pytest.mark.slow


@pytest.fixture
def profile_bank(bank):
    bank.create_profile("p", RESPONSES)
    return bank


def _engine(backend, bank, **kw):
    # the hashed embedder keeps these tests free of torch; MiniLM is exercised by the CLI tests
    return CMEngine(backend, bank, "p", embedder=HashedNgramEmbedder(), **kw)


def test_propose_on_an_empty_bank_gives_a_full_trace(llama_backend, profile_bank):
    engine = _engine(llama_backend, profile_bank)
    t = engine.propose(QUERY)
    assert isinstance(t, Trace)
    assert t.model_response in RESPONSES and t.chosen == t.model_response
    assert t.variant == "none" and t.rule == "model" and t.passes == 1 and t.seconds > 0
    assert len(t.model_top) == len(RESPONSES)            # TOP_N >= |R| here
    assert sum(p for _, p in t.model_top) == pytest.approx(1.0)
    assert t.model_top[0][0] == t.model_response
    assert t.candidates == [] and t.neighbours == []
    d = t.to_dict()
    assert set(d) >= {"query", "strategy", "variant", "model_response", "model_top", "candidates",
                      "chosen", "rule", "passes", "seconds", "neighbours", "scores"}
    # every memory variant keeps the model's answer while the bank is empty
    for variant in ("paper", "marginal", "instance", "evidence"):
        assert _engine(llama_backend, profile_bank, variant=variant).decide(QUERY).chosen \
            == t.model_response


def test_a_bank_entry_changes_the_decision(llama_backend, profile_bank):
    engine = _engine(llama_backend, profile_bank)
    y_model = engine.propose(QUERY).model_response
    target = next(r for r in RESPONSES if r != y_model)
    # this user means `target` whenever the model says y_model on such messages
    for x in ("wake me up at six tomorrow", "wake me up at eight tomorrow", "wake me at seven"):
        profile_bank.add_rating("p", x, y_model, target)
    engine.refresh()

    paper = _engine(llama_backend, profile_bank, variant="paper").decide(QUERY)
    assert paper.model_response == y_model
    assert paper.candidates == [(target, 3)]
    assert paper.rule == "paper-single" and paper.chosen == target and paper.passes == 1

    inst = _engine(llama_backend, profile_bank, variant="instance").decide(QUERY)
    assert inst.chosen == target and inst.rule == "instance"
    assert inst.neighbours and inst.neighbours[0][1] == target
    assert inst.neighbours[0][2] >= inst.neighbours[-1][2]

    # two meanings for the same y' -> the paper rule asks the model again among them only
    profile_bank.add_rating("p", "play something relaxing", y_model, "music" if target != "music"
                            else "weather")
    again = _engine(llama_backend, profile_bank, variant="paper").decide(QUERY)
    # the model's own pass does not read the bank: the same query gives the same y' (as above)
    assert again.model_response == y_model
    assert len(again.candidates) == 2
    assert again.rule == "paper-rechoose" and again.passes == 2
    assert again.chosen in {c for c, _ in again.candidates}


class _CountingEmbedder(HashedNgramEmbedder):
    def __init__(self):
        super().__init__()
        self.texts = 0

    def encode(self, texts):
        self.texts += len(texts)
        return super().encode(texts)


def test_the_evidence_rule_embeds_nothing_for_an_empty_bank(llama_backend, profile_bank):
    # a new user's first queries: no rating to look up, no prior tuned, so no embedder work
    embedder = _CountingEmbedder()
    engine = CMEngine(llama_backend, profile_bank, "p", embedder=embedder, variant="evidence")
    t = engine.decide(QUERY)
    assert t.rule == "evidence" and t.chosen == t.model_response
    assert embedder.texts == 0


def test_the_response_texts_are_embedded_once_per_engine_not_after_every_rating(profile_bank):
    # a rating changes the bank, not the response texts: the prior's vectors are kept across
    # refreshes, and computed again only when the response set itself changes
    embedder = _CountingEmbedder()
    for i in range(6):
        profile_bank.add_rating("p", f"play song number {i}", "alarm", "music")
    engine = CMEngine(None, profile_bank, "p", embedder=embedder, variant="evidence",
                      calibrate=False)
    before = embedder.texts
    first = engine.evidence_rule()
    assert embedder.texts - before == len(RESPONSES)
    profile_bank.add_rating("p", "will it rain on sunday", "alarm", "weather")
    engine.refresh()                              # embeds the new rating's query
    before = embedder.texts
    second = engine.evidence_rule()
    assert second is not first and embedder.texts == before
    assert second.response_vecs is first.response_vecs
    profile_bank.update_profile("p", responses=RESPONSES + ["timer"])
    engine.refresh()
    before = embedder.texts
    engine.evidence_rule()
    assert embedder.texts - before == len(RESPONSES) + 1


def test_the_instance_rule_is_tuned_only_when_a_rule_needs_it(llama_backend, profile_bank,
                                                              monkeypatch):
    # the evidence rule tunes its own parameters and the Rate view's queue tunes none, so a bank
    # change costs no instance-rule tuning until the instance rule itself answers
    from cm_desktop.cm import evaluate

    from cm_desktop.cm import coverage
    from cm_desktop.cm.evidence import response_text

    tunings = []
    tune = evaluate.tune_params
    monkeypatch.setattr(evaluate, "tune_params",
                        lambda *a, **kw: tunings.append(1) or tune(*a, **kw))
    for i in range(6):
        profile_bank.add_rating("p", f"play song number {i}", "alarm", "music")
    engine = _engine(llama_backend, profile_bank, variant="evidence")
    engine.decide(QUERY)
    # the queue's need is the simulated queue's (`cm curve --orders coverage`): the same rule on
    # the frozen encoder's embeddings
    texts = ["play song number 9", "set an alarm"]
    simulated = coverage.coverage_needs(
        engine.index.embeddings, engine.index.user_idx, engine.embedder.encode(texts),
        engine.embedder.encode([response_text(y) for y in engine.responses]),
        len(engine.responses))
    assert engine.coverage_doubt(texts).need == pytest.approx(simulated, abs=1e-6)
    assert tunings == []
    outcome = engine.model_pass(QUERY)
    engine.apply_memory(outcome, "instance")
    engine.apply_memory(outcome, "instance")
    assert tunings == [1]                          # once per bank state
    profile_bank.add_rating("p", "will it rain on sunday", "alarm", "weather")
    engine.refresh()
    engine.decide(QUERY)
    assert tunings == [1]


def test_the_evidence_rule_follows_a_rating_of_this_query_and_not_a_far_one(llama_backend,
                                                                             profile_bank):
    # the failure it exists for: with a thin bank the instance rule lets one unrelated rated query
    # (cosine 0.23) override the model; here a rating counts by how near it is, not by rank
    far_query = "what's the weather like in paris"
    engine = _engine(llama_backend, profile_bank, variant="evidence")
    y_model = engine.propose(QUERY).model_response
    target = next(r for r in RESPONSES if r != y_model)
    profile_bank.add_rating("p", QUERY, y_model, target)
    engine.refresh()

    near = engine.decide(QUERY)
    assert near.rule == "evidence" and near.variant == "evidence"
    assert near.model_response == y_model and near.chosen == target
    assert near.neighbours[0][:2] == (QUERY, target)
    assert near.neighbours[0][2] == pytest.approx(1.0, abs=1e-5)
    assert sum(near.scores.values()) == pytest.approx(1.0)

    far = engine.decide(far_query)
    assert far.neighbours[0][0] == QUERY and far.neighbours[0][2] < 0.5
    # a rating that far away adds next to nothing: the answer is the bank's transition applied
    # to the model's distribution, what the marginal rule (no instances) gives
    marginal = _engine(llama_backend, profile_bank, variant="marginal").decide(far_query)
    assert far.chosen == marginal.chosen


def test_strategies_count_their_passes(llama_backend, profile_bank):
    for x, y in (("set an alarm for six", "alarm"), ("play jazz", "music"), ("is it sunny", "weather")):
        profile_bank.add_rating("p", x, "alarm", y)
    engine = _engine(llama_backend, profile_bank, variant="none")
    passes = {s: engine.apply_memory(engine.model_pass("play some rock", strategy=s), "none").passes
              for s in ("vanilla", "cot", "fot", "consistent", "feedback")}
    assert passes == {"vanilla": 1, "cot": 1, "fot": 1, "consistent": 3, "feedback": 2}
    t = engine.apply_memory(engine.model_pass("play some rock", strategy="cot"), "none")
    assert t.strategy == "cot" and t.chosen in RESPONSES


def test_cancel_and_bad_input(llama_backend, profile_bank):
    engine = _engine(llama_backend, profile_bank)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        engine.decide(QUERY, cancel=token)
    with pytest.raises(ValueError, match="empty"):
        engine.decide("   ")
    with pytest.raises(ValueError, match="strategy"):
        _engine(llama_backend, profile_bank, strategy="nope")
    with pytest.raises(ValueError, match="variant"):
        _engine(llama_backend, profile_bank, variant="nope")


def test_coverage_need_is_higher_where_the_bank_knows_less(llama_backend, profile_bank):
    engine = _engine(llama_backend, profile_bank)
    empty = engine.coverage_doubt([QUERY])
    assert empty.need.tolist() == [1.0] and empty.between.tolist() == [[-1, -1]]  # knows nothing
    for x in ("wake me up at six", "wake me up at eight", "wake me up at nine"):
        profile_bank.add_rating("p", x, "alarm", "alarm")
    for x in ("what should I cook tonight", "a recipe for dinner", "how long to boil an egg"):
        profile_bank.add_rating("p", x, "music", "cooking")
    engine.refresh()
    doubt = engine.coverage_doubt(["wake me up at seven", "is it windy in paris"])
    known, unknown = doubt.need
    assert 0.0 <= known < unknown <= 1.0
    # near the alarm ratings, the likeliest answer is alarm (indices into the profile's responses)
    assert engine.responses[doubt.between[0, 0]] == "alarm"
    # the queries' embeddings are kept for the next ranking (the queue is ranked after every
    # rating): asked again after a rating, nothing is embedded twice
    encoded = []
    encode = engine.embedder.encode
    engine.embedder.encode = lambda texts: encoded.extend(texts) or encode(texts)
    try:
        profile_bank.add_rating("p", "play some jazz", "music", "music")
        engine.refresh()
        again = engine.coverage_doubt(["wake me up at seven", "is it windy in paris"]).need
    finally:
        del engine.embedder.encode
    assert "wake me up at seven" not in encoded and "is it windy in paris" not in encoded
    assert again.shape == (2,)


def test_the_bank_classifier_reads_the_models_distribution_stored_and_for_the_query(
        llama_backend, profile_bank, monkeypatch):
    # from 4 ratings per response the evidence rule's classifier takes p(.|x) as features: the
    # one stored with each rating when it was made, and the query's own at decision time
    import numpy as np

    from cm_desktop.cm import evaluate, evidence

    monkeypatch.setitem(evaluate.EVIDENCE_GRID, "bank_weight", (1.0,))
    engine = _engine(llama_backend, profile_bank, variant="evidence")
    topics = ["set an alarm for {} am", "play track {} of my playlist", "will it rain on day {}",
              "how long do I boil {} eggs"]
    for i in range(evidence.MODEL_FEATURES_PER_RESPONSE):
        for topic, meant in zip(topics, RESPONSES):
            text = topic.format(i + 1)
            trace = engine.propose(text)
            profile_bank.add_rating("p", text, trace.model_response, meant,
                                    model_distribution=trace.model_p)
    engine.refresh()
    assert len(profile_bank.model_distributions("p")[0]) == 4 * len(RESPONSES)
    seen = []
    estimate = evidence.EvidenceRule.bank_estimate
    monkeypatch.setattr(evidence.EvidenceRule, "bank_estimate",
                        lambda rule, vecs, p, known=None: seen.append(p) or estimate(rule, vecs,
                                                                                    p, known))
    trace = engine.decide(QUERY)
    assert trace.rule == "evidence" and trace.chosen in RESPONSES
    rule = engine.evidence_rule()
    assert rule.params.model_features == evidence.MODEL_FEATURE_WEIGHT and rule.known.all()
    np.testing.assert_allclose(seen[-1][0], trace.model_p, rtol=1e-6)


def test_a_followup_is_decided_on_the_surer_of_its_two_texts(llama_backend, profile_bank):
    from cm_desktop.cm import chat

    for text, meant in [("play some jazz", "music"), ("wake me at six", "alarm"),
                        ("will it rain later", "weather"), ("how long to boil an egg", "cooking")]:
        profile_bank.add_rating("p", text, meant, meant)
    engine = _engine(llama_backend, profile_bank, variant="evidence")
    history = [{"role": "user", "content": "wake me up at seven tomorrow"},
               {"role": "assistant", "content": "Alarm set for seven."}]
    for message in ("and put on some music", "what about the weather?", "make it six"):
        alone = engine.decide(message)
        together = engine.decide(f"wake me up at seven tomorrow {message}")
        kept = chat.decide_turn(engine, message, history)
        surer = alone if chat.confidence(alone) >= chat.confidence(together) else together
        assert (kept.query, kept.chosen) == (surer.query, surer.chosen)
        assert kept.passes == alone.passes + together.passes and kept.followup
