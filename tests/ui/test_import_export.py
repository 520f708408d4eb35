"""The Import / Export dialogs, driven programmatically (fields set, accept slots called) on a real
SQLite bank, real bank files (a paper bank from ../shared and our own native exports) and the real
AppContext."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from cm_desktop.ui.export_dialog import ExportDialog
from cm_desktop.ui.import_dialog import ImportDialog

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
PAPER_BANK = SHARED / "memory_banks" / "Memory_Masking_banking77_0.05_0.7_1.json"


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


@pytest.fixture(scope="module")
def banking77_responses() -> list[str]:
    seen: dict[str, None] = {}
    with open(SHARED / "datasets" / "banking77" / "small.jsonl", encoding="utf-8") as f:
        for line in f:
            seen.setdefault(json.loads(line)["label"], None)
    assert len(seen) == 77
    return list(seen)


@pytest.fixture
def current_model_file(tmp_path) -> Path:
    """The file the settings name as the model (never loaded here): the import preview compares
    a file's fingerprints with its fingerprint. Small, so no test hashes the real model."""
    path = tmp_path / "current-model.gguf"
    path.write_bytes(b"GGUF" + bytes(range(256)) * 16)
    return path


@pytest.fixture
def app_ctx(bank, qtbot, current_model_file):
    from cm_desktop.settings import Settings
    from cm_desktop.ui.context import AppContext

    ctx = AppContext(Settings(model_path=str(current_model_file)), bank)
    yield ctx
    ctx.inference.stop()
    from cm_desktop.ui.background_op import shutdown_ops

    shutdown_ops()


def _preview(qtbot, dialog):
    with qtbot.waitSignal(dialog.preview_ready, timeout=10000) as blocker:
        dialog.refresh_preview()
    return blocker.args[0]


def _import(qtbot, dialog):
    with qtbot.waitSignal(dialog.imported, timeout=10000) as blocker:
        op = dialog.start_import()
        assert op is not None, dialog.error_label.text()
    return blocker.args[0]


def test_paper_file_preview_matches_the_file_then_imports(app_ctx, bank, qtbot, banking77_responses):
    bank.create_profile("banking", banking77_responses)
    app_ctx.set_profile("banking")
    mapping = json.loads(PAPER_BANK.read_text(encoding="utf-8"))
    members = {_norm(r) for r in banking77_responses}
    # what the file says, counted independently of the bank code
    pairs = {(_norm(k), _norm(v)) for k, vs in mapping.items() for v in vs}
    keys = {_norm(k) for k in mapping}
    values = {_norm(v) for vs in mapping.values() for v in vs}

    dialog = ImportDialog(app_ctx, path=str(PAPER_BANK))
    qtbot.addWidget(dialog)
    preview = _preview(qtbot, dialog)
    plan = preview.plan
    assert preview.detected_format == "paper"
    assert len(plan.new) == len(pairs) and plan.duplicates == 0
    assert (plan.matched_keys, plan.total_keys) == (len(keys & members), len(keys))
    assert (plan.matched_values, plan.total_values) == (len(values & members), len(values))
    text = dialog.preview_edit.toPlainText()
    assert f"New ratings: {len(pairs)}" in text
    assert "Duplicates skipped: 0" in text
    assert f"Model responses in the response set: {len(keys & members)} of {len(keys)}" in text
    assert not dialog.mismatch_box.isVisible()
    assert dialog.import_button.isEnabled()
    assert bank.rating_count("banking") == 0  # the preview wrote nothing
    # whose y' these are: the paper's model's, with no queries to rebase
    assert "Note: this is a paper file" in text and "cannot be rebased" in text

    with qtbot.waitSignal(app_ctx.bank_changed, timeout=10000) as changed:
        report = _import(qtbot, dialog)
    assert changed.args == ["banking"]
    assert report.added == len(pairs)
    assert bank.rating_count("banking") == len(pairs)
    assert bank.stats("banking")["by_source"]["imported"] == len(pairs)
    assert "Imported" in dialog.summary() and str(len(pairs)) in dialog.summary()

    # the same file again: everything is a duplicate and there is nothing to import
    again = ImportDialog(app_ctx, path=str(PAPER_BANK))
    qtbot.addWidget(again)
    plan2 = _preview(qtbot, again).plan
    assert (len(plan2.new), plan2.duplicates) == (0, len(pairs))
    assert not again.import_button.isEnabled()
    assert again.start_import() is None
    assert "Nothing to import" in again.error_label.text()
    assert bank.rating_count("banking") == len(pairs)


def _fill(bank, profile, responses):
    bank.create_profile(profile, responses)
    for i, (a, b) in enumerate([(responses[0], responses[0]), (responses[0], responses[1]),
                                (responses[0], responses[1]), (responses[1], responses[2]),
                                ("raw answer", responses[2])]):
        bank.add_rating(profile, f"instance {i} <b>bold?</b>", a, b)


