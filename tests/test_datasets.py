"""The one dataset reader (CLI, engine and GUI): the same fields, the same errors, bounded."""

from __future__ import annotations

import json
import os

import pytest

from cm_desktop.datasets import (DatasetError, DatasetNotFoundError, load_dataset,
                                 read_dataset, read_queries)


def test_json_lines_with_labels_plain_text_without(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"task": "t", "input": " where is my card? ", "label": "card"})
                    + "\n\n" + json.dumps({"text": "refund please"}) + "\n", encoding="utf-8")
    assert [(q.text, q.label) for q in read_queries(data)] == [("where is my card?", "card"),
                                                              ("refund please", None)]
    with pytest.raises(DatasetError, match=r"d.jsonl:3: .*\"label\""):
        load_dataset(data)
    plain = tmp_path / "queries.txt"
    plain.write_text("first query\n\nsecond query\n", encoding="utf-8")
    assert [q.text for q in read_queries(plain)] == ["first query", "second query"]
    with pytest.raises(DatasetError, match="plain text file has no labels"):
        load_dataset(plain)


def test_a_line_separator_inside_a_json_string_is_text(tmp_path):
    """json.dumps(ensure_ascii=False) writes U+2028 unescaped; only "\\n" ends a line."""
    data = tmp_path / "d.jsonl"
    text = "first part\u2028second part\u2029third"
    data.write_text(json.dumps({"input": text, "label": "x"}, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    assert load_dataset(data) == [{"input": text, "label": "x"}]


def test_bad_inputs_are_one_clear_error(tmp_path):
    with pytest.raises(DatasetNotFoundError):
        read_queries(tmp_path / "missing.jsonl")
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(DatasetError, match="not a regular file"):
        read_queries(fifo)  # before: waited forever for a writer
    with pytest.raises(DatasetError, match="not a regular file"):
        read_queries("/dev/zero")  # before: read until memory ran out
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as f:
        f.truncate(65 * 2**20)  # sparse: over the 64 MiB cap without writing it
    with pytest.raises(DatasetError, match="limit"):
        read_dataset(big)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"input": "a"}\n\xff\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl:2: not UTF-8"):
        read_queries(bad)


def test_load_dataset_names_the_bad_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"input": "a", "label": "x"}\n{"input": 3}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"d.jsonl:2"):
        load_dataset(p)
    p.write_text('{"input": "a", "label": "x"}\nnot json\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"d.jsonl:2: not valid JSON"):
        load_dataset(p)
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "missing.jsonl")
