"""The import dialog: preview, then apply, for both bank formats (native JSON[.gz] and the paper's
memory bank).

Import is preview-then-apply: `read_bank_file` + `plan_import` (no writes) run in a background op
and the person sees what would change; only Import runs `apply_import` (one transaction). A
response-set mismatch needs an explicit choice first. A bad file shows the BankFileError's message
and location in the dialog and the bank is untouched.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, QTimer, Signal
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QDialog, QDialogButtonBox, QFormLayout,
                               QGroupBox, QHBoxLayout, QLineEdit, QPlainTextEdit, QRadioButton,
                               QVBoxLayout, QWidget)

from bank_store.importing import ImportPreview, compute_import_preview

from cm_desktop.ui.bank_file_widgets import (FileChooser, choose_bank_file, describe_error,
                                             path_with_browse, radio_column, show_summary)
from cm_desktop.ui.ops import BankQuery, BankWrite
from cm_desktop.ui.plain import plain_label

_NOT_IMPORTING = "Not importing: the response sets differ. Pick keep or union to go on."


# ----- import dialog --------------------------------------------------------------------------

FORMATS = (("Detect from the file", None), ("Native (CM Desktop JSON, .json / .json.gz)", "native"),
           ("Paper memory bank ({model response: [user responses]})", "paper"))
MISMATCH_CHOICES = (("keep", "Keep the profile's response set"),
                    ("union", "Add the file's responses (union)"),
                    ("stop", "Don't import"))


class ImportDialog(QDialog):
    preview_ready = Signal(object)  # ImportPreview, or the exception
    imported = Signal(object)  # ImportReport
    import_failed = Signal(object)  # the exception

    def __init__(self, ctx, parent: QWidget | None = None, *, path: str | None = None,
                 file_chooser: FileChooser | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle("Import bank")
        self.file_chooser = file_chooser
        self.preview: ImportPreview | None = None
        self.error: BaseException | None = None
        self.report = None
        self._preview_op = self._import_op = None
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(250)
        self._debounce.timeout.connect(self.refresh_preview)
        self._build()
        if path:
            self.path_edit.setText(str(path))

    def _build(self) -> None:
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("A bank file: native .json / .json.gz, or a paper memory bank .json")
        path_row = path_with_browse(self.path_edit, self.browse)
        self.format_combo = QComboBox()
        for text, value in FORMATS:
            self.format_combo.addItem(text, value)

        current = self.ctx.profile
        self.current_radio = QRadioButton(f"The current profile ({current})" if current else "The current profile (none)")
        self.current_radio.setEnabled(bool(current))
        self.new_radio = QRadioButton("A new profile named")
        self.new_name_edit = QLineEdit()
        self.new_name_edit.setPlaceholderText("profile name")
        new_row = QHBoxLayout()
        new_row.addWidget(self.new_radio)
        new_row.addWidget(self.new_name_edit, 1)
        target_box = radio_column(self, self.current_radio, new_row)
        (self.current_radio if current else self.new_radio).setChecked(True)

        self.merge_radio = QRadioButton("Merge (add what is new, skip duplicates)")
        self.replace_radio = QRadioButton("Replace the profile's ratings (a backup is taken)")
        mode_box = radio_column(self, self.merge_radio, self.replace_radio)
        self.merge_radio.setChecked(True)

        self.mismatch_box = QGroupBox("The response sets differ: what should happen?")
        mm = QVBoxLayout(self.mismatch_box)
        self.mismatch_group = QButtonGroup(self)
        self.mismatch_group.setExclusive(True)
        self.mismatch_radios: dict[str, QRadioButton] = {}
        for value, text in MISMATCH_CHOICES:
            radio = QRadioButton(text)
            self.mismatch_radios[value] = radio
            self.mismatch_group.addButton(radio)
            mm.addWidget(radio)
            radio.toggled.connect(lambda on, v=value: on and self._mismatch_chosen(v))
        self.mismatch_box.setVisible(False)

        form = QFormLayout()
        form.addRow(plain_label("File"), path_row)
        form.addRow(plain_label("Format"), self.format_combo)
        form.addRow(plain_label("Import into"), target_box)
        form.addRow(plain_label("Mode"), mode_box)

        self.preview_edit = QPlainTextEdit()
        self.preview_edit.setReadOnly(True)
        self.preview_edit.setPlaceholderText("The preview of what will change appears here.")
        self.preview_edit.setMinimumHeight(180)
        self.error_label = plain_label("", selectable=True)
        self.error_label.setObjectName("importError")
        self.error_label.setStyleSheet("color: #b00020;")

        self.buttons = QDialogButtonBox()
        self.preview_button = self.buttons.addButton("Preview", QDialogButtonBox.ActionRole)
        self.import_button = self.buttons.addButton("Import", QDialogButtonBox.AcceptRole)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.Cancel)
        self.import_button.setEnabled(False)
        self.preview_button.clicked.connect(self.refresh_preview)
        # accepted is left unconnected: the dialog closes only after the write succeeded.
        self.import_button.clicked.connect(self.start_import)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.mismatch_box)
        layout.addWidget(plain_label("Preview (nothing is written until you press Import)"))
        layout.addWidget(self.preview_edit, 1)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)
        self.resize(640, 560)

        for signal in (self.path_edit.textChanged, self.new_name_edit.textChanged):
            signal.connect(self._inputs_changed)
        self.format_combo.currentIndexChanged.connect(self._inputs_changed)
        for radio in (self.current_radio, self.new_radio, self.merge_radio, self.replace_radio):
            radio.toggled.connect(self._inputs_changed)
        self.new_name_edit.textEdited.connect(lambda _t: self.new_radio.setChecked(True))

    # ----- fields (tests set these directly) --------------------------------------------------
    def set_format(self, fmt: str | None) -> None:
        self.format_combo.setCurrentIndex([v for _t, v in FORMATS].index(fmt))

    def set_new_profile(self, name: str) -> None:
        self.new_name_edit.setText(name)
        self.new_radio.setChecked(True)

    def target_profile(self) -> tuple[str, bool]:
        """(profile name, whether it is created by this import)."""
        if self.new_radio.isChecked():
            return self.new_name_edit.text().strip(), True
        return self.ctx.profile or "", False

    def mismatch_choice(self) -> str | None:
        for value, radio in self.mismatch_radios.items():
            if radio.isChecked():
                return value
        return None

    def set_mismatch_choice(self, value: str) -> None:
        self.mismatch_radios[value].setChecked(True)

    def browse(self) -> None:
        path = (self.file_chooser(self) if self.file_chooser
                else choose_bank_file(self, "Import bank", save=False, suggested=self.path_edit.text()))
        if path:
            self.path_edit.setText(str(path))
            self.refresh_preview()

    # ----- preview ----------------------------------------------------------------------------
    def _inputs_changed(self, *_args) -> None:
        self.import_button.setEnabled(False)  # the shown preview no longer matches the fields
        # The mismatch choice belongs to one file/target: a change of either asks again.
        self._clear_mismatch_choice()
        self._debounce.start()

    def _clear_mismatch_choice(self) -> None:
        self.mismatch_group.setExclusive(False)  # an exclusive group cannot be all unchecked
        for radio in self.mismatch_radios.values():
            with QSignalBlocker(radio):
                radio.setChecked(False)
        self.mismatch_group.setExclusive(True)

    def _mismatch_chosen(self, value: str) -> None:
        if value == "stop":
            self.import_button.setEnabled(False)
            self.error_label.setText(_NOT_IMPORTING)
            return
        self.refresh_preview()

    def refresh_preview(self):
        """Read and plan the import in the background; returns the op (tests wait on it).

        A newer preview supersedes this one: its result is dropped."""
        self._debounce.stop()
        self.import_button.setEnabled(False)
        self.error_label.setText("")
        self.preview_edit.setPlainText("Reading the file…")
        target, creating = self.target_profile()
        choice = self.mismatch_choice()
        path, fmt, current = self.path_edit.text().strip(), self.format_combo.currentData(), self.ctx.profile
        mode = "replace" if self.replace_radio.isChecked() else "merge"
        on_mismatch = choice if choice in ("keep", "union") else None
        loaded, settings = self.ctx.inference.fingerprint, self.ctx.settings

        def preview(job):
            # whose ratings the file holds is judged against the loaded model, or before it
            # has loaded, the one the settings name (its file's hash is cached by the library)
            from cm_desktop.models.current import settings_fingerprint

            fingerprint = loaded or settings_fingerprint(settings)
            return compute_import_preview(job.bank, path, fmt, target, mode, on_mismatch,
                                          current, creating, fingerprint)

        self._preview_op = (
            BankQuery(self, preview)
            .supersedes((id(self), "preview")).with_progress("Reading the bank file")
            .success(self._preview_done).failure(self._preview_failed).run())
        return self._preview_op

    def _preview_done(self, preview: ImportPreview) -> None:
        self.preview, self.error, plan = preview, None, preview.plan
        self.preview_edit.setPlainText(preview.summary())
        self.mismatch_box.setVisible(bool(plan.mismatch))
        choice = self.mismatch_choice()
        ready = not plan.mismatch or choice in ("keep", "union")
        changes = bool(plan.new or plan.create_profile or plan.removed or plan.responses_added)
        self.import_button.setEnabled(ready and changes)
        if ready and not changes:
            self.error_label.setText("Nothing to import: every rating in the file is already in the profile.")
        if plan.mismatch and choice == "stop":
            self.error_label.setText(_NOT_IMPORTING)
        self.preview_ready.emit(preview)

    def _preview_failed(self, exc: BaseException) -> None:
        self.preview, self.error = None, exc
        self.preview_edit.setPlainText("")
        self.mismatch_box.setVisible(False)
        self.error_label.setText(f"Cannot import: {describe_error(exc)}")
        self.preview_ready.emit(exc)

    # ----- import -----------------------------------------------------------------------------
    def start_import(self):
        """The accept slot: apply the previewed plan in the background; returns the op (or None)."""
        if self.preview is None or not self.import_button.isEnabled():
            return None
        from bank_store.formats import apply_import

        plan = self.preview.plan
        choice = self.mismatch_choice()
        if plan.mismatch and choice not in ("keep", "union"):
            return None
        self.import_button.setEnabled(False)
        self.preview_button.setEnabled(False)
        self.cancel_button.setEnabled(False)  # the write is one transaction: it cannot stop halfway
        self._import_op = (BankWrite(self, lambda job: apply_import(job.bank, plan), profile=plan.profile)
                           .with_progress("Importing the bank file")
                           .success(self._import_done).failure(self._import_failed).run())
        return self._import_op

    def _import_done(self, report) -> None:
        self.report = report
        profile = report.plan.profile
        if report.plan.create_profile:
            # Show what was just imported. The main window's profile switcher must list the new
            # profile first: its refresh_profiles(select=...) re-reads the list, then selects.
            window = self.parentWidget().window() if self.parentWidget() is not None else None
            refresh_profiles = getattr(window, "refresh_profiles", None)
            if callable(refresh_profiles):
                refresh_profiles(select=profile)
            else:
                self.ctx.set_profile(profile)
        self.ctx.status_message.emit(self.summary())
        self.imported.emit(report)
        self.accept()

    def reject(self) -> None:
        if self._import_op is not None and not self._import_op.done:
            return  # Esc / the close button wait for the running import (it takes moments)
        super().reject()

    def _import_failed(self, exc: BaseException) -> None:
        self.preview_button.setEnabled(True)
        self.cancel_button.setEnabled(True)
        self.error_label.setText(f"Import failed, the bank is unchanged: {describe_error(exc)}")
        self.import_failed.emit(exc)

    def summary(self) -> str:
        if self.report is None:
            return ""
        plan = self.report.plan
        text = (f"Imported {self.report.added} ratings into profile {plan.profile!r}"
                f" ({plan.duplicates} duplicates skipped).")
        if plan.responses_added:
            text += f" {len(plan.responses_added)} responses were added to the response set."
        if self.report.backup:
            text += f" A backup was taken first: {self.report.backup}"
        return text


def run_import_dialog(ctx, parent: QWidget | None = None):
    """File ▸ Import bank…: modal dialog, then a summary. Returns the ImportReport, or None."""
    dialog = ImportDialog(ctx, parent)
    if dialog.exec() == QDialog.Accepted and dialog.report is not None:
        show_summary(parent, "Import finished", dialog.summary())
        return dialog.report
    return None
