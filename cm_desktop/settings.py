"""Typed app settings, stored as JSON in the config dir. No secrets: API keys live in the keyring.

A damaged settings file never stops the app: it is moved aside (settings.json.bad) and defaults
are used, with the problem reported in `Settings.load_problem`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cm_desktop import paths

from cm_desktop.backends import KINDS as BACKEND_KINDS  # each defined once, where it is used
from cm_desktop.cm import DEFAULT_VARIANT, STRATEGIES, VARIANTS

__all__ = ["BACKEND_KINDS", "STRATEGIES", "Settings", "VARIANTS", "settings_path"]
# Names that must never be written to the settings file (keys belong in the keyring).
_SECRET_NAMES = ("key", "token", "secret", "password")


def _field_problem(name: str, value: Any) -> str | None:
    """Why one setting's value is not allowed, or None."""
    if name == "backend_kind" and value not in BACKEND_KINDS:
        return f"backend_kind must be one of {', '.join(BACKEND_KINDS)}, not {value!r}"
    if name == "variant" and value not in VARIANTS:
        return f"variant must be one of {', '.join(VARIANTS)}, not {value!r}"
    if name == "strategy" and value not in STRATEGIES:
        return f"strategy must be one of {', '.join(STRATEGIES)}, not {value!r}"
    if name == "max_tokens" and not 1 <= int(value) <= 8192:
        return f"max_tokens must be between 1 and 8192, not {value}"
    if name == "temperature" and not 0.0 <= float(value) <= 2.0:
        return f"temperature must be between 0 and 2, not {value}"
    if name == "n_threads" and not 0 <= int(value) <= 256:
        return f"n_threads must be between 0 and 256, not {value}"
    return None


MAX_SETTINGS_BYTES = 1024 * 1024  # a settings file is a few hundred bytes


def _read_settings_file(path: Path) -> str:
    """The file's text: a regular file, at most MAX_SETTINGS_BYTES (ValueError otherwise)."""
    from bank_store import BankError
    from bank_store.files import read_input

    try:
        return read_input(path, MAX_SETTINGS_BYTES).decode("utf-8")
    except BankError as e:
        raise ValueError(str(e)) from None


def settings_path() -> Path:
    return paths.config_dir() / "settings.json"


@dataclass
class Settings:
    backend_kind: str = "llama_cpp"
    model_path: str = ""                 # "" = the embedded default model
    hf_model: str = ""                   # HF model id or dir; "" = the backend's default
    openai_base_url: str = "http://127.0.0.1:8000/v1"
    openai_model: str = ""
    variant: str = DEFAULT_VARIANT
    strategy: str = "vanilla"
    max_tokens: int = 160
    temperature: float = 0.7
    n_threads: int = 0                   # 0 = let the backend choose
    coverage_order: bool = True
    onboarding_dismissed: bool = False
    last_profile: str = ""
    last_dataset: str = ""
    window_geometry: str = ""            # base64 of QWidget.saveGeometry()
    load_problem: str = field(default="", compare=False, repr=False)

    # -- validation --------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        for f in dataclasses.fields(self):
            problem = _field_problem(f.name, getattr(self, f.name))
            if problem:
                raise ValueError(problem)

    # -- disk --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("load_problem", None)
        return data

    @classmethod
    def load(cls, path: Path | None = None) -> "Settings":
        path = path or settings_path()
        if not path.exists():
            return cls()
        try:
            data = json.loads(_read_settings_file(path))
            if not isinstance(data, dict):
                raise ValueError("the file does not hold a JSON object")
        except (OSError, ValueError) as exc:
            settings = cls()
            settings.load_problem = f"The settings file {path} could not be read ({exc}); defaults are used."
            try:
                path.replace(path.with_name(path.name + ".bad"))
            except OSError:
                pass
            return settings
        settings = cls()
        problems = []
        defaults = cls()
        for f in dataclasses.fields(cls):
            if f.name == "load_problem" or f.name not in data:
                continue
            value = data[f.name]
            expected = type(getattr(defaults, f.name))
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is not expected:
                problems.append(f"{f.name} (expected {expected.__name__})")
                continue
            problem = _field_problem(f.name, value)
            if problem:
                problems.append(problem)
                continue
            setattr(settings, f.name, value)
        if problems:
            settings.load_problem = "Some settings were invalid and reset to defaults: " + "; ".join(problems)
        return settings

    def save(self, path: Path | None = None) -> Path:
        self.validate()
        # a server URL's user:password@ or ?api_key= goes to the keyring, never to the file
        from cm_desktop.credentials import store_url_credentials

        self.openai_base_url = store_url_credentials(self.openai_base_url)
        path = path or settings_path()
        data = self.to_dict()
        for name in data:
            if any(secret in name.lower().split("_") for secret in _SECRET_NAMES):
                raise ValueError(f"refusing to store a secret-looking setting {name!r} on disk")
        from bank_store import BankError
        from bank_store.files import write_private_atomic  # the one owner-only file writer

        text = json.dumps(data, indent=2, sort_keys=True)
        try:
            return write_private_atomic(path, text.encode("utf-8"))
        except BankError as e:  # callers handle a settings file that cannot be written as OSError
            raise OSError(str(e)) from None

    # -- what the layers below need ----------------------------------------------------------
    def engine_options(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "variant": self.variant}

    def backend_config(self):
        """The chosen backend's typed options (cm_desktop.backends.load_backend builds it)."""
        from cm_desktop.backends import backend_options

        if self.backend_kind == "openai":
            return backend_options("openai", base_url=self.openai_base_url,
                                   model=self.openai_model or None)
        if self.backend_kind == "hf":
            path = self.hf_model or self.model_path or None
        else:
            path = self.model_path or None
        return backend_options(self.backend_kind, model_path=path,
                               n_threads=self.n_threads or None)
