"""The figures of benchmarks/gpu_quality.sh runs in one JSON file and one table.

Each run folder (gpu_quality.sh's WORK) holds eval/<name>/metrics.json and predictions.csv from
eval/evaluate_labelled.py (name: base, q4_k_m, q8_0, headlines, extra), the q4_k_m model's sentiment
files from eval/generate_model_sentiments.py (variance over iterations, per article),
run/train_summary.json from finetune/train.py and times/*.

--run SEED=WORK: a run of the recipe (one per training seed): scored on the FPB rows of the test
split. --loso SOURCE=WORK: a run trained without SOURCE, scored on SOURCE's test rows
(leave-one-source-out). --soup NAME=WORK: finetune/average_models.py's average of recipe runs
(NAME says which, e.g. A+B), measured as they are: recorded under "soups" with the same figures,
printed as info, never counted in the targets (those are per training seed). Scores are taken at
t = 0.15, the threshold step 05 labels with, and at the threshold chosen on validation; each F1
comes with its 95% bootstrap interval over the test rows (scipy.stats.bootstrap, percentile).
Targets count as met only when every run meets them. Writes --output and prints each figure against
its target.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from statistics import fmean

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from eval.sentiment_files import load_sentiments  # noqa: E402
from utils.errors import FinsentError, cli_entry  # noqa: E402
from utils.io import atomic_write_json  # noqa: E402

TARGETS = {"weighted_f1": 0.88, "macro_f1": 0.86, "valid_json": 1.0, "sentiment_variance": 0.01,
           "macro_f1_gain_over_base": 0.15, "reasoning_invented_share": 0.0, "reasoning_grounded_share": 0.9,
           "reasoning_template_share": 0.2, "headlines_weighted_f1": 0.85, "social_weighted_f1": 0.80,
           "without_fpb_weighted_f1": 0.80}
CLASSES = ("negative", "neutral", "positive")  # a fourth code, 3, is an invalid answer: always wrong
BOOTSTRAP_RESAMPLES = 2000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", default=[], metavar="SEED=WORK",
                        help="a run of the recipe: its training seed and gpu_quality.sh's WORK folder")
    parser.add_argument("--loso", action="append", default=[], metavar="SOURCE=WORK",
                        help="a run trained without SOURCE (financial_phrasebank, tweets), scored on it")
    parser.add_argument("--soup", action="append", default=[], metavar="NAME=WORK",
                        help="an average of recipe runs (finetune/average_models.py), measured as they are; "
                             "recorded apart, not counted in the targets")
    parser.add_argument("--quants", default=None,
                        help="the quantizations the runs evaluated, e.g. 'q4_k_m q8_0' (default: those with "
                             "an eval folder); targets are recorded for these only")
    parser.add_argument("--model-name", default="finsent-gemma-3-270m", help="the GGUFs' model name")
    parser.add_argument("--settings", default="", help="the training settings, one line, for the record")
    parser.add_argument("--output", type=Path, required=True, help="the JSON file to write")
    args = parser.parse_args(argv)
    if not args.run:
        parser.error("at least one --run SEED=WORK")
    return args


def _pair(value: str, flag: str) -> tuple[str, Path]:
    key, sep, folder = value.partition("=")
    if not sep or not key or not folder:
        raise FinsentError(f"{flag} {value!r}: expected KEY=FOLDER")
    return key, Path(folder)


# --- bootstrap intervals -------------------------------------------------------------------

def f1_scores(truth: np.ndarray, guess: np.ndarray) -> tuple[float, float, float]:
    """Accuracy, macro-F1 and weighted F1 over CLASSES (codes 0-2; 3 = invalid, always wrong),
    as sklearn computes them with zero_division=0."""
    f1, support = [], []
    for code in range(len(CLASSES)):
        true_pos = np.sum((truth == code) & (guess == code))
        predicted, actual = np.sum(guess == code), np.sum(truth == code)
        f1.append(2 * true_pos / (predicted + actual) if predicted + actual else 0.0)
        support.append(actual)
    weights = np.array(support) / max(1, sum(support))
    return float(np.mean(truth == guess)), float(np.mean(f1)), float(np.dot(weights, f1))


def bootstrap_intervals(truth: np.ndarray, guess: np.ndarray, seed: int = 0) -> dict[str, list[float]]:
    """95% percentile-bootstrap intervals of accuracy, macro-F1 and weighted F1 over the rows."""
    from scipy.stats import bootstrap

    if len(truth) < 2:
        return {}
    result = bootstrap((truth, guess), lambda t, g: np.array(f1_scores(t, g)), paired=True, vectorized=False,
                       n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=0.95, method="percentile",
                       random_state=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return {f"{name}_ci95": [round(float(lo), 4), round(float(hi), 4)]
            for name, lo, hi in zip(("accuracy", "macro_f1", "weighted_f1"), low, high)}


def read_test_classes(path: Path, column: str) -> tuple[np.ndarray, np.ndarray]:
    """The test rows' true and predicted class codes from evaluate_labelled's predictions.csv."""
    codes = {label: i for i, label in enumerate(CLASSES)}
    with open(path, encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == "test"]
    truth = np.array([codes[row["label"]] for row in rows])
    guess = np.array([codes.get(row[column], len(CLASSES)) for row in rows])
    return truth, guess


def polar_recall_by_cue(path: Path) -> dict | None:
    """Recall at t = 0.15 of the positive and negative test rows, apart for those where the
    evidence lexicon finds a word carrying the label (dataset_builder.evidence.cues) and those
    where it finds none: training reasonings that start differently for the two ("It says …"
    against a quoted clause, before they opened with the verdict) let a model learn to call a text
    without such a word neutral."""
    from dataset_builder.evidence import cues

    with open(path, encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == "test" and row["label"] != "neutral"]
    if not rows or "text" not in rows[0]:
        return None
    groups: dict[str, list[bool]] = {"with_cue": [], "without_cue": []}
    for row in rows:
        groups["with_cue" if cues(row["text"], row["label"]) else "without_cue"].append(
            row["predicted_label_t015"] == row["label"])
    return {name: {"rows": len(hits), "recall": round(fmean(hits), 4) if hits else None}
            for name, hits in groups.items()}


# --- one evaluation, one run ---------------------------------------------------------------

def model_figures(folder: Path) -> dict | None:
    """One evaluate_labelled output folder: scores at t = 0.15 and at the chosen t, with
    intervals where predictions.csv is there."""
    metrics_path = folder / "metrics.json"
    if not metrics_path.is_file():
        return None
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    at, chosen = metrics["at_0.15"], metrics["at_chosen_threshold"]
    figures = {"weighted_f1": round(at["weighted_f1"], 4), "macro_f1": round(at["macro_f1"], 4),
               "accuracy": round(at["accuracy"], 4), "valid_json": round(metrics["valid_json_rate"], 4),
               "rows": metrics["rows"], "prompt": metrics["prompt"], "structured": metrics["structured"],
               "threshold_chosen": metrics["threshold_chosen"],
               "weighted_f1_at_chosen_threshold": round(chosen["weighted_f1"], 4),
               "macro_f1_at_chosen_threshold": round(chosen["macro_f1"], 4),
               "reasoning_invented_share": metrics.get("reasoning_invented_share"),
               "reasoning_grounded_share": metrics.get("reasoning_grounded_share"),
               "reasoning_template_share": metrics.get("reasoning_template_share"),
               "reasoning_top_template": metrics.get("reasoning_top_template"),
               "sentiment_distinct_values": metrics.get("sentiment_distinct_values"),
               "sentiment_values": metrics.get("sentiment_values"),
               "input": metrics["input"], "seconds": metrics["seconds"]}
    predictions = folder / "predictions.csv"
    if predictions.is_file():
        figures.update(bootstrap_intervals(*read_test_classes(predictions, "predicted_label_t015")))
        chosen_ci = bootstrap_intervals(*read_test_classes(predictions, "predicted_label"))
        figures.update({f"{key.removesuffix('_ci95')}_at_chosen_threshold_ci95": value
                        for key, value in chosen_ci.items() if key != "accuracy_ci95"})
        figures["polar_recall_by_cue"] = polar_recall_by_cue(predictions)
    return figures


def variance_figures(folder: Path) -> dict | None:
    if not folder.is_dir():
        return None
    data = load_sentiments(folder)
    valid = data.valid()
    per_article = valid.groupby("article_key")["sentiment"].var(ddof=0)  # population variance
    return {"iterations": int(data.files["iteration"].nunique()), "articles": int(per_article.size),
            "valid_json": round(float(data.answers["valid"].mean()), 4),
            "mean_variance": round(float(per_article.mean()), 5), "max_variance": round(float(per_article.max()), 5),
            # The ticker-level figure: each iteration's (confidence-weighted) average_sentiment.
            "iteration_average_variance": round(float(data.files["average_sentiment"].var(ddof=0)), 5),
            "per_article": {k: round(float(v), 5) for k, v in per_article.items()}}


def variance_met(variance: dict | None) -> bool:
    """The variance target counts only where every answer was valid: a variance over the few
    articles a model answered (or one answer each) says nothing of its consistency."""
    return (variance is not None and variance["valid_json"] >= 1.0
            and variance["mean_variance"] <= TARGETS["sentiment_variance"])


def evaluations(work: Path) -> dict[str, dict]:
    return {folder.name: figures for folder in sorted((work / "eval").glob("*"))
            if (figures := model_figures(folder)) is not None}


def run_details(work: Path) -> dict:
    """What every run folder holds besides its evaluations: training and times."""
    train_path = work / "run" / "train_summary.json"
    times = {}
    for path in sorted((work / "times").glob("*")):
        key, value = path.read_text().split()
        times[key] = int(value)
    return {"train": json.loads(train_path.read_text()) if train_path.is_file() else None, "times_s": times}


def recipe_run(seed: str, work: Path, quants: list[str]) -> dict:
    """One seed's run: its seed, then its figures."""
    return {"seed": int(seed) if seed.isdigit() else seed, **measured_run(work, quants)}


