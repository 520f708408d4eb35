"""The start-up check for the system libraries Qt's xcb plugin needs (no Qt involved)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cm_desktop import system_libs

REPO = Path(__file__).resolve().parents[1]


def test_xcb_is_used_on_linux_unless_another_platform_is_chosen():
    assert system_libs.uses_xcb({}, "linux")
    assert system_libs.uses_xcb({"QT_QPA_PLATFORM": "xcb"}, "linux")
    assert not system_libs.uses_xcb({"QT_QPA_PLATFORM": "offscreen"}, "linux")
    assert not system_libs.uses_xcb({"QT_QPA_PLATFORM": "wayland;xcb"}, "linux")
    assert not system_libs.uses_xcb({}, "darwin")


def test_missing_libraries_are_found_by_really_loading_them():
    libs = {"libc.so.6": "libc6", "libcm-desktop-no-such-lib.so.9": "no-such-package",
            "libxcb-also-missing.so.1": "libxcb-also-missing1"}
    missing = system_libs.missing_libraries(libs)
    assert missing == ["libcm-desktop-no-such-lib.so.9", "libxcb-also-missing.so.1"]
    line = system_libs.missing_message(missing, libs)
    assert "\n" not in line
    assert line.endswith("sudo apt-get install no-such-package libxcb-also-missing1")


def test_every_library_names_its_package():
    assert all(name.startswith("lib") and ".so." in name and package
               for name, package in system_libs.XCB_LIBRARIES.items())


def test_main_says_in_one_line_what_is_missing_instead_of_aborting(tmp_path):
    # a library list with one name no system has: main() must stop before Qt with one line
    code = ("import sys; from cm_desktop import system_libs, app;"
            "system_libs.XCB_LIBRARIES['libcm-desktop-no-such-lib.so.9'] = 'cm-missing-pkg';"
            "sys.exit(app.main([]))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               CM_DESKTOP_HOME=str(tmp_path), DISPLAY=":99")
    env.pop("QT_QPA_PLATFORM", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "libcm-desktop-no-such-lib.so.9" in lines[0]
    assert "cm-missing-pkg" in lines[0]


def test_the_readme_names_every_package():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert [p for p in system_libs.XCB_LIBRARIES.values() if p not in readme] == []
