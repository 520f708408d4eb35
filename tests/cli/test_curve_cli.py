"""`cm curve` end to end on the real embedded model: JSON rows, the PNG, and the model-pass
cache (a second run reuses every pass)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from cm_desktop.cli.main import main
from cm_desktop.cm.coverage import RANK_LIMIT

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"
SOURCE = SHARED / "massive_scenario" / "small.jsonl"

pytestmark = pytest.mark.slow


@pytest.fixture
def dataset(tmp_path):
    lines = SOURCE.read_text(encoding="utf-8").splitlines()
    random.Random(5).shuffle(lines)
    path = tmp_path / "tiny.jsonl"
    path.write_text("\n".join(lines[:36]) + "\n", encoding="utf-8")
    return path


def test_curve_json_plot_and_cache(tmp_path, dataset, capsys, monkeypatch):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("CM_EMBEDDER", "hashed")       # keeps this test free of torch
    out_json, out_png, cache = tmp_path / "c.json", tmp_path / "c.png", tmp_path / "cache"
    args = ["--bank", str(tmp_path / "bank.sqlite3"), "curve", "--dataset", str(dataset),
            "--profile", "tiny", "--sizes", "5,10,100", "--orders", "random,coverage",
            "--seed", "3", "--cache-dir", str(cache), "--json", str(out_json),
            "--plot", str(out_png), "--threads", "2"]
    assert main(args) == 0
    first = json.loads(out_json.read_text())
    out = capsys.readouterr().out
    # one file split in two halves by the seed: 18 pool, 18 test; size 100 is more than the pool
    assert (first["pool"], first["n"], first["skipped_sizes"]) == (18, 18, [100])
    assert first["model_passes"]["computed_now"] == 36 and first["model_passes"]["per_query"] == 1
    methods = {"model", "knn", "logreg", "logreg-tuned", "cm-paper", "cm-marginal", "cm-instance",
               "cm-evidence"}
    keys = {(r["size"], r["order"], r["method"]) for r in first["rows"]}
    assert keys == {(s, o, m) for s in (5, 10) for o in ("random", "coverage") for m in methods}
    assert all(set(r) == {"size", "order", "method", "accuracy", "accuracy_sd", "macro_f1",
                          "repeats"} for r in first["rows"])
    assert first["repeats"] == 1 and all(r["repeats"] == 1 and r["accuracy_sd"] == 0.0
                                         for r in first["rows"])
    assert first["window"] == RANK_LIMIT        # as much of the queue as the Rate view ranks
    assert "36 run now, 0 from the cache" in out
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    out_png.unlink()
    assert main(args) == 0
    second = json.loads(out_json.read_text())
    assert second["model_passes"]["computed_now"] == 0 and second["rows"] == first["rows"]
    assert "0 run now, 36 from the cache" in capsys.readouterr().out


def test_curve_rejects_bad_options_in_one_line(tmp_path, dataset, capsys):
    base = ["--bank", str(tmp_path / "bank.sqlite3"), "curve", "--dataset", str(dataset),
            "--profile", "tiny"]
    for extra, message in ((["--sizes", "0,5"], "--sizes"), (["--orders", "sideways"], "--orders"),
                           (["--methods", "magic"], "--methods"), (["--limit", "0"], "--limit"),
                           (["--test", str(tmp_path / "missing.jsonl")], "--test"),
                           (["--repeats", "0"], "--repeats"), (["--window", "0"], "--window"),
                           (["--window", "most"], "--window")):
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err