def soup_run(name: str, work: Path, quants: list[str]) -> dict:
    """An average of recipe runs, with a recipe run's figures; its soup.json says what was averaged."""
    record = work / "run" / "merged" / "soup.json"
    return {"name": name, **measured_run(work, quants),
            "averaged": json.loads(record.read_text(encoding="utf-8")) if record.is_file() else None}


def measured_run(work: Path, quants: list[str]) -> dict:
    """A run folder's figures: the q4_k_m figures on FPB test rows at the top, everything else below."""
    models = evaluations(work)
    missing = [name for name in quants if name not in models]
    if missing:
        raise FinsentError(f"{work}/eval: the {', '.join(missing)} evaluation is missing (see the run's log)")
    q4 = models["q4_k_m"]
    variance = variance_figures(work / "variance")
    base = models.get("base")
    run = {"work": str(work),
           **{key: q4.get(key) for key in ("weighted_f1", "weighted_f1_ci95", "macro_f1", "macro_f1_ci95",
                                             "valid_json", "reasoning_invented_share", "reasoning_grounded_share",
                                             "threshold_chosen", "weighted_f1_at_chosen_threshold",
                                             "macro_f1_at_chosen_threshold", "sentiment_distinct_values")},
           "variance": (variance or {}).get("mean_variance"),
           "variance_valid_json": (variance or {}).get("valid_json"),
           "macro_f1_gain_over_base": round(q4["macro_f1"] - base["macro_f1"], 4) if base else None,
           "evaluations": models, "variance_q4_k_m": variance, **run_details(work)}
    return run


