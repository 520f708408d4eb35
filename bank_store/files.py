"""Files the app writes are owner-only; files it reads are bounded. One place for both rules.

Writing: folders the app creates are 0700 (every missing parent, not only the last: `mkdir
(parents=True)` makes the parents with the umask's mode), files 0600 whatever the umask, and a
file is written to a temporary name beside its target, fsynced, then renamed into place, so a
crash never leaves half a file under the real name.

Reading: only a regular file (or "-" for standard input where a command allows it). A FIFO,
a device such as /dev/zero or a directory is refused at once with one clear message instead of
hanging or filling memory, and every read stops at a size limit that the message names.
Line-based files are streamed, split on "\\n" only (U+2028 inside a JSON string is text, not a
line break).
"""

from __future__ import annotations

import itertools
import os
import stat
import sys
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import BankError, BankFileError

MAX_INPUT_BYTES = 64 * 1024 * 1024   # a whole input file (bank files, datasets, response lists)
MAX_LINE_BYTES = 1024 * 1024         # one line of a line-based input


def size_text(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n:,} bytes"


# ---- writing ------------------------------------------------------------------------------------

def make_private_dirs(folder: str | os.PathLike) -> Path:
    """Create `folder` and any missing parents, each 0700 whatever the umask; existing folders
    are left as they are (they are not ours to change)."""
    folder = Path(folder).expanduser()
    missing = []
    probe = folder
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made meanwhile by another process: not ours
        os.chmod(path, 0o700)  # mkdir's mode is masked by the umask
    if not folder.is_dir():
        raise BankError(f"{folder} is not a folder")
    return folder


def create_private_file(path: str | os.PathLike) -> None:
    """Create an empty 0600 file; FileExistsError if it exists."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
    finally:
        os.close(fd)


def temporary_name(path: Path) -> Path:
    """A hidden name beside `path` for a file being written (never listed as a real one)."""
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


def write_private_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` (0600) through a temporary file, fsync and rename: a crash leaves
    either the old file or the new one. Errors name `path`, never the temporary file."""
    path = Path(path).expanduser()
    if not path.name or path.is_dir():
        raise BankError(f"{str(path) or 'an empty name'} is not a file name to write to")
    tmp = temporary_name(path)
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise BankError(f"cannot write {path}: {e.strerror}") from None
    return path


# ---- reading ------------------------------------------------------------------------------------

def open_input(path: str | os.PathLike, *, allow_stdin: bool = False) -> BinaryIO:
    """Open a regular file for reading (or stdin for "-" when allowed); BankFileError otherwise.

    Opened non-blocking first, so a FIFO with no writer cannot hang the open; the type is then
    checked on the open file itself (no race between a check and the open)."""
    if allow_stdin and str(path) == "-":
        return sys.stdin.buffer
    where = str(path)
    if not where:
        raise BankFileError("no file name given")
    try:
        fd = os.open(Path(path).expanduser(), os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise BankFileError("file not found", path=where) from None
    except IsADirectoryError:
        raise BankFileError("is a directory, not a file", path=where) from None
    except OSError as e:
        raise BankFileError(f"cannot read the file: {e.strerror}", path=where) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = ("a directory" if stat.S_ISDIR(mode) else "a pipe (FIFO)" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file")
        raise BankFileError(f"is {kind}, not a regular file", path=where)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_input(path: str | os.PathLike, max_bytes: int = MAX_INPUT_BYTES, *,
               allow_stdin: bool = False) -> bytes:
    """A whole regular file, at most `max_bytes` (the error names the limit)."""
    f = open_input(path, allow_stdin=allow_stdin)
    try:
        raw = f.read(max_bytes + 1)
    except OSError as e:
        raise BankFileError(f"cannot read the file: {e.strerror}", path=str(path)) from None
    finally:
        if f is not sys.stdin.buffer:
            f.close()
    if len(raw) > max_bytes:
        raise BankFileError(f"file is larger than the {size_text(max_bytes)} limit",
                            path=str(path))
    return raw


def iter_input_lines(path: str | os.PathLike, *, max_bytes: int | None = MAX_INPUT_BYTES,
                     max_line_bytes: int = MAX_LINE_BYTES,
                     allow_stdin: bool = False) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 file, streamed and split on "\\n" only; a UTF-8 BOM is
    dropped, a trailing "\\r" kept off. `max_bytes=None` only for a stream (stdin) that is
    consumed as it arrives."""
    where = str(path)
    f = open_input(path, allow_stdin=allow_stdin)
    total = 0
    try:
        for number in itertools.count(1):
            raw = f.readline(max_line_bytes + 1)
            if not raw:
                return
            total += len(raw)
            if max_bytes is not None and total > max_bytes:
                raise BankFileError(f"file is larger than the {size_text(max_bytes)} limit",
                                    path=where)
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                raise BankFileError(f"line is longer than the {size_text(max_line_bytes)} "
                                    "limit", f"line {number}", where)
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise BankFileError(f"not UTF-8 text (byte 0x{raw[e.start]:02x})",
                                    f"line {number}", where) from None
            yield number, text.rstrip("\n").removesuffix("\r")
    except OSError as e:
        raise BankFileError(f"cannot read the file: {e.strerror}", path=where) from None
    finally:
        if f is not sys.stdin.buffer:
            f.close()
