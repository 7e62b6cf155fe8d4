"""Reading input files with one-line errors, and the `Article, JSON` CSV that steps 01–03 write."""
from __future__ import annotations

import argparse
import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from utils.errors import FinsentError
from utils.io import atomic_path
from utils.schema import SentimentResponse

LABELLED_COLUMNS = ("Article", "JSON")


@dataclass(frozen=True)
class LabelledText:
    article: str
    response: SentimentResponse


def annotated_sentiment(polarity: float, agreement: float, graded: bool) -> float:
    """The target sentiment of a human-annotated text: its label's polarity (-1, 0 or 1), or with
    `graded` the annotators' expected vote, polarity × agreement rounded to 0.1. Hard targets teach
    a model to answer only -1, 0 or 1, so one doubtful answer in a sample moves a whole unit;
    graded targets let it answer a doubtful text with a smaller number."""
    return round(polarity * agreement, 1) if graded else polarity


def add_graded_sentiment_flag(parser: argparse.ArgumentParser) -> None:
    """Steps 01 and 02's shared --graded-sentiment / --no-graded-sentiment."""
    parser.add_argument("--graded-sentiment", action=argparse.BooleanOptionalAction, default=None,
                        help="sentiment = label polarity × annotator agreement, rounded to 0.1, "
                             "instead of -1/0/1 (dataset.graded_sentiment)")


def response_json(response: SentimentResponse) -> str:
    """The one serialisation of an answer in our files: single-line json.dumps."""
    return json.dumps(response.model_dump(), ensure_ascii=False)


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


def write_csv(path: Path, header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> None:
    """Atomic UTF-8 CSV: a crash or an error leaves the previous file as it was."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)


def write_labelled_csv(path: Path, rows: Iterable[LabelledText]) -> None:
    write_csv(path, LABELLED_COLUMNS, ((row.article, response_json(row.response)) for row in rows))
