"""Is one model really more accurate than another on the same labelled rows?

Two `evaluate_labelled` runs on the same test rows give two F1 figures; whether a 0.02
difference is real depends on how the two models' right and wrong answers pair up row by row.
For every pair of runs this module gives:

* the difference (A − B) in accuracy, macro-F1 and weighted F1, each with a paired bootstrap
  95% interval: the rows are resampled with replacement, both models scored on the same
  resample, the 2.5th and 97.5th percentiles of the differences taken;
* McNemar's exact test on right/wrong per row: of the rows exactly one model got right, is
  the split between A and B further from even than chance makes likely (a two-sided binomial
  test on the discordant rows);
* McNemar's p adjusted by Holm's method across all pairs (statsmodels' multipletests).

Each run is scored at its own chosen threshold (`predicted_label` of its predictions.csv, as
in its metrics.json); an invalid answer is wrong. Runs on different rows are not compared.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from eval.labelled import LABELS, read_prediction_records
from utils.errors import FinsentError
from utils.io import read_json

ALPHA = 0.05
RESAMPLES = 2000
METRICS = {"accuracy": "Accuracy", "macro_f1": "Macro F1", "weighted_f1": "Weighted F1"}
INVALID = len(LABELS)  # the code of a prediction that is no class (an invalid answer)
PREDICTION_COLUMNS = ("split", "row", "text", "label", "predicted_label")


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


def align(runs: Sequence[ScoredRun]) -> list[ScoredRun]:
    """The runs with their rows in the first run's order; a run on other rows is an error naming it."""
    if len(runs) < 2:
        raise FinsentError("a paired comparison needs two or more evaluate_labelled output folders")
    first = runs[0]
    order = {key: i for i, key in enumerate(first.keys)}
    aligned = [first]
    for run in runs[1:]:
        if len(run.keys) != len(first.keys) or set(run.keys) != set(order):
            common = len(set(run.keys) & set(order))
            raise FinsentError(f"{run.folder}: scored on other rows than {first.folder} ({common} rows in common "
                               f"of {len(run.keys)} and {len(first.keys)}): evaluate both on the same input, "
                               "--limit and --seed")
        position = np.array([order[key] for key in run.keys])
        truth, guess = np.empty_like(run.truth), np.empty_like(run.guess)
        truth[position], guess[position] = run.truth, run.guess
        aligned.append(ScoredRun(run.name, run.folder, first.keys, truth, guess))
    names = [run.name for run in aligned]
    if len(set(names)) < len(names):  # the same model twice (two inputs, two prompts): say which folder
        for run in aligned:
            run.name = f"{run.name} ({run.folder.name})"
    return aligned


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


def bootstrap_differences(a: ScoredRun, b: ScoredRun, resamples: int = RESAMPLES, seed: int = 0,
                          chunk: int = 500) -> dict[str, np.ndarray]:
    """Each metric's A − B on `resamples` paired resamples of the rows (the same rows for both)."""
    rng = np.random.default_rng(seed)
    n = len(a.truth)
    parts: dict[str, list[np.ndarray]] = {metric: [] for metric in METRICS}
    for start in range(0, resamples, chunk):
        samples = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        score_a, score_b = scores(a.truth, a.guess, samples), scores(b.truth, b.guess, samples)
        for metric in METRICS:
            parts[metric].append(score_a[metric] - score_b[metric])
    return {metric: np.concatenate(values) for metric, values in parts.items()}


def mcnemar_exact(right_a: np.ndarray, right_b: np.ndarray) -> tuple[int, int, float]:
    """(rows only A got right, rows only B got right, McNemar's exact two-sided p)."""
    from scipy.stats import binomtest

    only_a = int((right_a & ~right_b).sum())
    only_b = int((~right_a & right_b).sum())
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return only_a, only_b, float(min(1.0, p))


def compare_pair(a: ScoredRun, b: ScoredRun, resamples: int = RESAMPLES, seed: int = 0) -> dict[str, object]:
    everything = np.arange(len(a.truth))[None, :]
    point_a, point_b = scores(a.truth, a.guess, everything), scores(b.truth, b.guess, everything)
    differences = bootstrap_differences(a, b, resamples, seed)
    row: dict[str, object] = {"Model A": a.name, "Model B": b.name, "Rows": len(a.truth)}
    for metric, title in METRICS.items():
        low, high = np.percentile(differences[metric], [2.5, 97.5])
        row.update({f"{title} A": float(point_a[metric][0]), f"{title} B": float(point_b[metric][0]),
                    f"{title} Difference": float(point_a[metric][0] - point_b[metric][0]),
                    f"{title} 95% Low": float(low), f"{title} 95% High": float(high)})
    only_a, only_b, p = mcnemar_exact(a.truth == a.guess, b.truth == b.guess)
    row.update({"Only A Right": only_a, "Only B Right": only_b, "McNemar P-Value": p})
    return row


