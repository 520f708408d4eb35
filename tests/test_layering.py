"""The layering rules: no Qt below the UI layer; imports only go down the layers; torch only where
it is needed, lazily."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QT_FREE = [ROOT / "bank_store", ROOT / "cm_desktop" / "cm", ROOT / "cm_desktop" / "backends",
           ROOT / "cm_desktop" / "cli", ROOT / "cm_desktop" / "__init__.py", ROOT / "cm_desktop" / "cancel.py",
           ROOT / "cm_desktop" / "paths.py", ROOT / "cm_desktop" / "settings.py",
           ROOT / "cm_desktop" / "credentials.py", ROOT / "cm_desktop" / "datasets.py",
           ROOT / "cm_desktop" / "system_libs.py", ROOT / "cm_desktop" / "models"]
QT_MODULES = ("PySide6", "PyQt5", "PyQt6", "shiboken6")

# The layers, bottom up. A module may import from its own unit and from lower layers only; units
# on one layer (the command line and the GUI) do not import each other.
LAYERS = [
    {"bank_store"},                        # the SQLite bank: imports nothing of cm_desktop
    {"cancel", "paths", "credentials", "datasets", "system_libs"},  # small helpers for the layers above
    {"backends"},                          # model access
    {"cm", "models"},                      # the CM method; the model library (files, downloads)
    {"settings"},                          # the app's saved settings: a backend config, engine options
    {"cli", "ui"},                         # the `cm` command; the PySide6 GUI
    {"app"},                               # starts the GUI
]
LAYER_OF = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def _unit(module: str) -> str | None:
    """The layering unit of a dotted module name (None: not part of this project)."""
    parts = module.split(".")
    if parts[0] == "bank_store":
        return "bank_store"
    if parts[0] != "cm_desktop" or len(parts) == 1:
        return None
    return parts[1]


def _project_files():
    return sorted(list((ROOT / "cm_desktop").rglob("*.py")) + list((ROOT / "bank_store").rglob("*.py")))


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module == "cm_desktop":   # `from cm_desktop import paths`
                names.update(f"cm_desktop.{alias.name}" for alias in node.names)
    return names


def test_no_qt_import_below_the_ui_layer():
    offenders = []
    for package in QT_FREE:
        for path in ([package] if package.is_file() else package.rglob("*.py")):
            for name in _imported_modules(path):
                if name.split(".")[0] in QT_MODULES or name.startswith("cm_desktop.ui"):
                    offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_every_module_belongs_to_a_layer():
    units = {_unit(".".join(path.relative_to(ROOT).with_suffix("").parts)) for path in _project_files()}
    units.discard("__init__")
    assert units <= set(LAYER_OF), f"not in LAYERS: {sorted(units - set(LAYER_OF))}"


def test_imports_only_go_down_the_layers():
    """Imports anywhere in a file count, also those inside functions."""
    offenders = []
    for path in _project_files():
        own = _unit(".".join(path.relative_to(ROOT).with_suffix("").parts))
        if own == "__init__":
            continue
        for name in _imported_modules(path):
            target = _unit(name)
            if target is None or target == own or name == "cm_desktop":
                continue
            if LAYER_OF[target] >= LAYER_OF[own]:
                offenders.append(f"{path.relative_to(ROOT)} ({own}) imports {name} ({target})")
    assert not offenders, "\n".join(offenders)


def test_the_layer_rule_catches_an_upward_import(tmp_path):
    """The checker itself: a bank module importing the engine is reported."""
    module = tmp_path / "upward.py"
    module.write_text("from cm_desktop.cm.engine import CMEngine\nimport cm_desktop.ui.ops\n")
    imported = _imported_modules(module)
    assert {_unit(name) for name in imported} == {"cm", "ui"}
    assert all(LAYER_OF[_unit(name)] > LAYER_OF["bank_store"] for name in imported)


def test_torch_is_never_imported_at_module_level():
    # torch/transformers take seconds to import: only inside functions of the modules that need them.
    offenders = []
    for path in list((ROOT / "cm_desktop").rglob("*.py")) + list((ROOT / "bank_store").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module]
            for m in mods:
                if m.split(".")[0] in ("torch", "transformers", "sentence_transformers", "llama_cpp"):
                    offenders.append(f"{path.relative_to(ROOT)}: {m}")
    assert not offenders, "\n".join(offenders)


def test_engine_and_store_import_without_qt_or_torch():
    code = (
        "import sys; import bank_store, cm_desktop.cm.engine, cm_desktop.backends, cm_desktop.cli.main;"
        "bad=[m for m in ('PySide6','torch','transformers','llama_cpp') if m in sys.modules];"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
