"""The main window: profile switcher, the four views, menus, and the status bar.

Closing the window stops everything cleanly: running ops are cancelled, the inference thread
finishes its current step and closes the model on its own thread, then the bank is closed.
"""

from __future__ import annotations

import html
import logging

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from cm_desktop.ui.chat_view import ChatView
from cm_desktop.ui.plain import one_line, plain_label, set_plain
from cm_desktop.ui.profile_dialog import NewProfileDialog
from cm_desktop.ui.rate_view import RateView
from cm_desktop.ui.settings_view import SettingsView
from cm_desktop.ui.background_op import shutdown_ops
from cm_desktop.ui.ops import BankQuery, BankWrite

log = logging.getLogger(__name__)

ONBOARDING_TEXT = (
    "Welcome to CM Desktop. It learns what you mean from a few ratings, and corrects the model with them.\n"
    "1. Rate: for each sample query, accept the model's answer (Enter) or pick what you meant (1–9, or type).\n"
    "2. Chat: ask anything; each reply shows the response chosen for you. Open “Why” to see which of your "
    "ratings changed it, and the thumbs up/down buttons to teach it more.\n"
    "3. Bank: everything you taught it, as a table and a heatmap; delete entries, export or import banks.")


def _bank_view_class():
    """The BankView; a placeholder keeps the window usable if that module fails to import."""
    try:
        from cm_desktop.ui.bank_view import BankView
        return BankView
    except Exception:  # noqa: BLE001 - any import failure there must not stop the app
        log.exception("the Bank view could not be loaded")

        class BankPlaceholder(QWidget):
            def __init__(self, ctx, parent=None):
                super().__init__(parent)
                layout = QVBoxLayout(self)
                layout.addWidget(plain_label("The Bank view is not available in this build."))

        return BankPlaceholder


