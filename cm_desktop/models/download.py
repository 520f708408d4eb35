"""Download a GGUF from a Hugging Face repo (or any server speaking the hub's file API) into the
library: progress, cancel, resume, a disk-space check first, and the sha256 checked at the end.

huggingface_hub finds the file (hf_hub_url and the HEAD metadata honour HF_ENDPOINT, so a mirror
or a local server works; gated repos get the token) and moves the bytes (its http_get, with Range
and retries). Its hf_hub_download is not used: since 2.x it writes to a process-unique temporary
file and deletes it on any failure, so nothing survives a cancel or a kill to resume from. The
partial file is kept here instead, under `models/.downloads/` (never listed), named by the
content's sha256. huggingface_hub does not check the content either: a corrupted transfer is
accepted as is. So the finished file is hashed and compared with the hub's ETag (the sha256 of
an LFS file); only a file that matches is moved into the models folder."""

from __future__ import annotations

import contextlib
import os
import re
import threading
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cm_desktop.cancel import Cancelled, check
from cm_desktop.models.library import (STAGING_DIRNAME, LocalModel, ModelLibrary,
                                       ModelLibraryError, file_sha256)

DEFAULT_ENDPOINT = "https://huggingface.co"
DISK_MARGIN_BYTES = 64 * 1024 * 1024      # keep this much free beyond the file itself
_SHA256 = re.compile(r"[0-9a-f]{64}")
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}")


class DownloadError(ModelLibraryError):
    """The download cannot go on; the message says why and what to do, in one line."""


class ChecksumError(DownloadError):
    """The finished file is not the file the hub describes."""


@dataclass(frozen=True)
class DownloadProgress:
    phase: str              # "downloading" | "verifying"
    done: int               # bytes
    total: int
    bytes_per_s: float      # this download's transfer rate (0 while verifying)
    eta_s: float | None


ProgressFn = Callable[[DownloadProgress], None]


def endpoint() -> str:
    """The hub to download from: HF_ENDPOINT (read at each call, not at import), else the Hub."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def check_names(repo_id: str, filename: str, revision: str) -> None:
    if not isinstance(repo_id, str) or not _REPO_ID.fullmatch(repo_id) or ".." in repo_id:
        raise DownloadError(f"{repo_id!r} is not a Hugging Face repo id (owner/name)")
    parts = filename.split("/") if isinstance(filename, str) else []
    if not parts or any(p in ("", ".", "..") for p in parts) or "\\" in filename \
            or len(filename) > 255 or not filename.lower().endswith(".gguf"):
        raise DownloadError(f"{filename!r} is not a GGUF file name in the repo (it must end "
                            "in .gguf)")
    if not isinstance(revision, str) or not _REVISION.fullmatch(revision) or ".." in revision:
        raise DownloadError(f"{revision!r} is not a revision (a branch, tag or commit)")


def _one_line_http_error(exc: Exception, repo_id: str, filename: str, revision: str) -> Exception:
    """The hub's errors as one line a person can act on."""
    from huggingface_hub import errors

    status = getattr(getattr(exc, "response", None), "status_code", None)
    where = f"{filename} in {repo_id} (revision {revision})"
    if isinstance(exc, errors.GatedRepoError) or status in (401, 403):
        return DownloadError(
            f"{repo_id} is gated or private (HTTP {status}): accept its licence at "
            f"https://huggingface.co/{repo_id} while logged in, then store an access token "
            "with `cm models login` (kept in the OS keyring) or set HF_TOKEN")
    if isinstance(exc, errors.RevisionNotFoundError):
        return DownloadError(f"not found (HTTP 404): {repo_id} has no revision {revision!r}")
    if isinstance(exc, (errors.EntryNotFoundError, errors.RepositoryNotFoundError)) \
            or status == 404:
        return DownloadError(f"not found (HTTP 404): no file {where}")
    if isinstance(exc, errors.LocalEntryNotFoundError):
        return DownloadError(f"cannot reach {endpoint()} to download {where}; check the "
                             "connection (or HF_ENDPOINT)")
    if status is not None:
        return DownloadError(f"the hub answered HTTP {status} for {where}")
    return DownloadError(f"download of {where} failed: {' '.join(str(exc).split())}")


def _progress_bar_class(progress: ProgressFn | None, cancel):
    """A stand-in for tqdm that huggingface_hub feeds (it builds one per transfer): reports
    bytes, speed and time left, and raises Cancelled between chunks once cancel is asked."""

    class _Bar:
        def __init__(self, total=None, initial=0, **_ignored):
            self.total = int(total or 0)
            self.n = int(initial or 0)
            self._start_n = self.n
            self._t0 = time.monotonic()
            self._last = 0.0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n=1):
            self.n += int(n)
            check(cancel)
            now = time.monotonic()
            if progress and (now - self._last >= 0.1 or self.n >= self.total):
                self._last = now
                rate = (self.n - self._start_n) / max(now - self._t0, 1e-6)
                eta = (self.total - self.n) / rate if rate > 0 and self.total else None
                progress(DownloadProgress("downloading", self.n, self.total, rate, eta))

        def update_transfer(self, n=1):
            pass

        def close(self):
            pass

        def refresh(self, *a, **k):
            pass

        def set_description(self, *a, **k):
            pass

    return _Bar


