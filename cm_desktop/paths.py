"""Where the app keeps its files: the user's data and config dirs, overridable.

Precedence for the bank file: an explicit path (the `--bank` flag) > `CM_BANK` > the data dir.
`CM_DESKTOP_HOME` moves every file (tests and portable installs use it).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "cm-desktop"


def _home_override() -> Path | None:
    home = os.environ.get("CM_DESKTOP_HOME")
    return Path(home).expanduser() if home else None


def data_dir() -> Path:
    base = _home_override() or Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base


def config_dir() -> Path:
    base = _home_override() or Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base


def bank_path(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("CM_BANK")
    if env:
        return Path(env).expanduser()
    return data_dir() / "bank.sqlite3"


def backups_dir() -> Path:
    d = data_dir() / "backups"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d
