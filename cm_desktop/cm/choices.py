"""Which responses to offer a person: the model's best first (keys 1-9), and a typed filter over
the whole response set. Shared by the Rate view and the Chat view's "what did you mean" picker."""

from __future__ import annotations

from cm_desktop.cm.engine import TOP_N


def filter_responses(responses, text: str) -> list[str]:
    """Responses containing every word typed (case-insensitive), prefix matches first."""
    words = text.lower().split()
    if not words:
        return list(responses)
    hits = [r for r in responses if all(w in r.lower() for w in words)]
    return sorted(hits, key=lambda r: (not r.lower().startswith(words[0]), 0))


def top_choices(trace, limit: int = TOP_N) -> list[tuple[str, float]]:
    """The model's best responses, most likely first, for keys 1-9."""
    if trace is None:
        return []
    ranked = sorted(getattr(trace, "scores", {}).items(), key=lambda kv: -kv[1])
    if len(ranked) < len(trace.model_top):
        ranked = list(trace.model_top)
    seen, out = set(), []
    for response, p in [(trace.model_response, dict(ranked).get(trace.model_response, 0.0))] + ranked:
        if response not in seen:
            seen.add(response)
            out.append((response, float(p)))
    return out[:limit]
