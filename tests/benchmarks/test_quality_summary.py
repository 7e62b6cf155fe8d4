"""benchmarks/quality_summary.py on run folders in gpu_quality.sh's layout: the figures it reads,
their bootstrap intervals, and the targets it calls met."""
from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path
from statistics import fmean, pvariance

from sklearn.metrics import f1_score

from tests.conftest import REPO_ROOT, run_script
from tests.reports_data import write_model

MODEL = "finsent-gemma-3-270m-q4_k_m"
VARIANCE_TARGET = "mean sentiment variance (q4_k_m, 15 it., t=0.2)"
LABELS = ["negative", "neutral", "positive"]


def answers(right: int, rows: int = 100) -> tuple[list[str], list[str]]:
    """`rows` test rows (a third of each class), the first `right` answered right, the rest one class off."""
    truth = [LABELS[i % 3] for i in range(rows)]
    guess = [label if i < right else LABELS[(i + 1) % 3] for i, label in enumerate(truth)]
    return truth, guess


def write_eval(work: Path, name: str, right: int, valid_json: float = 1.0, invented: float = 0.0,
               grounded: float = 0.97, template: float = 0.05) -> None:
    """eval/NAME/metrics.json and predictions.csv as evaluate_labelled.py writes them."""
    truth, guess = answers(right)
    at = {"threshold": 0.15, "accuracy": right / len(truth),
          "macro_f1": f1_score(truth, guess, average="macro"), "weighted_f1": f1_score(truth, guess, average="weighted")}
    metrics = {"model": name, "prompt": "trained", "structured": False, "input": "test.jsonl", "rows": len(truth),
               "valid_json_rate": valid_json, "threshold_chosen": 0.15, "at_chosen_threshold": at, "at_0.15": at,
               "reasoning_invented_share": invented, "reasoning_grounded_share": grounded,
               "reasoning_template_share": template, "sentiment_distinct_values": 7, "sentiment_values": {"-1": 30, "0": 40, "0.8": 30}, "seconds": 1.0}
    folder = work / "eval" / name
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    with open(folder / "predictions.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["split", "row", "label", "predicted_label", "predicted_label_t015"])
        writer.writerows(("test", i, t, g, g) for i, (t, g) in enumerate(zip(truth, guess)))
        writer.writerow(("validation", 0, "neutral", "positive", "positive"))  # not scored


def good_run(work: Path, right: int = 92) -> Path:
    write_eval(work, "base", 50)
    write_eval(work, "q4_k_m", right)
    write_eval(work, "q8_0", right - 1)
    write_model(work / "variance", MODEL, [[0.0, 0.8, -0.2 if i % 5 else -0.5] for i in range(15)])
    return work


def run_summary(tmp_path: Path, *args) -> tuple[subprocess.CompletedProcess, dict | None]:
    output = tmp_path / "finetune_quality.json"
    result = run_script("benchmarks/quality_summary.py", *args, "--output", output)
    return result, json.loads(output.read_text(encoding="utf-8")) if output.exists() else None


def test_two_seeded_runs_meeting_every_target_each_with_its_intervals(tmp_path):
    a, b = good_run(tmp_path / "a", 92), good_run(tmp_path / "b", 94)
    result, summary = run_summary(tmp_path, "--run", f"1={a}", "--run", f"2={b}")
    assert result.returncode == 0, result.stderr
    assert [run["seed"] for run in summary["runs"]] == [1, 2]
    for run, right in zip(summary["runs"], (92, 94)):
        truth, guess = answers(right)
        assert run["weighted_f1"] == round(f1_score(truth, guess, average="weighted"), 4)
        low, high = run["weighted_f1_ci95"]
        assert low < run["weighted_f1"] < high and high - low < 0.2  # 100 rows: about ±0.05
        assert run["macro_f1_ci95"][0] < run["macro_f1"] < run["macro_f1_ci95"][1]
        assert run["valid_json"] == 1.0 and run["reasoning_invented_share"] == 0.0
        assert run["reasoning_grounded_share"] == 0.97 and run["sentiment_distinct_values"] == 7
    per_article = [pvariance([0.0] * 15), pvariance([0.8] * 15), pvariance([-0.2 if i % 5 else -0.5 for i in range(15)])]
    assert abs(summary["runs"][0]["variance"] - fmean(per_article)) < 1e-5
    assert summary["mean"]["weighted_f1"] == round(fmean(r["weighted_f1"] for r in summary["runs"]), 4)
    assert all(summary["met"].values()), summary["met"]
    assert summary["quants_measured"] == ["q4_k_m", "q8_0"]
    assert "met  weighted_f1 (q4_k_m)" in result.stdout and "valid_json (q8_0)" in result.stdout


def test_a_target_is_met_only_when_every_run_meets_it(tmp_path):
    a, b = good_run(tmp_path / "a", 92), good_run(tmp_path / "b", 80)  # b: weighted F1 0.80
    (b / "eval" / "q4_k_m" / "metrics.json").write_text(
        (b / "eval" / "q4_k_m" / "metrics.json").read_text().replace('"reasoning_invented_share": 0.0',
                                                                       '"reasoning_invented_share": 0.4'))
    result, summary = run_summary(tmp_path, "--run", f"1={a}", "--run", f"2={b}")
    assert result.returncode == 0, result.stderr
    assert summary["met"]["weighted_f1 (q4_k_m)"] is False and summary["met"]["valid_json (q4_k_m)"] is True
    assert summary["met"]["reasoning_invented_share (q4_k_m)"] is False
    assert "MISS weighted_f1 (q4_k_m)" in result.stdout


def test_the_variance_target_is_not_met_when_an_answer_was_invalid(tmp_path):
    work = tmp_path / "a"
    for name, right in (("base", 50), ("q4_k_m", 92)):
        write_eval(work, name, right)
    # Steady answers, but one iteration could not answer article 1: the low variance then rests
    # on fewer answers, and the target is not called met.
    write_model(work / "variance", MODEL, [[0.0, None if i == 7 else 0.8] for i in range(15)])
    result, summary = run_summary(tmp_path, "--run", f"1={work}")
    assert result.returncode == 0, result.stderr
    variance = summary["runs"][0]["variance_q4_k_m"]
    assert variance["mean_variance"] == 0.0 and variance["valid_json"] < 1.0
    assert summary["met"][VARIANCE_TARGET] is False
    assert f"MISS {VARIANCE_TARGET}" in result.stdout


def test_a_quantization_not_measured_gets_no_target(tmp_path):
    work = tmp_path / "a"
    write_eval(work, "q4_k_m", 92)
    result, summary = run_summary(tmp_path, "--run", f"1={work}", "--quants", "q4_k_m")
    assert result.returncode == 0, result.stderr
    assert "q8_0" not in result.stdout and not [name for name in summary["met"] if "q8_0" in name]
    assert summary["runs"][0]["macro_f1_gain_over_base"] is None  # no base evaluated: no gain target
    assert not [name for name in summary["met"] if "gain" in name or "variance" in name]


def test_a_listed_quantization_without_its_evaluation_fails_in_one_line_naming_the_folder(tmp_path):
    work = tmp_path / "a"
    write_eval(work, "q4_k_m", 92)
    result, summary = run_summary(tmp_path, "--run", f"1={work}", "--quants", "q4_k_m q8_0")
    assert result.returncode != 0 and summary is None
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and str(work / "eval") in error[0] and "q8_0" in error[0]


def test_leave_one_source_out_runs_are_recorded_with_their_intervals(tmp_path):
    recipe, without_tweets = good_run(tmp_path / "a"), tmp_path / "d"
    write_eval(without_tweets, "q4_k_m", 70)
    write_eval(without_tweets, "headlines", 75)
    result, summary = run_summary(tmp_path, "--run", f"1={recipe}", "--loso", f"tweets={without_tweets}")
    assert result.returncode == 0, result.stderr
    held_out = summary["generalisation"]["leave_one_source_out"]["tweets"]
    assert held_out["scored"]["weighted_f1"] == round(f1_score(*answers(70), average="weighted"), 4)
    assert held_out["scored"]["weighted_f1_ci95"][0] < held_out["scored"]["weighted_f1"]
    assert held_out["headlines"]["accuracy"] == 0.75
    assert "trained without tweets, scored on it" in result.stdout


def test_the_gpu_scripts_refuse_to_overwrite_a_recorded_result_before_anything_runs(tmp_path):
    data = tmp_path / "sharegpt"
    data.mkdir()
    for split in ("train", "validation", "test"):
        (data / f"{split}.jsonl").write_text("{}\n")
    recorded = tmp_path / "finetune_quality.json"
    recorded.write_text('{"recorded": true}')
    env = {"DATA": str(data), "WORK": str(tmp_path / "work"), "RESULTS": str(recorded), "PATH": "/usr/bin:/bin"}
    for script, extra in (("gpu_quality.sh", {}), ("gpu_quality_pair.sh", {"A_DATA": str(data), "B_DATA": str(data)})):
        result = subprocess.run(["bash", f"benchmarks/{script}"], env={**env, **extra}, capture_output=True, text=True,
                                cwd=REPO_ROOT, timeout=60)
        assert result.returncode == 2, (script, result.stderr)
        assert result.stderr.startswith("error: RESULTS: ") and str(recorded) in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert recorded.read_text() == '{"recorded": true}' and not (tmp_path / "work" / "run").exists()
    usage = subprocess.run(["bash", "benchmarks/gpu_quality.sh", "--help"], capture_output=True, text=True,
                           cwd=REPO_ROOT, timeout=60).stdout
    assert "seeded 80% of its" in usage and "20% chooses the threshold" in usage


def test_polar_recall_is_split_by_whether_the_lexicon_finds_a_cue(tmp_path):
    """The diagnosis of issue 17's run: positive and negative rows with a lexicon word against those
    without one, from the texts in predictions.csv (neutral rows are not counted)."""
    from benchmarks.quality_summary import polar_recall_by_cue

    rows = [("Operating profit rose to EUR 5 m .", "positive", "positive"),
            ("Net sales increased by 20 % .", "positive", "positive"),
            ("The company will supply its systems to Nokia .", "positive", "neutral"),
            ("The company will supply its systems to Elisa .", "positive", "positive"),
            ("Operating loss widened to EUR 2 m .", "negative", "negative"),
            ("The plant will move production to Estonia .", "negative", "neutral"),
            ("The office is in Espoo .", "neutral", "positive")]
    path = tmp_path / "predictions.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["split", "row", "label", "predicted_label", "predicted_label_t015", "text"])
        writer.writerows(("test", i, label, guess, guess, text) for i, (text, label, guess) in enumerate(rows))
    assert polar_recall_by_cue(path) == {"with_cue": {"rows": 3, "recall": 1.0},
                                         "without_cue": {"rows": 3, "recall": round(1 / 3, 4)}}


def test_a_soup_is_recorded_apart_with_a_runs_figures_and_never_counted_in_the_targets(tmp_path):
    a, b, soup = good_run(tmp_path / "a", 92), good_run(tmp_path / "b", 94), good_run(tmp_path / "s", 80)
    (soup / "eval" / "base").rename(soup / "eval" / "unused")  # the pair script evaluates no base for a soup
    (soup / "run" / "merged").mkdir(parents=True)
    (soup / "run" / "merged" / "soup.json").write_text(json.dumps({"models": [str(a), str(b)], "weights": [0.5, 0.5]}))
    result, summary = run_summary(tmp_path, "--run", f"1={a}", "--run", f"2={b}", "--soup", f"A+B={soup}")
    assert result.returncode == 0, result.stderr
    assert [run["seed"] for run in summary["runs"]] == [1, 2]  # not a seed run
    [recorded] = summary["soups"]
    assert recorded["name"] == "A+B" and recorded["work"] == str(soup)
    assert recorded["weighted_f1"] == round(f1_score(*answers(80), average="weighted"), 4)
    assert recorded["weighted_f1_ci95"][0] < recorded["weighted_f1"] < recorded["weighted_f1_ci95"][1]
    assert recorded["variance"] is not None and recorded["averaged"]["weights"] == [0.5, 0.5]
    assert recorded["macro_f1_gain_over_base"] is None
    assert all(summary["met"].values()), summary["met"]  # 0.80 would miss 0.88: the soup is not counted
    assert summary["mean"]["weighted_f1"] == round(fmean(r["weighted_f1"] for r in summary["runs"]), 4)
    assert f"info soup A+B (averaged runs, not counted in the targets): weighted F1 {recorded['weighted_f1']:.3f}" \
        in result.stdout
    usage = subprocess.run(["bash", "benchmarks/gpu_quality_pair.sh", "--help"], capture_output=True, text=True,
                           cwd=REPO_ROOT, timeout=60).stdout
    assert "SOUP" in usage and "average_models.py" in usage


def test_the_held_out_sets_template_share_and_the_run_without_fpb_have_targets_of_their_own(tmp_path):
    """Issue 25's targets: headlines ≥ 0.85, social posts ≥ 0.80 and template share ≤ 0.2 on every
    set in each seed; trained without FPB, FPB ≥ 0.80."""
    a, b = good_run(tmp_path / "a"), good_run(tmp_path / "b")
    for work, headlines, social in ((a, 90, 85), (b, 88, 70)):  # b's social posts: weighted F1 0.70
        write_eval(work, "headlines", headlines)
        write_eval(work, "social", social, template=0.31 if work == b else 0.1)
    without_fpb = tmp_path / "c"
    write_eval(without_fpb, "q4_k_m", 84)
    result, summary = run_summary(tmp_path, "--run", f"1={a}", "--run", f"2={b}",
                                  "--loso", f"financial_phrasebank={without_fpb}")
    assert result.returncode == 0, result.stderr
    met = summary["met"]
    assert met["headlines weighted_f1 (q4_k_m)"] is True and met["social weighted_f1 (q4_k_m)"] is False
    assert met["reasoning_template_share (largest over the sets)"] is False  # b's social posts: 0.31
    assert met["trained without FPB → FPB weighted_f1"] is True
    assert summary["generalisation"]["recipe_social"][1]["weighted_f1"] == round(
        f1_score(*answers(70), average="weighted"), 4)
    assert "info social posts (seed 2)" in result.stdout