def _staging(library: ModelLibrary, repo_id: str) -> Path:
    d = library.dir / STAGING_DIRNAME / repo_id.replace("/", "__")
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def partial_path(staging: Path, filename: str, sha256: str) -> Path:
    """Where the transfer of this exact content (named by its sha256) accumulates: a changed file
    on the hub never appends to the old one's bytes."""
    return staging / f"{Path(filename).name}.{sha256[:16]}.incomplete"


def pull(repo_id: str, filename: str, *, revision: str = "main",
         library: ModelLibrary | None = None, progress: ProgressFn | None = None,
         cancel=None, token: str | None = None) -> LocalModel:
    """Download `filename` from `repo_id` into the library and return it, listed.

    Raises DownloadError (one line) for hub errors and a failed disk check, ChecksumError for a
    file whose sha256 is not the hub's, Cancelled when `cancel` was set (the part already fetched
    stays in the staging folder, unlisted, for the next pull to resume)."""
    check_names(repo_id, filename, revision)
    from cm_desktop.credentials import get_hf_token

    library = library or ModelLibrary()
    token = token or get_hf_token()
    with _online():
        return _pull(repo_id, filename, revision, library, progress, cancel, token)


_online_lock = threading.Lock()


@contextlib.contextmanager
def _online():
    """A pull is the user asking to reach the hub, so huggingface_hub's offline switch (the app
    sets HF_HUB_OFFLINE for the sentence embedder, which must never reach the network on its
    own) is lifted for the pull's own calls. One pull at a time."""
    from huggingface_hub import constants

    with _online_lock:
        before = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = False
        try:
            yield
        finally:
            constants.HF_HUB_OFFLINE = before


def _pull(repo_id: str, filename: str, revision: str, library: ModelLibrary,
          progress: ProgressFn | None, cancel, token: str | None) -> LocalModel:
    from filelock import FileLock, Timeout
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    hub = endpoint()
    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=hub)
    try:
        meta = get_hf_file_metadata(url, token=token or False)
    except Exception as exc:            # HTTP and connection errors alike: one line each
        raise _one_line_http_error(exc, repo_id, filename, revision) from None
    expected = (meta.etag or "").strip('"').lower()
    if not _SHA256.fullmatch(expected):
        raise DownloadError(f"{hub} gives no sha256 for {filename} in {repo_id}, so the "
                            "download could not be checked; refusing it")
    size = int(meta.size or 0)
    target = library.dir / Path(filename).name
    if target.exists():
        if library.sha256(target) == expected:
            library.record_download(target, repo_id, revision, meta.commit_hash, expected)
            return library.get(target.stem)
        raise DownloadError(f"another file named {target.name} is already in the library; "
                            f"remove it first (cm models rm {target.stem})")

    staging = _staging(library, repo_id)
    part = partial_path(staging, filename, expected)
    try:
        lock = FileLock(str(part) + ".lock", timeout=0)
        lock.acquire()
    except Timeout:
        raise DownloadError(f"{filename} is already being downloaded by another window or "
                            "command; wait for it or cancel it") from None
    try:
        have = part.stat().st_size if part.exists() else 0
        if have > size:                   # not a prefix of this file: start again
            part.unlink()
            have = 0
        free = shutil.disk_usage(library.dir).free
        needed = size - have + DISK_MARGIN_BYTES
        if free < needed:
            from cm_desktop.models.gguf_info import human_bytes

            raise DownloadError(f"not enough disk space in {library.dir}: the download needs "
                                f"{human_bytes(needed)} more, {human_bytes(free)} is free")
        # huggingface_hub's own transfer (Range from `have`, retries on dropped connections);
        # its hf_hub_download writes to a process-unique temp file and deletes it on failure, so
        # it cannot resume after a cancel or a kill: the partial file is kept here instead.
        headers = build_hf_headers(token=token or False, library_name="cm-desktop")
        try:
            with open(part, "ab") as f:
                http_get(meta.location or url, f, resume_size=have, headers=headers,
                         expected_size=size, displayed_filename=Path(filename).name,
                         tqdm_class=_progress_bar_class(progress, cancel))
        except Cancelled:
            raise
        except Exception as exc:
            raise _one_line_http_error(exc, repo_id, filename, revision) from None

        def verifying(done: int, total: int) -> None:
            if progress:
                progress(DownloadProgress("verifying", done, total, 0.0, None))

        digest = file_sha256(part, verifying, cancel)    # hashed afresh: never a cached value
        if digest != expected:
            part.unlink(missing_ok=True)
            raise ChecksumError(f"{filename} from {repo_id} is corrupted: its sha256 is "
                                f"{digest[:12]}..., the hub's is {expected[:12]}...; it was "
                                "deleted and nothing was added (pull again)")
        os.chmod(part, 0o644)
        os.replace(part, target)
    finally:
        lock.release()
    library.record_download(target, repo_id, revision, meta.commit_hash, expected)
    return library.get(target.stem)
