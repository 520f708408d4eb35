"""Screenshots of the Chat view's conversation list and of the guidance editor (run under Xvfb):

    xvfb-run -a -s "-screen 0 1280x900x24" python3 docs/screenshots/take_chat_screenshots.py

No model is loaded (on a busy 2-core machine a reply takes minutes): a throwaway home gets the
sample profiles with their guidance, and two conversations are written into the bank by this
script, with the shipped guidance of the chosen response as the reply text (no decision trace is
stored with them, so Why and the thumbs are off). The app then starts as usual and reopens the
last conversation; the second picture is the Bank view with its guidance editor.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))
TURNS = [
    ("I ordered a new card last week and it still hasn't come.", "card arrival",
     "Cards arrive within 3-5 working days of ordering. Offer to track it in the app; if it is "
     "over 7 days, offer a replacement."),
    ("and how long does that usually take?", "card delivery estimate",
     "Standard delivery takes 3-5 working days; express delivery takes 1-2 working days for a fee."),
]


def seed(bank_path: Path) -> None:
    from bank_store import DiscrepancyBank
    from cm_desktop.ui.resource_files import SAMPLE_PROFILE_NAME, ensure_sample_profile

    bank = DiscrepancyBank(bank_path)
    ensure_sample_profile(bank)
    older = bank.create_conversation(SAMPLE_PROFILE_NAME, "Top-up fees")
    bank.add_message(older.id, "user", "What do you charge for top ups?")
    bank.add_message(older.id, "assistant", "Top-ups by card are free for cards issued in the UK "
                     "or EEA; other cards have a 2% fee.", response="top up by card charge")
    conv = bank.create_conversation(SAMPLE_PROFILE_NAME)
    for text, meaning, reply in TURNS:
        bank.add_message(conv.id, "user", text)
        bank.add_message(conv.id, "assistant", reply, response=meaning)
    bank.add_rating(SAMPLE_PROFILE_NAME, TURNS[0][0], "card delivery estimate", "card arrival")
    bank.close_all()


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="cm-chat-shots-"))
    os.environ["CM_DESKTOP_HOME"] = str(home)
    seed(home / "bank.sqlite3")
    from PySide6.QtWidgets import QApplication

    from cm_desktop.app import apply_look, create_app_window, start_up
    from cm_desktop.settings import Settings
    from cm_desktop.ui.resource_files import SAMPLE_PROFILE_NAME

    app = QApplication(sys.argv[:1])
    apply_look(app)
    settings = Settings(onboarding_dismissed=True, last_profile=SAMPLE_PROFILE_NAME)
    ctx, window = create_app_window(home / "bank.sqlite3", settings=settings)
    window.resize(1180, 820)
    window.show()
    start_up(ctx, window, load_model=False)

    def wait(predicate, timeout=120.0):
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                raise TimeoutError("the app did not get there in time")
            app.processEvents()
            time.sleep(0.02)

    def shoot(widget, name: str) -> None:
        end = time.monotonic() + 0.6
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)
        path = OUT / f"{name}.png"
        widget.grab().save(str(path))
        print("saved", path, flush=True)

    chat = window.chat_view
    window.tabs.setCurrentWidget(chat)
    wait(lambda: len(chat.replies) == 2 and chat.conversation_list.list.count() == 2)
    shoot(window, "chat_conversations")

    bank_view = window.bank_view
    window.tabs.setCurrentWidget(bank_view)
    editor = bank_view.guidance_editor
    wait(lambda: editor.response_box.count() > 0 and bank_view.table.model().rowCount() > 0)
    bank_view.table.selectRow(0)
    wait(lambda: editor.current_response() == "card arrival")
    shoot(window, "guidance_editor")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
