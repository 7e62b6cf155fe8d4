"""benchmarks/quality_summary.py on run folders in gpu_quality.sh's layout: the figures it reads and
the targets it calls met."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from statistics import fmean, pvariance

from tests.conftest import run_script
from tests.reports_data import write_model

MODEL = "finsent-gemma-3-270m-q4_k_m"
VARIANCE_TARGET = "mean sentiment variance (q4_k_m, 15 it., t=0.2)"


def write_eval(work: Path, name: str, weighted_f1: float, macro_f1: float, valid_json: float = 1.0) -> None:
    """eval/NAME/metrics.json with the fields evaluate_labelled.py writes and the summary reads."""
    at = {"threshold": 0.15, "accuracy": weighted_f1, "macro_f1": macro_f1, "weighted_f1": weighted_f1}
    metrics = {"model": name, "prompt": "trained", "structured": False, "input": "test.jsonl", "rows": 483,
               "valid_json_rate": valid_json, "threshold_chosen": 0.15, "at_chosen_threshold": at,
               "at_0.15": at, "seconds": 1.0}
    folder = work / "eval" / name
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")


def run_summary(work: Path) -> tuple[subprocess.CompletedProcess, dict | None]:
    output = work / "finetune_quality.json"
    result = run_script("benchmarks/quality_summary.py", "--work", work, "--output", output)
    return result, json.loads(output.read_text(encoding="utf-8")) if output.exists() else None


def good_run(work: Path) -> None:
    write_eval(work, "base", 0.498, 0.344)
    write_eval(work, "q4_k_m", 0.875, 0.862)
    write_eval(work, "q8_0", 0.865, 0.852)


def test_a_run_meeting_every_target_reports_the_population_variance_per_article(tmp_path):
    good_run(tmp_path)
    table = [[0.0, 0.8, -0.2 if i % 5 else -0.5] for i in range(15)]  # article 2 moves in 3 of 15
    write_model(tmp_path / "variance", MODEL, table)
    result, summary = run_summary(tmp_path)
    assert result.returncode == 0, result.stderr
    per_article = [pvariance([row[j] for row in table]) for j in range(3)]
    variance = summary["variance_q4_k_m"]
    assert variance["iterations"] == 15 and variance["articles"] == 3 and variance["valid_json"] == 1.0
    assert abs(variance["mean_variance"] - fmean(per_article)) < 1e-5
    assert all(summary["met"].values()), summary["met"]
    assert summary["macro_f1_gain_over_base"] == round(0.862 - 0.344, 4)
    assert f"met  {VARIANCE_TARGET}" in result.stdout


def test_the_variance_target_is_not_met_when_an_answer_was_invalid(tmp_path):
    good_run(tmp_path)
    # The same steady answers, but one iteration could not answer article 1: the low variance
    # then rests on fewer answers, and the target is not called met.
    table = [[0.0, None if i == 7 else 0.8] for i in range(15)]
    write_model(tmp_path / "variance", MODEL, table)
    result, summary = run_summary(tmp_path)
    assert result.returncode == 0, result.stderr
    assert summary["variance_q4_k_m"]["mean_variance"] == 0.0
    assert summary["variance_q4_k_m"]["valid_json"] < 1.0
    assert summary["met"][VARIANCE_TARGET] is False
    assert f"MISS {VARIANCE_TARGET}" in result.stdout


def test_a_run_without_its_base_evaluation_fails_in_one_line_naming_the_folder(tmp_path):
    write_eval(tmp_path, "q4_k_m", 0.875, 0.862)
    result, summary = run_summary(tmp_path)
    assert result.returncode != 0 and summary is None
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and str(tmp_path / "eval") in error[0] and "base" in error[0]
