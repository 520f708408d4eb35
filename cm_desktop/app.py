"""Start the desktop app: the window is shown first, the model loads after it in the background.

Start-up order: QApplication and style → settings → bank (small, fast) → window shown → (event
loop) sample profile ensured and profiles listed in a background op → the model loads on the
inference thread. Nothing here imports torch; llama_cpp is imported on the inference thread.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cm-desktop", description="CM Desktop: personalize an LLM to you.")
    parser.add_argument("--bank", help="the bank file to use (default: CM_BANK or the user data dir)")
    parser.add_argument("--no-model", action="store_true", help="start without loading a model")
    parser.add_argument("--quit-after-shown", action="store_true", help=argparse.SUPPRESS)  # benchmarks
    return parser.parse_args(argv)


def apply_look(app) -> None:
    """The app icon and the one style sheet (resources/)."""
    from PySide6.QtGui import QIcon

    from cm_desktop.ui.resource_files import resource

    app.setStyle("Fusion")   # the same look on every platform; the style sheet only adds to it
    try:
        app.setWindowIcon(QIcon(str(resource("icons/cm-desktop.svg"))))
        app.setStyleSheet(resource("style.qss").read_text(encoding="utf-8"))
    except OSError:
        log.warning("the app's look could not be loaded", exc_info=True)


def create_app_window(bank_path: str | Path | None = None, *, settings=None):
    """Build the context and the main window (a QApplication must exist). Returns (ctx, window).

    The caller shows the window; `start_up(ctx, window)` then runs the first-start work.
    """
    from bank_store import DiscrepancyBank

    from cm_desktop import paths
    from cm_desktop.settings import Settings
    from cm_desktop.ui.context import AppContext
    from cm_desktop.ui.main_window import MainWindow

    settings = settings or Settings.load()
    # check=False: the damage check (PRAGMA quick_check, 0.2 s of CPU at 100k ratings) runs in
    # start_up's first background write instead of delaying the window; until it has passed,
    # every write runs it first, so nothing is written into a damaged bank.
    bank = DiscrepancyBank(paths.bank_path(bank_path), backup_dir=paths.backups_dir(),
                           check=False)
    ctx = AppContext(settings, bank)
    window = MainWindow(ctx)
    return ctx, window


def start_up(ctx, window, *, load_model: bool = True, on_ready=None) -> None:
    """First-start work after the window shows: sample profile, profile list, then the model."""
    from cm_desktop.ui.ops import BankWrite, FileTask
    from cm_desktop.ui.resource_files import (SAMPLE_PROFILE_NAME, SAMPLE_PROFILES,
                                              ensure_sample_profile, sample_queries)

    if ctx.settings.load_problem:
        ctx.show_error(window, "Settings were reset", ValueError(ctx.settings.load_problem))

    def prepare(job):
        job.bank.verify()  # a damaged bank stops here, before any write
        ensure_sample_profile(job.bank)
        return [p.name for p in job.bank.list_profiles()]

    def prepared(names):
        wanted = ctx.settings.last_profile if ctx.settings.last_profile in names else (
            SAMPLE_PROFILE_NAME if SAMPLE_PROFILE_NAME in names else names[0])
        window.refresh_profiles(select=wanted)
        if wanted in SAMPLE_PROFILES and not window.rate_view.queue and window.rate_view.current is None:
            (FileTask(window, lambda job: sample_queries(wanted)).labelled("Loading sample queries")
             .success(lambda qs: window.rate_view.load_queries(qs, source=f"the {wanted} queries"))
             .run())
        if on_ready:
            on_ready()

    def not_opened(exc):
        from bank_store import BankDamagedError

        if isinstance(exc, BankDamagedError):
            damaged_bank_dialog(window, exc).open()
        else:
            ctx.show_error(window, "The bank could not be opened", exc)

    (BankWrite(window, prepare, profile=SAMPLE_PROFILE_NAME).with_progress("Opening the bank")
     .success(prepared).failure(not_opened).run())
    if load_model:
        try:
            config = ctx.settings.backend_config()
        except Exception as exc:  # noqa: BLE001 - shown, and the app stays usable
            ctx.show_error(window, "The model settings are not valid", exc)
            return

        def failed(exc):
            ctx.show_error(window, "The model could not be loaded", exc)

        ctx.inference.load_backend(config, on_failure=failed)


def damaged_bank_dialog(parent, exc):
    """The damaged-bank message as a dialog (plain text, never a traceback), with a way out:
    "Recover into a new file" copies what SQLite can still read into a new bank in the backups
    folder (the damaged file is kept) and says how to use it. Returned unopened."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QMessageBox

    box = QMessageBox(QMessageBox.Critical, "The bank is damaged", "", QMessageBox.Close, parent)
    box.setTextFormat(Qt.PlainText)
    box.setText(f"The bank {exc.path} is damaged (SQLite's check: {exc.detail}). Nothing was "
                "written to it.")
    box.setInformativeText("CM Desktop can copy everything that can still be read into a new "
                           "bank file; the damaged file is kept as it is. From a terminal: "
                           "cm bank recover")
    recover_button = box.addButton("Recover into a new file", QMessageBox.AcceptRole)
    box.recover_button = recover_button

    def recover():
        from bank_store import utc_now
        from bank_store.backups import recover as salvage
        from cm_desktop import paths

        stamp = "".join(ch for ch in utc_now() if ch.isdigit())
        dest = paths.backups_dir() / f"{exc.path.stem}-recovered-{stamp}.sqlite3"
        try:
            copied = salvage(exc.path, dest)
        except Exception as error:  # noqa: BLE001 - shown as text, the app stays up
            text = f"Recovery failed: {error}"
        else:
            text = (f"Recovered {copied.get('ratings', 0)} ratings in "
                    f"{copied.get('profiles', 0)} profiles into {dest}. The damaged bank is "
                    f"kept at {exc.path}. To use the copy, start CM Desktop with --bank "
                    f"{dest}, or quit and put it in the damaged file's place.")
        result = QMessageBox(QMessageBox.Information, "Recovered bank", "", QMessageBox.Ok, parent)
        result.setTextFormat(Qt.PlainText)
        result.setText(text)
        box.result_box = result
        result.open()

    recover_button.clicked.connect(recover)
    return box


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from cm_desktop.system_libs import check_gui_libraries

    problem = check_gui_libraries()     # before Qt, which would abort naming the wrong library
    if problem:
        print(problem, file=sys.stderr)
        return 1
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("CM Desktop")
    app.setOrganizationName("cm-desktop")
    app.setDesktopFileName("cm-desktop")
    apply_look(app)
    try:
        ctx, window = create_app_window(args.bank)
    except Exception as exc:  # noqa: BLE001 - e.g. an unreadable bank file: say so, don't crash
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QMessageBox

        from bank_store import BankDamagedError
        from cm_desktop.ui.errors import error_text

        if isinstance(exc, BankDamagedError):
            damaged_bank_dialog(None, exc).exec()
            return 1
        box = QMessageBox(QMessageBox.Critical, "CM Desktop cannot start", error_text(exc))
        box.setTextFormat(Qt.PlainText)
        box.exec()
        return 1
    window.show()
    if args.quit_after_shown:
        # Benchmarks: exit as soon as the first frame is up; print what was imported by then.
        def report():
            print(f"SHOWN torch_imported={'torch' in sys.modules} llama_cpp_imported={'llama_cpp' in sys.modules}",
                  flush=True)
            window.close()
            app.quit()

        QTimer.singleShot(0, report)
    else:
        QTimer.singleShot(0, lambda: start_up(ctx, window, load_model=not args.no_model))
    rc = app.exec()
    window.shutdown()
    return rc


if __name__ == "__main__":
    sys.exit(main())
