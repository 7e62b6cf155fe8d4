"""Benchmark: the three report scripts on the reference data (34 models × 14 iterations ×
19 articles), each run as a subprocess, against a baseline measured in the same run.

Baseline = OUR RE-IMPLEMENTATION OF THE ORIGINAL STUDY'S METHOD (written here, not its code):
the metrics script reads every model's files in a loop and aggregates per article in Python
lists; the comparison script reads every model's files again, in its own loop, and runs
f_oneway / ttest_ind per pair; the heatmap script reads the metrics CSV and draws five
annotated 20 × 10 in seaborn heatmaps one after another with pyplot and tight_layout. It
computes less than ours (no variance tests, paired tests, Holm, Fisher, quantization ANOVA,
consistency tables, styling or summary figure).

    python benchmarks/bench_reports.py [--repeats 3] [--data ../shared/data/reference_eval_msft]

Prints each script's median wall time, the totals and the ratio; writes
benchmarks/results/reports.json. Runs alternate ours/baseline so both see the same load.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "reference_eval_msft"
OURS = {"metrics": "eval/generate_model_metrics.py",
        "comparison": "eval/generate_model_comparison_report.py",
        "heatmaps": "eval/generate_heatmaps.py"}


# --- our re-implementation of the original method (the baseline) ------------------------------

def _baseline_config(config_path: str) -> dict:
    import yaml

    return yaml.safe_load(Path(config_path).read_text())


def _baseline_read_model(folder: str) -> list[dict]:
    files = []
    for name in os.listdir(folder):
        if name.endswith(".json"):
            with open(os.path.join(folder, name)) as handle:
                files.append(json.load(handle))
    return files


def baseline_metrics(config_path: str, sentiments: str, out: str) -> None:
    import numpy as np
    import pandas as pd

    config = _baseline_config(config_path)
    rows = []
    for model in config["models_to_test"]:
        name = model.replace(":", "_")
        per_article: dict[str, list[dict]] = {}
        for data in _baseline_read_model(os.path.join(sentiments, name)):
            for key, answer in data["sentiments"].items():
                per_article.setdefault(key, []).append(answer)
        for key, answers in per_article.items():
            valid = [a for a in answers if a["valid"]]
            times = [a["time_taken"] for a in valid]
            scores = [a["sentiment"] for a in valid]
            confidences = [a["confidence"] for a in valid]
            rows.append({"Model Name": name, "Article Key": key,
                         "Inference Rate (s)": round(np.mean(times), 2) if times else 0,
                         "Valid JSON Rate": round(len(valid) / len(answers), 2),
                         "Sentiment Variance": round(np.var(scores), 2) if scores else 0,
                         "Mean Sentiment": round(np.mean(scores), 2) if scores else 0,
                         "Mean Confidence": round(np.mean(confidences), 2) if confidences else 0})
    table = pd.DataFrame(rows)
    os.makedirs(os.path.join(out, "reports"), exist_ok=True)
    table.to_excel(os.path.join(out, "reports", "model_metrics.xlsx"), sheet_name="Model Details",
                   index=False)
    table.to_csv(os.path.join(out, "reports", "model_metrics.csv"), index=False)


def baseline_comparison(config_path: str, sentiments: str, out: str) -> None:
    import numpy as np
    import pandas as pd
    from scipy.stats import f_oneway, ttest_ind

    config = _baseline_config(config_path)
    answers_of = {}
    for model in config["models_to_test"]:
        name = model.replace(":", "_")
        answers_of[name] = [a for data in _baseline_read_model(os.path.join(sentiments, name))
                            for a in data["sentiments"].values()]
    details = []
    for name, answers in answers_of.items():
        valid = [a for a in answers if a["valid"]]
        scores = [a["sentiment"] for a in valid]
        details.append({"Model Name": name, "Quantization Level": name.split("-")[-1],
                        "rate": np.mean([a["time_taken"] for a in valid]),
                        "valid_json_rate": len(valid) / len(answers), "variance": np.var(scores),
                        "mean_sentiment": np.mean(scores),
                        "mean_confidence": np.mean([a["confidence"] for a in valid])})
    comparisons = []
    for first, second in config["comparison_pairs"]:
        if first not in answers_of or second not in answers_of:
            continue
        a = [s["sentiment"] for s in answers_of[first] if "sentiment" in s]
        b = [s["sentiment"] for s in answers_of[second] if "sentiment" in s]
        anova, student = f_oneway(a, b), ttest_ind(a, b)
        comparisons.append({"Comparison": f"{first} vs {second}", "f_statistic": anova.statistic,
                            "f_p_value": anova.pvalue, "t_statistic": student.statistic,
                            "t_p_value": student.pvalue})
    folder = os.path.join(out, "reports")
    os.makedirs(folder, exist_ok=True)
    with pd.ExcelWriter(os.path.join(folder, "model_comparisons.xlsx"), engine="openpyxl") as writer:
        pd.DataFrame(details).to_excel(writer, sheet_name="Model Details", index=False)
        pd.DataFrame(comparisons).to_excel(writer, sheet_name="Statistical Comparisons", index=False)
    pd.DataFrame(details).to_csv(os.path.join(folder, "model_details.csv"), index=False)
    pd.DataFrame(comparisons).to_csv(os.path.join(folder, "statistical_comparisons.csv"), index=False)


def baseline_heatmaps(config_path: str, sentiments: str, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    table = pd.read_csv(os.path.join(out, "reports", "model_metrics.csv"))
    folder = os.path.join(out, "heatmaps")
    os.makedirs(folder, exist_ok=True)
    for column, cmap, file_name in [
            ("Inference Rate (s)", "coolwarm", "inference_rate_heatmap.png"),
            ("Valid JSON Rate", "coolwarm_r", "valid_json_rate_heatmap.png"),
            ("Sentiment Variance", "coolwarm", "sentiment_variance_heatmap.png"),
            ("Mean Sentiment", "coolwarm", "mean_sentiment_heatmap.png"),
            ("Mean Confidence", "coolwarm", "mean_confidence_heatmap.png")]:
        grid = table.pivot(index="Article Key", columns="Model Name", values=column)
        grid.loc["Mean"] = grid.mean()
        plt.figure(figsize=(20, 10))
        sns.heatmap(grid, annot=True, cmap=cmap, cbar_kws={"label": column},
                    annot_kws={"size": 10}, fmt=".2f")
        plt.title(f"{column} Heatmap", fontsize=14)
        plt.xticks(rotation=45, ha="right", fontsize=10)
        plt.yticks(rotation=0, fontsize=10)
        plt.tight_layout(pad=5)
        plt.savefig(os.path.join(folder, file_name))
        plt.close()


BASELINE = {"metrics": baseline_metrics, "comparison": baseline_comparison,
            "heatmaps": baseline_heatmaps}


# --- measurement ---------------------------------------------------------------------------------

CPU_SECONDS: dict[str, dict[str, list[float]]] = {"ours": {s: [] for s in OURS},
                                                  "baseline": {s: [] for s in OURS}}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (the script and every process it waited for)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cpu, start = children_cpu(), time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"error: {' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return seconds, children_cpu() - cpu


def run_ours(stage: str, data: Path, out: Path) -> tuple[float, float]:
    return timed([sys.executable, str(REPO / OURS[stage]), "--config", str(data / "config.yaml"),
                  "--sentiments", str(data / "sentiments")], out)


def run_baseline(stage: str, data: Path, out: Path) -> tuple[float, float]:
    return timed([sys.executable, str(Path(__file__).resolve()), "--baseline-stage", stage,
                  "--data", str(data), "--out", str(out)], out)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="reference_eval_msft folder")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-stage", choices=list(BASELINE), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_stage:  # one stage of the baseline, in its own process
        BASELINE[args.baseline_stage](str(args.data / "config.yaml"), str(args.data / "sentiments"), args.out)
        return 0

    samples: dict[str, dict[str, list[float]]] = {"ours": {s: [] for s in OURS},
                                                  "baseline": {s: [] for s in OURS}}
    load_before = load_average()
    for repeat in range(args.repeats):
        for name, runner in (("baseline", run_baseline), ("ours", run_ours)) if repeat % 2 == 0 else \
                (("ours", run_ours), ("baseline", run_baseline)):
            with tempfile.TemporaryDirectory() as scratch:
                for stage in OURS:
                    wall, cpu = runner(stage, args.data, Path(scratch))
                    samples[name][stage].append(wall)
                    CPU_SECONDS[name][stage].append(cpu)
            print(f"repeat {repeat + 1}/{args.repeats} {name:8s} "
                  + "  ".join(f"{s} {samples[name][s][-1]:.2f} s" for s in OURS), flush=True)
    medians = {name: {stage: statistics.median(v) for stage, v in stages.items()}
               for name, stages in samples.items()}
    totals = {name: [sum(stages[s][i] for s in OURS) for i in range(args.repeats)]
              for name, stages in samples.items()}
    total = {name: statistics.median(v) for name, v in totals.items()}
    ratio = total["baseline"] / total["ours"]
    cpu_total = {name: statistics.median([sum(stages[s][i] for s in OURS) for i in range(args.repeats)])
                 for name, stages in CPU_SECONDS.items()}
    for stage in OURS:
        print(f"{stage:10s} ours {medians['ours'][stage]:6.2f} s   baseline {medians['baseline'][stage]:6.2f} s"
              f"   ×{medians['baseline'][stage] / medians['ours'][stage]:.2f}")
    print(f"{'total':10s} ours {total['ours']:6.2f} s   baseline {total['baseline']:6.2f} s   ×{ratio:.2f}"
          f"   (target: ≤ 11 s and ≥ 2× faster)")
    print(f"{'CPU total':10s} ours {cpu_total['ours']:6.2f} s   baseline {cpu_total['baseline']:6.2f} s"
          f"   ×{cpu_total['baseline'] / cpu_total['ours']:.2f}   load average {load_average()}")
    result = {"benchmark": "reports", "data": "reference_eval_msft: 34 models × 14 iterations × 19 articles",
              "baseline": "our re-implementation of the original study's method (benchmarks/bench_reports.py)",
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform(), "load_average_before": load_before,
                          "load_average_after": load_average()},
              "repeats": args.repeats, "median_seconds": medians, "total_seconds": total,
              "speedup_total": round(ratio, 2), "samples_seconds": samples,
              "cpu_total_seconds": cpu_total, "cpu_samples_seconds": CPU_SECONDS,
              "speedup_cpu": round(cpu_total["baseline"] / cpu_total["ours"], 2),
              "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out = REPO / "benchmarks" / "results" / "reports.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
