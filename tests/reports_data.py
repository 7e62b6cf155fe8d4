"""Sentiments folders written in the real format, for the report tests (hand-built cases)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

from eval.backends import ModelSpec
from eval.labelled import LabelledInput, LabelledRow, Prediction, evaluate
from eval.sentiment_folder import iteration_file_path


def article_key(url: str) -> str:
    return hashlib.md5(url.encode()).hexdigest()[:8]


def write_iteration(folder: Path, model: str, iteration: int,
                    sentiments: Sequence[float | None], ticker: str = "MSFT",
                    confidence: float = 0.8, seconds: float = 1.5) -> Path:
    """One iteration file: article j gets sentiments[j] (None = an invalid answer)."""
    answers = {}
    for j, value in enumerate(sentiments):
        url = f"https://example.com/news/{ticker}/{j}"
        answer = {"valid": value is not None, "url": url,
                  "published": "Thu, 23 May 2024 18:11:26 +0000", "time_taken": seconds + j / 10}
        if value is not None:
            answer = {"reasoning": f"article {j}", "sentiment": value, "confidence": confidence,
                      **answer}
        answers[article_key(url)] = answer
    valid = [v for v in sentiments if v is not None]
    data = {"average_sentiment": round(sum(valid) / len(valid), 2) if valid else 0,
            "time_taken": seconds * len(sentiments), "sentiments": answers}
    path = iteration_file_path(folder, model, ticker, iteration)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


def write_model(folder: Path, model: str, table: Sequence[Sequence[float | None]], **kwargs) -> None:
    """table[i][j] = sentiment of iteration i on article j."""
    for iteration, row in enumerate(table):
        write_iteration(folder, model, iteration, row, **kwargs)


def write_config(path: Path, sentiments: Path, models: Sequence[str] = (),
                 pairs: Sequence[Sequence[str]] = (), out: Path | None = None) -> Path:
    out = out or path.parent
    lines = [f"sentiment_save_folder: '{sentiments}'",
             f"report_output_file: '{out / 'reports' / 'model_metrics.xlsx'}'",
             f"report_output_csv_file: '{out / 'reports' / 'model_metrics.csv'}'",
             f"report_output_csv_folder: '{out / 'reports'}'",
             f"heatmaps_folder: '{out / 'heatmaps'}'",
             "models_to_test:" + ("" if models else " []")]
    lines += [f"  - '{m}'" for m in models]
    lines.append("comparison_pairs:" + ("" if pairs else " []"))
    lines += [f"  - ['{a}', '{b}']" for a, b in pairs]
    path.write_text("\n".join(lines) + "\n")
    return path


# The original study's results as its users hold them: written on macOS, whose file system
# ignores case (the config's '…sentiment_analysis-q5_K_M' found the folder '…-q5_k_m'), and
# without the 4 models (8 comparison pairs) that were run but never committed.
UNCOMMITTED_PREFIX = "mistral-7b-sentiment-may-18-2024-1epoch-unsloth."
LOWER_CASE_PREFIX = "llama3_8b-instruct-sentiment_analysis-"


def original_study_layout(reference_sentiments: Path, folder: Path) -> Path:
    """`folder` holding a link to each reference model folder, renamed and left out as the
    original study's own results folder is."""
    folder.mkdir(parents=True)
    for model in sorted(p for p in reference_sentiments.iterdir() if p.is_dir()):
        if model.name.startswith(UNCOMMITTED_PREFIX):
            continue
        name = model.name.lower() if model.name.startswith(LOWER_CASE_PREFIX) else model.name
        (folder / name).symlink_to(model.resolve(), target_is_directory=True)
    return folder


def labelled_metrics(validation_sentiment: float) -> tuple[list[Prediction], dict]:
    """evaluate_labelled's predictions and metrics for six hand-made test answers (five right,
    one invalid); the validation answers make the chosen threshold 0.15 (a tie, the nearest)
    when `validation_sentiment` is under it, larger when it is 0.5."""
    rows = [LabelledRow(i, f"text {i}", label) for i, label in enumerate(["positive", "neutral", "negative"] * 2)]
    test = [Prediction("test", row, True, {"positive": 0.5, "neutral": 0.1, "negative": -0.6}[row.label], 0.9)
            for row in rows[:-1]] + [Prediction("test", rows[-1], False, error="no JSON")]
    validation = [Prediction("validation", LabelledRow(10, "v", "neutral"), True, validation_sentiment, 0.9),
                  Prediction("validation", LabelledRow(11, "w", "positive"), True, 0.9, 0.9)]
    spec = ModelSpec(backend="llamacpp", model="gemma3-270m", name="gemma3-270m")
    data = LabelledInput(rows, [], "data/step_05/test.jsonl", "data/step_05/validation.jsonl")
    return test + validation, evaluate(test + validation, spec, data, 1.0)
