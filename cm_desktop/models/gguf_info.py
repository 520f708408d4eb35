"""What a GGUF file says about itself, and whether it fits.

Reading the metadata maps the file and walks its header and tensor table only (names of file and
tensor types from the `gguf` package). The memory estimate is what llama.cpp allocates for the app's settings: the
weights (the file, mapped), the KV cache for the context the app asks for, and the logits
buffer its exact scoring uses (n_ubatch rows of the vocabulary, float32).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from cm_desktop.backends import LlamaCppBackend
from cm_desktop.backends.base import ModelFileError

GGUF_MAGIC = b"GGUF"
# llama.cpp's own buffers beyond weights, KV cache and logits (compute graph, scratch), measured
# as the gap between peak RSS and those three on the embedded Gemma: kept as a flat margin.
RUNTIME_OVERHEAD_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class GGUFInfo:
    architecture: str
    model_name: str
    quantization: str
    context_length: int | None
    chat_template: bool
    n_layers: int | None
    n_embd: int | None
    n_head: int | None
    n_head_kv: int | None
    key_length: int | None
    value_length: int | None
    vocab_size: int | None

    def to_dict(self) -> dict:
        return asdict(self)


_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
           12: "d"}
_STRING, _ARRAY = 8, 9
_MAX_SMALL_ARRAY = 4096     # arrays read into values (per-layer head counts); longer: length only


def read_metadata(path: str | os.PathLike) -> tuple[dict, dict[int, int]]:
    """The GGUF key/value metadata, and {tensor type: elements} over the tensor table.

    A direct walk of the header (the `gguf` package's GGUFReader builds a numpy view of every
    token of the vocabulary: over a minute for Gemma's 262k tokens on a busy 2-core machine;
    this takes a fraction of a second). Long arrays (the vocabulary) are kept as their length.
    Raises ValueError (struct.error) on a damaged header.
    """
    import mmap
    import struct

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        pos = 4

        def read(fmt: str):
            nonlocal pos
            vals = struct.unpack_from("<" + fmt, m, pos)
            pos += struct.calcsize("<" + fmt)
            return vals[0]

        def read_string() -> str:
            nonlocal pos
            n = read("Q")
            if pos + n > len(m):
                raise struct.error("a string runs past the end of the file")
            text = bytes(m[pos:pos + n]).decode("utf-8", "replace")
            pos += n
            return text

        def read_value(t: int):
            nonlocal pos
            if t in _SCALAR:
                return read(_SCALAR[t])
            if t == _STRING:
                return read_string()
            if t == _ARRAY:
                inner, n = read("I"), read("Q")
                if inner in _SCALAR:
                    size = struct.calcsize(_SCALAR[inner])
                    if n <= _MAX_SMALL_ARRAY:
                        vals = list(struct.unpack_from(f"<{n}{_SCALAR[inner]}", m, pos))
                        pos += n * size
                        return vals
                    pos += n * size
                    return _Length(n)
                for _ in range(n):
                    read_value(inner)
                return _Length(n)
            raise struct.error(f"unknown metadata type {t}")

        version, n_tensors, n_kv = read("I"), read("Q"), read("Q")
        if version not in (2, 3) or n_tensors > 1_000_000 or n_kv > 1_000_000:
            raise struct.error(f"implausible header (version {version})")
        meta = {}
        for _ in range(n_kv):
            key = read_string()
            meta[key] = read_value(read("I"))
        elements: dict[int, int] = {}
        for _ in range(n_tensors):
            read_string()
            n_dims = read("I")
            n = 1
            for _ in range(n_dims):
                n *= read("Q")
            ttype = read("I")
            read("Q")
            elements[ttype] = elements.get(ttype, 0) + n
    return meta, elements


class _Length(int):
    """A long array's length (its values were skipped)."""


def _int(meta: dict, key: str) -> int | None:
    value = meta.get(key)
    if isinstance(value, list):         # head counts may be per layer: the largest bounds memory
        value = max(value) if value else None
    if isinstance(value, (bool, str)) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _quantization(meta: dict, elements: dict[int, int]) -> str:
    """The file type llama.cpp's quantiser wrote (e.g. Q4_K_M), else the commonest tensor type
    (names from the gguf package's enums)."""
    import gguf

    ft = _int(meta, "general.file_type")
    if ft is not None:
        try:
            return gguf.LlamaFileType(ft).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            pass
    if not elements:
        return "unknown"
    ttype = max(elements, key=elements.get)
    try:
        return gguf.GGMLQuantizationType(ttype).name
    except ValueError:
        return f"type {ttype}"


def is_gguf(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def read_info(path: str | os.PathLike) -> GGUFInfo:
    """The model's metadata. ModelFileError (one line) when the file is not a readable GGUF."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"no such model file: {path}")
    if not is_gguf(path):
        raise ModelFileError(f"{path.name} is not a GGUF file (it does not start with 'GGUF')")
    try:
        meta, elements = read_metadata(path)
    except Exception as exc:
        raise ModelFileError(f"{path.name}: the GGUF header cannot be read ({exc})") from None
    arch = meta.get("general.architecture")
    arch = arch if isinstance(arch, str) and arch else "unknown"
    name = meta.get("general.name")
    tokens = meta.get("tokenizer.ggml.tokens")
    n_head = _int(meta, f"{arch}.attention.head_count")
    n_embd = _int(meta, f"{arch}.embedding_length")
    key_len = _int(meta, f"{arch}.attention.key_length")
    if key_len is None and n_head and n_embd:
        key_len = n_embd // n_head
    value_len = _int(meta, f"{arch}.attention.value_length") or key_len
    template = meta.get("tokenizer.chat_template")
    return GGUFInfo(
        architecture=arch,
        model_name=name if isinstance(name, str) else "",
        quantization=_quantization(meta, elements),
        context_length=_int(meta, f"{arch}.context_length"),
        chat_template=isinstance(template, str) and bool(template.strip()),
        n_layers=_int(meta, f"{arch}.block_count"),
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=_int(meta, f"{arch}.attention.head_count_kv") or n_head,
        key_length=key_len,
        value_length=value_len,
        vocab_size=len(tokens) if isinstance(tokens, list) else (
            int(tokens) if isinstance(tokens, int) and not isinstance(tokens, bool) else None),
    )


def memory_needed(file_size: int, info: GGUFInfo, config: LlamaCppBackend.Options | None = None) -> int:
    """Bytes llama.cpp needs for this model with the app's context and batch settings."""
    config = config or LlamaCppBackend.Options()
    n_ctx = min(config.n_ctx, info.context_length or config.n_ctx)
    kv = 0
    if info.n_layers and info.n_head_kv and info.key_length:
        per_token = info.n_layers * info.n_head_kv * (info.key_length + (info.value_length or 0))
        kv = 2 * per_token * n_ctx                       # f16 cache
    logits = 4 * config.n_ubatch * (info.vocab_size or 0)
    return int(file_size + kv + logits + RUNTIME_OVERHEAD_BYTES)


def available_memory() -> int | None:
    """Bytes the machine can give a new process now (psutil, else /proc/meminfo), or None."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def fit_warning(needed: int, available: int | None) -> str | None:
    """A sentence for the user when `needed` bytes will not fit in `available`, else None."""
    if available is None or needed <= available:
        return None
    return (f"this model needs about {human_bytes(needed)} of memory but only "
            f"{human_bytes(available)} is free: it may fail to load or make the machine swap; "
            "close other programs or choose a smaller quantisation")


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