def _holm(p_values: Sequence[float]) -> list[float]:
    from statsmodels.stats.multitest import multipletests

    return list(multipletests(list(p_values), method="holm")[1]) if len(p_values) else []


def compare_runs(runs: Sequence[ScoredRun], resamples: int = RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """One row per pair of runs (in the order given), with Holm's McNemar p and a verdict."""
    runs = align(runs)
    rows = [compare_pair(a, b, resamples, seed) for a, b in itertools.combinations(runs, 2)]
    for row, adjusted in zip(rows, _holm([row["McNemar P-Value"] for row in rows])):
        row["McNemar P (Holm)"] = float(adjusted)
        row["Verdict"] = verdict(row, len(rows))
    return pd.DataFrame(rows)


def _p(value: float) -> str:
    return f"{value:.2g}" if value >= 0.001 else f"{value:.1e}"


def is_significant(row: dict[str, object]) -> bool:
    """Both tests agree the models differ: the weighted-F1 interval excludes 0 and McNemar's
    Holm-adjusted p is under ALPHA."""
    low, high = row["Weighted F1 95% Low"], row["Weighted F1 95% High"]
    return row["McNemar P (Holm)"] < ALPHA and (low > 0 or high < 0)


def verdict(row: dict[str, object], n_pairs: int) -> str:
    """One plain sentence: which model is more accurate, by how much, and whether it is chance."""
    a, b, diff = row["Model A"], row["Model B"], row["Weighted F1 Difference"]
    low, high = row["Weighted F1 95% Low"], row["Weighted F1 95% High"]
    p = row["McNemar P (Holm)"]
    holm = f"after Holm over {n_pairs} pairs" if n_pairs > 1 else "(one pair: no Holm adjustment needed)"
    mcnemar = (f"McNemar p = {_p(p)} {holm} ({row['Only A Right']} rows only {a} got right, "
               f"{row['Only B Right']} only {b})")
    if diff == 0:
        return (f"{a} and {b} score the same weighted F1 ({row['Weighted F1 A']:.3f}) on {row['Rows']} rows, "
                f"interval [{low:.3f}, {high:.3f}]; {mcnemar}.")
    better, worse, sign = (a, b, 1) if diff > 0 else (b, a, -1)
    lower, upper = (low, high) if sign > 0 else (-high, -low)  # the interval of better − worse
    interval = f"[{lower:.3f}, {upper:.3f}]"
    sentence = (f"{better} is more accurate than {worse} by {abs(diff):.3f} weighted F1 {interval} "
                f"on {row['Rows']} rows (accuracy {sign * row['Accuracy Difference']:+.3f}), {mcnemar}.")
    interval_clear = low > 0 or high < 0
    if is_significant(row):
        return sentence + " The difference is real: the interval excludes 0 and McNemar's test is significant."
    if interval_clear:
        return sentence + (" The interval excludes 0 but McNemar's test is not significant: weak evidence, "
                           "more rows would settle it.")
    if p < ALPHA:
        return sentence + (" McNemar's test is significant but the weighted-F1 interval holds 0: the models "
                           "err on different rows more than they differ in F1.")
    return sentence + " It may be chance: the interval holds 0 and McNemar's test is not significant."


def comparable_groups(folders: Iterable[Path]) -> list[list[ScoredRun]]:
    """The evaluate_labelled folders grouped by the rows they scored (groups of two or more), for
    the HTML report, which compares only runs on the same rows; folders it cannot read are left out."""
    groups: dict[frozenset, list[ScoredRun]] = {}
    for folder in folders:
        try:
            run = read_run(folder)
        except FinsentError:
            continue
        groups.setdefault(frozenset(run.keys), []).append(run)
    return [group for group in groups.values() if len(group) > 1]


def report_comparisons(folders: Iterable[Path], resamples: int = RESAMPLES) -> pd.DataFrame:
    """Every pair among the runs on the same rows (Holm within each set of rows), for the report."""
    tables = [compare_runs(group, resamples) for group in comparable_groups(folders)]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
