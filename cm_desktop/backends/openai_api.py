"""Any OpenAI-compatible server (llama.cpp's or llama-cpp-python's server, vLLM, OpenAI itself).

Scoring tries, in order, and remembers what worked (`score_path`; also in each result's .method):

1. "logprobs": `/v1/completions` with `echo=True, logprobs=1, max_tokens=1` on prompt+candidate;
   the candidate's tokens are those whose `text_offset` falls at or after len(prompt). Exact
   log-probs, one request per candidate, run concurrently under the concurrency limit.
2. "enum": a chat completion constrained by a JSON schema whose answer is an enum of the
   candidates (structured output). Gives a one-hot distribution.
3. "match": a plain chat completion, the answer must equal a candidate; one retry with a
   reminder. One-hot; if both answers miss, the distribution is uniform (method "unmatched").

Retries with backoff on 429, 5xx, timeouts and dropped connections are the openai client's own
(`max_retries`; it honours Retry-After). Every failure becomes an EndpointError that names the URL
and the cause. The API key comes from cm_desktop.credentials; it is sent to the server and never
appears in the fingerprint, the settings or an error message.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator, Sequence
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from cm_desktop.backends.base import (
    Backend,
    BackendError,
    CandidateScores,
    EndpointError,
    bounded,
    validate_candidates,
)
from cm_desktop.backends.base import Options as _Options
from cm_desktop.cancel import CancelToken, Cancelled, check

SCORE_PATHS = ("logprobs", "enum", "match")
_NO_KEY = "no-key"  # local servers need none; the client insists on a non-empty string


def public_url(url: str) -> str:
    """The URL without user:password@ or a query string: safe to show and to store."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


