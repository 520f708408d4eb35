"""Bank files: native and paper round trips, the paper's eight banks, merge, response-set
mismatch, replace, dry run, and every kind of malformed file leaving the bank unchanged."""

from __future__ import annotations

import gzip
import json

import pytest

from bank_store import BankError, BankFileError, ResponseSetMismatchError, normalise_response
from bank_store.reading import NATIVE_VERSION
from bank_store.formats import (export_native, export_paper, import_file, paper_mapping,
                                plan_import, read_bank_file)
from bank_helpers import SHARED, SMALL_R, counts_equal_group_by, raw_rows

A, B, C, D, E, F = SMALL_R
PAPER_BANKS = sorted((SHARED / "memory_banks").glob("Memory_Masking_*.json"))


def _fill(bank, profile="P", n=30):
    bank.add_ratings(profile, [
        {"instance": f"query {i} ünïcode", "model_response": SMALL_R[i % 4],
         "user_response": SMALL_R[(i * 5) % 6], "strategy": "cot" if i % 3 else None,
         "fingerprint": "llama_cpp:gemma:1:abc", "source": ("rated", "estimated")[i % 2]}
        for i in range(n)])


@pytest.mark.parametrize("name", ["bank.json", "bank.json.gz"])
def test_native_round_trip_is_exact(small_bank, tmp_path, name):
    _fill(small_bank)
    small_bank.add_rating("P", "", "raw model text", A, source="imported")
    small_bank.update_profile("P", fingerprint="fp-42")
    path = tmp_path / name
    assert export_native(small_bank, "P", path) == 31
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    assert path.stat().st_mode & 0o777 == 0o600
    report = import_file(small_bank, path, "Copy")
    assert report.added == 31 and report.plan.create_profile
    original, copy = small_bank.get_profile("P"), small_bank.get_profile("Copy")
    assert copy.responses == original.responses and copy.fingerprint == "fp-42"
    assert copy.description == original.description
    assert small_bank.ratings("Copy") == small_bank.ratings("P")
    assert small_bank.counts("Copy") == small_bank.counts("P")
    # and into a brand-new bank file
    from bank_store import DiscrepancyBank

    fresh = DiscrepancyBank(tmp_path / "fresh.sqlite3")
    import_file(fresh, path, "P")
    assert fresh.ratings("P") == small_bank.ratings("P")
    assert fresh.counts("P") == small_bank.counts("P")
    fresh.close()


def test_native_merge_skips_duplicates_and_counts_follow(small_bank, tmp_path):
    _fill(small_bank, n=10)
    path = tmp_path / "ten.json"
    export_native(small_bank, "P", path)
    small_bank.undo_last("P", 4)
    small_bank.add_rating("P", "only here", E, F)
    report = import_file(small_bank, path, "P")
    assert (report.added, report.plan.duplicates) == (4, 6)
    assert small_bank.rating_count("P") == 11
    assert counts_equal_group_by(small_bank.path)
    again = import_file(small_bank, path, "P")
    assert (again.added, again.plan.duplicates) == (0, 10)


def test_response_set_mismatch_needs_a_choice(small_bank, tmp_path):
    from bank_store import DiscrepancyBank

    other = DiscrepancyBank(tmp_path / "other.sqlite3")
    other.create_profile("P", [A, B, "brand new intent"])
    other.add_rating("P", "q", "brand new intent", A)
    other.add_rating("P", "r", A, B)
    path = tmp_path / "other.json"
    export_native(other, "P", path)
    other.close()
    small_bank.add_rating("P", "mine", C, D)
    before = raw_rows(small_bank.path)
    with pytest.raises(ResponseSetMismatchError, match="1 only in the file") as info:
        import_file(small_bank, path, "P")
    assert info.value.only_in_file == ["brand new intent"]
    assert set(info.value.only_in_profile) == {C, D, E, F}
    assert raw_rows(small_bank.path) == before
    kept = import_file(small_bank, path, "P", on_mismatch="keep", dry_run=True)
    assert kept.plan.raw_keys == ["brand new intent"] and not kept.applied
    assert raw_rows(small_bank.path) == before
    union = import_file(small_bank, path, "P", on_mismatch="union")
    assert union.added == 2
    assert small_bank.get_profile("P").responses == SMALL_R + ("brand new intent",)
    tm = small_bank.transition_matrix("P")
    assert tm.counts[6, 0] == 1 and tm.raw_model_responses == []


