"""Step 04: join the labelled CSVs of steps 01–03 (and the synthetic corpus, dataset.corpus_csv)
into one file with a `Source` column.

Text is NFC-normalised and sanitised as the original did; a row whose JSON is not a valid
SentimentResponse is dropped and counted per source (the original wrote `{}` for it later).
Where step 03b (step_03b_explain_labels.py) wrote `<input>_explained.csv` beside an input, a row takes its explained
reasoning in place of the templated one (when the label there is still the row's label).
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from dataset_builder.corpus import is_corpus_csv, read_corpus
from dataset_builder.explain import explained_csv
from dataset_builder.labelled_csv import LABELLED_COLUMNS, response_json
from dataset_builder.text_normalise import sanitise_text
from utils.errors import FinsentError
from utils.io import read_csv_rows
from utils.schema import SentimentResponse

log = logging.getLogger(__name__)

JOINED_COLUMNS = ("Article", "JSON", "Source")
CORPUS_SOURCE = "synthetic"  # the source name of the synthetic corpus (dataset.corpus_csv)
# The original's step outputs named the text column `Sentence`.
_COLUMN_ALIASES = {"Sentence": "Article"}
_EXAMPLES_LOGGED = 5


@dataclass
class SourceSummary:
    path: Path
    kept: int = 0
    explained: int = 0  # rows whose reasoning came from step 03b
    dropped: Counter = field(default_factory=Counter)  # reason → rows


def invalid_reason(error: ValidationError) -> str:
    first = error.errors()[0]
    if first["type"] == "json_invalid":
        return "malformed JSON"
    where = ".".join(str(part) for part in first["loc"]) or "object"
    return f"{where}: {first['msg']}"


def validated_row(article: str, cell: str,
                  explained: SentimentResponse | None = None) -> tuple[str, str, bool]:
    """(sanitised article, canonical JSON, whether the reasoning is the explained one) or
    ValueError with the reason the row is dropped. `explained`: the row's answer from step
    03b; its reasoning is taken if its label is still the row's."""
    article = sanitise_text(article).strip()
    if not article:
        raise ValueError("empty article")
    try:
        response = SentimentResponse.model_validate_json(cell)
    except ValidationError as exc:
        raise ValueError(invalid_reason(exc)) from None
    is_explained = explained is not None and (explained.sentiment, explained.confidence) == (
        response.sentiment, response.confidence)
    if is_explained:
        response = explained
    return (article, response_json(response.model_copy(update={"reasoning": sanitise_text(response.reasoning)})),
            is_explained)


def read_explained(path: Path) -> dict[str, SentimentResponse]:
    """Article → answer of the explained rows step 03b wrote beside `path` (none if
    it did not); a row that is not valid is skipped (its templated row stays)."""
    explained_path = explained_csv(path)
    if not explained_path.is_file():
        return {}
    answers = {}
    for _, row in read_csv_rows(explained_path, LABELLED_COLUMNS, "explained CSV", allow_no_rows=True):
        try:
            answers[row["Article"]] = SentimentResponse.model_validate_json(row["JSON"])
        except ValidationError:
            continue
    return answers


def labelled_rows(path: Path, source: str) -> list[tuple[int, dict[str, str]]]:
    """(line, {Article, JSON}) of a step output, or of the synthetic corpus's CSV (its own columns)."""
    if is_corpus_csv(path):
        return [(row.line, {"Article": row.text, "JSON": response_json(row.response)}) for row in read_corpus(path)]
    return read_csv_rows(path, LABELLED_COLUMNS, f"{source} CSV", _COLUMN_ALIASES, allow_no_rows=True)


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
        explained = read_explained(path)
        for line, row in labelled_rows(path, source):
            try:
                article, answer, is_explained = validated_row(row["Article"], row["JSON"],
                                                              explained.get(row["Article"]))
            except ValueError as exc:
                summary.dropped[str(exc)] += 1
                if sum(summary.dropped.values()) <= _EXAMPLES_LOGGED:
                    log.warning("%s: line %d: dropped: %s", path, line, exc)
                continue
            rows.append((article, answer, source))
            summary.kept += 1
            summary.explained += is_explained
    if not rows:  # a header-only CSV that step 05 would refuse: say why here
        reasons = "; ".join(f"{summary.path}: {n} × {reason}" for summary in summaries.values()
                            for reason, n in summary.dropped.most_common(1))
        raise FinsentError(f"no row to join: every row of {', '.join(map(str, present.values()))} was dropped"
                           + (f" ({reasons})" if reasons else " (no data rows)"))
    return rows, summaries


def log_summary(summaries: dict[str, SourceSummary]) -> None:
    for source, summary in summaries.items():
        dropped = sum(summary.dropped.values())
        reasons = "; ".join(f"{n} × {reason}" for reason, n in summary.dropped.most_common())
        explained = f" ({summary.explained} with an explained reasoning)" if summary.explained else ""
        log.info("%s (%s): %d rows kept%s, %d dropped%s", source, summary.path, summary.kept, explained,
                 dropped, f" ({reasons})" if reasons else "")


def configured_inputs(config) -> dict[str, Path]:
    """Source name → the step output it comes from (`config`: the DatasetConfig)."""
    inputs = {"tweets": config.step_01_csv, "financial_phrasebank": config.step_02_csv,
              "news": config.step_03_csv}
    if config.corpus_csv is not None:
        inputs[CORPUS_SOURCE] = config.corpus_csv
    return inputs


def parse_input_flags(values: list[str]) -> dict[str, Path]:
    """`--input SOURCE=PATH` flags → {SOURCE: PATH}."""
    inputs = {}
    for value in values:
        source, sep, path = value.partition("=")
        if not sep or not source.strip() or not path.strip():
            raise FinsentError(f"--input expects SOURCE=PATH (e.g. news=data/step_03_news.csv), got {value!r}")
        inputs[source.strip()] = Path(path.strip())
    return inputs
