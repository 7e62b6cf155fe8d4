"""The `Article, JSON` CSV that steps 01–03 write (read with utils.io.read_csv_rows)."""
from __future__ import annotations

import argparse
import csv
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


def write_csv(path: Path, header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> None:
    """Atomic UTF-8 CSV: a crash or an error leaves the previous file as it was."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)


def write_labelled_csv(path: Path, rows: Iterable[LabelledText]) -> None:
    write_csv(path, LABELLED_COLUMNS, ((row.article, response_json(row.response)) for row in rows))
