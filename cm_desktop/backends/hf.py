"""transformers + torch: a model directory or a GGUF file (dequantised on load), CUDA bf16 or CPU.

Scoring runs the prompt once, keeps its KV cache, repeats it across a batch of candidates and
runs every candidate's input tokens (all but its last) in one right-padded forward pass; the LM
head is applied only at the rows that predict a candidate token (vocab 262,144 makes full logits
for every position expensive). Right padding needs no attention mask: a real token never attends
to a later pad. If the cache cannot be repeated (a model whose cache class lacks it), the batch is
run as whole prompt+candidate sequences instead — same numbers, more work.

Candidates are tokenized by the base class (Backend.scoring_tokens), as for every backend.

Chat goes through the tokenizer's chat template, or for a model without one (a base model) a
plain transcript with the rules llama_cpp uses too (chat_text: stop strings, barred openers).

torch and transformers are imported here only, inside functions, so the app starts without them.
"""

from __future__ import annotations

import copy
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from cm_desktop.backends.base import (
    Backend,
    BackendError,
    CandidateScores,
    ModelFileError,
    bounded,
    check_gguf_file,
    file_fingerprint,
)
from cm_desktop.backends.base import Options as _Options
from cm_desktop.backends.chat_text import (
    TRANSCRIPT_STOPS,
    StopScanner,
    barred_openers,
    render_transcript,
)
from cm_desktop.cancel import CancelToken, Cancelled, check

_BATCH = 32  # candidates per forward pass