def checks(runs: list[dict], quants: list[str]) -> dict[str, tuple[list, bool, str]]:
    """Each target's figure per run and whether every run met it (only for what was measured)."""
    def each(values: list, ok) -> tuple[list, bool]:
        return values, all(value is not None and ok(value) for value in values)

    result = {
        "weighted_f1 (q4_k_m)": (*each([r["weighted_f1"] for r in runs], lambda v: v >= TARGETS["weighted_f1"]), "≥ 0.88"),
        "macro_f1 (q4_k_m)": (*each([r["macro_f1"] for r in runs], lambda v: v >= TARGETS["macro_f1"]), "≥ 0.86"),
    }
    for quant in quants:
        result[f"valid_json ({quant})"] = (*each([r["evaluations"][quant]["valid_json"] for r in runs],
                                                 lambda v: v >= 1.0), "100%")
    if all(r["variance_q4_k_m"] is not None for r in runs):
        result["mean sentiment variance (q4_k_m, 15 it., t=0.2)"] = (
            [r["variance"] for r in runs], all(variance_met(r["variance_q4_k_m"]) for r in runs),
            "≤ 0.01, every answer valid")
    if all(r["macro_f1_gain_over_base"] is not None for r in runs):
        result["macro_f1_gain_over_base (q4_k_m)"] = (*each(
            [r["macro_f1_gain_over_base"] for r in runs], lambda v: v >= TARGETS["macro_f1_gain_over_base"]), "≥ 0.15")
    result["reasoning_invented_share (q4_k_m)"] = (*each([r["reasoning_invented_share"] for r in runs],
                                                         lambda v: v <= TARGETS["reasoning_invented_share"]), "0")
    result["reasoning_grounded_share (q4_k_m)"] = (*each([r["reasoning_grounded_share"] for r in runs],
                                                         lambda v: v >= TARGETS["reasoning_grounded_share"]), "≥ 0.9")
    for name, key in (("headlines", "headlines_weighted_f1"), ("social", "social_weighted_f1")):
        if all(r["evaluations"].get(name) for r in runs):
            result[f"{name} weighted_f1 (q4_k_m)"] = (*each([r["evaluations"][name]["weighted_f1"] for r in runs],
                                                           lambda v, key=key: v >= TARGETS[key]), f"≥ {TARGETS[key]:g}")
    shares = [max((e.get("reasoning_template_share") or 0) for e in r["evaluations"].values()) for r in runs]
    result["reasoning_template_share (largest over the sets)"] = (
        *each(shares, lambda v: v <= TARGETS["reasoning_template_share"]), "≤ 0.2 on every set")
    return result


