"""Settings ▸ Models: the local models (embedded, downloaded, added), the catalogue and downloads.

All file, hashing and network work runs as FileTasks (the read pool); the GUI thread only draws.
A download reports bytes, speed and time left and can be cancelled: the part already fetched
stays unlisted in the models folder's staging area, and Download again resumes from it. Use asks
the Settings view to load the model (on the inference thread), after a warning when the model
needs more memory than is free.
"""

from __future__ import annotations

from typing import Callable

from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cm_desktop.models.catalogue import CATALOGUE
from cm_desktop.models.gguf_info import fit_warning, human_bytes
from cm_desktop.ui.ops import FileTask
from cm_desktop.ui.plain import plain_label, set_plain

COLUMNS = ("Name", "Source", "Architecture", "Quant", "Context", "Template", "Size", "Memory")
HEADER_TIPS = {"Template": "Whether the GGUF carries a chat template",
               "Memory": "Memory needed to load it: about its file size plus its context cache"}


def describe_progress(p) -> str:
    """`1.2 GB of 4.9 GB · 35.1 MB/s · 1 min 45 s left` (or the verifying step)."""
    if p.phase == "verifying":
        return f"Checking the sha256: {human_bytes(p.done)} of {human_bytes(p.total)}"
    text = f"{human_bytes(p.done)} of {human_bytes(p.total)} · {human_bytes(p.bytes_per_s)}/s"
    if p.eta_s is not None:
        minutes, seconds = divmod(int(p.eta_s), 60)
        text += f" · {minutes} min {seconds:02d} s left" if minutes else f" · {seconds} s left"
    return text


def _list_models(job):
    from cm_desktop.models import ModelLibrary
    from cm_desktop.models.gguf_info import available_memory

    return ModelLibrary().list(), available_memory()


