"""Reading and writing the product's own files: regular files only, bounded, atomic, one-line errors."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from reconciler.errors import Problem, ReconcilerError

MAX_FILE_BYTES = 512 * 1024 * 1024


def read_regular_file(path: Path, what: str, limit: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of `path`, refusing anything but a regular file of at most `limit` bytes."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ReconcilerError(Problem(f"{path}: cannot read {what}: not a regular file"))
        if info.st_size > limit:
            raise ReconcilerError(Problem(f"{path}: cannot read {what}: larger than {limit // 2**20} MiB"))
        data = path.read_bytes()
    except OSError as exc:
        raise ReconcilerError(Problem(f"{path}: cannot read {what}: {exc.strerror or exc}")) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReconcilerError(
            Problem(f"{path}: cannot read {what}: not UTF-8 text (byte {exc.start})", hint="restore the file")
        ) from None


def write_text_file(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically (a reader sees the old file or the new one, never half of one)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise ReconcilerError(Problem(f"{path}: cannot write: it is a folder", hint="give a file name"))
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ReconcilerError(Problem(f"{path}: cannot write: {exc.strerror or exc}")) from None
