"""`cm estimate` -> `cm eval` -> JSON and resume, on the real embedded model."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from cm_desktop.cli.main import main

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"
SOURCE = SHARED / "massive_scenario" / "small.jsonl"

pytestmark = pytest.mark.slow


@pytest.fixture
def dataset(tmp_path):
    lines = SOURCE.read_text(encoding="utf-8").splitlines()
    random.Random(3).shuffle(lines)
    path = tmp_path / "tiny.jsonl"
    path.write_text("\n".join(lines[:30]) + "\n", encoding="utf-8")
    return path


def _cm(bank_file, *args):
    return main(["--bank", str(bank_file), *args, "--threads", "2"])


def test_estimate_resume_eval_json(tmp_path, dataset, capsys):
    from bank_store import DiscrepancyBank

    bank_file = tmp_path / "bank.sqlite3"
    labels = sorted({json.loads(l)["label"] for l in dataset.read_text().splitlines()})

    assert _cm(bank_file, "estimate", "--dataset", str(dataset), "--proportion", "0.2",
               "--seed", "40", "--profile", "tiny") == 0
    out, err = capsys.readouterr()
    assert "added 6 estimated ratings, 0 already in the bank" in out
    assert "estimate 6/6" in err and "ETA" in err
    bank = DiscrepancyBank(bank_file)
    assert list(bank.get_profile("tiny").responses) == labels
    ratings = bank.ratings("tiny")
    assert len(ratings) == 6
    assert all(r.source == "estimated" and r.fingerprint.startswith("llama_cpp:") for r in ratings)
    assert all(r.model_response in labels for r in ratings)
    # each estimated rating keeps the model's whole distribution, whose argmax is its y'
    ids, dists = bank.model_distributions("tiny")
    assert sorted(ids) == sorted(r.id for r in ratings)
    said = {r.id: r.model_response for r in ratings}
    assert all(labels[int(d.argmax())] == said[i] for i, d in zip(ids, dists))

    # rerun: nothing new; a larger proportion adds only what is missing
    assert _cm(bank_file, "estimate", "--dataset", str(dataset), "--proportion", "0.2",
               "--seed", "40", "--profile", "tiny") == 0
    assert "added 0 estimated ratings, 6 already in the bank" in capsys.readouterr().out
    assert _cm(bank_file, "estimate", "--dataset", str(dataset), "--proportion", "0.3",
               "--seed", "40", "--profile", "tiny") == 0
    out = capsys.readouterr().out
    added = int(out.split("added ")[1].split()[0])
    assert bank.rating_count("tiny") == 6 + added <= 15
    in_bank = {r.instance for r in bank.ratings("tiny")}

    out_json = tmp_path / "out.json"
    assert _cm(bank_file, "eval", "--dataset", str(dataset), "--profile", "tiny",
               "--strategies", "vanilla,consistent", "--limit", "3", "--seed", "1",
               "--json", str(out_json)) == 0
    printed = capsys.readouterr().out
    assert "knn" in printed and "logreg" in printed and "marginal" in printed
    assert "wall time per query, every row above together:" in printed
    result = json.loads(out_json.read_text())
    assert set(result) == {"dataset", "profile", "n", "rows"}
    assert result["profile"] == "tiny" and result["n"] == 3
    pairs = {(r["strategy"], r["memory"]) for r in result["rows"]}
    assert pairs == {(s, m) for s in ("vanilla", "consistent")
                     for m in ("none", "paper", "marginal", "instance", "evidence")} | {
                        ("knn", "none"), ("logreg", "none")}
    for r in result["rows"]:
        assert set(r) == {"strategy", "memory", "accuracy", "macro_f1", "passes_per_query",
                          "seconds_per_query"}
        assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["macro_f1"] <= 1.0
        assert r["seconds_per_query"] >= 0
    by = {(r["strategy"], r["memory"]): r for r in result["rows"]}
    assert by[("vanilla", "none")]["passes_per_query"] == 1.0
    assert by[("consistent", "none")]["passes_per_query"] == 3.0
    assert by[("consistent", "paper")]["passes_per_query"] <= 4.0
    assert by[("knn", "none")]["passes_per_query"] == 0.0
    assert by[("logreg", "none")]["passes_per_query"] == 0.0
    assert in_bank  # (eval excludes these; checked in tests/cm on held_out_queries)


def test_engine_commands_reject_bad_input(tmp_path, dataset, capsys):
    bank_file = tmp_path / "bank.sqlite3"
    assert _cm(bank_file, "eval", "--dataset", str(tmp_path / "missing.jsonl"),
               "--profile", "x") == 2
    assert "no such file" in capsys.readouterr().err
    assert _cm(bank_file, "estimate", "--dataset", str(dataset), "--proportion", "1.5",
               "--profile", "x") == 2
    assert "--proportion" in capsys.readouterr().err
    assert _cm(bank_file, "eval", "--dataset", str(dataset), "--profile", "x",
               "--strategies", "vanilla,magic") == 2
    assert "magic" in capsys.readouterr().err
    assert _cm(bank_file, "eval", "--dataset", str(dataset), "--profile", "nobody") == 1
    assert "nobody" in capsys.readouterr().err