class OpenAIBackend(Backend):
    kind = "openai"

    @dataclass
    class Options(_Options):
        kind = "openai"
        base_url: str | None = None        # e.g. http://127.0.0.1:8080/v1
        model: str | None = None           # the served model's name; None: the first listed
        timeout: float = bounded(60.0, 0.1, 3600.0)      # seconds per request
        max_retries: int = bounded(3, 0, 20)             # on 429 / 5xx / connection errors
        concurrency: int = bounded(4, 1, 64)             # requests in flight for batch work
        score_path: str | None = None      # force one of SCORE_PATHS; None: the first that works

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        config = self.options
        if not config.base_url:
            raise EndpointError("no endpoint URL: set the base URL, e.g. http://127.0.0.1:8080/v1")
        parts = urlsplit(config.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EndpointError(f"not an http(s) URL: {public_url(config.base_url)!r}")
        try:
            import openai
        except ImportError as exc:
            raise BackendError("the openai package is not installed (pip install openai)") from exc
        from cm_desktop.credentials import get_api_key

        self._openai = openai
        self.url = public_url(config.base_url)
        self.timeout = float(config.timeout)
        self._client = openai.OpenAI(
            base_url=config.base_url, api_key=get_api_key(self.url) or _NO_KEY,
            timeout=self.timeout, max_retries=int(config.max_retries))
        self.concurrency = max(1, int(config.concurrency))
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency,
                                        thread_name_prefix="cm-openai")
        forced = config.score_path
        if forced is not None and forced not in SCORE_PATHS:
            raise BackendError(f"score_path must be one of {SCORE_PATHS}, got {forced!r}")
        self.score_path: str | None = forced
        self._model = config.model
        self._fp_lock = threading.Lock()

    # -- identity ---------------------------------------------------------------------------
    @property
    def model(self) -> str:
        if not self._model:
            models = self._call("list models", lambda: self._client.models.list())
            data = list(getattr(models, "data", []) or [])
            if not data:
                raise EndpointError(f"{self.url} serves no models", url=self.url, cause="empty")
            self._model = data[0].id
        return self._model

    @property
    def fingerprint(self) -> str:
        # The model id as the server names it and where it is served; no key, no credentials.
        with self._fp_lock:
            if not self._fingerprint:
                self._fingerprint = f"openai:{self.model}:{self.url}"
            return self._fingerprint

    # -- errors -----------------------------------------------------------------------------
    def _call(self, what: str, fn):
        openai = self._openai
        try:
            return fn()
        except openai.APITimeoutError:
            raise EndpointError(f"{what} at {self.url}: no answer within {self.timeout:g} s "
                                f"(after {self.options.max_retries} retries)",
                                url=self.url, cause="timeout") from None
        except openai.APIConnectionError as exc:
            cause = _root_cause(exc)
            raise EndpointError(f"{what} at {self.url}: cannot connect ({cause})",
                                url=self.url, cause=cause) from None
        except openai.APIStatusError as exc:
            body = _short(getattr(exc.response, "text", "") or "")
            raise EndpointError(f"{what} at {self.url}: HTTP {exc.status_code} {body}".rstrip(),
                                url=self.url, cause=f"HTTP {exc.status_code}",
                                status=exc.status_code) from None
        except (openai.APIResponseValidationError, json.JSONDecodeError, ValueError,
                TypeError, KeyError, AttributeError) as exc:
            raise EndpointError(f"{what} at {self.url}: malformed response ({_short(str(exc))})",
                                url=self.url, cause="malformed response") from None
        except openai.OpenAIError as exc:
            raise EndpointError(f"{what} at {self.url}: {_short(str(exc))}", url=self.url,
                                cause=type(exc).__name__) from None

    # -- scoring ----------------------------------------------------------------------------
    def score(self, prompt: str, candidates: Sequence[str], cancel: CancelToken | None = None
              ) -> CandidateScores:
        cands = validate_candidates(candidates)
        if not isinstance(prompt, str) or not prompt:
            raise BackendError("the prompt must be a non-empty string")
        check(cancel)
        with self._lock:
            path = self.score_path
        if path in (None, "logprobs"):
            try:
                result = self._score_logprobs(prompt, cands, cancel)
                self.score_path = "logprobs"
                return result
            except EndpointError as exc:
                # Only a refusal of the request shape moves on; a dead server is the error.
                if path == "logprobs" or exc.cause in ("timeout",) or exc.status is None \
                        and exc.cause != "no logprobs":
                    raise
        if path in (None, "enum"):
            try:
                result = self._score_choice(prompt, cands, cancel, structured=True)
                self.score_path = "enum"
                return result
            except EndpointError as exc:
                if path == "enum" or exc.status is None:
                    raise
        result = self._score_choice(prompt, cands, cancel, structured=False)
        self.score_path = "match"
        return result

    def _one_logprob(self, prompt: str, cand: str) -> tuple[float, int]:
        text = prompt + cand
        resp = self._call("scoring", lambda: self._client.completions.create(
            model=self.model, prompt=text, echo=True, logprobs=1, max_tokens=1, temperature=0.0))
        try:
            lp = resp.choices[0].logprobs
            offsets, values = list(lp.text_offset), list(lp.token_logprobs)
            tokens = list(lp.tokens)
        except (AttributeError, IndexError, TypeError):
            raise EndpointError(f"scoring at {self.url}: the server returned no logprobs",
                                url=self.url, cause="no logprobs") from None
        start, end = len(prompt), len(text)
        total, n = 0.0, 0
        for i, (off, val) in enumerate(zip(offsets, values)):
            tok_end = off + len(tokens[i]) if i < len(tokens) else off + 1
            # a token belongs to the candidate if it ends inside it (covers a merged boundary)
            if off < end and tok_end > start:
                if val is None:
                    raise EndpointError(f"scoring at {self.url}: a candidate token has no logprob",
                                        url=self.url, cause="no logprobs")
                total += float(val)
                n += 1
        if n == 0:
            raise EndpointError(f"scoring at {self.url}: no tokens found for {cand!r} in the echo",
                                url=self.url, cause="no logprobs")
        return total, n

    def _score_logprobs(self, prompt, cands, cancel) -> CandidateScores:
        futures = [self._pool.submit(self._one_logprob, prompt, c) for c in cands]
        out = []
        try:
            for f in futures:
                while True:
                    check(cancel)
                    try:
                        out.append(f.result(timeout=0.1))
                        break
                    except TimeoutError:
                        continue
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        return CandidateScores(cands, [v for v, _ in out], [n for _, n in out],
                               method="logprobs", extra={"path": "logprobs"})

    def _score_choice(self, prompt, cands, cancel, *, structured: bool) -> CandidateScores:
        options = [c.strip() for c in cands]
        ask = (prompt.rstrip() + "\n\nAnswer with exactly one of these options and nothing else:\n"
               + "\n".join(options))
        messages = [{"role": "user", "content": ask}]
        tries = 1 if structured else 2
        answer = ""
        for attempt in range(tries):
            check(cancel)
            kwargs = dict(model=self.model, messages=messages, temperature=0.0, max_tokens=64)
            if structured:
                resp = self._structured(kwargs, options)
            else:
                resp = self._call("choosing",
                                  lambda: self._client.chat.completions.create(**kwargs))
            try:
                answer = resp.choices[0].message.content or ""
            except (AttributeError, IndexError):
                raise EndpointError(f"choosing at {self.url}: malformed response",
                                    url=self.url, cause="malformed response") from None
            if structured:
                try:
                    answer = str(json.loads(answer)["answer"])
                except (ValueError, KeyError, TypeError):
                    raise EndpointError(f"choosing at {self.url}: structured output not honoured",
                                        url=self.url, cause="no structured output",
                                        status=0) from None
            picked = answer.strip().strip('"').strip()
            if picked in options:
                logprob = [0.0 if o == picked else -np.inf for o in options]
                return CandidateScores(cands, logprob, [1] * len(cands),
                                       method="enum" if structured else "match",
                                       extra={"path": "enum" if structured else "match",
                                              "answer": picked})
            messages = messages + [{"role": "assistant", "content": answer},
                                   {"role": "user", "content": "That is not one of the options. "
                                    "Reply with one option exactly as written."}]
        return CandidateScores(cands, [0.0] * len(cands), [1] * len(cands), method="unmatched",
                               extra={"path": "match", "answer": answer})

    def _structured(self, kwargs, options):
        """A chat completion constrained to {"answer": one of options}.

        OpenAI and vLLM take response_format json_schema; llama-cpp-python's server takes
        json_object with a "schema". The first form the server accepts is remembered.
        """
        schema = {"type": "object", "properties": {"answer": {"enum": options}},
                  "required": ["answer"], "additionalProperties": False}
        forms = [{"type": "json_schema",
                  "json_schema": {"name": "choice", "strict": True, "schema": schema}},
                 {"type": "json_object", "schema": schema}]
        if getattr(self, "_format_index", None) is not None:
            forms = [forms[self._format_index]]
        last = None
        for i, fmt in enumerate(forms):
            try:
                resp = self._call("choosing", lambda: self._client.chat.completions.create(
                    response_format=fmt, **kwargs))
                if getattr(self, "_format_index", None) is None:
                    self._format_index = i
                return resp
            except EndpointError as exc:
                if exc.status is None:
                    raise
                last = exc
        raise last

    # -- generation -------------------------------------------------------------------------
    def complete(self, prompt: str, *, max_tokens: int = 64, stop: Sequence[str] | None = None,
                 temperature: float = 0.0) -> str:
        resp = self._call("completion", lambda: self._client.completions.create(
            model=self.model, prompt=prompt, max_tokens=int(max_tokens),
            stop=list(stop) if stop else None, temperature=float(temperature)))
        try:
            return resp.choices[0].text or ""
        except (AttributeError, IndexError):
            raise EndpointError(f"completion at {self.url}: malformed response", url=self.url,
                                cause="malformed response") from None

    def _stream(self, msgs, max_tokens, temperature, cancel) -> Iterator[str]:
        stream = self._call("chat", lambda: self._client.chat.completions.create(
            model=self.model, messages=msgs, max_tokens=max_tokens, temperature=temperature,
            stream=True))
        it = iter(stream)
        try:
            while True:
                if cancel is not None and cancel.cancelled:
                    raise Cancelled()
                try:
                    chunk = self._call("chat stream", lambda: next(it))
                except StopIteration:
                    return
                except EndpointError:
                    raise
                try:
                    choices = chunk.choices
                    text = choices[0].delta.content if choices else None
                except (AttributeError, IndexError):
                    raise EndpointError(f"chat stream at {self.url}: malformed chunk",
                                        url=self.url, cause="malformed response") from None
                if text:
                    yield text
        except (Cancelled, EndpointError, GeneratorExit):
            raise
        except Exception as exc:  # httpx errors when the stream is cut mid-way
            raise EndpointError(f"chat stream at {self.url}: the stream broke off ({_short(str(exc))})",
                                url=self.url, cause="stream cut") from None
        finally:
            try:
                stream.close()
            except Exception:
                pass

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        try:
            self._client.close()
        except Exception:
            pass