def test_replace_takes_a_backup_and_replaces(small_bank, tmp_path):
    _fill(small_bank, n=5)
    path = tmp_path / "five.json"
    export_native(small_bank, "P", path)
    _fill(small_bank, n=12)  # same content, new times: 12 more ratings
    assert small_bank.rating_count("P") == 17
    report = import_file(small_bank, path, "P", mode="replace")
    assert report.backup is not None and report.backup.exists()
    assert report.plan.removed == 17 and report.added == 5
    assert small_bank.rating_count("P") == 5
    assert counts_equal_group_by(small_bank.path)


def test_dry_run_changes_nothing(small_bank, tmp_path):
    _fill(small_bank, n=6)
    path = tmp_path / "six.json"
    export_native(small_bank, "P", path)
    before = raw_rows(small_bank.path)
    report = import_file(small_bank, path, "New", dry_run=True)
    assert report.plan.create_profile and len(report.plan.new) == 6 and not report.applied
    assert "dry run" in report.summary()
    assert raw_rows(small_bank.path) == before


def test_paper_round_trip_small(small_bank, tmp_path):
    mapping = {"Card Arrival": ["card arrival", "LOST OR  STOLEN card"],
               "where is it?": ["card arrival", "card arrival"],
               "pending transfer": ["request refund", "something the user typed"]}
    src = tmp_path / "paper.json"
    src.write_text(json.dumps(mapping), encoding="utf-8")
    report = import_file(small_bank, src, "P")
    assert report.added == 5  # the repeated pair counts once
    plan = report.plan
    assert (plan.matched_keys, plan.total_keys) == (2, 3)
    assert (plan.matched_values, plan.total_values) == (3, 4)  # distinct values
    assert plan.raw_keys == ["where is it?"] and plan.raw_values == ["something the user typed"]
    assert all(r.source == "imported" and r.instance == "" for r in small_bank.ratings("P"))
    out = tmp_path / "out.json"
    assert export_paper(small_bank, "P", out) == 5
    assert json.loads(out.read_text(encoding="utf-8")) == {
        A: [A, D], E: [F, "something the user typed"], "where is it?": [A]}
    # importing the same paper file again changes nothing
    assert import_file(small_bank, src, "P").added == 0


def test_paper_into_a_missing_profile_needs_a_response_set(bank, tmp_path):
    src = tmp_path / "paper.json"
    src.write_text(json.dumps({A: [B]}), encoding="utf-8")
    with pytest.raises(BankError, match="has no response set"):
        import_file(bank, src, "P")
    assert bank.list_profiles() == []
    report = import_file(bank, src, "P", responses=SMALL_R)
    assert report.added == 1 and bank.get_profile("P").responses == SMALL_R


def _dataset_labels(name: str) -> list[str]:
    labels = set()
    for split in ("large", "small"):
        path = SHARED / "datasets" / name / f"{split}.jsonl"
        if path.exists():
            labels |= {json.loads(line)["label"] for line in path.open(encoding="utf-8")}
    return sorted(labels)


