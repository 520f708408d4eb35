"""The Settings view: backend, model file, OpenAI endpoint and key, CM variant and strategy,
generation parameters. Apply saves the settings and reloads the backend on the inference thread.

The API key never goes into the settings file or the bank: it is handed to cm_desktop.credentials
(the OS keyring, or its file backend where no keyring daemon runs).
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cm_desktop.settings import STRATEGIES, VARIANTS
from cm_desktop.ui.models_panel import ModelsPanel
from cm_desktop.ui.ops import FileTask
from cm_desktop.ui.plain import one_line, plain_label, set_plain
from cm_desktop.ui.server_check_row import ServerCheckRow

BACKEND_LABELS = {"llama_cpp": "llama.cpp (GGUF file, on this computer)",
                  "hf": "Hugging Face transformers (on this computer)",
                  "openai": "OpenAI-compatible server"}
VARIANT_LABELS = {"evidence": "Evidence-weighted (near rated queries decide, the model elsewhere)",
                  "instance": "Instance-dependent (uses similar rated queries)",
                  "marginal": "Marginal (counts only)",
                  "paper": "Paper rule (re-choose among the bank's candidates)",
                  "none": "Off (the raw model)"}
STRATEGY_LABELS = {"vanilla": "Vanilla", "cot": "Chain of thought (1 example)", "fot": "Few-shot (examples)",
                   "consistent": "Consistent (vote of three)", "feedback": "Feedback (ask twice)"}


def validate_model_file(path: str) -> str:
    """Cheap check on choose (header and size), run in the background; raises ModelFileError."""
    from cm_desktop.backends.base import check_gguf_file

    return str(check_gguf_file(path))


class SettingsView(QWidget):
    applied = Signal()

    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.model_ok = True
        self._models_listed = False
        self._build()
        self.load_from_settings()

    def _build(self) -> None:
        # the page scrolls: with the Models panel it is taller than a small screen
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        QVBoxLayout(self).addWidget(scroll)
        self.layout().setContentsMargins(0, 0, 0, 0)
        inner = QWidget()
        scroll.setWidget(inner)
        page = QVBoxLayout(inner)
        page.setContentsMargins(16, 12, 16, 12)
        column = QWidget()
        column.setMaximumWidth(900)      # a readable column, not fields stretched across the screen
        # the column takes the width there is up to its maximum (not its size hint, so the Models
        # table has room for its columns), centred by equal stretches either side
        centred = QHBoxLayout()
        centred.addStretch(1)
        centred.addWidget(column, 1000)
        centred.addStretch(1)
        page.addLayout(centred)
        page.addStretch(1)
        outer = QVBoxLayout(column)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(12)

        model_box = QGroupBox("Model")
        form = QFormLayout(model_box)
        self.backend_combo = QComboBox()
        for kind, label in BACKEND_LABELS.items():
            self.backend_combo.addItem(label, kind)
        self.backend_combo.currentIndexChanged.connect(self._backend_kind_changed)
        form.addRow("Backend", self.backend_combo)

        self.model_edit = QLineEdit()
        self.model_edit.setPlaceholderText("Empty: the embedded Gemma 3 270M")
        self.model_edit.editingFinished.connect(lambda: self.validate_model(self.model_edit.text()))
        self.browse_button = QPushButton("Choose…")
        self.browse_button.clicked.connect(self.choose_model_file)
        row = QHBoxLayout()
        row.addWidget(self.model_edit, 1)
        row.addWidget(self.browse_button)
        form.addRow("Model file", row)
        self.model_status = plain_label("")
        self.model_status.setObjectName("muted")
        self.model_status.setVisible(False)
        form.addRow("", self.model_status)

        self.hf_edit = QLineEdit()
        self.hf_edit.setPlaceholderText("A model folder or GGUF file (empty: the embedded model)")
        form.addRow("HF model", self.hf_edit)
        self.url_edit = QLineEdit()
        form.addRow("Server URL", self.url_edit)
        self.openai_model_edit = QLineEdit()
        self.openai_model_edit.setPlaceholderText("The served model's name")
        form.addRow("Server model", self.openai_model_edit)
        self.server_check = ServerCheckRow(self.ctx, self.url_edit, self.openai_model_edit)
        form.addRow("", self.server_check)
        self.key_edit = QLineEdit()
        self.key_edit.setEchoMode(QLineEdit.Password)
        self.key_edit.setPlaceholderText("Stored in the system keyring, never in a file you share")
        self.key_button = QPushButton("Save key")
        self.key_button.clicked.connect(self.save_key)
        key_row = QHBoxLayout()
        key_row.addWidget(self.key_edit, 1)
        key_row.addWidget(self.key_button)
        form.addRow("API key", key_row)
        self.key_status = plain_label("")
        self.key_status.setObjectName("muted")
        self.key_status.setVisible(False)
        form.addRow("", self.key_status)
        outer.addWidget(model_box)
        self.models_panel = ModelsPanel(self.ctx, on_use=self.use_model)
        outer.addWidget(self.models_panel)

        cm_box = QGroupBox("Personalization")
        cm_form = QFormLayout(cm_box)
        self.variant_combo = QComboBox()
        for variant, label in VARIANT_LABELS.items():
            assert variant in VARIANTS
            self.variant_combo.addItem(label, variant)
        cm_form.addRow("CM variant", self.variant_combo)
        self.strategy_combo = QComboBox()
        for strategy in STRATEGIES:
            self.strategy_combo.addItem(STRATEGY_LABELS.get(strategy, strategy), strategy)
        cm_form.addRow("Prompting strategy", self.strategy_combo)
        self.coverage_check = QCheckBox("Rate view: ask first where the bank knows least")
        cm_form.addRow("", self.coverage_check)
        outer.addWidget(cm_box)

        gen_box = QGroupBox("Generation")
        gen_form = QFormLayout(gen_box)
        self.max_tokens_spin = QSpinBox()
        self.max_tokens_spin.setRange(1, 8192)
        self.max_tokens_spin.setMaximumWidth(120)
        gen_form.addRow("Max tokens", self.max_tokens_spin)
        self.temperature_spin = QDoubleSpinBox()
        self.temperature_spin.setRange(0.0, 2.0)
        self.temperature_spin.setSingleStep(0.1)
        self.temperature_spin.setDecimals(2)
        self.temperature_spin.setMaximumWidth(120)
        gen_form.addRow("Temperature", self.temperature_spin)
        outer.addWidget(gen_box)

        buttons = QHBoxLayout()
        self.status_label = plain_label("")
        self.status_label.setObjectName("muted")
        self.apply_button = QPushButton("Apply")
        self.apply_button.setObjectName("primary")
        self.apply_button.clicked.connect(self.apply)
        self.revert_button = QPushButton("Revert")
        self.revert_button.clicked.connect(self.load_from_settings)
        buttons.addWidget(self.status_label, 1)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.apply_button)
        outer.addLayout(buttons)

    # ---- settings <-> widgets -----------------------------------------------------------------
    def load_from_settings(self) -> None:
        s = self.ctx.settings
        self.backend_combo.setCurrentIndex(max(self.backend_combo.findData(s.backend_kind), 0))
        self.model_edit.setText(s.model_path)
        self.hf_edit.setText(s.hf_model)
        self.url_edit.setText(s.openai_base_url)
        self.openai_model_edit.setText(s.openai_model)
        self.variant_combo.setCurrentIndex(max(self.variant_combo.findData(s.variant), 0))
        self.strategy_combo.setCurrentIndex(max(self.strategy_combo.findData(s.strategy), 0))
        self.coverage_check.setChecked(s.coverage_order)
        self.max_tokens_spin.setValue(int(s.max_tokens))
        self.temperature_spin.setValue(float(s.temperature))
        self.key_edit.clear()
        self.model_ok = True
        self._status(self.model_status, "")
        self._backend_kind_changed()

    @staticmethod
    def _status(label, text: str) -> None:
        set_plain(label, text)
        label.setVisible(bool(text))

    def _backend_kind_changed(self) -> None:
        kind = self.backend_combo.currentData()
        for widget in (self.model_edit, self.browse_button):
            widget.setEnabled(kind == "llama_cpp")
        self.hf_edit.setEnabled(kind == "hf")
        for widget in (self.url_edit, self.openai_model_edit, self.server_check, self.key_edit,
                       self.key_button):
            widget.setEnabled(kind == "openai")

    # ---- model file ----------------------------------------------------------------------------
    def choose_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a GGUF model file", self.model_edit.text(),
                                              "GGUF models (*.gguf);;All files (*)")
        if path:
            self.model_edit.setText(path)
            self.validate_model(path)

    def validate_model(self, path: str):
        """Check the file in the background; a bad file shows a clear error and blocks Apply."""
        path = path.strip()
        if not path:
            self.model_ok = True
            self._status(self.model_status, "The embedded model will be used.")
            return None
        self._status(self.model_status, "Checking the file…")

        def ok(checked):
            self.model_ok = True
            self._status(self.model_status, f"OK: {checked}")

        def bad(exc):
            self.model_ok = False
            self._status(self.model_status, f"Not usable: {exc}")
            self.ctx.show_error(self, "This model file cannot be used", exc)

        return (FileTask(self, lambda job: validate_model_file(path)).with_progress("Checking the model file")
                .success(ok).failure(bad).run())

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._models_listed:   # read the library when first shown, not at start-up
            self._models_listed = True
            self.models_panel.refresh()

    def use_model(self, model) -> None:
        """The Models panel's Use: llama.cpp on that file, saved and loaded like Apply."""
        self.backend_combo.setCurrentIndex(max(self.backend_combo.findData("llama_cpp"), 0))
        self.model_edit.setText("" if model.source == "embedded" else model.path)
        self.model_ok = True
        self._status(self.model_status, f"{model.name} ({model.architecture}, {model.quantization})")
        self.apply()
        self.models_panel.refresh()

    # ---- key -----------------------------------------------------------------------------------
    def save_key(self) -> None:
        key, url = self.key_edit.text().strip(), self.url_edit.text().strip()
        if not key:
            self._status(self.key_status, "Type a key first.")
            return

        def store(job):
            from cm_desktop import credentials

            credentials.set_api_key(key, base_url=url or None)
            return url

        def stored(_url):
            self.key_edit.clear()
            self._status(self.key_status, "Key saved in the system keyring.")

        FileTask(self, store).with_progress("Saving the API key").success(stored).run()

    # ---- apply ---------------------------------------------------------------------------------
    def apply(self) -> None:
        if not self.model_ok:
            set_plain(self.status_label, "Choose a usable model file first.")
            return
        s = self.ctx.settings
        before = (s.backend_kind, s.model_path, s.hf_model, s.openai_base_url, s.openai_model)
        s.backend_kind = self.backend_combo.currentData()
        s.model_path = self.model_edit.text().strip()
        s.hf_model = self.hf_edit.text().strip()
        s.openai_base_url = self.url_edit.text().strip()
        s.openai_model = self.openai_model_edit.text().strip()
        s.variant = self.variant_combo.currentData()
        s.strategy = self.strategy_combo.currentData()
        s.coverage_order = self.coverage_check.isChecked()
        s.max_tokens = int(self.max_tokens_spin.value())
        s.temperature = float(self.temperature_spin.value())
        try:
            s.save()
        except (OSError, ValueError) as exc:
            self.ctx.show_error(self, "Could not save the settings", exc)
            return
        if self.key_edit.text().strip():
            self.save_key()
        after = (s.backend_kind, s.model_path, s.hf_model, s.openai_base_url, s.openai_model)
        if after != before or not self.ctx.inference.session.has_backend:
            self.reload_backend()
        else:
            set_plain(self.status_label, "Saved.")
        self.applied.emit()

    def reload_backend(self):
        try:
            config = self.ctx.settings.backend_config()
        except Exception as exc:  # noqa: BLE001 - a bad config is shown, not raised
            self.ctx.show_error(self, "The backend settings are not valid", exc)
            return None
        remote = getattr(config, "kind", "") == "openai"   # checked by a request before it counts as loaded
        set_plain(self.status_label, "Saved. Reaching the server…" if remote else "Saved. Loading the model…")

        def loaded(_result):
            set_plain(self.status_label, "Saved. Model loaded.")

        def failed(exc):
            set_plain(self.status_label, "Saved, but the model did not load. " + one_line(exc, 300))
            self.ctx.show_error(self, "The model could not be loaded", exc)

        return self.ctx.inference.load_backend(config, on_success=loaded, on_failure=failed)
