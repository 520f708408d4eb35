"""Which system libraries Qt's X11 (xcb) platform plugin needs and this machine lacks.

On a fresh desktop Linux, PySide6's wheel brings Qt but not the X11 helper libraries its xcb
plugin links against; Qt then aborts with a message that may name another library than the
one missing. The app checks first and says in one line which Debian/Ubuntu packages to install.
No Qt is imported here (the check must run before Qt can abort the process).
"""

from __future__ import annotations

import ctypes
import os
import sys

# shared library -> the Debian/Ubuntu package that ships it: what `ldd` lists for PySide6 6.x's
# libqxcb.so and libQt6XcbQpa.so outside the wheel
XCB_LIBRARIES = {
    "libxcb.so.1": "libxcb1",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libfontconfig.so.1": "libfontconfig1",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
}


def uses_xcb(environ=os.environ, platform: str = sys.platform) -> bool:
    """True when Qt will pick its xcb plugin: Linux, and QT_QPA_PLATFORM unset or xcb (Qt 6 on
    Linux defaults to xcb unless a Wayland session asks for wayland)."""
    if not platform.startswith("linux"):
        return False
    chosen = environ.get("QT_QPA_PLATFORM", "").split(":")[0].split(";")[0].strip()
    return chosen in ("", "xcb")


def missing_libraries(libraries=XCB_LIBRARIES, load=ctypes.CDLL) -> list[str]:
    """The libraries of `libraries` the dynamic loader cannot find, in their listed order."""
    missing = []
    for name in libraries:
        try:
            load(name)
        except OSError:
            missing.append(name)
    return missing


def missing_message(missing: list[str], libraries=XCB_LIBRARIES) -> str:
    packages = " ".join(dict.fromkeys(libraries[m] for m in missing))
    return (f"CM Desktop cannot open its window: this system lacks {', '.join(missing)}. "
            f"Install them (Debian/Ubuntu): sudo apt-get install {packages}")


def check_gui_libraries(environ=os.environ) -> str | None:
    """One line saying what to install, or None when nothing is missing (or xcb is not used)."""
    if not uses_xcb(environ):
        return None
    missing = missing_libraries()
    return missing_message(missing) if missing else None
