"""Step 04: join the labelled CSVs of steps 01–03 into one file with a `Source` column.

Text is NFC-normalised and sanitised as the original did; a row whose JSON is not a valid
SentimentResponse is dropped and counted per source (the original wrote `{}` for it later).
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from dataset_builder.labelled_csv import LABELLED_COLUMNS, read_csv_rows, response_json
from dataset_builder.text_normalise import sanitise_text
from utils.errors import FinsentError
from utils.schema import SentimentResponse

log = logging.getLogger(__name__)

JOINED_COLUMNS = ("Article", "JSON", "Source")
# The original's step outputs named the text column `Sentence`.
_COLUMN_ALIASES = {"Sentence": "Article"}
_EXAMPLES_LOGGED = 5


@dataclass
class SourceSummary:
    path: Path
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason → rows


def invalid_reason(error: ValidationError) -> str:
    first = error.errors()[0]
    if first["type"] == "json_invalid":
        return "malformed JSON"
    where = ".".join(str(part) for part in first["loc"]) or "object"
    return f"{where}: {first['msg']}"


def validated_row(article: str, cell: str) -> tuple[str, str]:
    """(sanitised article, canonical JSON) or ValueError with the reason the row is dropped."""
    article = sanitise_text(article).strip()
    if not article:
        raise ValueError("empty article")
    try:
        response = SentimentResponse.model_validate_json(cell)
    except ValidationError as exc:
        raise ValueError(invalid_reason(exc)) from None
    return article, response_json(response.model_copy(update={"reasoning": sanitise_text(response.reasoning)}))


def join_sources(inputs: dict[str, Path]) -> tuple[list[tuple[str, str, str]], dict[str, SourceSummary]]:
    """Rows (Article, JSON, Source) of every input that exists, and a summary per source."""
    present = {source: Path(path) for source, path in inputs.items() if Path(path).is_file()}
    missing = [f"{source} ({path})" for source, path in inputs.items() if source not in present]
    if not present:
        raise FinsentError(f"no step output to join: none of {', '.join(missing)} exists; run steps 01–03 first")
    if missing:
        log.info("not joined (file missing): %s", ", ".join(missing))
    rows: list[tuple[str, str, str]] = []
    summaries: dict[str, SourceSummary] = {}
    for source, path in present.items():
        summary = summaries[source] = SourceSummary(path)
        for line, row in read_csv_rows(path, LABELLED_COLUMNS, f"{source} CSV", _COLUMN_ALIASES,
                                       allow_no_rows=True):
            try:
                article, answer = validated_row(row["Article"], row["JSON"])
            except ValueError as exc:
                summary.dropped[str(exc)] += 1
                if sum(summary.dropped.values()) <= _EXAMPLES_LOGGED:
                    log.warning("%s: line %d: dropped: %s", path, line, exc)
                continue
            rows.append((article, answer, source))
            summary.kept += 1
    return rows, summaries


def log_summary(summaries: dict[str, SourceSummary]) -> None:
    for source, summary in summaries.items():
        dropped = sum(summary.dropped.values())
        reasons = "; ".join(f"{n} × {reason}" for reason, n in summary.dropped.most_common())
        log.info("%s (%s): %d rows kept, %d dropped%s", source, summary.path, summary.kept, dropped,
                 f" ({reasons})" if reasons else "")


def configured_inputs(config) -> dict[str, Path]:
    """Source name → the step output it comes from (`config`: the DatasetConfig)."""
    return {"tweets": config.step_01_csv, "financial_phrasebank": config.step_02_csv,
            "news": config.step_03_csv}


def parse_input_flags(values: list[str]) -> dict[str, Path]:
    """`--input SOURCE=PATH` flags → {SOURCE: PATH}."""
    inputs = {}
    for value in values:
        source, sep, path = value.partition("=")
        if not sep or not source.strip() or not path.strip():
            raise FinsentError(f"--input expects SOURCE=PATH (e.g. news=data/step_03_news.csv), got {value!r}")
        inputs[source.strip()] = Path(path.strip())
    return inputs
