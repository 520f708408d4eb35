"""Take the README's screenshots of the real app (run under Xvfb):

    xvfb-run -a -s "-screen 0 1280x900x24" python3 docs/screenshots/take_screenshots.py
    xvfb-run -a -s "-screen 0 1280x900x24" python3 docs/screenshots/take_screenshots.py --curve [HOME]

A throwaway home (CM_DESKTOP_HOME) gets the sample profile and a dozen ratings made the way the
Rate view makes them: the real model proposes y' for a Banking77 query and the "user" answers with
the dataset's label. Then the app starts as usual, and each view is captured once it has settled.

--curve: only the Bank view with the user's learning curve (bank_curve.png), on a home seeded with
CURVE_RATINGS ratings made the same way: Banking77 queries (the shared dataset when present, else
the sample queries) about CURVE_TOPICS meanings, in a fixed shuffled order - a person whose
questions keep to a few subjects, which is when a bank pays off soonest.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))
N_RATINGS = 12
CURVE_RATINGS = 54
CURVE_TOPICS = 12
CURVE_DATASET = REPO.parent / "shared" / "datasets" / "banking77" / "small.jsonl"
CHAT_QUERY = "When is my new card going to arrive?"
CHAT_NEXT = "Is there a fee for exchanging money?"   # later: decided alone and with CHAT_QUERY


def seed_bank(bank_path: Path) -> None:
    from bank_store import DiscrepancyBank
    from cm_desktop.backends import load_backend
    from cm_desktop.cm.engine import CMEngine
    from cm_desktop.ui.resource_files import SAMPLE_PROFILE_NAME, ensure_sample_profile, sample_queries

    bank = DiscrepancyBank(bank_path)
    ensure_sample_profile(bank)
    backend = load_backend("llama_cpp", n_threads=2)
    engine = CMEngine(backend, bank, SAMPLE_PROFILE_NAME, variant="none")
    queries = [q for q in sample_queries() if q.label][:N_RATINGS - 2]
    extra = [("When will my card arrive?", "card arrival"), ("My card still hasn't arrived", "card arrival")]
    for text, label in [(q.text, q.label) for q in queries] + extra:
        trace = engine.propose(text)
        bank.add_rating(SAMPLE_PROFILE_NAME, text, trace.model_response, label, source="rated",
                        strategy="vanilla", fingerprint=backend.fingerprint,
                        model_distribution=trace.model_p)       # as the Rate view stores it
        print(f"rated {text!r}: model {trace.model_response!r} -> {label!r}", flush=True)
    backend.close()
    bank.close_all()


def curve_queries() -> list[tuple[str, str]]:
    """(query, label) for the curve's simulated user: CURVE_TOPICS meanings, shuffled (seed 7)."""
    import random
    from collections import Counter

    from cm_desktop.datasets import read_queries
    from cm_desktop.ui.resource_files import sample_queries

    queries = read_queries(CURVE_DATASET) if CURVE_DATASET.exists() else sample_queries()
    pairs = [(q.text, q.label) for q in queries if q.label]
    topics = {label for label, _ in Counter(label for _, label in pairs).most_common(CURVE_TOPICS)}
    chosen = [pair for pair in pairs if pair[1] in topics]
    random.Random(7).shuffle(chosen)
    return chosen[:CURVE_RATINGS]


def seed_curve_bank(bank_path: Path) -> None:
    from bank_store import DiscrepancyBank
    from cm_desktop.backends import load_backend
    from cm_desktop.cm.engine import CMEngine
    from cm_desktop.ui.resource_files import SAMPLE_PROFILE_NAME, ensure_sample_profile

    bank = DiscrepancyBank(bank_path)
    ensure_sample_profile(bank)
    backend = load_backend("llama_cpp", n_threads=2)
    engine = CMEngine(backend, bank, SAMPLE_PROFILE_NAME, variant="none")
    agreed = 0
    for i, (text, label) in enumerate(curve_queries(), 1):
        trace = engine.propose(text)
        agreed += trace.model_response == label
        bank.add_rating(SAMPLE_PROFILE_NAME, text, trace.model_response, label, source="rated",
                        strategy="vanilla", fingerprint=backend.fingerprint,
                        model_distribution=trace.model_p)
        print(f"{i}: model agreed {agreed} of {i}", flush=True)
    backend.close()
    bank.close_all()


