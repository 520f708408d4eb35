"""A damaged bank at start-up: a plain-text dialog (no traceback), nothing written, and a way
out: recover into a new file from the dialog."""

from __future__ import annotations

import hashlib
import sqlite3

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox


def _damage(path) -> None:
    """Four bytes of the id index's right-most leaf header overwritten (see
    tests/reliability/test_damaged_bank.py): quick_check fails, most reads still work."""
    con = sqlite3.connect(path)
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    root = con.execute("SELECT rootpage FROM sqlite_master"
                       " WHERE name = 'sqlite_autoindex_ratings_1'").fetchone()[0]
    con.close()
    with open(path, "r+b") as f:
        f.seek((root - 1) * page_size)
        header = f.read(12)
        assert header[0] == 2
        f.seek((int.from_bytes(header[8:12], "big") - 1) * page_size + 5)
        f.write(b"\xff\xff\xff\xff")


def _boxes(title: str) -> list[QMessageBox]:
    return [w for w in QApplication.topLevelWidgets()
            if isinstance(w, QMessageBox) and w.windowTitle() == title and w.isVisible()]


def test_a_damaged_bank_shows_a_dialog_and_can_be_recovered(qtbot, tmp_path):
    from bank_store import DiscrepancyBank
    from cm_desktop.app import create_app_window, start_up
    from cm_desktop.settings import Settings
    from cm_desktop.ui.resource_files import sample_responses

    path = tmp_path / "bank.sqlite3"
    bank = DiscrepancyBank(path)
    responses = sample_responses()
    bank.create_profile("Mine", responses)
    bank.add_ratings("Mine", [{"instance": f"message {i}", "model_response": responses[i % 77],
                               "user_response": responses[(i * 3) % 77]} for i in range(2000)])
    bank.close()
    _damage(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    ctx, window = create_app_window(path, settings=Settings(onboarding_dismissed=True))
    qtbot.addWidget(window)
    window.show()
    start_up(ctx, window, load_model=False)
    qtbot.waitUntil(lambda: bool(_boxes("The bank is damaged")), timeout=20_000)
    box = _boxes("The bank is damaged")[0]
    assert box.textFormat() == Qt.PlainText
    assert str(path) in box.text() and "cm bank recover" in box.informativeText()
    assert "Traceback" not in box.text() + box.informativeText()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest  # nothing written

    box.recover_button.click()
    qtbot.waitUntil(lambda: bool(_boxes("Recovered bank")), timeout=60_000)
    text = _boxes("Recovered bank")[0].text()
    assert "Recovered 2000 ratings in 1 profiles" in text  # no sample profile was written
    recovered = DiscrepancyBank(text.split(" into ")[1].split(". The damaged")[0])
    assert recovered.rating_count("Mine") == 2000
    recovered.close()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert window.shutdown(15)
