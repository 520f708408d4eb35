"""check_server: the Settings' "Test connection" against real servers on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cm_desktop.backends import EndpointError
from cm_desktop.backends.openai_api import check_server


class ChatOnlyServer(BaseHTTPRequestHandler):
    """Lists models per path prefix; its completions carry no log-probs (as chat-only APIs)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        mode = self.path.strip("/").split("/")[0]
        if mode == "two":
            data = [{"id": "alpha", "object": "model", "created": 0, "owned_by": "me"},
                    {"id": "beta", "object": "model", "created": 0, "owned_by": "me"}]
            self._send(200, json.dumps({"object": "list", "data": data}).encode())
        elif mode == "none":
            self._send(200, b'{"object": "list", "data": []}')
        elif mode == "locked":
            self._send(401, b'{"error": {"message": "invalid api key"}}')
        elif mode == "webpage":
            self._send(200, b"<html><body>\n<h1>Welcome</h1>\n</body></html>", ctype="text/html")
        else:
            self._send(404, b'{"error": "not found"}')

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = {"id": "c", "object": "text_completion", "created": 0, "model": "alpha",
                "choices": [{"index": 0, "text": " blue", "finish_reason": "length",
                             "logprobs": None}]}
        self._send(200, json.dumps(body).encode())


@pytest.fixture(scope="module")
def chat_only_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ChatOnlyServer)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and len(text) < 400
    return text


@pytest.mark.slow
def test_llama_cpp_server_lists_its_model_and_scores_exactly(llama_server):
    found = check_server(llama_server, timeout=120)
    assert found.models == ["gemma-3-270m"] and found.model == "gemma-3-270m"
    assert found.exact_scoring and found.detail == ""
    assert "exact log-prob scoring available" in found.summary()


def test_a_server_without_logprobs_is_listed_but_not_exact(chat_only_server):
    found = check_server(chat_only_server + "/two/v1", timeout=5)
    assert found.models == ["alpha", "beta"] and found.model == "alpha"
    assert not found.exact_scoring and found.detail == "no logprobs"
    assert "no exact log-prob scoring" in found.summary()
    assert check_server(chat_only_server + "/two/v1", "beta", timeout=5).model == "beta"


@pytest.mark.parametrize("path, match", [
    ("/none/v1", "serves no models"),
    ("/locked/v1", "HTTP 401"),
    ("/missing/v1", "HTTP 404"),
    ("/webpage/v1", "malformed response"),
])
def test_refusals_are_one_line_errors_naming_the_url(chat_only_server, path, match):
    with pytest.raises(EndpointError, match=match) as err:
        check_server(chat_only_server + path, timeout=5)
    assert chat_only_server in one_line(err.value)


def test_a_model_the_server_does_not_serve_is_named(chat_only_server):
    with pytest.raises(EndpointError, match="does not serve 'gamma'.*alpha, beta") as err:
        check_server(chat_only_server + "/two/v1", "gamma", timeout=5)
    one_line(err.value)


def test_nothing_listening_and_bad_urls(chat_only_server):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(EndpointError, match="cannot connect") as err:
        check_server(url, timeout=5)
    assert url in one_line(err.value)
    with pytest.raises(EndpointError, match="not an http"):
        check_server("ftp://127.0.0.1/v1")
    with pytest.raises(EndpointError, match="no endpoint URL"):
        check_server("")