def curve_screenshot(home: Path) -> int:
    """The Bank view with the learning curve of a CURVE_RATINGS-rating bank (no model loaded)."""
    if not (home / "bank.sqlite3").exists():
        seed_curve_bank(home / "bank.sqlite3")
    (home / "settings.json").unlink(missing_ok=True)
    from PySide6.QtWidgets import QApplication

    from cm_desktop.app import apply_look, create_app_window, start_up
    from cm_desktop.settings import Settings

    app = QApplication(sys.argv[:1])
    app.setApplicationName("CM Desktop")
    apply_look(app)
    ctx, window = create_app_window(home / "bank.sqlite3", settings=Settings(onboarding_dismissed=True))
    window.resize(1180, 820)
    window.show()
    start_up(ctx, window, load_model=False)
    panel = window.bank_view.curve_panel
    end = time.monotonic() + 600
    window.tabs.setCurrentWidget(window.bank_view)
    while panel.curve is None or window.bank_view.is_loading():
        if time.monotonic() > end:
            raise TimeoutError("the curve was not computed in time")
        app.processEvents()
        time.sleep(0.02)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    path = OUT / "bank_curve.png"
    window.grab().save(str(path))
    curve = panel.curve
    print("saved", path, json.dumps({"ratings": len(curve), "summary": panel.summary.text(),
                                     "model": float(curve.model_agrees.mean()),
                                     "cm": float(curve.cm_agrees.mean())}), flush=True)
    window.shutdown()
    return 0


def main() -> int:
    # optional: --curve (the learning-curve screenshot only) and a home to reuse (seeded once,
    # then only the screenshots are retaken)
    args = sys.argv[1:]
    curve = "--curve" in args
    args = [a for a in args if a != "--curve"]
    home = Path(args[0]) if args else Path(tempfile.mkdtemp(prefix="cm-shots-"))
    home.mkdir(parents=True, exist_ok=True)
    os.environ["CM_DESKTOP_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if curve:
        return curve_screenshot(home)
    if not (home / "bank.sqlite3").exists():
        seed_bank(home / "bank.sqlite3")
    (home / "settings.json").unlink(missing_ok=True)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from cm_desktop.app import apply_look, create_app_window, start_up
    from cm_desktop.settings import Settings

    app = QApplication(sys.argv[:1])
    app.setApplicationName("CM Desktop")
    apply_look(app)
    settings = Settings(onboarding_dismissed=False, n_threads=2, max_tokens=60, temperature=0.3)
    ctx, window = create_app_window(home / "bank.sqlite3", settings=settings)
    window.resize(1180, 820)
    window.show()
    start_up(ctx, window, load_model=True)

    def wait(predicate, timeout=300.0):
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                raise TimeoutError("the app did not get there in time")
            app.processEvents()
            time.sleep(0.02)

    def settle(seconds=0.4):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)

    def shoot(name: str) -> None:
        settle()
        path = OUT / f"{name}.png"
        window.grab().save(str(path))
        print("saved", path, flush=True)

    rate = window.rate_view
    wait(lambda: ctx.inference.fingerprint is not None)
    wait(lambda: rate.current is not None and rate.current.trace is not None)
    window.tabs.setCurrentWidget(rate)
    # the first query is asked before the queue is ranked; skipped, the next is the bank's
    # neediest, and the card says which two answers it hesitates between
    wait(lambda: bool(rate.queue) and rate.queue[0].between is not None)
    rate.skip()
    wait(lambda: rate.current is not None and rate.current.trace is not None)
    rate.filter_edit.setFocus()
    shoot("rate")
    window.dismiss_onboarding()

    chat = window.chat_view
    window.tabs.setCurrentWidget(chat)
    finished = []
    chat.reply_finished.connect(finished.append)
    for n, message in enumerate((CHAT_QUERY, CHAT_NEXT), 1):
        chat.send(message)
        wait(lambda: len(finished) == n)
    reply = chat.replies[-1]
    reply.why_button.setChecked(True)
    chat.input.setPlainText("")
    settle(0.5)
    chat._scroll_to_bottom()
    shoot("chat")

    window.tabs.setCurrentWidget(window.bank_view)
    bank_view = window.bank_view
    wait(lambda: not bank_view.is_loading() and bank_view.curve_panel.curve is not None)
    shoot("bank")
    window.tabs.setCurrentWidget(window.settings_view)
    shown_at = time.monotonic()
    models = window.settings_view.models_panel
    wait(lambda: models.table.rowCount() >= 1)      # the library is read when first shown
    print(f"models listed {time.monotonic() - shown_at:.1f} s after the tab was shown", flush=True)
    shoot("settings")
    print(json.dumps({"chosen": reply.trace.chosen, "model": reply.trace.model_response,
                      "rule": reply.trace.rule, "followup": reply.trace.followup}), flush=True)
    QTimer.singleShot(0, window.close)
    app.exec()
    window.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
