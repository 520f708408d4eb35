"""Bank file fuzzing: 1,000 mutated and truncated bank files in both formats (native
JSON, native gzip, paper JSON). Each damaged file is rejected with a BankFileError that says what
is wrong (and where, when a place in the file is to blame), never another exception and never a
hang, and the bank it was imported into is unchanged. A mutation that happens to leave a valid
file may import; it must then import cleanly. "Never a hang" is checked by what bounds the work,
not by a clock: a file over the size limit, a gzip bomb and nesting deeper than the parser goes
are each rejected by their cap's own error, and a bomb is inflated no further than the limit.

Budget (examples): byte flips 300 + truncations 200 + structural damage 400 + a wrong-type value
anywhere 90 + fixed hostile files 10 = 1,000. Hypothesis is seeded (derandomize=True).
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bank_file_mutations import (
    SAMPLE_OF_KIND,
    Pairs,
    Raw,
    all_paths,
    deep_nesting,
    flip_bytes,
    get_at,
    gzip_bomb,
    gzip_bytes,
    json_kind,
    path_text,
    replace_at,
    to_json,
    wrong_kinds,
)
from reliability_helpers import RESPONSES, table_snapshot

from bank_store.reading import NATIVE_VERSION

BASES = ("native", "gzip", "paper")
EXAMPLES_RUN: dict[str, int] = {}


def _fuzz_settings(n: int):
    return settings(max_examples=n, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])


class FuzzBench:
    """A bank with profile P holding ratings, the valid files exported from it, and a working
    copy of the bank that is reset whenever a (valid) mutated file changed it."""

    def __init__(self, root: Path):
        from bank_store import DiscrepancyBank
        from bank_store.formats import export_native, export_paper

        self.root = root
        self.template = root / "template.sqlite3"
        bank = DiscrepancyBank(self.template)
        bank.create_profile("P", RESPONSES, description="fuzz target")
        for i in range(24):
            bank.add_rating("P", f"how do I {i}?", RESPONSES[i % 10], RESPONSES[(i * 3) % 10],
                            strategy="vanilla")
        files = {"native": root / "base.json", "gzip": root / "base.json.gz",
                 "paper": root / "base_paper.json"}
        export_native(bank, "P", files["native"])
        export_native(bank, "P", files["gzip"])
        export_paper(bank, "P", files["paper"])
        bank.close()
        self.raw = {k: p.read_bytes() for k, p in files.items()}
        assert self.raw["gzip"][:2] == b"\x1f\x8b", "a .gz export must be gzip"
        self.docs = {"native": json.loads(self.raw["native"]), "paper": json.loads(self.raw["paper"])}
        self.docs["gzip"] = self.docs["native"]
        self.work = root / "work.sqlite3"
        self.bank = None
        self._reset()
        self.counter = 0
        self.outcomes: Counter = Counter()  # (how the file ended, error class) -> files

    def _reset(self):
        if self.bank is not None:
            self.bank.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.work) + suffix).unlink(missing_ok=True)
        shutil.copyfile(self.template, self.work)
        from bank_store import DiscrepancyBank

        self.bank = DiscrepancyBank(self.work)
        self.snapshot = table_snapshot(self.work)

    def write(self, base: str, data: bytes) -> Path:
        """Write a candidate file; gzip bases are compressed unless `data` already is."""
        self.counter += 1
        suffix = ".json.gz" if base == "gzip" else ".json"
        path = self.root / f"case{self.counter % 50}{suffix}"
        path.write_bytes(data)
        return path

    def check(self, path: Path, *, must_reject: bool, location: str | None = None,
              mode: str = "merge", fmt: str | None = None, mentions: str | None = None) -> None:
        """Read and import one file; assert the outcome the issue promises."""
        from bank_store import BankError, BankFileError
        from bank_store.formats import import_file, read_bank_file

        read_error = None
        try:
            read_bank_file(path, format=fmt)
        except BankFileError as e:
            read_error = e
        import_error = None
        try:
            import_file(self.bank, path, "P", format=fmt, mode=mode)
        except BankFileError as e:
            import_error = e
        except BankError as e:
            # Only a file that parsed may fail on the bank side (a response-set mismatch
            # needs an explicit choice); that too must leave the bank alone.
            assert read_error is None, f"import raised {e!r} after read raised {read_error!r}"
            assert not must_reject, f"{path.name}: wanted BankFileError, got {e!r}"
            import_error = e

        if read_error is not None:
            assert import_error is not None, "import accepted a file read_bank_file rejected"
        for err in (read_error, import_error):
            if err is not None:
                assert str(err).strip(), "an empty error message"
        if must_reject:
            assert read_error is not None, f"{path.name}: a damaged file was read as valid"
            assert isinstance(import_error, BankFileError)
            where = f"{read_error.location or ''} {read_error}"
            if location is not None:
                assert location in where, f"wanted {location!r} in the error, got {where!r}"
            if mentions is not None:
                assert mentions in where, f"wanted {mentions!r} in the error, got {where!r}"
        self.outcomes[type(import_error).__name__ if import_error else "imported"] += 1
        if import_error is not None:
            assert table_snapshot(self.work) == self.snapshot, "a rejected import changed the bank"
        elif table_snapshot(self.work) != self.snapshot:
            self._reset()


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    bench = FuzzBench(tmp_path_factory.mktemp("fuzz"))
    yield bench
    bench.bank.close()


def _count(name: str):
    EXAMPLES_RUN[name] = EXAMPLES_RUN.get(name, 0) + 1


def _encode(base: str, text: str | bytes) -> bytes:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return gzip_bytes(data) if base == "gzip" else data


# ---- random damage: either rejected cleanly or (if it still is a valid file) imported --------

@_fuzz_settings(300)
@given(base=st.sampled_from(BASES),
       flips=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(1, 255)), min_size=1,
                      max_size=8),
       mode=st.sampled_from(["merge", "merge", "replace"]))
def test_flipped_bytes(bench, base, flips, mode):
    _count("flips")
    path = bench.write(base, flip_bytes(bench.raw[base], flips))
    bench.check(path, must_reject=False, mode=mode)


@_fuzz_settings(200)
@given(base=st.sampled_from(BASES), keep=st.floats(0.0, 1.0), inner=st.booleans())
def test_truncated(bench, base, keep, inner):
    """Cut the stored bytes, or (gzip, inner) cut the JSON and compress what is left."""
    _count("truncations")
    if base == "gzip" and inner:
        plain = bench.raw["native"]
        data = gzip_bytes(plain[:int(len(plain) * keep)])
    else:
        raw = bench.raw[base]
        data = raw[:min(int(len(raw) * keep), len(raw) - 1)]
    path = bench.write(base, data)
    location = None
    if base == "gzip" and not inner:
        must = True  # a gzip stream cut anywhere is incomplete
    else:
        # A JSON document cut before its last brace is never valid; only whitespace may go.
        # The error then points at a line (and column, or byte for a cut UTF-8 character).
        full = bench.raw["native" if base == "gzip" else base]
        cut = gzip.decompress(data) if base == "gzip" else data
        must = len(cut.rstrip()) < len(full.rstrip())
        location = "line" if must else None
    bench.check(path, must_reject=must, location=location)


@_fuzz_settings(90)
@given(base=st.sampled_from(BASES), data=st.data())
def test_wrong_type_anywhere(bench, base, data):
    """Any node at all (null included) swapped for a value of another kind."""
    _count("wrong_type_anywhere")
    doc = bench.docs[base]
    path = data.draw(st.sampled_from(all_paths(doc)))
    kinds = [k for k in SAMPLE_OF_KIND if k != json_kind(get_at(doc, path))]
    new = SAMPLE_OF_KIND[data.draw(st.sampled_from(kinds))]
    bench.check(bench.write(base, _encode(base, to_json(replace_at(doc, path, new)))),
                must_reject=False)


# ---- structural damage: every one of these must be rejected ---------------------------------

STRUCTURAL_KINDS = ("wrong_type", "unknown_field", "duplicate_key", "nan", "deep_nesting",
                    "id_mismatch", "bad_header", "bad_unicode", "huge_nesting_at_root",
                    "declared_format_wrong")


def _object_paths(doc) -> list[tuple]:
    return [p for p in all_paths(doc) if isinstance(get_at(doc, p), dict)]


def _leaf_paths(doc) -> list[tuple]:
    return [p for p in all_paths(doc) if p and not isinstance(get_at(doc, p), (dict, list))]


def _structural_case(base: str, doc, kind: str, data) -> tuple[str | bytes, str | None]:
    """(file text, the location the error must name or None)."""
    paper = base == "paper"
    if kind == "wrong_type":
        # Paper keys are free text, so only values and their items get a wrong type.
        candidates = [p for p in all_paths(doc) if p and wrong_kinds(get_at(doc, p))]
        path = data.draw(st.sampled_from(candidates))
        new = SAMPLE_OF_KIND[data.draw(st.sampled_from(wrong_kinds(get_at(doc, path))))]
        return to_json(replace_at(doc, path, new)), _expected_location(base, path)
    if kind == "unknown_field":
        if paper:  # a paper file's keys are model responses; an unknown *kind* of value instead
            key = data.draw(st.sampled_from(sorted(doc)))
            return to_json(replace_at(doc, (key,), {"unexpected": ["x"]})), key
        path = data.draw(st.sampled_from(_object_paths(doc)))
        name = data.draw(st.sampled_from(["extra", "Ratings", "id2", "__proto__", ""]))
        node = get_at(doc, path)
        if name in node:
            name += "_unknown"
        return to_json(replace_at(doc, path, Pairs(tuple(node.items()) + ((name, 1),)))), \
            _expected_location(base, path)
    if kind == "duplicate_key":
        path = data.draw(st.sampled_from([p for p in _object_paths(doc) if get_at(doc, p)]))
        node = get_at(doc, path)
        key = data.draw(st.sampled_from(sorted(node)))
        same_value = data.draw(st.booleans())
        dup = node[key] if same_value else SAMPLE_OF_KIND["string"]
        items = tuple(node.items()) + ((key, dup),)
        return to_json(replace_at(doc, path, Pairs(items))), "line"
    if kind == "nan":
        path = data.draw(st.sampled_from(_leaf_paths(doc)))
        constant = data.draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
        return to_json(replace_at(doc, path, Raw(constant))), "line"
    if kind == "deep_nesting":
        path = data.draw(st.sampled_from([p for p in all_paths(doc) if p]))
        depth = data.draw(st.sampled_from([200, 5_000, 100_000]))
        return to_json(replace_at(doc, path, deep_nesting(depth))), _nesting_cap(depth)
    if kind == "huge_nesting_at_root":
        depth = data.draw(st.sampled_from([1_000, 100_000, 1_000_000]))
        opener = data.draw(st.sampled_from(["[", '{"a":']))
        closer = "]" if opener == "[" else "}"
        return opener * depth + "1" + closer * depth, _nesting_cap(depth)
    if kind == "bad_unicode":
        path = data.draw(st.sampled_from([p for p in _leaf_paths(doc)
                                          if isinstance(get_at(doc, p), str)]))
        if data.draw(st.booleans()):  # an escape that decodes to a lone surrogate
            return (to_json(replace_at(doc, path, Raw('"card \\ud800 arrival"'))),
                    _expected_location(base, path))
        text = to_json(replace_at(doc, path, Raw('"card \x00MARK arrival"')))
        return text.encode("utf-8").replace(b"\x00MARK", b"\xff\xfe"), "line"
    if kind == "bad_header":
        if paper:
            top = data.draw(st.sampled_from([[], "bank", 3, None, [doc]]))
            return to_json(top), None
        field, value = data.draw(st.sampled_from([
            ("format", "cm-desktop-bank-v0"), ("format", "CM-DESKTOP-BANK"),
            ("version", NATIVE_VERSION + 1), ("version", 0), ("version", -1), ("version", 1.5), ("version", True),
            ("version", "1"), (None, None)]))
        if field is None:
            return to_json([doc]), None
        return to_json(replace_at(doc, (field,), value)), field
    if kind == "id_mismatch":
        ratings = doc["ratings"]
        i = data.draw(st.integers(0, len(ratings) - 1))
        field = data.draw(st.sampled_from(["id", "instance", "user_response", "created"]))
        rating = dict(ratings[i])
        if field == "id":
            rating["id"] = ratings[(i + 1) % len(ratings)]["id"]
        elif field == "created":
            rating["created"] = "1999-01-01T00:00:00+00:00"
        elif field == "user_response":
            others = [r for r in RESPONSES if r != rating["user_response"]]
            rating["user_response"] = others[i % len(others)]
        else:
            rating["instance"] = rating["instance"] + " (edited)"
        return to_json(replace_at(doc, ("ratings", i), rating)), f"ratings[{i}]"
    raise AssertionError(kind)


def _nesting_cap(depth: int) -> str | None:
    """The depth cap's error for nesting no Python's parser goes through (its C recursion limit
    is 1,000 on 3.11 and ~10,000 on 3.13, the stack on 3.14); shallower nesting may parse and
    is then refused by validation, with another message."""
    return "nested too deeply" if depth >= 100_000 else None


def _expected_location(base: str, path: tuple) -> str | None:
    """Where the reader must point: a rating's index for anything inside a rating; the key for
    a paper value; the top-level field otherwise."""
    if not path:
        return "$"
    if base == "paper":
        return path[0]  # the model response (key) whose value is wrong
    if path[0] == "ratings" and len(path) >= 2:
        return f"ratings[{path[1]}]"
    return path_text(path[:1])


@_fuzz_settings(400)
@given(base=st.sampled_from(BASES), data=st.data(),
       mode=st.sampled_from(["merge", "merge", "replace"]))
def test_structural_damage_is_rejected(bench, base, data, mode):
    doc = bench.docs[base]
    kinds = [k for k in STRUCTURAL_KINDS
             if not (base == "paper" and k == "id_mismatch")]
    kind = data.draw(st.sampled_from(kinds))
    _count(f"structural:{kind}")
    if kind == "declared_format_wrong":  # an intact file, read as the other format
        fmt = "native" if base == "paper" else "paper"
        bench.check(bench.write(base, bench.raw[base]), must_reject=True, location="$",
                    mode=mode, fmt=fmt)
        return
    text, location = _structural_case(base, doc, kind, data)
    fmt = data.draw(st.sampled_from([None, "paper" if base == "paper" else "native"]))
    bench.check(bench.write(base, _encode(base, text)), must_reject=True, location=location,
                mode=mode, fmt=fmt)


# ---- fixed hostile files: size limit, gzip bomb, empty, not JSON at all ----------------------

def _size_limit() -> int:
    from bank_store import formats

    for name in ("MAX_FILE_BYTES", "MAX_BYTES", "SIZE_LIMIT", "MAX_DECOMPRESSED_BYTES"):
        if isinstance(getattr(formats, name, None), int):
            return getattr(formats, name)
    return 64 << 20


def _huge_native(bench, limit: int) -> bytes:
    doc = json.loads(json.dumps(bench.docs["native"]))
    doc["ratings"][0]["instance"] = "x" * (limit + 1024)
    return json.dumps(doc).encode()


FIXED_CASES = ["huge_string_native", "huge_string_paper", "huge_string_native_gzip", "gzip_bomb",
               "gzip_bomb_as_plain_name", "empty", "whitespace", "binary_noise",
               "gzip_of_garbage", "two_documents"]


# the cap each over-limit case must be stopped by (bank_store's own messages)
FILE_CAP = "file is larger than the"
INFLATED_CAP = "decompressed content is larger than the"
CAP_OF_CASE = {"huge_string_native": FILE_CAP, "huge_string_paper": FILE_CAP,
               "huge_string_native_gzip": INFLATED_CAP, "gzip_bomb": INFLATED_CAP,
               "gzip_bomb_as_plain_name": INFLATED_CAP}


def _record_inflated_reads(monkeypatch) -> list[int]:
    """The length of everything GzipFile.read returns from now on (the real read, counted)."""
    lengths: list[int] = []
    real_read = gzip.GzipFile.read

    def counted_read(self, size=-1):
        data = real_read(self, size)
        lengths.append(len(data))
        return data

    monkeypatch.setattr(gzip.GzipFile, "read", counted_read)
    return lengths


@pytest.mark.parametrize("case", FIXED_CASES)
def test_fixed_hostile_file(bench, case, monkeypatch):
    _count("fixed")
    limit = _size_limit()
    base = "gzip" if "gzip" in case and case != "gzip_bomb_as_plain_name" else "native"
    if case == "huge_string_native":
        data = _huge_native(bench, limit)
    elif case == "huge_string_paper":
        doc = dict(bench.docs["paper"])
        doc["y" * (limit + 1024)] = [RESPONSES[0]]
        data, base = json.dumps(doc).encode(), "paper"
    elif case == "huge_string_native_gzip":
        data = gzip_bytes(_huge_native(bench, limit))
    elif case in ("gzip_bomb", "gzip_bomb_as_plain_name"):
        inflated_size = limit + (8 << 20)
        data = gzip_bomb(inflated_size)
        assert len(data) < limit // 256, "the bomb must be small on disk"
    elif case == "empty":
        data = b""
    elif case == "whitespace":
        data = b" \n\t\n"
    elif case == "binary_noise":
        data = bytes((i * 131 + 7) % 256 for i in range(4096))
    elif case == "gzip_of_garbage":
        data = gzip_bytes(bytes((i * 97) % 256 for i in range(4096)))
    elif case == "two_documents":
        data = bench.raw["native"] + b"\n" + bench.raw["native"]
    else:
        raise AssertionError(case)
    path = bench.write(base, data)
    inflated = _record_inflated_reads(monkeypatch)
    bench.check(path, must_reject=True, mentions=CAP_OF_CASE.get(case))
    if case.startswith("gzip_bomb"):
        # stopped at the cap, not inflated whole: no read returned more than limit + 1 bytes
        # (the one byte that shows the content is over), though the stream holds more
        assert inflated and max(inflated) <= limit + 1 < inflated_size, inflated


def test_the_fuzz_budget_is_1000_files(bench):
    """Runs after the fuzz tests above (pytest keeps file order): together they made 1,000
    files. Skipped when only part of the module was selected."""
    expected = {"flips": 300, "truncations": 200, "wrong_type_anywhere": 90, "fixed": 10}
    structural = sum(v for k, v in EXAMPLES_RUN.items() if k.startswith("structural:"))
    if any(k not in EXAMPLES_RUN for k in expected) or not structural:
        pytest.skip("only part of the fuzz module ran")
    total = sum(EXAMPLES_RUN.values())
    print(f"fuzzed {total} files: {dict(sorted(EXAMPLES_RUN.items()))}; "
          f"outcomes {dict(bench.outcomes)}")
    assert total >= 1000, EXAMPLES_RUN
    assert len([k for k in EXAMPLES_RUN if k.startswith("structural:")]) == len(STRUCTURAL_KINDS)


CLI_CASES = ["gzip_bomb", "deep_nesting", "duplicate_key", "id_mismatch", "nan_in_paper"]


@pytest.mark.parametrize("case", CLI_CASES)
def test_cm_bank_import_reports_a_damaged_file_in_one_line(bench, tmp_path, case):
    """What the user of `cm` sees: exit status 1, one line on stderr, no traceback, the bank as
    it was (not counted in the 1,000: these are the same damage, through the real command)."""
    import subprocess

    from reliability_helpers import cm_command, subprocess_env

    bank_path = tmp_path / "bank.sqlite3"
    shutil.copyfile(bench.template, bank_path)
    doc = bench.docs["native"]
    if case == "gzip_bomb":
        data, name = gzip_bomb(_size_limit() + (1 << 20)), "bomb.json.gz"
    elif case == "deep_nesting":
        data, name = to_json(replace_at(doc, ("ratings",), deep_nesting(100_000))).encode(), \
            "deep.json"
    elif case == "duplicate_key":
        data, name = to_json(Pairs(tuple(doc.items()) + (("ratings", []),))).encode(), "dup.json"
    elif case == "id_mismatch":
        rating = dict(doc["ratings"][5], instance="edited after export")
        data, name = to_json(replace_at(doc, ("ratings", 5), rating)).encode(), "tampered.json"
    else:
        key = next(iter(bench.docs["paper"]))
        paper = replace_at(bench.docs["paper"], (key,), [Raw("NaN")])
        data, name = to_json(paper).encode(), "nan_paper.json"
    path = tmp_path / name
    path.write_bytes(data)
    before = table_snapshot(bank_path)
    done = subprocess.run(cm_command("--bank", str(bank_path), "bank", "import", str(path),
                                     "--profile", "P", "--replace"),
                          capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert done.returncode == 1, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cm: error:"), done.stderr
    assert name in lines[0], "the error names the file"
    if case == "id_mismatch":
        assert "ratings[5]" in lines[0]
    assert table_snapshot(bank_path) == before