def test_export_then_import_into_a_fresh_profile_gives_the_same_counts(app_ctx, bank, qtbot, tmp_path):
    _fill(bank, "orig", ["alpha", "beta", "gamma"])
    app_ctx.set_profile("orig")
    export = ExportDialog(app_ctx, path=str(tmp_path / "orig.json"))
    qtbot.addWidget(export)
    export.gzip_box.setChecked(True)
    assert export.path_edit.text().endswith("orig.json.gz")
    with qtbot.waitSignal(export.exported, timeout=10000) as done:
        assert export.start_export() is not None
    path, fmt, count = done.args[0]
    assert (fmt, count) == ("native", 5)
    assert path.endswith(".json.gz")
    assert json.loads(gzip.decompress(Path(path).read_bytes()))["profile"]["name"] == "orig"
    assert "Exported 5 ratings" in export.summary()

    dialog = ImportDialog(app_ctx)
    qtbot.addWidget(dialog)
    dialog.file_chooser = lambda _parent: path  # what the file picker would return
    dialog.set_new_profile("copy")
    with qtbot.waitSignal(dialog.preview_ready, timeout=10000) as ready:
        dialog.browse()
    plan = ready.args[0].plan
    assert plan.create_profile and len(plan.new) == 5 and plan.raw_keys == ["raw answer"]
    assert "Into: a new profile 'copy' with 3 responses" in dialog.preview_edit.toPlainText()
    with qtbot.waitSignal(app_ctx.profile_changed, timeout=10000):
        _import(qtbot, dialog)
    assert app_ctx.profile == "copy"
    assert bank.counts("copy") == bank.counts("orig")
    assert bank.get_profile("copy").responses == bank.get_profile("orig").responses
    assert sorted(r.instance for r in bank.ratings("copy")) == sorted(r.instance for r in bank.ratings("orig"))


def test_the_preview_says_when_a_files_ratings_are_another_models(app_ctx, bank, qtbot, tmp_path,
                                                                   current_model_file):
    from bank_store.formats import export_native
    from cm_desktop.backends.base import file_fingerprint

    other = "llama_cpp:another-model.gguf:123:0123456789ab"
    current = file_fingerprint("llama_cpp", current_model_file)
    bank.create_profile("orig", ["alpha", "beta", "gamma"])
    bank.add_rating("orig", "first query", "alpha", "beta", fingerprint=other)
    bank.add_rating("orig", "second query", "beta", "beta", fingerprint=other)
    bank.add_rating("orig", "third query", "gamma", "alpha", fingerprint=current)
    export_native(bank, "orig", tmp_path / "mixed.json")
    bank.create_profile("fresh", ["alpha", "beta", "gamma"])
    app_ctx.set_profile("fresh")
    dialog = ImportDialog(app_ctx, path=str(tmp_path / "mixed.json"))
    qtbot.addWidget(dialog)
    preview = _preview(qtbot, dialog)
    text = dialog.preview_edit.toPlainText()
    assert preview.model_note is not None and f"Note: {preview.model_note}." in text
    assert "2 of the file's 3 ratings were made with another model" in text
    assert other in text and current not in text
    assert "not steer the current model until rebased" in text

    bank.create_profile("own", ["alpha", "beta", "gamma"])
    bank.add_rating("own", "first query", "gamma", "beta", fingerprint=current)
    export_native(bank, "own", tmp_path / "own.json")
    same = ImportDialog(app_ctx, path=str(tmp_path / "own.json"))
    qtbot.addWidget(same)
    assert _preview(qtbot, same).model_note is None          # the current model's: no note
    assert "Note:" not in same.preview_edit.toPlainText()


def test_paper_export_round_trip_keeps_the_pairs(app_ctx, bank, qtbot, tmp_path):
    _fill(bank, "orig", ["alpha", "beta", "gamma"])
    app_ctx.set_profile("orig")
    export = ExportDialog(app_ctx, path=str(tmp_path / "paper.json"))
    qtbot.addWidget(export)
    export.paper_radio.setChecked(True)
    with qtbot.waitSignal(export.exported, timeout=10000) as done:
        export.start_export()
    assert done.args[0][1:] == ("paper", 4)
    assert json.loads((tmp_path / "paper.json").read_text()) == {
        "alpha": ["beta", "alpha"], "beta": ["gamma"], "raw answer": ["gamma"]}

    # exporting again to the same typed path asks first (the second press replaces the file)
    again = ExportDialog(app_ctx, path=str(tmp_path / "paper.json"))
    qtbot.addWidget(again)
    again.paper_radio.setChecked(True)
    assert again.start_export() is None and "already exists" in again.status_label.text()
    with qtbot.waitSignal(again.exported, timeout=10000):
        assert again.start_export() is not None

    dialog = ImportDialog(app_ctx, path=str(tmp_path / "paper.json"))
    qtbot.addWidget(dialog)
    dialog.set_new_profile("from paper")
    preview = _preview(qtbot, dialog)
    assert preview.detected_format == "paper"
    # a paper file has no response set: the new profile takes the current profile's
    assert preview.plan.responses == ("alpha", "beta", "gamma")
    _import(qtbot, dialog)
    assert set(bank.counts("from paper")) == set(bank.counts("orig"))


