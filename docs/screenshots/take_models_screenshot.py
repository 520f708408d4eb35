"""Take the Settings ▸ Models screenshot mid-download (run under Xvfb):

    xvfb-run -a -s "-screen 0 1280x900x24" python3 docs/screenshots/take_models_screenshot.py

No network: a local server speaking the hub's file API (the one the tests use) serves the
embedded Gemma GGUF slowly, HF_ENDPOINT points at it, and the panel downloads from it; the window
is captured once the download is well under way.
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
sys.path.insert(0, str(REPO / "tests" / "models"))


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="cm-shots-models-"))
    os.environ["CM_DESKTOP_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from hub_server import FILENAME, REPO_ID, HubServer
    from PySide6.QtWidgets import QApplication, QScrollArea

    from cm_desktop.app import apply_look, create_app_window, start_up
    from cm_desktop.backends import default_model_path
    from cm_desktop.settings import Settings

    hub = HubServer({(REPO_ID, FILENAME): default_model_path()})
    hub.chunk_delay_s = 0.05
    with hub:
        os.environ["HF_ENDPOINT"] = hub.url
        app = QApplication(sys.argv[:1])
        app.setApplicationName("CM Desktop")
        apply_look(app)
        ctx, window = create_app_window(home / "bank.sqlite3",
                                        settings=Settings(onboarding_dismissed=True))
        window.resize(1180, 900)
        window.show()
        start_up(ctx, window, load_model=False)

        def wait(predicate, timeout=300.0):
            end = time.monotonic() + timeout
            while not predicate():
                if time.monotonic() > end:
                    raise TimeoutError("the app did not get there in time")
                app.processEvents()
                time.sleep(0.02)

        window.tabs.setCurrentWidget(window.settings_view)
        panel = window.settings_view.models_panel
        wait(lambda: panel.table.rowCount() >= 1)
        panel.catalogue_combo.setCurrentIndex(panel.catalogue_combo.count() - 1)
        panel.repo_edit.setText(REPO_ID)
        panel.file_edit.setText(FILENAME)
        panel.download_button.click()
        wait(lambda: panel.progress_bar.value() >= 300)
        scroll = window.settings_view.findChild(QScrollArea)
        scroll.ensureWidgetVisible(panel.progress_bar)
        for _ in range(20):
            app.processEvents()
        path = OUT / "models.png"
        window.grab().save(str(path))
        print("saved", path, panel.download_status.text(), flush=True)
        panel.cancel_download()
        wait(lambda: panel.download_op is None)
        window.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
