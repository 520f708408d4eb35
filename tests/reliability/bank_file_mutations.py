"""Ways to damage a bank file, for test_bank_fuzz. Pure functions over bytes and parsed JSON.

A mutation of a parsed document is written back with `to_json`, which also writes things the
json module refuses to: duplicate keys (`Pairs`) and raw text (`Raw`: NaN, deep nesting, bad
escapes), because those are exactly what a hostile or broken file contains.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Pairs:
    """A JSON object written member by member, so keys may repeat."""
    items: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Raw:
    """JSON text inserted as is."""
    text: str


def to_json(node: Any) -> str:
    if isinstance(node, Raw):
        return node.text
    if isinstance(node, Pairs):
        return "{" + ", ".join(f"{json.dumps(k)}: {to_json(v)}" for k, v in node.items) + "}"
    if isinstance(node, dict):
        return to_json(Pairs(tuple(node.items())))
    if isinstance(node, list):
        return "[" + ", ".join(to_json(v) for v in node) + "]"
    return json.dumps(node)


Path_ = tuple  # a path into a document: keys and list indices


def all_paths(node: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every node's path, the root included, in document order."""
    paths = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            paths += all_paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            paths += all_paths(value, prefix + (index,))
    return paths


def get_at(node: Any, path: Path_) -> Any:
    for step in path:
        node = node[step]
    return node


def replace_at(node: Any, path: Path_, new: Any) -> Any:
    """A copy of `node` with the value at `path` replaced (copies only along the path)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        copy = dict(node)
    else:
        copy = list(node)
    copy[head] = replace_at(node[head], rest, new)
    return copy


def path_text(path: Path_) -> str:
    """The path as the error messages are expected to name it: ratings[3].user_response."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


# One value of each JSON kind: a "wrong type" is one of a kind the original was not.
SAMPLE_OF_KIND = {
    "null": None,
    "bool": True,
    "number": 7,
    "string": "not what was expected",
    "array": ["a", 1],
    "object": {"k": "v"},
}


def wrong_kinds(value: Any) -> list[str]:
    """Kinds that cannot stand in for `value` in a strict reader. null is left out (several
    fields are optional, so null can be right) and so is swapping int for float."""
    kind = json_kind(value)
    if kind == "null":  # an optional field left empty: which type it wants is unknown here
        return []
    return [k for k in SAMPLE_OF_KIND if k not in (kind, "null")]


def deep_nesting(depth: int) -> Raw:
    return Raw("[" * depth + "]" * depth)


def flip_bytes(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    """XOR the byte at each position (taken modulo the length) with a non-zero mask."""
    out = bytearray(data)
    for position, mask in flips:
        out[position % len(out)] ^= mask or 1
    return bytes(out)


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def gzip_bomb(inflated_size: int) -> bytes:
    """A valid native-looking JSON document padded with whitespace to `inflated_size` bytes:
    tiny compressed, only the decompressed size gives it away."""
    head = b'{"format": "cm-desktop-bank", "version": 1, "ratings": []'
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip container
    chunks = [compressor.compress(head)]
    block = b" " * (1 << 20)
    remaining = inflated_size - len(head) - 1
    while remaining > 0:
        piece = block[:min(len(block), remaining)]
        chunks.append(compressor.compress(piece))
        remaining -= len(piece)
    chunks.append(compressor.compress(b"}"))
    chunks.append(compressor.flush())
    return b"".join(chunks)
