"""The figures of one benchmarks/gpu_quality.sh run in one JSON file and one table.

Reads the run's folder (--work): eval/<base|q4_k_m|q8_0|extra>/metrics.json from
eval/evaluate_labelled.py, the q4_k_m model's sentiment files from eval/generate_model_sentiments.py
(variance over iterations, per article), run/train_summary.json from finetune/train.py and
times/*. Scores are taken at t = 0.15, the threshold step 05 labels with. Writes --output
(benchmarks/results/finetune_quality.json) and prints each figure against its target.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from eval.sentiment_files import load_sentiments  # noqa: E402
from utils.errors import FinsentError, cli_entry  # noqa: E402
from utils.io import atomic_write_json  # noqa: E402

TARGETS = {"macro_f1_gain_over_base": 0.15, "weighted_f1": 0.85, "valid_json": 1.0, "sentiment_variance": 0.01}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="gpu_quality.sh's WORK folder")
    parser.add_argument("--model-name", default="finsent-gemma-3-270m", help="the GGUFs' model name")
    parser.add_argument("--settings", default="", help="the training settings, one line, for the record")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "benchmarks/results/finetune_quality.json")
    return parser.parse_args(argv)


def model_figures(metrics_path: Path) -> dict | None:
    if not metrics_path.is_file():
        return None
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    at = metrics["at_0.15"]
    return {"weighted_f1": round(at["weighted_f1"], 4), "macro_f1": round(at["macro_f1"], 4),
            "accuracy": round(at["accuracy"], 4), "valid_json": round(metrics["valid_json_rate"], 4),
            "rows": metrics["rows"], "prompt": metrics["prompt"], "structured": metrics["structured"],
            "threshold_chosen": metrics["threshold_chosen"],
            "weighted_f1_at_chosen_threshold": round(metrics["at_chosen_threshold"]["weighted_f1"], 4),
            "input": metrics["input"], "seconds": metrics["seconds"]}


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.work
    models = {name: model_figures(work / "eval" / name / "metrics.json") for name in ("base", "q4_k_m", "q8_0")}
    if models["q4_k_m"] is None or models["base"] is None:
        raise FinsentError(f"{work}/eval: the base or the q4_k_m evaluation is missing (see the run's log)")
    extra = model_figures(work / "eval" / "extra" / "metrics.json")
    variance = variance_figures(work / "variance")
    train_path = work / "run" / "train_summary.json"
    times = {}
    for path in sorted((work / "times").glob("*")):
        key, value = path.read_text().split()
        times[key] = int(value)
    gain = round(models["q4_k_m"]["macro_f1"] - models["base"]["macro_f1"], 4)
    checks = {
        "macro_f1_gain_over_base (q4_k_m)": (gain, gain >= TARGETS["macro_f1_gain_over_base"], "≥ 0.15"),
        "weighted_f1 (q4_k_m)": (models["q4_k_m"]["weighted_f1"], models["q4_k_m"]["weighted_f1"] >= 0.85, "≥ 0.85"),
        "valid_json (q4_k_m)": (models["q4_k_m"]["valid_json"], models["q4_k_m"]["valid_json"] >= 1.0, "100%"),
        "valid_json (q8_0)": ((models["q8_0"] or {}).get("valid_json"),
                              (models["q8_0"] or {}).get("valid_json", 0) >= 1.0, "100%"),
        "mean sentiment variance (q4_k_m, 15 it., t=0.2)": (
            (variance or {}).get("mean_variance"), variance_met(variance), "≤ 0.01, every answer valid"),
    }
    result = {
        "benchmark": "finetune_quality", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": f"{args.model_name} (Gemma 3 270M, fine-tuned)", "settings": args.settings,
        "test_split": "FPB rows of step 05's test split; classes at t = 0.15",
        "base": models["base"], "q4_k_m": models["q4_k_m"], "q8_0": models["q8_0"],
        "macro_f1_gain_over_base": gain, "extra": extra, "variance_q4_k_m": variance,
        "train": json.loads(train_path.read_text()) if train_path.is_file() else None,
        "times_s": times, "targets": TARGETS,
        "met": {name: bool(ok) for name, (_value, ok, _target) in checks.items()},
    }
    atomic_write_json(args.output, result)
    print(f"\n{'model':<8} {'weighted F1':>11} {'macro F1':>9} {'valid JSON':>10} {'rows':>5}")
    for name, figures in models.items():
        if figures:
            print(f"{name:<8} {figures['weighted_f1']:>11.4f} {figures['macro_f1']:>9.4f} "
                  f"{figures['valid_json']:>10.2%} {figures['rows']:>5}")
    for name, (value, ok, target) in checks.items():
        print(f"{'met ' if ok else 'MISS'} {name}: {value} (target {target})")
    if variance:
        print(f"info variance of the {variance['iterations']} iterations' average_sentiment (q4_k_m): "
              f"{variance['iteration_average_variance']}")
    print(f"results in {args.output}")
    return 0


main = cli_entry(main)

if __name__ == "__main__":
    sys.exit(main())