def loso_checks(generalisation: dict) -> dict[str, tuple[list, bool, str]]:
    """The leave-one-source-out target: trained without FPB, scored on FPB."""
    without_fpb = generalisation["leave_one_source_out"].get("financial_phrasebank")
    if not without_fpb:
        return {}
    value = without_fpb["scored"]["weighted_f1"]
    return {"trained without FPB → FPB weighted_f1": ([value], value >= TARGETS["without_fpb_weighted_f1"],
                                                      f"≥ {TARGETS['without_fpb_weighted_f1']:g}")}


def generalisation(runs: list[dict], loso: list[tuple[str, Path]]) -> dict:
    """Leave-one-source-out and the written headlines, against the recipe's own figures."""
    held_out = {}
    for source, work in loso:
        models = evaluations(work)
        if "q4_k_m" not in models:
            raise FinsentError(f"{work}/eval: the q4_k_m evaluation of the run trained without {source} is missing")
        held_out[source] = {"trained_without": source, "work": str(work), "scored": models["q4_k_m"],
                            "headlines": models.get("headlines"), **run_details(work)}
    return {"leave_one_source_out": held_out,
            "recipe_headlines": [r["evaluations"].get("headlines") for r in runs],
            "recipe_social": [r["evaluations"].get("social") for r in runs],
            "recipe_extra": [r["evaluations"].get("extra") for r in runs]}


def _interval(figures: dict | None, key: str) -> str:
    if not figures or figures.get(key) is None:
        return "-"
    ci = figures.get(f"{key}_ci95")
    return f"{figures[key]:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    recipe = [_pair(value, "--run") for value in args.run]
    loso = [_pair(value, "--loso") for value in args.loso]
    quants = args.quants.split() if args.quants else sorted(
        {path.name for _, work in recipe for path in (work / "eval").glob("q*") if (path / "metrics.json").is_file()})
    if "q4_k_m" not in quants:
        quants.insert(0, "q4_k_m")
    runs = [recipe_run(seed, work, quants) for seed, work in recipe]
    soups = [soup_run(name, work, quants) for name, work in (_pair(value, "--soup") for value in args.soup)]
    met = checks(runs, quants)
    held_out = generalisation(runs, loso)
    met.update(loso_checks(held_out))
    result = {
        "benchmark": "finetune_quality", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": f"{args.model_name} (Gemma 3 270M, fine-tuned)", "settings": args.settings,
        "test_split": "FPB rows of step 05's test split; classes at t = 0.15 (and at the t chosen on validation); "
                      "95% percentile-bootstrap intervals over the test rows",
        "quants_measured": quants,
        "runs": runs,
        "soups": soups,
        "mean": {key: round(fmean(r[key] for r in runs), 4) for key in ("weighted_f1", "macro_f1")},
        "generalisation": held_out,
        "targets": TARGETS,
        "met": {name: bool(ok) for name, (_values, ok, _target) in met.items()},
    }
    atomic_write_json(args.output, result)

    print(f"\n{'run':<12} {'weighted F1 [95% CI]':>26} {'macro F1 [95% CI]':>26} {'valid':>6} {'variance':>9}")
    for run in runs:
        variance = "-" if run["variance"] is None else f"{run['variance']:.4f}"
        print(f"seed {run['seed']!s:<7} {_interval(run, 'weighted_f1'):>26} {_interval(run, 'macro_f1'):>26} "
              f"{run['valid_json']:>6.1%} {variance:>9}")
    print(f"mean         {result['mean']['weighted_f1']:>26.4f} {result['mean']['macro_f1']:>26.4f}")
    for name, (values, ok, target) in met.items():
        print(f"{'met ' if ok else 'MISS'} {name}: {', '.join(map(str, values))} (target {target}, every run)")
    for run in runs:
        if run["evaluations"].get("headlines"):
            print(f"info headlines (seed {run['seed']}): weighted F1 {_interval(run['evaluations']['headlines'], 'weighted_f1')}")
        if run["evaluations"].get("social"):
            print(f"info social posts (seed {run['seed']}): weighted F1 {_interval(run['evaluations']['social'], 'weighted_f1')}")
    for soup in soups:
        print(f"info soup {soup['name']} (averaged runs, not counted in the targets): weighted F1 "
              f"{_interval(soup, 'weighted_f1')}, macro F1 {_interval(soup, 'macro_f1')}, variance {soup['variance']}")
    for source, figures in result["generalisation"]["leave_one_source_out"].items():
        print(f"info trained without {source}, scored on it: weighted F1 {_interval(figures['scored'], 'weighted_f1')}, "
              f"macro F1 {_interval(figures['scored'], 'macro_f1')}")
    print(f"results in {args.output}")
    return 0


main = cli_entry(main)

if __name__ == "__main__":
    sys.exit(main())