class MainWindow(QMainWindow):
    def __init__(self, ctx, parent=None):
        super().__init__(parent)
        self.ctx = ctx
        self._shut_down = False
        self._progress_ops: list = []
        self.setWindowTitle("CM Desktop")
        self.resize(1100, 760)
        self._build_central()
        self._build_menus()
        self._build_status_bar()
        ctx.status_message.connect(lambda text: self.statusBar().showMessage(text, 6000))
        ctx.profile_changed.connect(self._profile_changed)
        inference = ctx.inference
        inference.backend_loading.connect(self._backend_loading)
        inference.backend_loaded.connect(self._backend_loaded)
        inference.backend_failed.connect(self._backend_failed)
        inference.busy_changed.connect(self._busy_changed)
        if ctx.settings.window_geometry:
            self.restoreGeometry(QByteArray.fromBase64(ctx.settings.window_geometry.encode("ascii")))

    # ---- layout ------------------------------------------------------------------------------
    def _build_central(self) -> None:
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(12, 10, 12, 6)
        layout.setSpacing(8)

        top = QHBoxLayout()
        top.addWidget(plain_label("Profile:", wrap=False))
        self.profile_combo = QComboBox()
        self.profile_combo.setMinimumWidth(260)
        self.profile_combo.activated.connect(self._profile_chosen)
        self.new_profile_button = QPushButton("New profile…")
        self.new_profile_button.clicked.connect(self.new_profile)
        top.addWidget(self.profile_combo)
        top.addWidget(self.new_profile_button)
        top.addStretch(1)
        layout.addLayout(top)

        self.onboarding = QFrame()
        self.onboarding.setObjectName("onboarding")
        ob = QHBoxLayout(self.onboarding)
        ob.setContentsMargins(14, 10, 10, 10)
        self.onboarding_label = plain_label(ONBOARDING_TEXT)
        ob.addWidget(self.onboarding_label, 1)
        got_it = QPushButton("Got it")
        got_it.clicked.connect(self.dismiss_onboarding)
        ob.addWidget(got_it, 0, Qt.AlignTop)
        self.onboarding.setVisible(not self.ctx.settings.onboarding_dismissed)
        layout.addWidget(self.onboarding)

        self.tabs = QTabWidget()
        self.rate_view = RateView(self.ctx)
        self.chat_view = ChatView(self.ctx)
        self.bank_view = _bank_view_class()(self.ctx)
        self.settings_view = SettingsView(self.ctx)
        self.settings_view.applied.connect(self.rate_view.settings_applied)
        self.chat_view.busy_changed.connect(self.rate_view.set_paused)
        self.tabs.addTab(self.rate_view, "Rate")
        self.tabs.addTab(self.chat_view, "Chat")
        self.tabs.addTab(self.bank_view, "Bank")
        self.tabs.addTab(self.settings_view, "Settings")
        self.tabs.currentChanged.connect(lambda _i: self.tabs.currentWidget().setFocus())
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.import_action = QAction("Import bank…", self, triggered=self.import_bank)
        self.export_action = QAction("Export bank…", self, triggered=self.export_bank)
        self.open_dataset_action = QAction("Open dataset…", self, triggered=self.open_dataset)
        self.open_dataset_action.setShortcut(QKeySequence.Open)
        self.quit_action = QAction("Quit", self, triggered=self.close)
        self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        for action in (self.import_action, self.export_action, None, self.open_dataset_action, None,
                       self.quit_action):
            file_menu.addSeparator() if action is None else file_menu.addAction(action)

        edit_menu = self.menuBar().addMenu("&Edit")
        stack = self.ctx.undo_stack()
        self.undo_action = stack.createUndoAction(self, "Undo")
        self.undo_action.setShortcut(QKeySequence.Undo)
        self.redo_action = stack.createRedoAction(self, "Redo")
        self.redo_action.setShortcut(QKeySequence.Redo)
        edit_menu.addAction(self.undo_action)
        edit_menu.addAction(self.redo_action)

        view_menu = self.menuBar().addMenu("&View")
        for i, name in enumerate(("Rate", "Chat", "Bank", "Settings")):
            action = QAction(name, self, triggered=lambda _c=False, i=i: self.tabs.setCurrentIndex(i))
            action.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
            view_menu.addAction(action)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(QAction("Show the introduction", self, triggered=lambda: self.onboarding.setVisible(True)))

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.backend_label = plain_label("Backend: –", wrap=False)
        self.model_label = plain_label("Model: not loaded", wrap=False)
        self.running_label = plain_label("", wrap=False)
        self.op_progress = QProgressBar()
        self.op_progress.setMaximumWidth(160)
        self.op_progress.setVisible(False)
        self.op_cancel = QPushButton("Cancel")
        self.op_cancel.setVisible(False)
        self.op_cancel.clicked.connect(self._cancel_shown_op)
        for widget in (self.running_label, self.op_progress, self.op_cancel, self.backend_label, self.model_label):
            bar.addPermanentWidget(widget)

    # ---- profiles ----------------------------------------------------------------------------
    def refresh_profiles(self, select: str | None = None) -> None:
        def listed(names):
            current = select or self.ctx.profile or self.ctx.settings.last_profile
            self.profile_combo.blockSignals(True)
            self.profile_combo.clear()
            for name in names:
                self.profile_combo.addItem(name, name)
            self.profile_combo.blockSignals(False)
            if names:
                chosen = current if current in names else names[0]
                self.profile_combo.setCurrentIndex(names.index(chosen))
                self.ctx.set_profile(chosen)

        (BankQuery(self, lambda job: [p.name for p in job.bank.list_profiles()])
         .supersedes((id(self), "profiles")).labelled("Reading profiles").success(listed).run())

    def _profile_chosen(self, index: int) -> None:
        name = self.profile_combo.itemData(index)
        if name:
            self.ctx.set_profile(name)

    def _profile_changed(self, name: str) -> None:
        index = self.profile_combo.findData(name)
        if index >= 0 and index != self.profile_combo.currentIndex():
            self.profile_combo.setCurrentIndex(index)
        self.setWindowTitle(f"CM Desktop — {one_line(name, 60)}" if name else "CM Desktop")

    def new_profile(self) -> NewProfileDialog:
        existing = {self.profile_combo.itemData(i) for i in range(self.profile_combo.count())}
        dialog = NewProfileDialog(existing, self)
        dialog.setAttribute(Qt.WA_DeleteOnClose, True)

        def accepted():
            name, responses, description = dialog.result_value
            (BankWrite(self, lambda job: job.bank.create_profile(name, responses, description=description),
                       profile=name)
             .with_progress("Creating the profile")
             .success(lambda _p: self.refresh_profiles(select=name)).run())

        dialog.accepted.connect(accepted)
        dialog.open()
        return dialog

    def dismiss_onboarding(self) -> None:
        self.onboarding.setVisible(False)
        self.ctx.settings.onboarding_dismissed = True
        try:
            self.ctx.settings.save()
        except (OSError, ValueError):
            log.warning("could not save settings", exc_info=True)

    # ---- file menu ---------------------------------------------------------------------------
    def import_bank(self):
        try:
            from cm_desktop.ui.import_dialog import run_import_dialog
        except ImportError as exc:
            self.ctx.show_error(self, "Import is not available", exc)
            return None
        return run_import_dialog(self.ctx, self)

    def export_bank(self):
        try:
            from cm_desktop.ui.export_dialog import run_export_dialog
        except ImportError as exc:
            self.ctx.show_error(self, "Export is not available", exc)
            return None
        return run_export_dialog(self.ctx, self)

    def open_dataset(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a dataset of queries", self.ctx.settings.last_dataset,
                                              "Queries (*.jsonl *.json *.txt);;All files (*)")
        if path:
            self.tabs.setCurrentWidget(self.rate_view)
            self.rate_view.open_dataset(path)

    # ---- status bar --------------------------------------------------------------------------
    def _backend_loading(self, description: str) -> None:
        set_plain(self.model_label, f"Model: loading {one_line(description, 50)}…")

    def _backend_loaded(self, kind: str, fingerprint: str) -> None:
        set_plain(self.backend_label, f"Backend: {kind}")
        name = fingerprint.split(":")[1] if fingerprint.count(":") >= 1 else fingerprint
        set_plain(self.model_label, f"Model: {one_line(name, 50)}")
        # tooltips guess rich text: escape the file name inside explicit markup
        self.model_label.setToolTip(f"<p>{html.escape(fingerprint)}</p>")

    def _backend_failed(self, exc: BaseException) -> None:
        set_plain(self.model_label, "Model: failed to load (see Settings)")

    def _busy_changed(self, label: str) -> None:
        set_plain(self.running_label, f"{label}…" if label else "")

    def show_op_progress(self, op) -> None:
        """Called by a BackgroundOp still running after its delay: show it here with Cancel."""
        if op.done:
            return
        self._progress_ops.append(op)
        op.progress.connect(lambda d, t, _s, op=op: self._op_progressed(op, d, t))
        op.finished.connect(lambda op=op: self._op_finished(op))
        self._show_op(op)

    def _show_op(self, op) -> None:
        done, total, text = op.last_progress
        self.op_progress.setMaximum(total if total else 0)
        self.op_progress.setValue(min(done, total) if total else 0)
        self.op_progress.setVisible(True)
        self.op_cancel.setVisible(op.cancellable)
        set_plain(self.running_label, text or op.label or "Working…")

    def _op_progressed(self, op, done: int, total: int) -> None:
        if self._progress_ops and self._progress_ops[-1] is op:
            self._show_op(op)

    def _op_finished(self, op) -> None:
        if op in self._progress_ops:
            self._progress_ops.remove(op)
        if self._progress_ops:
            self._show_op(self._progress_ops[-1])
        else:
            self.op_progress.setVisible(False)
            self.op_cancel.setVisible(False)
            set_plain(self.running_label, "")

    def _cancel_shown_op(self) -> None:
        if self._progress_ops:
            self._progress_ops[-1].cancel()

    # ---- shutdown ----------------------------------------------------------------------------
    def shutdown(self, timeout_s: float = 10.0) -> bool:
        """Stop all work, close the model on its thread and the bank; True if all stopped in time."""
        if self._shut_down:
            return True
        self._shut_down = True
        self.chat_view.stop()
        try:
            self.ctx.settings.window_geometry = bytes(self.saveGeometry().toBase64()).decode("ascii")
            self.ctx.settings.save()
        except (OSError, ValueError):
            log.warning("could not save settings", exc_info=True)
        ok_ops = shutdown_ops(timeout_s)
        ok_model = self.ctx.inference.stop(timeout_s)
        try:
            getattr(self.ctx.bank, "close_all", self.ctx.bank.close)()
        except Exception:  # noqa: BLE001 - closing at exit must not raise into Qt
            log.warning("closing the bank failed", exc_info=True)
        return ok_ops and ok_model

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        self.shutdown()
        super().closeEvent(event)
