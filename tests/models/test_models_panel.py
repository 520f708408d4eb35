"""Settings ▸ Models in the real window: the library listed, a download with progress that is
cancelled from the GUI leaves nothing half-done in the library, and a second download resumes."""

from __future__ import annotations

import pytest
from hub_server import FILENAME, REPO_ID

from cm_desktop.models import ModelLibrary

pytestmark = pytest.mark.slow


@pytest.fixture
def window(qtbot, tmp_path):
    from cm_desktop.app import create_app_window, start_up
    from cm_desktop.settings import Settings

    ctx, win = create_app_window(tmp_path / "bank.sqlite3",
                                 settings=Settings(onboarding_dismissed=True))
    qtbot.addWidget(win)
    win.show()
    ready = []
    start_up(ctx, win, load_model=False, on_ready=lambda: ready.append(True))
    qtbot.waitUntil(lambda: bool(ready), timeout=15000)
    yield ctx, win
    assert win.shutdown(15), "the window did not stop its work in time"


def test_cancel_from_the_gui_lists_nothing_half_done(window, qtbot, hub, gemma_path):
    ctx, win = window
    win.tabs.setCurrentWidget(win.settings_view)
    panel = win.settings_view.models_panel
    qtbot.waitUntil(lambda: panel.table.rowCount() >= 1, timeout=60000)   # the embedded model
    assert "embedded" in panel.table.item(0, 1).text()

    hub.chunk_delay_s = 0.02                    # slow enough to cancel part-way
    panel.catalogue_combo.setCurrentIndex(panel.catalogue_combo.count() - 1)
    panel.repo_edit.setText(REPO_ID)
    panel.file_edit.setText(FILENAME)
    panel.download_button.click()
    assert not panel.download_button.isEnabled() and panel.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: panel.progress_bar.value() > 5, timeout=120000)
    assert " of " in panel.download_status.text() and "/s" in panel.download_status.text()
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: panel.download_op is None, timeout=60000)
    assert "Cancelled" in panel.download_status.text()
    assert [m for m in ModelLibrary().list() if m.source == "downloaded"] == []
    assert list(ModelLibrary().dir.glob("*.gguf")) == []

    hub.chunk_delay_s = 0.0
    panel.download_button.click()
    qtbot.waitUntil(lambda: panel.download_op is None, timeout=180000)
    assert "Downloaded" in panel.download_status.text(), panel.download_status.text()
    assert hub.sent[-1] < gemma_path.stat().st_size          # resumed from the cancelled part
    qtbot.waitUntil(lambda: panel.table.rowCount() == 2, timeout=60000)
    assert panel.table.item(1, 1).text() == "downloaded"
