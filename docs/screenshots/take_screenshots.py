"""Take the README's screenshots of the real app (run under Xvfb):

    xvfb-run -a -s "-screen 0 1280x900x24" python3 docs/screenshots/take_screenshots.py

A throwaway home (CM_DESKTOP_HOME) gets the sample profile and a dozen ratings made the way the
Rate view makes them: the real model proposes y' for a Banking77 query and the "user" answers with
the dataset's label. Then the app starts as usual, and each view is captured once it has settled.
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
CHAT_QUERY = "When is my new card going to arrive?"


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
                        strategy="vanilla", fingerprint=backend.fingerprint)
        print(f"rated {text!r}: model {trace.model_response!r} -> {label!r}", flush=True)
    backend.close()
    bank.close_all()


def main() -> int:
    # an optional argument: a home to reuse (seeded once, then only the screenshots are retaken)
    home = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="cm-shots-"))
    home.mkdir(parents=True, exist_ok=True)
    os.environ["CM_DESKTOP_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
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
    rate.filter_edit.setFocus()
    shoot("rate")
    window.dismiss_onboarding()

    chat = window.chat_view
    window.tabs.setCurrentWidget(chat)
    finished = []
    chat.reply_finished.connect(finished.append)
    chat.send(CHAT_QUERY)
    wait(lambda: bool(finished))
    reply = chat.replies[-1]
    reply.why_button.setChecked(True)
    chat.input.setPlainText("")
    settle(0.5)
    chat._scroll_to_bottom()
    shoot("chat")

    window.tabs.setCurrentWidget(window.bank_view)
    settle(2.0)
    shoot("bank")
    window.tabs.setCurrentWidget(window.settings_view)
    shoot("settings")
    print(json.dumps({"chosen": reply.trace.chosen, "model": reply.trace.model_response,
                      "rule": reply.trace.rule}), flush=True)
    QTimer.singleShot(0, window.close)
    app.exec()
    window.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
