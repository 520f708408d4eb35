"""The model library: the embedded Gemma, every GGUF in the app's models folder, and files the
user added by path (kept where they are).

Where things live: `<data dir>/models/` holds downloaded files (CM_DESKTOP_HOME moves it, with
every other file of the app); `<data dir>/models.json` records the added paths, where each
download came from, and each file's sha256 keyed by (size, mtime) so a 5 GB file is hashed once.
Files still downloading sit under `models/.downloads/` and are never listed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from cm_desktop import paths
from cm_desktop.backends.base import ModelFileError

MODELS_DIRNAME = "models"
INDEX_NAME = "models.json"
STAGING_DIRNAME = ".downloads"
EMBEDDED_ALIAS = "embedded"
SOURCES = ("embedded", "downloaded", "added")
_HASH_CHUNK = 4 * 1024 * 1024


class ModelLibraryError(Exception):
    """A library operation that cannot be done; the message says why in one line."""


@dataclass(frozen=True)
class LocalModel:
    name: str
    path: str
    size_bytes: int
    sha256: str | None            # None when not asked for (hashing a big file takes seconds)
    source: str                   # embedded | downloaded | added
    architecture: str
    quantization: str
    context_length: int | None
    chat_template: bool
    memory_bytes: int             # estimated need with the app's settings
    repo_id: str | None = None    # downloaded: where from
    problem: str | None = None    # the file cannot be read (moved, damaged): shown, not loaded

    def to_dict(self) -> dict:
        return asdict(self)


def models_dir() -> Path:
    d = paths.data_dir() / MODELS_DIRNAME
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def file_sha256(path: str | os.PathLike, progress: Callable[[int, int], None] | None = None,
                cancel=None) -> str:
    from cm_desktop.cancel import check

    h = hashlib.sha256()
    total = os.path.getsize(path)
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            check(cancel)
            h.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    return h.hexdigest()


class ModelLibrary:
    def __init__(self) -> None:
        self.dir = models_dir()
        self.index_path = paths.data_dir() / INDEX_NAME

    # ---- the index file ---------------------------------------------------------------------
    def _load(self) -> dict:
        empty = {"added": [], "downloads": {}, "hashes": {}, "infos": {}}
        try:
            data = json.loads(self.index_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return empty
        except (OSError, ValueError):
            # a damaged index loses only what it remembers (added paths, cached hashes): the
            # files themselves are untouched; keep the bad copy for the user to look at
            try:
                self.index_path.replace(self.index_path.with_name(INDEX_NAME + ".bad"))
            except OSError:
                pass
            return empty
        if not isinstance(data, dict):
            return empty
        out = dict(empty)
        if isinstance(data.get("added"), list):
            out["added"] = [p for p in data["added"] if isinstance(p, str)]
        for key in ("downloads", "hashes", "infos"):
            if isinstance(data.get(key), dict):
                out[key] = {k: v for k, v in data[key].items() if isinstance(v, dict)}
        return out

    def _save(self, data: dict) -> None:
        tmp = self.index_path.with_name(INDEX_NAME + f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, self.index_path)

    # ---- listing ----------------------------------------------------------------------------
    def _entries(self) -> list[tuple[Path, str, str | None]]:
        """(path, source, repo_id) of every model, the embedded one first."""
        from cm_desktop.backends import default_model_path

        data = self._load()
        out: list[tuple[Path, str, str | None]] = []
        try:
            out.append((default_model_path(), "embedded", None))
        except ModelFileError:
            pass                                   # the embedded package is optional
        for p in sorted(self.dir.glob("*.gguf")):
            if p.is_file():
                meta = data["downloads"].get(p.name, {})
                out.append((p, "downloaded", meta.get("repo_id")))
        for s in data["added"]:
            out.append((Path(s), "added", None))
        return out

    def sha256(self, path: Path, progress=None, cancel=None) -> str:
        """The file's sha256, from the cache while its size and mtime are unchanged."""
        st = path.stat()
        key = str(path.resolve())
        data = self._load()
        cached = data["hashes"].get(key)
        if cached and cached.get("size") == st.st_size and cached.get("mtime_ns") == st.st_mtime_ns:
            return str(cached["sha256"])
        digest = file_sha256(path, progress, cancel)
        data = self._load()
        data["hashes"][key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
        self._save(data)
        return digest

    def remember_sha256(self, path: Path, digest: str) -> None:
        st = path.stat()
        data = self._load()
        data["hashes"][str(path.resolve())] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                               "sha256": digest}
        self._save(data)

    def info(self, path: Path):
        """The file's GGUF metadata, from the index while its size and mtime are unchanged."""
        from cm_desktop.models.gguf_info import GGUFInfo, read_info

        st = path.stat()
        key = str(path.resolve())
        data = self._load()
        cached = data["infos"].get(key)
        if cached and cached.get("size") == st.st_size and cached.get("mtime_ns") == st.st_mtime_ns:
            try:
                return GGUFInfo(**cached["info"])
            except TypeError:
                pass                                  # written by another version: read again
        info = read_info(path)
        data = self._load()
        data["infos"][key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                              "info": info.to_dict()}
        self._save(data)
        return info

    def _describe(self, path: Path, source: str, repo_id: str | None, name: str,
                  with_sha: bool) -> LocalModel:
        from cm_desktop.models.gguf_info import memory_needed

        try:
            info = self.info(path)
            size = path.stat().st_size
            return LocalModel(name, str(path), size, self.sha256(path) if with_sha else None,
                              source, info.architecture, info.quantization, info.context_length,
                              info.chat_template, memory_needed(size, info), repo_id)
        except (ModelFileError, OSError) as exc:
            size = path.stat().st_size if path.is_file() else 0
            return LocalModel(name, str(path), size, None, source, "unknown", "unknown", None,
                              False, size, repo_id, problem=str(exc))

    def list(self, with_sha: bool = False) -> list[LocalModel]:
        models: list[LocalModel] = []
        taken: set[str] = set()
        for path, source, repo_id in self._entries():
            name = path.stem
            n = 2
            while name in taken:                  # two files with one stem: both stay reachable
                name = f"{path.stem}-{n}"
                n += 1
            taken.add(name)
            models.append(self._describe(path, source, repo_id, name, with_sha))
        return models

    def get(self, name: str, with_sha: bool = False) -> LocalModel:
        models = self.list(with_sha=False)
        for m in models:
            if m.name == name or (name == EMBEDDED_ALIAS and m.source == "embedded"):
                return self._describe(Path(m.path), m.source, m.repo_id, m.name, with_sha) \
                    if with_sha else m
        names = ", ".join(m.name for m in models) or "none"
        raise ModelLibraryError(f"no model named {name!r} in the library (have: {names}); "
                                "see `cm models list`")

    def resolve(self, name_or_path: str) -> Path:
        """A --model value: an existing file or folder is used as is, else a library name."""
        p = Path(name_or_path).expanduser()
        if p.exists():
            return p
        try:
            return Path(self.get(name_or_path).path)
        except ModelLibraryError:
            raise ModelLibraryError(f"--model: {name_or_path!r} is neither a file nor a model in "
                                    "the library (see `cm models list`)") from None

    # ---- changes ----------------------------------------------------------------------------
    def add(self, path: str | os.PathLike) -> LocalModel:
        """Add a GGUF where it is (never copied or moved)."""
        p = Path(path).expanduser()
        if not p.is_file():
            raise ModelLibraryError(f"no such file: {p}")
        self.info(p)                               # a clear error now if it is not a GGUF
        p = p.resolve()
        known = [Path(m.path).resolve() for m in self.list() if Path(m.path).exists()]
        if p in known:
            raise ModelLibraryError(f"{p} is already in the library")
        data = self._load()
        data["added"].append(str(p))
        self._save(data)
        return next(m for m in self.list() if Path(m.path) == p)

    def record_download(self, path: Path, repo_id: str, revision: str, commit: str | None,
                        sha256: str) -> None:
        data = self._load()
        data["downloads"][path.name] = {"repo_id": repo_id, "revision": revision,
                                        "commit": commit, "sha256": sha256}
        self._save(data)
        self.remember_sha256(path, sha256)

    def remove(self, name: str) -> LocalModel:
        """Downloaded: the file is deleted. Added: forgotten (the file stays). Embedded: refused."""
        m = self.get(name)
        if m.source == "embedded":
            raise ModelLibraryError("the embedded model cannot be removed (it ships with the app)")
        data = self._load()
        if m.source == "added":
            data["added"] = [s for s in data["added"] if Path(s) != Path(m.path)]
        else:
            Path(m.path).unlink(missing_ok=True)
            data["downloads"].pop(Path(m.path).name, None)
        data["hashes"].pop(str(Path(m.path).resolve()), None)
        data["infos"].pop(str(Path(m.path).resolve()), None)
        self._save(data)
        return m
