"""The layering rules: no Qt below the UI layer; torch only where it is needed, lazily."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QT_FREE = [ROOT / "bank_store", ROOT / "cm_desktop" / "cm", ROOT / "cm_desktop" / "backends",
           ROOT / "cm_desktop" / "cli"]
QT_MODULES = ("PySide6", "PyQt5", "PyQt6", "shiboken6")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_qt_import_below_the_ui_layer():
    offenders = []
    for package in QT_FREE:
        for path in package.rglob("*.py"):
            for name in _imported_modules(path):
                if name.split(".")[0] in QT_MODULES or name.startswith("cm_desktop.ui"):
                    offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, "\n".join(offenders)


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
