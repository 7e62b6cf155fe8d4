"""An evaluate_labelled output folder as its files say (predictions.csv, metrics.json), for what
reads it after the run: eval's paired accuracy comparison and the fine-tune's model card. Also
the scores of a run on resampled rows (accuracy, macro-F1, weighted F1), vectorised, which the
bootstrap intervals of both take."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from utils.errors import FinsentError
from utils.io import not_text_error, read_json
from utils.labels import LABELS

INVALID = len(LABELS)  # the code of a prediction that is no class (an invalid answer)
PREDICTION_COLUMNS = ("split", "row", "text", "label", "predicted_label")


def read_prediction_records(folder: str | Path, columns: Iterable[str]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of an evaluate_labelled --output folder's predictions.csv; a missing file
    or one of `columns` missing is a one-line error naming it."""
    path = Path(folder) / "predictions.csv"
    if not path.is_file():
        raise FinsentError(f"{path}: not found (is {folder} an evaluate_labelled --output folder?)")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [column for column in columns if column not in (reader.fieldnames or [])]
            if missing:
                raise FinsentError(f"{path}: no column {', '.join(repr(column) for column in missing)}")
            return list(enumerate(reader, start=2))
    except UnicodeDecodeError as exc:
        raise not_text_error(path, exc) from None


@dataclass
class ScoredRun:
    """One evaluate_labelled output folder's test rows: the true and the predicted class codes."""
    name: str
    folder: Path
    keys: list[tuple[int, str]]  # (row, text): what makes two runs' rows the same rows
    truth: np.ndarray
    guess: np.ndarray


def _code(label: str, where: str) -> int:
    if label in LABELS:
        return LABELS.index(label)
    if label == "invalid":
        return INVALID
    raise FinsentError(f"{where}: predicted_label {label!r} is not one of {', '.join(LABELS)}, invalid")


def read_run(folder: str | Path) -> ScoredRun:
    """The test rows of an evaluate_labelled output folder (predictions.csv and metrics.json)."""
    folder = Path(folder)
    path, metrics_path = folder / "predictions.csv", folder / "metrics.json"
    records = [(number, r) for number, r in read_prediction_records(folder, PREDICTION_COLUMNS) if r["split"] == "test"]
    if not metrics_path.is_file():
        raise FinsentError(f"{metrics_path}: not found (is {folder} an evaluate_labelled --output folder?)")
    if not records:
        raise FinsentError(f"{path}: no test rows")
    keys, truth, guess = [], [], []
    for number, record in records:
        where = f"{path}: line {number}"
        if record["label"] not in LABELS:
            raise FinsentError(f"{where}: label {record['label']!r} is not one of {', '.join(LABELS)}")
        keys.append((int(record["row"]), record["text"]))
        truth.append(LABELS.index(record["label"]))
        guess.append(_code(record["predicted_label"], where))
    name = read_json(metrics_path).get("model") or folder.name
    return ScoredRun(str(name), folder, keys, np.array(truth), np.array(guess))


def scores(truth: np.ndarray, guess: np.ndarray, samples: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, macro-F1 and weighted F1 (over the three classes; an invalid prediction is a miss
    of its true class, as sklearn's f1_score with labels=LABELS counts it) of each resample:
    `samples` is (resamples × rows) row indices."""
    y, p = truth[samples], guess[samples]
    f1, support = [], []
    for code in range(len(LABELS)):
        is_true, is_pred = y == code, p == code
        hits = (is_true & is_pred).sum(axis=1)
        both = is_true.sum(axis=1) + is_pred.sum(axis=1)
        f1.append(np.divide(2 * hits, both, out=np.zeros(len(samples)), where=both > 0))
        support.append(is_true.sum(axis=1))
    f1, support = np.array(f1), np.array(support)
    return {"accuracy": (y == p).mean(axis=1), "macro_f1": f1.mean(axis=0),
            "weighted_f1": (f1 * support).sum(axis=0) / support.sum(axis=0)}



def read_metrics(folder: str | Path) -> dict[str, Any]:
    """The metrics.json of an evaluate_labelled output folder, or one line saying it is not one."""
    path = Path(folder) / "metrics.json"
    metrics = read_json(path) if path.is_file() else None
    if not isinstance(metrics, dict) or "at_chosen_threshold" not in metrics:
        raise FinsentError(f"{folder}: no evaluate_labelled metrics.json in it")
    return metrics


def weighted_f1_interval(run: ScoredRun, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A bootstrap 95% interval of a run's weighted F1 (its test rows resampled)."""
    samples = np.random.default_rng(seed).integers(0, len(run.truth), size=(resamples, len(run.truth)))
    low, high = np.percentile(scores(run.truth, run.guess, samples)["weighted_f1"], [2.5, 97.5])
    return float(low), float(high)
