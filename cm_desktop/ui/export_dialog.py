"""The export dialog: writes a profile's bank as a native JSON[.gz] file or a paper memory bank."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QFormLayout, QLineEdit,
                               QRadioButton, QVBoxLayout, QWidget)

from cm_desktop.ui.bank_file_widgets import (FileChooser, choose_bank_file, describe_error,
                                             path_with_browse, radio_column, show_summary)
from cm_desktop.ui.ops import BankQuery
from cm_desktop.ui.plain import plain_label


# ----- export dialog --------------------------------------------------------------------------


def export_bank(bank, profile: str, path: str, fmt: str) -> int:
    """Write the file (runs in the background); returns ratings (native) or pairs (paper) written."""
    from bank_store.formats import export_native, export_paper

    return (export_native if fmt == "native" else export_paper)(bank, profile, path)


class ExportDialog(QDialog):
    exported = Signal(object)  # (path, fmt, count)
    export_failed = Signal(object)

    def __init__(self, ctx, parent: QWidget | None = None, *, path: str | None = None,
                 file_chooser: FileChooser | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.file_chooser = file_chooser
        self.result_info: tuple[str, str, int] | None = None  # path, format, count
        self._exported_profile = ""
        self._op = None
        self._overwrite_ok: str | None = None
        self.setWindowTitle("Export bank")
        profile = ctx.profile or ""
        self.native_radio = QRadioButton("Native (every rating, with instances and times, and the guidance)")
        self.paper_radio = QRadioButton("Paper memory bank ({model response: [user responses]}; no counts, "
                                        "no guidance: the format has no place for them)")
        fmt_box = radio_column(self, self.native_radio, self.paper_radio)
        self.native_radio.setChecked(True)
        self.gzip_box = QCheckBox("Compress (gzip, .gz)")
        self.path_edit = QLineEdit(path or str(Path.home() / f"{_safe_file_stem(profile)}-bank.json"))
        path_row = path_with_browse(self.path_edit, self.browse)
        self.gzip_box.toggled.connect(self._sync_suffix)
        self.status_label = plain_label("", selectable=True)

        form = QFormLayout()
        form.addRow(plain_label("Profile"), plain_label(profile or "(none selected)"))
        form.addRow(plain_label("Format"), fmt_box)
        form.addRow(plain_label(""), self.gzip_box)
        form.addRow(plain_label("File"), path_row)
        self.buttons = QDialogButtonBox()
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.AcceptRole)
        self.buttons.addButton(QDialogButtonBox.Cancel)
        self.export_button.clicked.connect(self.start_export)
        self.buttons.rejected.connect(self.reject)
        self.export_button.setEnabled(bool(profile))
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.status_label)
        layout.addWidget(self.buttons)
        self.resize(560, 220)

    def format(self) -> str:
        return "paper" if self.paper_radio.isChecked() else "native"

    def _sync_suffix(self, gzip_on: bool) -> None:
        text = self.path_edit.text().strip()
        if text and gzip_on != text.endswith(".gz"):
            self.path_edit.setText(text + ".gz" if gzip_on else text[:-3])

    def browse(self) -> None:
        path = (self.file_chooser(self) if self.file_chooser
                else choose_bank_file(self, "Export bank", save=True, suggested=self.path_edit.text()))
        if path:
            self.path_edit.setText(str(path))
            self.gzip_box.setChecked(str(path).endswith(".gz"))
            self._overwrite_ok = str(Path(path).expanduser())  # the save dialog asked already

    def start_export(self):
        """The accept slot: export in the background; returns the op (or None if nothing to do)."""
        profile = self.ctx.profile
        path = self.path_edit.text().strip()
        if not profile:
            self.status_label.setText("There is no current profile to export.")
            return None
        if not path:
            self.status_label.setText("Choose where to save the file.")
            return None
        path = str(Path(path).expanduser())
        if self.gzip_box.isChecked() and not path.endswith(".gz"):
            path += ".gz"
        if not Path(path).parent.is_dir():
            self.status_label.setText(f"The folder {Path(path).parent} does not exist.")
            return None
        if Path(path).exists() and path != self._overwrite_ok:
            # A typed path could replace a file by accident: the second press confirms.
            self._overwrite_ok = path
            self.status_label.setText(f"{path} already exists: press Export again to replace it.")
            return None
        fmt = self.format()
        self.export_button.setEnabled(False)
        self.status_label.setText("Exporting…")
        self._op = (BankQuery(self, lambda job: export_bank(job.bank, profile, path, fmt))
                    .with_progress("Exporting the bank")
                    .success(lambda n: self._done(path, fmt, n, profile)).failure(self._failed).run())
        return self._op

    def _done(self, path: str, fmt: str, count: int, profile: str) -> None:
        self.result_info, self._exported_profile = (path, fmt, int(count)), profile
        self.status_label.setText(self.summary())
        self.ctx.status_message.emit(self.summary())
        self.exported.emit(self.result_info)
        self.accept()

    def _failed(self, exc: BaseException) -> None:
        self.export_button.setEnabled(True)
        self.status_label.setText(f"Export failed: {describe_error(exc)}")
        self.export_failed.emit(exc)

    def summary(self) -> str:
        if self.result_info is None:
            return ""
        path, fmt, count = self.result_info
        what = f"{count} ratings" if fmt == "native" else f"{count} model response → response pairs"
        return f"Exported {what} of profile {self._exported_profile!r} to {path} ({fmt} format)."


def _safe_file_stem(name: str) -> str:
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.")
    return stem or "profile"


def run_export_dialog(ctx, parent: QWidget | None = None) -> None:
    """File ▸ Export bank…: modal dialog, then a summary of what was written."""
    if not ctx.profile:
        show_summary(parent, "Export bank", "There is no current profile to export: create or choose one first.")
        return
    dialog = ExportDialog(ctx, parent)
    if dialog.exec() == QDialog.Accepted and dialog.result_info is not None:
        show_summary(parent, "Export finished", dialog.summary())