def test_malformed_file_changes_nothing_and_names_the_location(app_ctx, bank, qtbot, tmp_path):
    _fill(bank, "orig", ["alpha", "beta", "gamma"])
    app_ctx.set_profile("orig")
    before = (bank.counts("orig"), [p.name for p in bank.list_profiles()])
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "alpha": ["beta"],\n  "beta": ["gamma",]\n}\n', encoding="utf-8")
    dialog = ImportDialog(app_ctx, path=str(bad))
    qtbot.addWidget(dialog)
    error = _preview(qtbot, dialog)
    assert type(error).__name__ == "BankFileError"
    assert error.location.startswith("line 3")
    assert "line 3" in dialog.error_label.text() and str(bad) in dialog.error_label.text()
    assert dialog.error_label.textFormat() == Qt.PlainText
    assert not dialog.import_button.isEnabled()
    assert dialog.start_import() is None

    # a native file with a wrong value deep inside: the JSON path is reported
    native = tmp_path / "native.json"
    from bank_store.formats import export_native

    export_native(bank, "orig", native)
    doc = json.loads(native.read_text())
    doc["ratings"][1]["user_response"] = 7
    native.write_text(json.dumps(doc))
    dialog.path_edit.setText(str(native))
    error = _preview(qtbot, dialog)
    assert error.location == "ratings[1].user_response"
    assert "ratings[1].user_response" in dialog.error_label.text()
    # forcing the other format is refused with a clear message, too
    dialog.set_format("paper")
    error = _preview(qtbot, dialog)
    assert "not a paper bank file" in str(error)
    assert (bank.counts("orig"), [p.name for p in bank.list_profiles()]) == before


def test_response_set_mismatch_needs_an_explicit_choice(app_ctx, bank, qtbot, tmp_path):
    _fill(bank, "theirs", ["alpha", "beta", "gamma"])
    from bank_store.formats import export_native

    export_native(bank, "theirs", tmp_path / "theirs.json")
    bank.create_profile("mine", ["alpha", "beta", "delta"])
    app_ctx.set_profile("mine")
    dialog = ImportDialog(app_ctx, path=str(tmp_path / "theirs.json"))
    qtbot.addWidget(dialog)
    dialog.show()
    preview = _preview(qtbot, dialog)
    assert preview.needs_choice and preview.plan.mismatch == (["gamma"], ["delta"])
    assert dialog.mismatch_box.isVisible()
    assert not dialog.import_button.isEnabled() and dialog.start_import() is None
    text = dialog.preview_edit.toPlainText()
    assert "only in the file (1):\n    gamma\n" in text and "only in the profile (1):\n    delta\n" in text

    dialog.set_mismatch_choice("stop")
    assert not dialog.import_button.isEnabled()
    with qtbot.waitSignal(dialog.preview_ready, timeout=10000) as ready:
        dialog.set_mismatch_choice("union")  # a choice re-plans with it
    assert ready.args[0].plan.responses_added == ["gamma"]
    assert dialog.import_button.isEnabled()
    assert bank.get_profile("mine").responses == ("alpha", "beta", "delta")  # not yet
    report = _import(qtbot, dialog)
    assert report.added == 5
    assert bank.get_profile("mine").responses == ("alpha", "beta", "delta", "gamma")
    assert bank.counts("mine") == bank.counts("theirs")


def test_new_profile_name_is_checked_before_anything(app_ctx, bank, qtbot, tmp_path):
    _fill(bank, "orig", ["alpha", "beta", "gamma"])
    app_ctx.set_profile("orig")
    from bank_store.formats import export_native

    export_native(bank, "orig", tmp_path / "orig.json")
    dialog = ImportDialog(app_ctx, path=str(tmp_path / "orig.json"))
    qtbot.addWidget(dialog)
    dialog.set_new_profile("orig")
    error = _preview(qtbot, dialog)
    assert "already exists" in str(error) and not dialog.import_button.isEnabled()
    dialog.set_new_profile("")
    error = _preview(qtbot, dialog)
    assert "name" in str(error)
    assert [p.name for p in bank.list_profiles()] == ["orig"]


