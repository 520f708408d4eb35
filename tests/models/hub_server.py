"""A small server on 127.0.0.1 answering the Hugging Face hub's file endpoints, for tests.

HEAD/GET /{owner}/{name}/resolve/{revision}/{file} with the headers huggingface_hub reads:
ETag and X-Linked-Etag (the file's sha256), X-Linked-Size, X-Repo-Commit, and Range requests
(206 with Content-Range). Faults on demand:
- `gated`: repos that answer 401 with X-Error-Code: GatedRepo;
- `flip_offset`: one byte of the body flipped in transit (the headers still describe the true file);
- `chunk_delay_s`: a slow network (a pause after each 256 KiB chunk);
- `stall_after`: stop sending after that many bytes of a body and wait (`stalled` is set) until
  `release` is set or the client goes away: lets a test kill the client mid-download.
It counts the body bytes it sent per GET (`sent`), so a test can see a resume fetch less.
"""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"
# what the tests download: the embedded Gemma under a made-up repo, and a gated repo
REPO_ID = "test-org/gemma-3-270m-GGUF"
FILENAME = "gemma-3-270m-it-Q4_K_M.gguf"
GATED_REPO = "test-org/gated-model-GGUF"
CHUNK = 256 * 1024


class HubServer:
    def __init__(self, files: dict[tuple[str, str], Path]) -> None:
        self.files = {k: Path(v) for k, v in files.items()}
        self.sha = {k: hashlib.sha256(v.read_bytes()).hexdigest() for k, v in self.files.items()}
        self.gated: set[str] = set()
        self.flip_offset: int | None = None
        self.stall_after: int | None = None
        self.chunk_delay_s = 0.0           # a slow network: a pause after each chunk sent
        self.stalled = threading.Event()
        self.release = threading.Event()
        self.sent: list[int] = []          # body bytes per GET, in order
        self.ranges: list[str | None] = []  # the Range header of each GET
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> "HubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):   # quiet
                pass

            def _route(self):
                path = self.path.split("?", 1)[0].lstrip("/")
                if "/resolve/" not in path:
                    return None, None, None
                repo, rest = path.split("/resolve/", 1)
                revision, _, filename = rest.partition("/")
                return repo, revision, filename

            def _error(self, status: int, code: str, message: str) -> None:
                body = message.encode()
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", message)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(body)

            def _serve(self, body: bool) -> None:
                repo, revision, filename = self._route()
                if repo in hub.gated:
                    return self._error(401, "GatedRepo", "Access to this repo is restricted")
                key = (repo, filename)
                if repo is None or key not in hub.files:
                    return self._error(404, "EntryNotFound", "Entry not found")
                path, sha = hub.files[key], hub.sha[key]
                size = path.stat().st_size
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    first = rng[6:].split("-", 1)[0]
                    start = int(first) if first else 0
                self.send_response(206 if start else 200)
                self.send_header("ETag", f'"{sha}"')
                self.send_header("X-Linked-Etag", f'"{sha}"')
                self.send_header("X-Linked-Size", str(size))
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(size - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                self.end_headers()
                if not body:
                    return
                with hub._lock:
                    hub.ranges.append(rng)
                    hub.sent.append(0)
                    slot = len(hub.sent) - 1
                with open(path, "rb") as f:
                    f.seek(start)
                    pos = start
                    while True:
                        if hub.stall_after is not None and hub.sent[slot] >= hub.stall_after:
                            hub.stalled.set()
                            hub.release.wait()
                            return
                        n = CHUNK if hub.stall_after is None else min(
                            CHUNK, hub.stall_after - hub.sent[slot])
                        data = f.read(n)
                        if not data:
                            break
                        if hub.flip_offset is not None and pos <= hub.flip_offset < pos + len(data):
                            i = hub.flip_offset - pos
                            data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
                        try:
                            self.wfile.write(data)
                        except (BrokenPipeError, ConnectionResetError):
                            return
                        pos += len(data)
                        with hub._lock:
                            hub.sent[slot] += len(data)
                        if hub.chunk_delay_s:
                            time.sleep(hub.chunk_delay_s)

            def do_HEAD(self):
                self._serve(body=False)

            def do_GET(self):
                self._serve(body=True)

        return Handler
