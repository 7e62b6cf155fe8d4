"""Bad inputs to the report scripts, run as real subprocesses: a one-line error and exit ≠ 0,
or a logged skip with a count; never a traceback, never a silent zero."""
from __future__ import annotations

import json

import openpyxl
import pandas as pd
import pytest
from PIL import Image

from eval.sentiment_folder import iteration_file_path
from tests.conftest import run_script
from tests.reports_data import write_config, write_model

SCRIPTS = ["eval/generate_model_metrics.py", "eval/generate_model_comparison_report.py",
           "eval/generate_heatmaps.py"]


def assert_one_line_error(result, *phrases):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for phrase in phrases:
        assert phrase in errors[0], errors[0]


@pytest.fixture()
def messy(tmp_path):
    """Three models: one fine, one with a corrupt file and an empty iteration, one that never
    answered valid JSON."""
    sentiments = tmp_path / "sentiments"
    write_model(sentiments, "llama3:8b-q4_K_M", [[0.1, 0.2, 0.3]] * 2 + [[0.2, 0.3, 0.1]])
    write_model(sentiments, "messy", [[0.5, 0.4, 0.3]] * 4)
    iteration_file_path(sentiments, "messy", "MSFT", 1).write_text('{"average_sentiment": 0.4, "sent')
    iteration_file_path(sentiments, "messy", "MSFT", 2).write_text(json.dumps(
        {"average_sentiment": 0, "time_taken": 0, "sentiments": {}}))
    write_model(sentiments, "silent", [[None, None, None]] * 3)
    return sentiments


@pytest.mark.slow
def test_corrupt_empty_and_silent_are_logged_skips_with_counts(messy, tmp_path):
    config = write_config(tmp_path / "config.yaml", messy,
                          models=["llama3:8b-q4_K_M", "messy", "silent"],
                          pairs=[["LLAMA3:8B-Q4_K_M", "messy"], ["messy", "silent"]])
    result = run_script("eval/generate_model_metrics.py", "--config", config, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "skipped 1 corrupt file(s)" in result.stderr
    assert "skipped 1 empty iteration(s)" in result.stderr
    assert "model 'silent': no valid answer" in result.stderr
    metrics = pd.read_csv(tmp_path / "reports" / "model_metrics.csv")
    silent = metrics[metrics["Model Name"] == "silent"]
    assert (silent["Valid JSON Rate"] == 0).all() and silent["Mean Sentiment"].isna().all()
    notes = pd.read_excel(tmp_path / "reports" / "model_metrics.xlsx", sheet_name="Notes")["Note"]
    assert notes.str.contains("MSFT_1.json: not valid JSON").any()
    assert notes.str.contains("empty iteration").any()

    result = run_script("eval/generate_model_comparison_report.py", "--config", config, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    pairs = pd.read_excel(tmp_path / "reports" / "model_comparisons.xlsx",
                          sheet_name="Statistical Comparisons")
    assert pairs["Comparison"].tolist() == ["llama3_8b-q4_K_M vs messy", "messy vs silent"]
    assert pairs["Note"].iloc[1].startswith("fewer than 2 valid answers")

    result = run_script("eval/generate_heatmaps.py", "--config", config, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "heatmaps" / "mean_sentiment_heatmap.png") as image:
        assert 3 * 30 < image.height < 3 * 30 + 400  # three model rows


@pytest.mark.slow
def test_unmatched_pair_is_skipped_or_with_strict_an_error_that_keeps_the_old_report(messy, tmp_path):
    good = write_config(tmp_path / "good.yaml", messy, pairs=[["messy", "Silent"]])
    assert run_script("eval/generate_model_comparison_report.py", "--config", good,
                      cwd=tmp_path).returncode == 0
    report = tmp_path / "reports" / "model_comparisons.xlsx"
    before = report.read_bytes()
    bad = write_config(tmp_path / "bad.yaml", messy, pairs=[["messy", "Silent"], ["messy", "phi3:mini"]])
    result = run_script("eval/generate_model_comparison_report.py", "--config", bad, "--strict", cwd=tmp_path)
    assert_one_line_error(result, "1 comparison_pairs entry", "2 ('phi3:mini')", "--strict")
    assert report.read_bytes() == before
    assert openpyxl.load_workbook(report).sheetnames[0] == "Model Details"

    result = run_script("eval/generate_model_comparison_report.py", "--config", bad, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (warning,) = [line for line in result.stderr.splitlines() if " WARNING " in line and "comparison_pairs" in line]
    assert "2 ('phi3:mini')" in warning
    pairs = pd.read_excel(report, sheet_name="Statistical Comparisons")
    assert pairs["Comparison"].tolist() == ["messy vs silent"]


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_missing_sentiments_folder_is_a_one_line_error(script, tmp_path):
    result = run_script(script, "--sentiments", tmp_path / "nowhere", cwd=tmp_path)
    assert_one_line_error(result, "sentiments folder not found", "nowhere")


@pytest.mark.slow
def test_missing_model_folder_is_a_warning_or_with_strict_an_error(tmp_path, messy):
    models = "eval.models_to_test=[messy, {name: gone, backend: ollama}]"
    result = run_script("eval/generate_model_metrics.py", "--sentiments", messy, "--set", models,
                        "--strict", cwd=tmp_path)
    assert_one_line_error(result, "no folder", "1 model(s) of models_to_test: gone", "--strict")
    result = run_script("eval/generate_model_metrics.py", "--sentiments", messy, "--set", models, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "WARNING" in result.stderr and "models_to_test: gone" in result.stderr
    metrics = pd.read_csv(tmp_path / "reports" / "model_metrics.csv")
    assert set(metrics["Model Name"]) == {"messy"}


@pytest.mark.slow
def test_every_script_answers_help():
    for script in SCRIPTS:
        result = run_script(script, "--help")
        assert result.returncode == 0
        assert "--sentiments" in result.stdout and "--config" in result.stdout and "--set" in result.stdout