@dataclass
class ServerCheck:
    """What check_server found out about an OpenAI-compatible server."""

    url: str                 # without credentials: safe to show
    models: list[str]        # the ids /v1/models lists, in its order
    model: str               # the one checked: the one asked for, else the first listed
    exact_scoring: bool      # /v1/completions gives log-probs of the prompt's tokens (echo)
    detail: str              # why not, when exact_scoring is False

    def summary(self) -> str:
        """One line for a status bar or a terminal."""
        n = len(self.models)
        scoring = ("exact log-prob scoring available" if self.exact_scoring else
                   f"no exact log-prob scoring ({self.detail}); responses are chosen by the "
                   "model's answer instead")
        return f"{self.url}: {n} model{'s' if n != 1 else ''}, using {self.model}; {scoring}"


def check_server(base_url: str, model: str | None = None, *, timeout: float = 10.0
                 ) -> ServerCheck:
    """Reach an OpenAI-compatible server, list its models, and find out whether it scores.

    Makes two requests: GET {base_url}/models and one tiny completion with echo + logprobs
    (what the backend's exact scoring needs). Raises EndpointError with a one-line message
    naming the URL when the server cannot be reached, refuses (401, 404...), answers with
    something that is not the API, or serves no models, or does not serve `model`. The API
    key comes from cm_desktop.credentials, as for the backend.
    """
    backend = OpenAIBackend(OpenAIBackend.Options(
        base_url=base_url, model=None, timeout=timeout, max_retries=0, concurrency=1))
    try:
        listed = backend._call("list models", lambda: backend._client.models.list())
        try:
            models = [str(m.id) for m in (getattr(listed, "data", None) or [])]
        except AttributeError:
            raise EndpointError(f"list models at {backend.url}: malformed response (no model ids)",
                                url=backend.url, cause="malformed response") from None
        if not models:
            raise EndpointError(f"{backend.url} serves no models", url=backend.url, cause="empty")
        if model and model not in models:
            raise EndpointError(f"{backend.url} does not serve {model!r}; it serves "
                                f"{_short(', '.join(models), 120)}", url=backend.url,
                                cause="no such model")
        backend._model = model or models[0]
        try:
            backend._one_logprob("The sky is", " blue")
            exact, detail = True, ""
        except EndpointError as exc:
            if exc.cause in ("timeout",) or (exc.status is None and exc.cause != "no logprobs"
                                             and exc.cause != "malformed response"):
                raise
            exact, detail = False, exc.cause or "refused"
        return ServerCheck(backend.url, models, backend._model, exact, detail)
    finally:
        backend.close()


def _root_cause(exc: BaseException) -> str:
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__
    text = str(seen) or type(seen).__name__
    low = text.lower()
    if "refused" in low:
        return "connection refused"
    if "timed out" in low or "timeout" in low:
        return "timeout"
    return _short(text)


def _short(text: str, n: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n] + "..."
