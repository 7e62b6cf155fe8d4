"""Crash-safe file writing (atomic replace for whole files, append + fsync for records), and
reading the files people give: a file that is missing, empty, not text or not well formed is one
line naming it."""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from utils.errors import FinsentError

log = logging.getLogger(__name__)


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `target`; on success it replaces `target` in one rename.

    On error the temp file is removed and `target` is left as it was, so a crash or a bad
    input never destroys what an earlier run wrote.
    """
    target = Path(target)
    with _writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        # mkstemp makes the file owner-only; give it the mode a plain open() would have.
        os.chmod(tmp, 0o666 & ~_current_umask())
        with _writing(target):
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def _writing(target: Path) -> Iterator[None]:
    """An OSError while creating `target` (or its folder) becomes one line naming `target`."""
    try:
        yield
    except OSError as exc:
        raise FinsentError(f"cannot write {target}: {exc.strerror or exc}") from None


def check_writable(target: str | Path, folder: bool = False) -> Path:
    """Before hours of work whose result goes to `target` (a file, or with `folder` a folder):
    a path that cannot be written is a one-line FinsentError now rather than after the work. A
    file is created (and removed) in the nearest folder of the path that exists; nothing is left."""
    target = Path(target)
    with _writing(target):
        if not folder and target.is_dir():
            raise IsADirectoryError(21, "is a folder")
        existing = target if folder else target.parent
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            raise NotADirectoryError(20, f"{existing} is not a folder")
        with tempfile.TemporaryFile(dir=existing):
            pass
    return target


def not_text_error(path: str | Path, exc: UnicodeDecodeError) -> FinsentError:
    """The one line for a file that is not UTF-8 text (a binary file, or another encoding)."""
    return FinsentError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})")


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty temp folder beside `target`; on success it becomes `target` by renames (an
    existing `target` is swapped out, then deleted). On error the temp folder is removed and
    `target` is left as it was. Callers decide beforehand whether replacing `target` is allowed."""
    target = Path(target)
    with _writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_current_umask())  # mkdtemp makes it owner-only
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(target: str | Path, text: str, encoding: str = "utf-8") -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding=encoding)


def atomic_write_json(target: str | Path, data: Any, indent: int | None = 4) -> None:
    atomic_write_text(target, json.dumps(data, indent=indent, ensure_ascii=False))


class JsonlAppender:
    """Append one JSON record per line and fsync each, so a kill -9 loses at most the line
    being written (which `read_jsonl` then drops as torn)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with _writing(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _terminate_torn_tail(self.path)
            self._handle = open(self.path, "a", encoding="utf-8")

    def append(self, record: dict[str, Any]) -> None:
        self.append_many([record])

    def append_many(self, records: list[dict[str, Any]]) -> None:
        """Append several records with one fsync (a group commit): a kill -9 loses at most
        the records of this call, and leaves whole lines plus at most one torn line."""
        self._handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _terminate_torn_tail(path: Path) -> None:
    """Cut a half-written last line so the next append starts on a fresh line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as handle:
        data = handle.read()
        if data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        log.warning("%s: dropping a torn last line (%d bytes) left by an interrupted run",
                    path, len(data) - keep)
        handle.truncate(keep)
        os.fsync(handle.fileno())


def read_json(path: str | Path) -> Any:
    """A JSON file's value; one that does not parse is a one-line FinsentError naming it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FinsentError(f"{path}: not valid JSON ({exc})") from None


def json_lines(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line of a JSON-lines file people or scripts wrote;
    a file that is not UTF-8 or a line that is not JSON is a one-line FinsentError naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise not_text_error(path, exc) from None
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines: JSON may hold a raw U+2028
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise FinsentError(f"{path}: line {number} is not valid JSON: {exc.msg}") from None


def read_jsonl(path: str | Path, complete_lines_only: bool = False) -> list[dict[str, Any]]:
    """Records of a JSONL file written by JsonlAppender; a torn last line is dropped with a
    warning, a corrupt line elsewhere is an error naming file and line.

    `complete_lines_only`: a last line without its newline is torn even when it parses (for a
    file only JsonlAppender writes, which cuts such a line before its next append: counting it
    would count a record the next append deletes). Off for files people write, whose last line
    often has no newline."""
    path = Path(path)
    if not path.exists():
        return []
    # Lines are decoded one by one: a kill can cut a line inside a multi-byte character.
    lines = path.read_bytes().split(b"\n")
    if complete_lines_only and lines[-1].strip():
        log.warning("%s: line %d has no newline (interrupted write); ignoring it", path, len(lines))
        lines[-1] = b""
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            is_torn_tail = number == len(lines)  # no newline after it: the writer was killed
            if is_torn_tail:
                log.warning("%s: line %d is torn (interrupted write); ignoring it", path, number)
                continue
            what, why = ("UTF-8", exc.reason) if isinstance(exc, UnicodeDecodeError) else ("JSON", exc.msg)
            raise ValueError(f"{path}: line {number} is not valid {what}: {why}") from exc
    return records


def read_text_file(path: Path, encoding: str, what: str) -> str:
    """The whole file decoded strictly; missing, empty, undecodable → one-line error."""
    path = Path(path)
    if not path.is_file():
        raise FinsentError(f"{what} not found: {path}")
    raw = path.read_bytes()
    if not raw.strip():
        raise FinsentError(f"{path}: the file is empty")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise FinsentError(f"{path}: line {line}: not {encoding} text (byte 0x{raw[exc.start]:02x} "
                           f"at offset {exc.start}); convert the file to {encoding}") from exc
    except LookupError as exc:
        raise FinsentError(f"unknown encoding '{encoding}' for {path}") from exc


def read_csv_rows(path: Path, required: Iterable[str], what: str,
                  aliases: dict[str, str] | None = None,
                  allow_no_rows: bool = False) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of a UTF-8 CSV that has the `required` columns.

    `aliases` maps an accepted other column name to the required one (e.g. the original's
    `Sentence` for `Article`). A header without rows is an error unless `allow_no_rows`.
    """
    text = read_text_file(path, "utf-8-sig", what)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip() for name in (reader.fieldnames or [])]
    for other, name in (aliases or {}).items():
        if name not in header and other in header:
            header[header.index(other)] = name
    reader.fieldnames = header
    missing = [name for name in required if name not in header]
    if missing:
        raise FinsentError(f"{path}: missing column(s) {', '.join(repr(m) for m in missing)} "
                           f"(found: {', '.join(header) or 'none'})")
    rows = []
    try:
        for row in reader:
            rows.append((reader.line_num, {k: (v or "") for k, v in row.items() if k is not None}))
    except csv.Error as exc:
        raise FinsentError(f"{path}: line {reader.line_num}: malformed CSV: {exc}") from exc
    if not rows and not allow_no_rows:
        raise FinsentError(f"{path}: no data rows under the header")
    return rows