class ModelsPanel(QGroupBox):
    def __init__(self, ctx, on_use: Callable[[object], None], parent: QWidget | None = None):
        super().__init__("Models", parent)
        self.ctx = ctx
        self.on_use = on_use
        self.models: list = []
        self.free_memory: int | None = None
        self.download_op = None
        self._build()

    def _build(self) -> None:
        box = QVBoxLayout(self)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        for col, name in enumerate(COLUMNS):
            if name in HEADER_TIPS:
                self.table.horizontalHeaderItem(col).setToolTip(HEADER_TIPS[name])
        header = self.table.horizontalHeader()
        for col in range(len(COLUMNS)):    # every figure whole; the name takes what is left
            header.setSectionResizeMode(col, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        header.setMinimumSectionSize(40)
        self.table.setMinimumHeight(90)
        self.table.setMaximumHeight(170)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        box.addWidget(self.table)
        self.memory_label = plain_label("")
        self.memory_label.setWordWrap(True)
        box.addWidget(self.memory_label)

        row = QHBoxLayout()
        self.use_button = QPushButton("Use")
        self.use_button.clicked.connect(self.use_selected)
        self.remove_button = QPushButton("Remove…")
        self.remove_button.clicked.connect(self.remove_selected)
        self.add_button = QPushButton("Add a GGUF file…")
        self.add_button.clicked.connect(self.add_file)
        for b in (self.use_button, self.remove_button, self.add_button):
            row.addWidget(b)
        row.addStretch(1)
        box.addLayout(row)

        grid = QGridLayout()
        self.catalogue_combo = QComboBox()
        for e in CATALOGUE:
            self.catalogue_combo.addItem(f"{e.title} · {human_bytes(e.size_bytes)} · needs "
                                         f"{human_bytes(e.memory_bytes)} · {e.licence}", e)
        self.catalogue_combo.addItem("Another repo: type its id and file below", None)
        self.catalogue_combo.currentIndexChanged.connect(self._catalogue_changed)
        self.repo_edit = QLineEdit()
        self.repo_edit.setPlaceholderText("owner/repo on Hugging Face")
        self.file_edit = QLineEdit()
        self.file_edit.setPlaceholderText("file name, e.g. model-Q4_K_M.gguf")
        self.download_button = QPushButton("Download")
        self.download_button.clicked.connect(self.start_download)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_download)
        self.cancel_button.setEnabled(False)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setVisible(False)
        self.download_status = plain_label("")
        self.download_status.setWordWrap(True)
        grid.addWidget(plain_label("Recommended"), 0, 0)
        grid.addWidget(self.catalogue_combo, 0, 1, 1, 3)
        grid.addWidget(plain_label("Repo"), 1, 0)
        grid.addWidget(self.repo_edit, 1, 1)
        grid.addWidget(plain_label("File"), 1, 2)
        grid.addWidget(self.file_edit, 1, 3)
        grid.addWidget(self.progress_bar, 2, 0, 1, 3)
        buttons = QHBoxLayout()
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.cancel_button)
        grid.addLayout(buttons, 2, 3)
        grid.addWidget(self.download_status, 3, 0, 1, 4)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        box.addLayout(grid)
        self._catalogue_changed()
        self._selection_changed()

    # ---- the list -----------------------------------------------------------------------------
    def refresh(self):
        def shown(result):
            self.models, self.free_memory = result
            self._fill()

        return FileTask(self, _list_models).labelled("Reading the model library") \
            .success(shown).run()

    def _fill(self) -> None:
        current = self.ctx.settings.model_path
        self.table.setRowCount(len(self.models))
        for row, m in enumerate(self.models):
            in_use = self.ctx.settings.backend_kind == "llama_cpp" and (
                current == m.path or (not current and m.source == "embedded"))
            cells = [m.name + ("  (in use)" if in_use else ""), m.source, m.architecture,
                     m.quantization, str(m.context_length or "-"),
                     "yes" if m.chat_template else "no", human_bytes(m.size_bytes),
                     human_bytes(m.memory_bytes)
                     + ("  (more than is free)" if fit_warning(m.memory_bytes, self.free_memory)
                        else "")]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(m.problem or m.path)
                self.table.setItem(row, col, item)
        free = human_bytes(self.free_memory) if self.free_memory else "unknown"
        set_plain(self.memory_label, f"Free memory now: {free}. A model needs about its file "
                  "size plus its context cache.")
        self._selection_changed()

    def selected(self):
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return self.models[rows[0].row()] if rows and rows[0].row() < len(self.models) else None

    def _selection_changed(self) -> None:
        m = self.selected()
        self.use_button.setEnabled(m is not None and m.problem is None)
        self.remove_button.setEnabled(m is not None and m.source != "embedded")

    # ---- use, remove, add -----------------------------------------------------------------------
    def use_selected(self) -> None:
        m = self.selected()
        if m is None:
            return
        warning = fit_warning(m.memory_bytes, self.free_memory)
        if warning and QMessageBox.warning(
                self, "This model may not fit", f"{m.name}: {warning}.\n\nLoad it anyway?",
                QMessageBox.Yes | QMessageBox.No, QMessageBox.No) != QMessageBox.Yes:
            return
        self.on_use(m)

    def remove_selected(self) -> None:
        m = self.selected()
        if m is None or m.source == "embedded":
            return
        what = ("The file will be deleted." if m.source == "downloaded"
                else "It is only forgotten: the file stays where it is.")
        if QMessageBox.question(self, "Remove the model?", f"Remove {m.name}?\n\n{what}",
                                QMessageBox.Yes | QMessageBox.No, QMessageBox.No) != QMessageBox.Yes:
            return
        name = m.name

        def remove(job):
            from cm_desktop.models import ModelLibrary

            return ModelLibrary().remove(name)

        FileTask(self, remove).with_progress("Removing the model").success(
            lambda _m: self.refresh()).run()

    def add_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a GGUF model file", "",
                                              "GGUF models (*.gguf);;All files (*)")
        if not path:
            return

        def add(job):
            from cm_desktop.models import ModelLibrary

            return ModelLibrary().add(path)

        FileTask(self, add).with_progress("Reading the model file").success(
            lambda _m: self.refresh()).run()

    # ---- downloads ------------------------------------------------------------------------------
    def _catalogue_changed(self) -> None:
        entry = self.catalogue_combo.currentData()
        if entry is not None:
            self.repo_edit.setText(entry.repo_id)
            self.file_edit.setText(entry.filename)

    def start_download(self):
        repo, filename = self.repo_edit.text().strip(), self.file_edit.text().strip()
        if not repo or not filename:
            set_plain(self.download_status, "Give the repo id and the file name first.")
            return None

        def work(job):
            from cm_desktop.models.download import pull

            def progress(p):
                share = int(1000 * p.done / p.total) if p.total else 0
                job.progress(share, 1000, describe_progress(p))

            return pull(repo, filename, progress=progress, cancel=job.cancel)

        def done(m):
            set_plain(self.download_status, f"Downloaded {m.name}; its sha256 matches the hub's. "
                      "Select it and press Use.")
            self.refresh()

        def failed(exc):
            set_plain(self.download_status, f"Download failed: {exc}")

        self.download_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("Starting…")
        self.progress_bar.setVisible(True)
        set_plain(self.download_status, f"Downloading {filename} from {repo}…")
        op = FileTask(self, work).labelled("Downloading a model").success(done).failure(failed).run()
        op.progress.connect(self._progress)
        op.finished.connect(lambda op=op: self._download_finished(op))
        self.download_op = op
        return op

    def _progress(self, done: int, total: int, text: str) -> None:
        self.progress_bar.setValue(done)
        self.progress_bar.setFormat(f"{done / 10:.0f}%")
        set_plain(self.download_status, text)

    def cancel_download(self) -> None:
        if self.download_op is not None:
            self.download_op.cancel()
            set_plain(self.download_status, "Cancelling…")

    def _download_finished(self, op) -> None:
        self.download_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress_bar.setVisible(False)
        if op.was_cancelled:
            set_plain(self.download_status, "Cancelled. Nothing was added; the part already "
                      "fetched is kept, so Download again resumes from it.")
        self.download_op = None