def _normalised(mapping: dict[str, list[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for key, values in mapping.items():
        out.setdefault(normalise_response(key), set()).update(normalise_response(v)
                                                              for v in values)
    return out


@pytest.mark.skipif(not PAPER_BANKS, reason="../shared/memory_banks is not beside the repo")
def test_there_are_eight_paper_banks():
    assert len(PAPER_BANKS) == 8


@pytest.mark.parametrize("path", PAPER_BANKS, ids=lambda p: p.stem)
def test_paper_bank_imports_and_exports_the_same_mapping(bank, tmp_path, path):
    dataset = path.stem.removeprefix("Memory_Masking_").rsplit("_", 3)[0]
    labels = _dataset_labels(dataset)
    bank.create_profile("P", labels)
    original = json.loads(path.read_text(encoding="utf-8"))
    report = import_file(bank, path, "P")
    pairs = {(k, v) for k, vs in _normalised(original).items() for v in vs}
    assert report.added == len(pairs)
    assert report.plan.matched_values == report.plan.total_values  # all values are labels
    assert 0 < report.plan.matched_keys <= report.plan.total_keys
    out = tmp_path / "back.json"
    export_paper(bank, "P", out)
    assert _normalised(json.loads(out.read_text(encoding="utf-8"))) == _normalised(original)
    assert _normalised(paper_mapping(bank, "P")) == _normalised(original)


# ---- malformed files --------------------------------------------------------------------------

def _valid_native(bank, tmp_path) -> dict:
    path = tmp_path / "valid.json"
    export_native(bank, "P", path)
    return json.loads(path.read_text(encoding="utf-8"))


def _malformed_cases(doc: dict) -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, text the error must contain)."""
    def dump(d) -> bytes:
        return json.dumps(d).encode()

    def edit(fn):
        d = json.loads(json.dumps(doc))
        fn(d)
        return dump(d)

    text = dump(doc).decode()
    version = f'"version": {NATIVE_VERSION}'
    rid = doc["ratings"][0]["id"]
    width = len(doc["responses"])

    def distribution(d, value, key=rid):
        d["model_distributions"] = {key: value}

    return {
        "invalid_json": (dump(doc)[:-5], "line 1 column"),
        "not_utf8": (dump(doc).replace(b"query 1", b"query \xff"), "not UTF-8"),
        "wrong_format": (edit(lambda d: d.update(format="something-else")), "format"),
        "wrong_version": (edit(lambda d: d.update(version=NATIVE_VERSION + 1)),
                          f"unsupported version {NATIVE_VERSION + 1}"),
        "version_as_text": (edit(lambda d: d.update(version="1")), "version"),
        "wrong_type": (edit(lambda d: d["ratings"][3].update(user_response=5)),
                       "ratings[3].user_response"),
        "unknown_field": (edit(lambda d: d["ratings"][2].update(extra=1)),
                          "ratings[2].extra"),
        "unknown_top_field": (edit(lambda d: d.update(comment="hi")), "comment"),
        "missing_field": (edit(lambda d: d["ratings"][1].pop("created")), "missing field"),
        "bad_source": (edit(lambda d: d["ratings"][0].update(source="magic")),
                       "ratings[0].source"),
        "tampered": (edit(lambda d: d["ratings"][4].update(user_response=F)), "ratings[4].id"),
        "duplicate_key": (text.replace(version, f"{version}, {version}").encode(),
                          "duplicate key 'version'"),
        "nan": (text.replace(version, '"version": NaN').encode(), "NaN"),
        "distribution_too_short": (edit(lambda d: distribution(d, [1.0])),
                                   f"model_distributions[{json.dumps(rid)}]"),
        "distribution_not_a_probability": (
            edit(lambda d: distribution(d, [2.0] + [0.0] * (width - 1))), "from 0 to 1"),
        "distribution_all_zero": (edit(lambda d: distribution(d, [0] * width)), "all 0"),
        "distribution_of_no_rating": (edit(lambda d: distribution(d, [1.0] * width, "nope")),
                                      "not one of the file's ratings"),
        "distribution_in_a_version_2_file": (
            edit(lambda d: (d.update(version=2), distribution(d, [1.0] * width))),
            "version 2 files have none"),
        "deep": (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
        "top_level_list": (dump([doc]), "expected a JSON object"),
        "lone_surrogate": (text.replace("query 1", "query \\ud800").encode(), "surrogate"),
        "repeated_rating": (edit(lambda d: d["ratings"].append(d["ratings"][0])), "repeats"),
        "bad_responses": (edit(lambda d: d["responses"].append(d["responses"][0].upper())),
                          "repeats"),
        "truncated_gzip": (gzip.compress(dump(doc))[:-30], "gzip"),
    }


def test_each_kind_of_malformed_file_leaves_the_bank_unchanged(small_bank, tmp_path):
    _fill(small_bank, n=12)
    doc = _valid_native(small_bank, tmp_path)
    before = raw_rows(small_bank.path)
    for name, (data, expected) in _malformed_cases(doc).items():
        path = tmp_path / f"{name}.json"
        path.write_bytes(data)
        for mode in ("merge", "replace"):
            with pytest.raises(BankFileError) as info:
                import_file(small_bank, path, "P", mode=mode)
            assert expected in str(info.value), f"{name}: {info.value}"
            assert str(path) in str(info.value)
            assert raw_rows(small_bank.path) == before, name


def test_size_limits_stop_big_files_and_gzip_bombs(tmp_path):
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"a": ["b" * 5000]}), encoding="utf-8")
    with pytest.raises(BankFileError, match="larger than"):
        read_bank_file(big, max_bytes=1000)
    bomb = tmp_path / "bomb.json"  # not even named .gz: detected by its magic bytes
    bomb.write_bytes(gzip.compress(b'{"a": ["b"]' + b" " * 5_000_000 + b"}"))
    assert bomb.stat().st_size < 10_000
    with pytest.raises(BankFileError, match="decompressed content is larger"):
        read_bank_file(bomb, max_bytes=100_000)
    assert read_bank_file(bomb, max_bytes=6_000_000).mapping == {"a": ["b"]}


def test_format_flag_must_match_the_file(small_bank, tmp_path):
    _fill(small_bank, n=3)
    path = tmp_path / "n.json"
    export_native(small_bank, "P", path)
    with pytest.raises(BankFileError, match="not a paper bank file"):
        read_bank_file(path, format="paper")
    paper = tmp_path / "p.json"
    export_paper(small_bank, "P", paper)
    with pytest.raises(BankFileError, match="not a native bank file"):
        read_bank_file(paper, format="native")
    with pytest.raises(BankFileError, match="file not found"):
        read_bank_file(tmp_path / "missing.json")


def test_plan_import_changes_nothing_and_validates_arguments(small_bank, tmp_path):
    _fill(small_bank, n=4)
    path = tmp_path / "n.json"
    export_native(small_bank, "P", path)
    parsed = read_bank_file(path)
    before = raw_rows(small_bank.path)
    plan = plan_import(small_bank, parsed, "P", mode="replace")
    assert plan.removed == 4 and len(plan.new) == 4
    assert raw_rows(small_bank.path) == before
    with pytest.raises(BankError, match="unknown import mode"):
        plan_import(small_bank, parsed, "P", mode="overwrite")


def test_the_models_distributions_travel_with_a_native_file(bank, tmp_path):
    import numpy as np

    bank.create_profile("P", ["a", "b", "c"])
    with_p = bank.add_rating("P", "x one", "a", "b", model_distribution=[0.6, 0.3, 0.1])
    bank.add_rating("P", "x two", "b", "b")                     # none stored
    path = tmp_path / "p.json"
    export_native(bank, "P", path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["version"] == NATIVE_VERSION and list(doc["model_distributions"]) == [with_p.id]

    report = import_file(bank, path, "Copy")                    # a new profile: the file's set
    assert "Model distributions: 1 of the new ratings" in report.summary()
    ids, stored = bank.model_distributions("Copy")
    assert ids == [with_p.id]
    np.testing.assert_allclose(stored[0], [0.6, 0.3, 0.1], rtol=1e-6)
    # the same responses in another order: each value goes to its response
    bank.create_profile("Reordered", ["c", "a", "b"])
    import_file(bank, path, "Reordered")
    np.testing.assert_allclose(bank.model_distributions("Reordered")[1][0], [0.1, 0.6, 0.3],
                               rtol=1e-6)
    # another response set: the file's vectors would not describe it, so none are stored
    bank.create_profile("Other", ["a", "b", "c", "d"])
    report = import_file(bank, path, "Other", on_mismatch="keep")
    assert "Model distributions" not in report.summary()
    assert bank.rating_count("Other") == 2 and bank.model_distributions("Other")[0] == []


def test_distributions_that_would_pass_the_file_size_limit_stay_behind(bank, tmp_path,
                                                                       monkeypatch):
    from bank_store import exporting

    bank.create_profile("P", ["a", "b", "c"])
    for i in range(20):
        bank.add_rating("P", f"x {i}", "a", "b", model_distribution=[0.6, 0.3, 0.1])
    path = tmp_path / "p.json"
    export_native(bank, "P", path)
    with_p = path.stat().st_size
    monkeypatch.setattr(exporting, "MAX_BANK_FILE_BYTES", with_p - 1)
    export_native(bank, "P", path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert path.stat().st_size < with_p and doc["model_distributions"] == {}
    assert len(doc["ratings"]) == 20
    import_file(bank, path, "Copy")
    assert bank.rating_count("Copy") == 20
