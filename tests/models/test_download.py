"""Downloads through huggingface_hub from a real local server speaking the hub's file API
(HF_ENDPOINT points at it): listed and loadable when good; resumed after a kill; refused when one
byte is flipped in transit; one-line errors for a gated repo and a missing file; a cancel leaves
nothing half-done in the library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import FILENAME, GATED_REPO, REPO_ID

from cm_desktop.cancel import Cancelled, CancelToken
from cm_desktop.models import ModelLibrary
from cm_desktop.models.download import ChecksumError, DownloadError, pull

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def cm(*argv: str, **popen):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "cm_desktop.cli.main", *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def listed_json() -> list[dict]:
    proc = cm("models", "list", "--json")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out)


def downloaded(lib: ModelLibrary) -> list:
    return [m for m in lib.list() if m.source == "downloaded"]


def test_a_good_download_is_listed_with_its_metadata_and_loads(hub, gemma_sha256, gemma_path):
    from cm_desktop.backends import load_backend

    events = []
    m = pull(REPO_ID, FILENAME, progress=events.append)
    assert m.source == "downloaded" and m.repo_id == REPO_ID
    assert Path(m.path).parent == ModelLibrary().dir
    assert m.architecture == "gemma3" and m.quantization == "Q4_K_M"
    size = gemma_path.stat().st_size
    assert m.size_bytes == size
    phases = [e.phase for e in events]
    assert "downloading" in phases and phases[-1] == "verifying"
    last_download = [e for e in events if e.phase == "downloading"][-1]
    assert last_download.done == last_download.total == size
    assert sum(hub.sent) == size                      # one whole transfer, nothing more

    entry = [e for e in listed_json() if e["source"] == "downloaded"]
    assert len(entry) == 1
    assert entry[0]["sha256"] == gemma_sha256
    assert {"name", "path", "size_bytes", "sha256", "source", "architecture", "quantization",
            "chat_template"} <= set(entry[0])
    assert isinstance(entry[0]["chat_template"], bool)

    backend = load_backend("llama_cpp", model_path=m.path, n_ctx=512)
    try:
        scores = backend.score("The capital of France is", [" Paris", " banana"])
        assert scores.logprob[0] > scores.logprob[1]
    finally:
        backend.close()


def test_a_killed_download_resumes_without_fetching_the_finished_part(hub, gemma_sha256,
                                                                     gemma_path):
    size = gemma_path.stat().st_size
    hub.stall_after = size // 2
    proc = cm("models", "pull", REPO_ID, FILENAME)
    try:
        assert hub.stalled.wait(timeout=300), "the download never reached the stall point"
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    hub.stall_after = None
    hub.release.set()
    assert downloaded(ModelLibrary()) == []               # nothing half-done is listed

    m = pull(REPO_ID, FILENAME)
    assert hub.ranges[-1] is not None and hub.ranges[-1].startswith("bytes=")
    assert 0 < hub.sent[-1] < size                        # only the missing part came again
    assert ModelLibrary().sha256(Path(m.path)) == gemma_sha256
    assert [x.name for x in downloaded(ModelLibrary())] == [m.name]


def test_one_flipped_byte_is_a_checksum_error_and_nothing_is_listed(hub, gemma_sha256):
    hub.flip_offset = 1_000_000
    with pytest.raises(ChecksumError) as info:
        pull(REPO_ID, FILENAME)
    message = str(info.value)
    assert "\n" not in message and "sha256" in message and "corrupted" in message
    lib = ModelLibrary()
    assert downloaded(lib) == []
    assert list(lib.dir.glob("**/*.gguf")) == []          # the bad copy is gone, staged or not

    hub.flip_offset = None                                 # a clean transfer now succeeds
    m = pull(REPO_ID, FILENAME)
    assert lib.sha256(Path(m.path)) == gemma_sha256


def test_a_gated_repo_is_one_line_saying_how_to_get_access(hub):
    with pytest.raises(DownloadError) as info:
        pull(GATED_REPO, FILENAME)
    message = str(info.value)
    assert "\n" not in message
    assert "gated" in message and "401" in message and "cm models login" in message
    proc = cm("models", "pull", GATED_REPO, FILENAME)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "Traceback" not in err
    assert err.strip().count("\n") == 0 and err.startswith("cm: error: ") and "gated" in err


def test_a_missing_file_is_one_line_naming_repo_and_file(hub):
    proc = cm("models", "pull", REPO_ID, "no-such-file.gguf")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "Traceback" not in err
    line = err.strip()
    assert "\n" not in line and "404" in line
    assert REPO_ID in line and "no-such-file.gguf" in line


def test_a_cancelled_download_lists_nothing_and_resumes_later(hub, gemma_path):
    token = CancelToken()
    seen = []

    def progress(p):
        seen.append(p.done)
        if p.done >= 4 * 1024 * 1024:
            token.cancel()

    with pytest.raises(Cancelled):
        pull(REPO_ID, FILENAME, progress=progress, cancel=token)
    assert seen and downloaded(ModelLibrary()) == []
    first = hub.sent[-1]
    m = pull(REPO_ID, FILENAME)
    assert hub.sent[-1] < gemma_path.stat().st_size       # resumed, not started over
    assert first > 0 and m.source == "downloaded"


def test_bad_names_are_refused_before_any_request(hub):
    for repo, name in [("not a repo", FILENAME), (REPO_ID, "../../etc/passwd.gguf"),
                       (REPO_ID, "weights.bin")]:
        with pytest.raises(DownloadError):
            pull(repo, name)
    assert hub.sent == []