def test_replace_mode_previews_the_removal(app_ctx, bank, qtbot, tmp_path):
    _fill(bank, "orig", ["alpha", "beta", "gamma"])
    app_ctx.set_profile("orig")
    paper = tmp_path / "p.json"
    paper.write_text(json.dumps({"alpha": ["gamma"]}))
    dialog = ImportDialog(app_ctx, path=str(paper))
    qtbot.addWidget(dialog)
    dialog.replace_radio.setChecked(True)
    plan = _preview(qtbot, dialog).plan
    assert plan.removed == 5 and len(plan.new) == 1
    assert "the profile's 5 ratings are removed first" in dialog.preview_edit.toPlainText()
    report = _import(qtbot, dialog)
    assert report.backup is not None and Path(report.backup).exists()
    assert bank.counts("orig") == {("alpha", "gamma"): 1}


def test_file_menu_entry_points_run_the_modal_dialogs(app_ctx, bank, qtbot, tmp_path):
    """run_export_dialog / run_import_dialog as the File menu calls them: modal dialog, then a
    summary box; driven from a timer the way a person would click through."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from cm_desktop.ui.export_dialog import run_export_dialog
    from cm_desktop.ui.import_dialog import run_import_dialog

    _fill(bank, "orig", ["alpha", "beta", "gamma"])
    app_ctx.set_profile("orig")
    target = str(tmp_path / "menu.json")
    summaries: list[str] = []

    deadline = time.monotonic() + 30

    def drive():
        w = QApplication.activeModalWidget()
        if w is not None and time.monotonic() > deadline:
            w.reject()  # never hang the suite: a stuck dialog fails the asserts below instead
            return
        # a property on the widget itself: Python ids are reused once a dialog is freed
        if w is None or w.property("driven"):
            return
        w.setProperty("driven", True)
        if isinstance(w, ExportDialog):
            w.path_edit.setText(target)
            w.start_export()
        elif isinstance(w, ImportDialog):
            w.path_edit.setText(target)
            w.set_new_profile("from menu")
            w.preview_ready.connect(lambda _p: w.start_import())
            w.refresh_preview()
        elif isinstance(w, QMessageBox):
            summaries.append(w.text())
            w.accept()

    timer = QTimer()
    timer.timeout.connect(drive)
    timer.start(50)
    try:
        run_export_dialog(app_ctx, None)
        run_import_dialog(app_ctx, None)
    finally:
        timer.stop()
    assert len(summaries) == 2, summaries
    assert summaries[0].startswith("Exported 5 ratings of profile 'orig'")
    assert summaries[1].startswith("Imported 5 ratings into profile 'from menu'")
    assert bank.counts("from menu") == bank.counts("orig")
    assert app_ctx.profile == "from menu"


def test_import_from_the_main_windows_file_menu_selects_the_new_profile(app_window, qtbot, tmp_path, monkeypatch):
    """In the real window: File ▸ Export, File ▸ Import into a new profile → the profile switcher
    lists and selects it, and the Bank view shows the same entries."""
    monkeypatch.setenv("CM_EMBEDDER", "hashed")  # the Bank view's agreement figure, without MiniLM
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    ctx, window = app_window(profile="Test", responses=["alpha", "beta", "gamma"])
    bank = ctx.bank
    for i, (a, b) in enumerate([("alpha", "beta"), ("alpha", "beta"), ("gamma", "gamma")]):
        bank.add_rating("Test", f"query {i}", a, b)
    target = str(tmp_path / "window-export.json")
    deadline = time.monotonic() + 30

    def drive():
        w = QApplication.activeModalWidget()
        if w is not None and time.monotonic() > deadline:
            w.reject()
            return
        if w is None or w.property("driven"):
            return
        w.setProperty("driven", True)
        if isinstance(w, ExportDialog):
            w.path_edit.setText(target)
            w.start_export()
        elif isinstance(w, ImportDialog):
            w.path_edit.setText(target)
            w.set_new_profile("Copy of Test")
            w.preview_ready.connect(lambda _p: w.start_import())
            w.refresh_preview()
        elif isinstance(w, QMessageBox):
            w.accept()

    timer = QTimer()
    timer.timeout.connect(drive)
    timer.start(50)
    try:
        window.export_action.trigger()
        window.import_action.trigger()
    finally:
        timer.stop()
    assert bank.counts("Copy of Test") == bank.counts("Test")
    qtbot.waitUntil(lambda: window.profile_combo.currentData() == "Copy of Test", timeout=10000)
    assert ctx.profile == "Copy of Test"
    window.tabs.setCurrentWidget(window.bank_view)
    view = window.bank_view
    qtbot.waitUntil(lambda: view.snapshot is not None and view.snapshot.profile == "Copy of Test"
                    and not view.is_loading(), timeout=10000)
    assert {(e.model_response, e.user_response): e.count for e in view.snapshot.entries} == bank.counts("Test")
