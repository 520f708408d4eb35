"""Where the app keeps its files: the user's data and config dirs, overridable.

Precedence for the bank file: an explicit path (the `--bank` flag) > `CM_BANK` > the data dir.
`CM_DESKTOP_HOME` moves every file (tests and portable installs use it).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from bank_store.files import make_private_dirs

APP_NAME = "cm-desktop"


def _home_override() -> Path | None:
    home = os.environ.get("CM_DESKTOP_HOME")
    return Path(home).expanduser() if home else None


def data_dir() -> Path:
    base = _home_override() or Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    return make_private_dirs(base)  # every folder it creates 0700, parents too


def config_dir() -> Path:
    base = _home_override() or Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
    return make_private_dirs(base)


def tuned_encoders_dir() -> Path:
    """Where the encoders tuned on the user's banks are kept (cm.encoder_tuning)."""
    return data_dir() / "tuned-encoders"


def bank_path(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("CM_BANK")
    if env:
        return Path(env).expanduser()
    return data_dir() / "bank.sqlite3"


def backups_dir() -> Path:
    return make_private_dirs(data_dir() / "backups")
