"""The openai backend against a real HTTP server on 127.0.0.1 that misbehaves on purpose.

Each fault gives the retry it should (429 then 200 succeeds) or a clear EndpointError naming the
URL and the cause, quickly, and the backend object stays usable afterwards.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cm_desktop.backends import EndpointError, load_backend
from cm_desktop.cancel import CancelToken, Cancelled

COMPLETION = {"id": "c1", "object": "text_completion", "created": 0, "model": "m",
              "choices": [{"index": 0, "text": "hello", "finish_reason": "stop", "logprobs": None}]}


def chunk(text: str) -> bytes:
    body = {"id": "s1", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return f"data: {json.dumps(body)}\n\n".encode()


class Misbehaving(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits: dict = {}
    lock = threading.Lock()

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, ctype="application/json", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        mode = self.path.strip("/").split("/")[0]
        with self.lock:
            n = self.hits[mode] = self.hits.get(mode, 0) + 1
        if mode == "hang":
            time.sleep(3)
            self._send(200, json.dumps(COMPLETION).encode())
        elif mode == "ratelimited":
            if n == 1:
                self._send(429, b'{"error": {"message": "slow down"}}', headers={"Retry-After": "0"})
            else:
                self._send(200, json.dumps(COMPLETION).encode())
        elif mode == "broken":
            self._send(500, b'{"error": {"message": "internal"}}')
        elif mode == "malformed":
            self._send(200, b'{"choices": [ {"text": "unterminated')
        elif mode == "cut":
            payload = chunk("Hel") + chunk("lo")
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(payload) + 500))  # promise more than sent
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # cut mid-stream
            self.close_connection = True
        elif mode == "ok":
            if self.path.endswith("/chat/completions"):
                payload = chunk("Hi") + chunk(" there") + b"data: [DONE]\n\n"
                self._send(200, payload, ctype="text/event-stream")
            else:
                self._send(200, json.dumps(COMPLETION).encode())
        else:
            self._send(404, b'{"error": "no such mode"}')


@pytest.fixture(scope="module")
def fault_server():
    Misbehaving.hits = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def backend_for(url: str, *, timeout=0.5, retries=1):
    return load_backend("openai", base_url=url, model="m", timeout=timeout,
                        max_retries=retries)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the block ends: nothing listens there


def test_endpoint_down_is_a_clear_error_naming_url():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    b = backend_for(url, retries=0)
    t = time.monotonic()
    with pytest.raises(EndpointError) as err:
        b.complete("hi")
    assert time.monotonic() - t < 5
    assert url in str(err.value) and "cannot connect" in str(err.value)
    assert err.value.cause == "connection refused"


def test_hanging_endpoint_times_out_quickly(fault_server):
    b = backend_for(fault_server + "/hang/v1", timeout=0.4, retries=1)
    t = time.monotonic()
    with pytest.raises(EndpointError) as err:
        b.complete("hi")
    assert time.monotonic() - t < 3.5  # two attempts of 0.4 s plus the client's short backoff
    assert err.value.cause == "timeout" and "/hang/v1" in str(err.value)


def test_429_then_200_is_retried_and_succeeds(fault_server):
    b = backend_for(fault_server + "/ratelimited/v1", retries=2)
    assert b.complete("hi") == "hello"
    assert Misbehaving.hits["ratelimited"] == 2


def test_500_always_gives_endpoint_error_after_retries(fault_server):
    b = backend_for(fault_server + "/broken/v1", retries=2)
    with pytest.raises(EndpointError) as err:
        b.complete("hi")
    assert err.value.status == 500 and "HTTP 500" in str(err.value)
    assert Misbehaving.hits["broken"] == 3  # the first try and two retries


def test_malformed_json_is_a_clear_error(fault_server):
    b = backend_for(fault_server + "/malformed/v1")
    with pytest.raises(EndpointError) as err:
        b.complete("hi")
    assert "malformed" in str(err.value) and "/malformed/v1" in str(err.value)


def test_stream_cut_midway_yields_what_came_then_errors(fault_server):
    b = backend_for(fault_server + "/cut/v1", retries=0)
    got = []
    with pytest.raises(EndpointError) as err:
        for piece in b.stream_chat([{"role": "user", "content": "hi"}]):
            got.append(piece)
    assert "".join(got) == "Hello"
    assert "/cut/v1" in str(err.value)


def test_backend_stays_usable_after_errors(fault_server):
    b = backend_for(fault_server + "/ok/v1")
    bad = backend_for(fault_server + "/broken/v1", retries=0)
    with pytest.raises(EndpointError):
        bad.complete("x")
    assert b.complete("hi") == "hello"
    assert "".join(b.stream_chat([{"role": "user", "content": "hi"}])) == "Hi there"
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        list(b.stream_chat([{"role": "user", "content": "hi"}], cancel=token))


def test_bad_urls_and_credentials_in_url_never_leak():
    with pytest.raises(EndpointError, match="no endpoint URL"):
        load_backend("openai", base_url=None)
    with pytest.raises(EndpointError, match="not an http"):
        load_backend("openai", base_url="ftp://example/v1")
    b = backend_for(f"http://user:s3cret-pw@127.0.0.1:{closed_port()}/v1?token=s3cret-q", retries=0)
    with pytest.raises(EndpointError) as err:
        b.complete("hi")
    assert "s3cret" not in str(err.value)
    assert "s3cret" not in b.fingerprint
