"""Chat on llama.cpp: the prompt (template, named format or transcript) and the sampling loop.

Part of the llama_cpp backend (LlamaCppBackend inherits ChatGeneration); split out to keep each
file to one job. The reply is sampled by llama.cpp's sampler chain (repeat penalty, then greedy
or top-k / top-p / temperature), streamed piece by piece, and ended by an end-of-generation
token, a stop string, the token limit, or a loop (chat_text.runaway_repetition).
"""

from __future__ import annotations

import codecs
import ctypes
from typing import Iterator, Sequence

from cm_desktop.backends.base import BackendError
from cm_desktop.backends.chat_text import (
    TRANSCRIPT_STOPS,
    StopScanner,
    barred_openers,
    render_transcript,
    runaway_repetition,
)
from cm_desktop.cancel import CancelToken, check


class ChatGeneration:
    """Prompt building and generation of LlamaCppBackend (uses its cache bookkeeping)."""

    def chat_prompt(self, messages: Sequence[dict]) -> tuple[str, bool, tuple[str, ...]]:
        """(prompt text, whether tokenizing it adds BOS, stop strings) for chat `messages`."""
        if self.chat_mode == "transcript":
            return render_transcript(messages), True, TRANSCRIPT_STOPS
        try:
            out = self._formatter(messages=list(messages))
        except Exception as exc:  # a template may raise on roles it does not accept
            raise BackendError(f"the model's chat template refused the messages: {exc}") from None
        stop = out.stop if isinstance(out.stop, (list, tuple)) else [out.stop] if out.stop else []
        return out.prompt, not out.added_special, tuple(stop)

    def chat_prompt_tokens(self, messages: Sequence[dict]) -> list[int]:
        text, bos, _ = self.chat_prompt(messages)
        return self._llm.tokenize(text.encode("utf-8"), add_bos=bos, special=True)

    def _fit(self, msgs: list[dict], max_tokens: int) -> tuple[list[int], tuple[str, ...]]:
        """The chat prompt's tokens, the oldest turns dropped (system and last kept) to leave
        room for the reply."""
        msgs = list(msgs)
        while True:
            text, bos, stops = self.chat_prompt(msgs)
            tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=bos, special=True)
            if len(tokens) + max_tokens <= self.n_ctx:
                return tokens, stops
            older = [i for i, m in enumerate(msgs[:-1]) if m["role"] != "system"]
            if not older:
                raise BackendError(f"the message ({len(tokens)} tokens) and the reply "
                                   f"({max_tokens}) do not fit the context of {self.n_ctx} tokens")
            del msgs[older[0]]

    def barred_openers(self, messages: Sequence[dict]) -> list[int]:
        """Tokens the reply to `messages` may not begin with (chat_text.barred_openers) in a
        transcript; none with a chat template."""
        if self.chat_mode != "transcript":
            return []
        return barred_openers(messages, lambda text: self._token_ids(text, prompt=False))

    def _sampler(self, temperature: float, barred: Sequence[int] = ()):
        lib, o = self._lib, self.options
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if barred:
            bias = (lib.llama_logit_bias * len(barred))(
                *[lib.llama_logit_bias(token=t, bias=float("-inf")) for t in barred])
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_logit_bias(
                self.n_vocab, len(barred), bias))
        if o.repeat_penalty > 1.0 and o.repeat_last_n > 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_penalties(
                self.n_vocab, o.repeat_last_n, o.repeat_penalty, 0.0, 0.0))
        if temperature <= 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
        else:
            for s in (lib.llama_sampler_init_top_k(o.top_k), lib.llama_sampler_init_top_p(o.top_p, 1),
                      lib.llama_sampler_init_temp(temperature),
                      lib.llama_sampler_init_dist(int(o.seed))):
                lib.llama_sampler_chain_add(chain, s)
        return chain

    def _piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        return buf.raw[:n]

    def _generate(self, seq: int, prompt: list[int], *, max_tokens: int, temperature: float,
                  stops: Sequence[str], cancel: CancelToken | None, counter: str,
                  barred_first: Sequence[int] = ()) -> Iterator[str]:
        """Stream the reply to `prompt` from sequence `seq` (which keeps prompt and reply);
        barred_first: tokens the reply may not begin with."""
        lib = self._lib
        self._ensure_prefix(seq, prompt, cancel, counter)
        held = self._held[seq]
        sampler = self._sampler(temperature)
        first = self._sampler(temperature, barred_first) if barred_first else None
        text = codecs.getincrementaldecoder("utf-8")("replace")
        scanner = StopScanner(stops)
        generated: list[int] = []
        self.last_stop_reason = "length"
        try:
            for i in range(max_tokens):
                check(cancel)
                if i == 0 and first is not None:
                    token = lib.llama_sampler_sample(first, self._ctx, -1)
                    lib.llama_sampler_accept(sampler, token)   # the repeat penalty's history
                else:
                    token = lib.llama_sampler_sample(sampler, self._ctx, -1)
                if lib.llama_vocab_is_eog(self._vocab, token):
                    self.last_stop_reason = "eog"
                    break
                generated.append(token)
                piece = scanner.feed(text.decode(self._piece(token)))
                if piece:
                    yield piece
                if scanner.stopped:
                    self.last_stop_reason = "stop"
                    break
                if runaway_repetition(generated):
                    self.last_stop_reason = "runaway"
                    break
                if i + 1 < max_tokens:  # the last token is never needed as an input
                    self._decode_in(seq, [token], [len(held)], [seq], [True])
                    held.append(token)
            # what the scanner still holds is the start of a stop string cut off: not shown
        finally:
            lib.llama_sampler_free(sampler)
            if first is not None:
                lib.llama_sampler_free(first)

