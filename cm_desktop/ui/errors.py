"""Turn an exception into what a person reads: the cause, and what to do about it.

Matched by class name along the MRO so this module does not import the layers below (and keeps
working while they change). The texts are plain: they are shown with Qt.PlainText.
"""

from __future__ import annotations

import json
import sqlite3


def _class_names(exc: BaseException) -> list[str]:
    return [cls.__name__ for cls in type(exc).__mro__]


def _message(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


_ADVICE_BY_CLASS = [
    ("Cancelled", "The work was stopped on request; nothing was changed."),
    ("ModelFileError", "Choose a valid GGUF model file in Settings (or go back to the embedded default model)."),
    ("EndpointError", "Check the server address, the model name and the API key in Settings, and that the server is running."),
    ("BankFileError", "The file was not imported and the bank is unchanged. Check that it is a CM Desktop bank export "
                      "(native JSON) or a paper memory bank, and that it is not damaged."),
    ("BankError", "The bank was left unchanged. If this keeps happening, restore a backup from the data folder."),
    ("BackendError", "Check the model settings in Settings, then try again."),
    ("DatasetError", "Use a .jsonl file with an \"input\" field per line, or a plain text file with one query per line."),
]


def explain(exc: BaseException) -> tuple[str, str]:
    """(cause, advice) for an error shown to the user."""
    names = _class_names(exc)
    for class_name, advice in _ADVICE_BY_CLASS:
        if class_name in names:
            return _message(exc), advice
    if isinstance(exc, FileNotFoundError):
        return f"File not found: {exc.filename or _message(exc)}", "Check the path and choose the file again."
    if isinstance(exc, IsADirectoryError):
        return f"That is a folder, not a file: {exc.filename}", "Choose a file."
    if isinstance(exc, PermissionError):
        return (f"Permission denied: {exc.filename or _message(exc)}",
                "Choose a location you can read and write, or fix the file's permissions.")
    if isinstance(exc, UnicodeDecodeError):
        return ("The file is not UTF-8 text.", "Save the file as UTF-8 text and try again.")
    if isinstance(exc, json.JSONDecodeError):
        return (f"The file is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}",
                "Fix or re-export the file and try again.")
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc).lower():
        return ("The bank is busy (another program is writing to it).", "Wait a moment and try again.")
    if isinstance(exc, MemoryError):
        return ("Out of memory.", "Close other programs or choose a smaller model.")
    if isinstance(exc, OSError):
        return (_message(exc), "Check the file or the connection and try again.")
    if isinstance(exc, (ValueError, KeyError, TypeError)):
        return (_message(exc), "Check the input and try again.")
    return (f"{type(exc).__name__}: {_message(exc)}",
            "This is unexpected. Try again; if it keeps happening, report it with the steps that led here.")


def error_text(exc: BaseException) -> str:
    cause, advice = explain(exc)
    return f"{cause}\n\nWhat to do: {advice}"
