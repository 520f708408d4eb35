"""Settings' *Test connection* row for an OpenAI-compatible server.

The button runs `check_server` on the read pool (it makes network requests: never on the GUI
thread), shows its answer in one line (reached or not, and whether exact log-prob scoring is
available), and offers the models the server lists in /v1/models as a pick list that fills the
Server model field.
"""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLineEdit, QPushButton, QVBoxLayout, QWidget

from cm_desktop.ui.ops import FileTask
from cm_desktop.ui.plain import one_line, plain_label, set_plain


class ServerCheckRow(QWidget):
    def __init__(self, ctx, url_edit: QLineEdit, model_edit: QLineEdit, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self._url_edit, self._model_edit = url_edit, model_edit
        self.exact_scoring: bool | None = None     # from the last check that reached the server
        self.button = QPushButton("Test connection")
        self.button.clicked.connect(self.test_connection)
        self.models_combo = QComboBox()
        self.models_combo.setPlaceholderText("Served models")
        self.models_combo.setToolTip("The models the server lists; picking one fills Server model")
        self.models_combo.setEnabled(False)
        self.models_combo.activated.connect(
            lambda index: self._model_edit.setText(self.models_combo.itemText(index)))
        self.result_label = plain_label("")
        self.result_label.setObjectName("muted")
        self.result_label.setVisible(False)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.button)
        row.addWidget(self.models_combo, 1)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(row)
        column.addWidget(self.result_label)

    def _show(self, text: str) -> None:
        set_plain(self.result_label, text)
        self.result_label.setVisible(bool(text))

    def test_connection(self):
        """Reach the server in the background; returns the BackgroundOp (None without a URL)."""
        url = self._url_edit.text().strip()
        model = self._model_edit.text().strip() or None
        if not url:
            self._show("Type the server's URL first.")
            return None
        self.button.setEnabled(False)
        self._show("Reaching the server…")

        def check(job):
            from cm_desktop.backends.openai_api import OpenAIBackend, check_server

            # the backend's own per-request limit: a busy local server may take seconds to score
            return check_server(url, model, timeout=OpenAIBackend.Options().timeout)

        def reached(found):
            self.button.setEnabled(True)
            self.exact_scoring = found.exact_scoring
            self.models_combo.clear()
            self.models_combo.addItems(found.models)
            self.models_combo.setCurrentIndex(found.models.index(found.model))
            self.models_combo.setEnabled(True)
            if not self._model_edit.text().strip():
                self._model_edit.setText(found.model)
            self._show(one_line("Reached " + found.summary(), 300))

        def unreachable(exc):
            self.button.setEnabled(True)
            self.exact_scoring = None
            self.models_combo.clear()
            self.models_combo.setEnabled(False)
            self._show("Not reached: " + one_line(exc, 300))

        return (FileTask(self, check).with_progress("Testing the connection")
                .success(reached).failure(unreachable).run())