class HFBackend(Backend):
    kind = "hf"

    @dataclass
    class Options(_Options):
        kind = "hf"
        model_path: str | None = None      # a model dir or a GGUF file; None: the embedded Gemma
        device: str | None = None          # "cuda", "cpu"; None: cuda when available
        n_threads: int | None = bounded(None, 1, 256, none_ok=True)  # None: os.cpu_count()

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        config = self.options
        from cm_desktop.backends import default_model_path

        path = Path(config.model_path or default_model_path()).expanduser()
        if path.is_dir():
            if not (path / "config.json").exists():
                raise ModelFileError(f"not a transformers model directory (no config.json): {path}")
            src, gguf_file = str(path), None
        else:
            path = check_gguf_file(path)
            src, gguf_file = str(path.parent), path.name
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise BackendError("the hf backend needs torch and transformers "
                               "(pip install 'cm-desktop[hf]')") from exc
        self._torch = torch
        self.device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        if not self.device.startswith("cuda"):
            torch.set_num_threads(int(config.n_threads or os.cpu_count() or 1))
        kw = {"gguf_file": gguf_file} if gguf_file else {}
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(src, **kw)
            model = transformers.AutoModelForCausalLM.from_pretrained(src, dtype=self.dtype, **kw)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelFileError(f"transformers could not load {path}: {exc}") from None
        self.model = model.to(self.device).eval()
        # a tokenizer without a chat template (a base model, e.g. the embedded Gemma's GGUF) is
        # given a plain transcript, as llama_cpp gives it: as a turn markup it does not know, the
        # base model echoed the message and its note
        self.chat_mode = ("template" if getattr(self.tokenizer, "chat_template", None)
                          else "transcript")
        self.softcap = getattr(model.config, "final_logit_softcapping", None) or \
            getattr(getattr(model.config, "text_config", None), "final_logit_softcapping", None)
        self.cache_repeat = True   # set False once repeating the prompt cache is found unsupported
        import inspect
        # transformers 5.x renamed past_key_values to cache; accept either
        self._cache_kw = "cache" if "cache" in inspect.signature(model.model.forward).parameters \
            else "past_key_values"
        self._fingerprint = file_fingerprint(self.kind, path) if path.is_file() \
            else _dir_fingerprint(self.kind, path)
        self._gen_lock = threading.Lock()

    # -- tokenization -----------------------------------------------------------------------
    def _token_ids(self, text: str, *, prompt: bool) -> list[int]:
        return self.tokenizer(text, add_special_tokens=prompt)["input_ids"]

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in a prompt (what the chat counts to fit a conversation)."""
        return len(self._token_ids(text, prompt=False))

    # -- scoring ----------------------------------------------------------------------------
    def _head_logprobs(self, hidden, targets):
        """log p(target) at each row of `hidden` (rows x d), applying the LM head only there."""
        torch = self._torch
        logits = self.model.lm_head(hidden).float()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        lsm = torch.log_softmax(logits, dim=-1)
        return lsm.gather(1, targets[:, None])[:, 0].double().cpu().numpy()

    def score(self, prompt: str, candidates: Sequence[str], cancel: CancelToken | None = None
              ) -> CandidateScores:
        torch = self._torch
        with self._lock, torch.inference_mode():
            check(cancel)
            tokens = self.scoring_tokens(prompt, candidates)
            cands, p, toks = tokens.candidates, tokens.prompt, tokens.per_candidate
            base = self.model.model
            ids = torch.tensor([p], device=self.device)
            out = base(input_ids=ids, use_cache=True)
            first = self._head_logprobs(out.last_hidden_state[0, -1:].expand(len(cands), -1),
                                        torch.tensor([t[0] for t in toks], device=self.device))
            logprob = first.copy()
            multi = [i for i, t in enumerate(toks) if len(t) > 1]
            for start in range(0, len(multi), _BATCH):
                check(cancel)
                members = multi[start:start + _BATCH]
                cache = getattr(out, "cache", None)
                if cache is None:
                    cache = out.past_key_values
                logprob += self._score_batch(p, toks, members, cache, len(cands))
            return CandidateScores(cands, logprob, [len(t) for t in toks],
                                   extra={"prompt_tokens": len(p), "device": self.device})

    def _score_batch(self, p, toks, members, cache, n_total) -> np.ndarray:
        torch = self._torch
        n0 = len(p)
        width = max(len(toks[i]) - 1 for i in members)
        pad = self.tokenizer.pad_token_id or 0
        rows = [toks[i][:-1] + [pad] * (width - len(toks[i]) + 1) for i in members]
        inputs = torch.tensor(rows, device=self.device)
        hidden = None
        if self.cache_repeat:
            try:
                c = copy.deepcopy(cache)
                c.batch_repeat_interleave(len(members))
                pos = torch.arange(n0, n0 + width, device=self.device)
                hidden = self.model.model(input_ids=inputs, **{self._cache_kw: c}, use_cache=True,
                                          position_ids=pos[None].expand(len(members), -1),
                                          cache_position=pos).last_hidden_state
            except (AttributeError, NotImplementedError, RuntimeError, TypeError):
                self.cache_repeat = False
        if hidden is None:
            full = torch.cat([torch.tensor([p] * len(members), device=self.device), inputs], 1)
            hidden = self.model.model(input_ids=full, use_cache=False).last_hidden_state[:, n0:]
        sel_b, sel_t, targets, owner = [], [], [], []
        for b, i in enumerate(members):
            for j in range(len(toks[i]) - 1):
                sel_b.append(b)
                sel_t.append(j)
                targets.append(toks[i][j + 1])
                owner.append(i)
        vals = self._head_logprobs(hidden[sel_b, sel_t], torch.tensor(targets, device=self.device))
        add = np.zeros(n_total)
        np.add.at(add, np.asarray(owner), vals)
        return add

    # -- generation -------------------------------------------------------------------------
    def _generate_kwargs(self, max_tokens, temperature):
        kw = {"max_new_tokens": int(max_tokens), "do_sample": temperature > 0,
              "pad_token_id": self.tokenizer.pad_token_id or self.tokenizer.eos_token_id}
        if temperature > 0:
            kw["temperature"] = float(temperature)
        else:
            kw.update(temperature=None, top_p=None, top_k=None)
        return kw

    def complete(self, prompt: str, *, max_tokens: int = 64, stop: Sequence[str] | None = None,
                 temperature: float = 0.0) -> str:
        torch = self._torch
        with self._lock, torch.inference_mode():
            ids = torch.tensor([self._token_ids(prompt, prompt=True)], device=self.device)
            out = self.model.generate(ids, **self._generate_kwargs(max_tokens, temperature))
            text = self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        for s in stop or ():
            if s and s in text:
                text = text[:text.index(s)]
        return text

    def chat_prompt(self, messages: Sequence[dict]) -> tuple[str, bool, tuple[str, ...]]:
        """(prompt text, whether tokenizing it adds BOS, stop strings) for chat `messages`, as
        LlamaCppBackend.chat_prompt."""
        if self.chat_mode == "transcript":
            return render_transcript(messages), True, TRANSCRIPT_STOPS
        text = self.tokenizer.apply_chat_template(list(messages), tokenize=False,
                                                  add_generation_prompt=True)
        return text, False, ()

    def _stream(self, msgs, max_tokens, temperature, cancel) -> Iterator[str]:
        import transformers
        torch = self._torch
        stop_flag = threading.Event()

        class _Stop(transformers.StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return stop_flag.is_set() or (cancel is not None and cancel.cancelled)

        text, bos, stops = self.chat_prompt(msgs)
        tokens = self._token_ids(text, prompt=bos)
        ids = torch.tensor([tokens], device=self.device)
        barred = (barred_openers(msgs, lambda text: self._token_ids(text, prompt=False))
                  if self.chat_mode == "transcript" else [])

        class _BarFirst(transformers.LogitsProcessor):
            """The reply's first token is none of `barred` (chat_text.barred_openers)."""
            def __call__(self, input_ids, scores):
                if input_ids.shape[1] == len(tokens):
                    scores[:, barred] = float("-inf")
                return scores

        extra = {"logits_processor": transformers.LogitsProcessorList([_BarFirst()])} \
            if barred else {}
        streamer = transformers.TextIteratorStreamer(self.tokenizer, skip_prompt=True,
                                                     skip_special_tokens=True)
        errors: list[BaseException] = []

        def run():
            try:
                with torch.inference_mode():
                    self.model.generate(ids, streamer=streamer,
                                        stopping_criteria=transformers.StoppingCriteriaList([_Stop()]),
                                        **extra, **self._generate_kwargs(max_tokens, temperature))
            except BaseException as exc:  # reported to the consumer below
                errors.append(exc)
                streamer.end()

        scanner = StopScanner(stops)
        with self._lock:
            worker = threading.Thread(target=run, name="cm-hf-generate", daemon=True)
            worker.start()
            try:
                for piece in streamer:
                    if cancel is not None and cancel.cancelled:
                        raise Cancelled()
                    shown = scanner.feed(piece)
                    if shown:
                        yield shown
                    if scanner.stopped:
                        break
                if errors:
                    raise BackendError(f"generation failed: {errors[0]}")
            finally:
                stop_flag.set()
                worker.join()

    def close(self) -> None:
        with self._lock:
            self.model = None
            if self.device.startswith("cuda"):
                self._torch.cuda.empty_cache()


def _dir_fingerprint(kind: str, path: Path) -> str:
    import hashlib
    h = hashlib.sha256()
    total = 0
    for f in sorted(path.iterdir()):
        if f.is_file():
            st = f.stat()
            total += st.st_size
            h.update(f"{f.name}:{st.st_size}".encode())
            if f.name == "config.json":
                h.update(f.read_bytes())
    return f"{kind}:{path.name}:{total}:{h.hexdigest()[:12]}"
