"""Reading and writing the product's own files: regular files only, bounded, atomic, one-line errors."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import pydantic_core

from reconciler.vocabulary import limits
from reconciler.vocabulary.errors import Problem, ReconcilerError

MAX_SMALL_FILE_BYTES = 1024 * 1024  # locks and other files of a few lines
# JSON is parsed by pydantic-core (Rust): bounded in depth, never Python's recursion; our files nest 4 deep
MAX_JSON_DEPTH = 200


def read_regular_file(path: Path, what: str, limit: int | None = None) -> str:
    """The UTF-8 text of `path`, refusing anything but a regular file of at most `limit` bytes (by default the
    state-file limit in force)."""
    limit = limits.current.state_file_bytes if limit is None else limit
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ReconcilerError(Problem(f"{path}: cannot read {what}: not a regular file"))
        if info.st_size > limit:
            raise ReconcilerError(
                Problem(
                    f"{path}: cannot read {what}: larger than {limit // limits.MIB} MiB",
                    hint="if it is meant to be this large, raise limits: in the config (docs/reference.md)",
                )
            )
        data = path.read_bytes()
    except OSError as exc:
        raise ReconcilerError(Problem(f"{path}: cannot read {what}: {exc.strerror or exc}")) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReconcilerError(
            Problem(f"{path}: cannot read {what}: not UTF-8 text (byte {exc.start})", hint="restore the file")
        ) from None


def read_json_file(path: Path, what: str, limit: int | None = None, hint: str = "restore or remake it") -> Any:
    """The JSON value in `path`: a regular file of at most `limit` bytes, nested at most `MAX_JSON_DEPTH`
    levels, numbers in range. Any other file is one line naming it and what it broke."""
    return parse_json(read_regular_file(path, what, limit), f"{path}: unreadable {what}", hint)


def parse_json(text: str | bytes, context: str, hint: str) -> Any:
    """JSON parsed with bounded depth and number sizes; a failure is one line, `context: reason (hint)`."""
    try:
        return pydantic_core.from_json(text)
    except ValueError as exc:
        reason = str(exc)
        if "recursion limit" in reason:
            reason = f"nested more than {MAX_JSON_DEPTH} levels deep ({reason})"
        raise ReconcilerError(Problem(f"{context}: not JSON: {reason}", hint=hint)) from None


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


def append_text(path: Path, text: str) -> None:
    """Append `text` to `path` durably, never through a symbolic link (a state file linked out of its folder
    must not make a run write elsewhere)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise ReconcilerError(
            Problem(f"{path}: cannot append: {exc.strerror or exc}", hint="it must be a regular file, not a link")
        ) from None
    with os.fdopen(descriptor, "a", encoding="utf-8") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())


def check_state_folder(folder: Path, recursive: bool = False) -> None:
    """Refuse a state folder holding anything but folders and regular files: a symbolic link committed to a
    state branch, or left in a state folder, would make an apply read or write outside it. A local folder's
    state files are its direct entries; a state branch is state throughout (`recursive`)."""
    if not folder.is_dir():
        return
    for entry in sorted(folder.rglob("*") if recursive else folder.iterdir()):
        if ".git" in entry.relative_to(folder).parts:
            continue
        if entry.is_symlink() or not (entry.is_dir() or entry.is_file()):
            what = "a symbolic link" if entry.is_symlink() else "not a regular file"
            raise ReconcilerError(
                Problem(
                    f"{entry}: the state holds {what}, which a run would follow out of its folder",
                    hint="remove it from the state (folder or branch); state files are plain files",
                )
            )
