"""New profile: a name and a fixed response set (one per line), optionally from the sample."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
)

from cm_desktop.ui.plain import plain_label, set_plain


def parse_responses(text: str) -> list[str]:
    """One response per line, blank lines ignored, checked by the bank's one response-set rule
    (at least two; duplicates compared as matching compares them); ValueError naming the
    problem."""
    from bank_store import BankError
    from bank_store.records import validate_responses

    try:
        return list(validate_responses([line for line in text.split("\n") if line.strip()]))
    except BankError as e:
        raise ValueError(str(e)) from None


class NewProfileDialog(QDialog):
    def __init__(self, existing: set[str], parent=None):
        super().__init__(parent)
        self.setWindowTitle("New profile")
        self.existing = existing
        self.result_value: tuple[str, list[str], str] | None = None
        layout = QVBoxLayout(self)
        layout.addWidget(plain_label("A profile is one set of responses the model chooses among (for example "
                                     "the intents of a support desk). Your ratings are kept per profile."))
        form = QFormLayout()
        self.name_edit = QLineEdit()
        self.description_edit = QLineEdit()
        self.responses_edit = QPlainTextEdit()
        self.responses_edit.setPlaceholderText("One response per line")
        sample = QPushButton("Fill with the Banking77 sample")
        sample.clicked.connect(self._fill_sample)
        form.addRow("Name", self.name_edit)
        form.addRow("Description", self.description_edit)
        form.addRow("Responses", self.responses_edit)
        form.addRow("", sample)
        layout.addLayout(form)
        self.error_label = plain_label("")
        self.error_label.setStyleSheet("color: #b3261e;")
        layout.addWidget(self.error_label)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self._ok)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(480, 520)

    def _fill_sample(self) -> None:
        from cm_desktop.ui.resource_files import sample_responses

        self.responses_edit.setPlainText("\n".join(sample_responses()))

    def _ok(self) -> None:
        name = self.name_edit.text().strip()
        try:
            if not name:
                raise ValueError("give the profile a name")
            if name in self.existing:
                raise ValueError(f"a profile named {name!r} already exists")
            responses = parse_responses(self.responses_edit.toPlainText())
        except ValueError as exc:
            set_plain(self.error_label, f"Cannot create the profile: {exc}.")
            return
        self.result_value = (name, responses, self.description_edit.text().strip())
        self.accept()
