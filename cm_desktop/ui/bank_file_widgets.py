"""What the import and export dialogs share: the file picker, small layout helpers, error text.

File pickers are Qt's own (DontUseNativeDialog) and injectable, so tests set fields and call the
accept slots.
"""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QButtonGroup, QDialog, QFileDialog, QHBoxLayout, QLineEdit,
                               QMessageBox, QPushButton, QRadioButton, QVBoxLayout, QWidget)

FileChooser = Callable[[QWidget], "str | None"]
BANK_FILE_FILTER = "Bank files (*.json *.json.gz *.gz);;All files (*)"


def choose_bank_file(parent: QWidget, title: str, *, save: bool, suggested: str = "") -> str | None:
    """A Qt (non-native) file dialog: same look everywhere and scriptable offscreen."""
    dialog = QFileDialog(parent, title, suggested)
    dialog.setOption(QFileDialog.DontUseNativeDialog, True)
    dialog.setNameFilter(BANK_FILE_FILTER)
    dialog.setAcceptMode(QFileDialog.AcceptSave if save else QFileDialog.AcceptOpen)
    dialog.setFileMode(QFileDialog.AnyFile if save else QFileDialog.ExistingFile)
    if dialog.exec() != QDialog.Accepted or not dialog.selectedFiles():
        return None
    return dialog.selectedFiles()[0]


def radio_column(parent: QWidget, *rows) -> QWidget:
    """Exclusive radio buttons stacked in a column; a row may be a layout holding one."""
    group = QButtonGroup(parent)
    box = QWidget()
    column = QVBoxLayout(box)
    column.setContentsMargins(0, 0, 0, 0)
    for row in rows:
        if isinstance(row, QRadioButton):
            group.addButton(row)
            column.addWidget(row)
        else:
            group.addButton(row.itemAt(0).widget())
            column.addLayout(row)
    return box


def path_with_browse(edit: QLineEdit, on_browse) -> QHBoxLayout:
    browse = QPushButton("Browse…")
    browse.clicked.connect(on_browse)
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    row.addWidget(browse)
    return row


def describe_error(exc: BaseException) -> str:
    """A bank file error as a person reads it: where, then what."""
    location = getattr(exc, "location", None)
    message = getattr(exc, "message", None) or str(exc)
    path = getattr(exc, "path", None)
    where = ", ".join(p for p in (path, f"at {location}" if location else None) if p)
    return f"{where}: {message}" if where else message


def show_summary(parent: QWidget | None, title: str, text: str) -> None:
    box = QMessageBox(QMessageBox.Information, title, "", QMessageBox.Ok, parent)
    box.setTextFormat(Qt.PlainText)
    box.setText(text)
    box.exec()
