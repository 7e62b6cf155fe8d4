"""The paired accuracy comparison: McNemar against statsmodels and by hand, the bootstrap's scores
against sklearn, Holm by hand, and the script and the HTML report on real evaluate_labelled folders."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bs4 import BeautifulSoup
from sklearn.metrics import accuracy_score, f1_score
from statsmodels.stats.contingency_tables import mcnemar

from eval.backends import ModelSpec
from eval.labelled import (LABEL_VALUE, LABELS, LabelledInput, LabelledRow, Prediction, evaluate, read_phrasebank,
                           write_outputs)
from eval.paired_accuracy import (ScoredRun, bootstrap_differences, compare_runs, mcnemar_exact, read_run,
                                  report_comparisons, scores)
from tests.conftest import run_script
from tests.reports_data import write_config, write_model


def test_mcnemar_by_hand():
    """6 rows only A got right, 1 only B: p = 2 · P(X ≤ 1 | n = 7, ½) = 2 · 8/128 = 0.125."""
    right_a = np.array([True] * 6 + [False] + [True] * 3 + [False] * 2)
    right_b = np.array([False] * 6 + [True] + [True] * 3 + [False] * 2)
    assert mcnemar_exact(right_a, right_b) == (6, 1, 0.125)
    assert mcnemar_exact(right_a, right_a) == (0, 0, 1.0)  # no discordant row: nothing against chance


@pytest.mark.parametrize("seed", range(8))
def test_mcnemar_matches_statsmodels(seed):
    rng = np.random.default_rng(seed)
    right_a, right_b = rng.random(200) < 0.7, rng.random(200) < rng.uniform(0.5, 0.8)
    table = [[int((right_a & right_b).sum()), int((right_a & ~right_b).sum())],
             [int((~right_a & right_b).sum()), int((~right_a & ~right_b).sum())]]
    assert mcnemar_exact(right_a, right_b)[2] == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-12)


def test_scores_of_a_resample_are_sklearns():
    rng = np.random.default_rng(3)
    truth, guess = rng.integers(0, 3, 300), rng.integers(0, 4, 300)  # 3: invalid
    samples = rng.integers(0, 300, (5, 300))
    got = scores(truth, guess, samples)
    names = np.array([*LABELS, "invalid"])
    for i, sample in enumerate(samples):
        y, p = names[truth[sample]], names[guess[sample]]
        assert got["accuracy"][i] == pytest.approx(accuracy_score(y, p))
        for average in ("macro", "weighted"):
            expected = f1_score(y, p, labels=list(LABELS), average=average, zero_division=0)
            assert got[f"{average}_f1"][i] == pytest.approx(expected)


def run(name: str, truth: list[int], guess: list[int]) -> ScoredRun:
    return ScoredRun(name, Path(name), [(i, str(i)) for i in range(len(truth))], np.array(truth), np.array(guess))


def test_identical_runs_differ_by_nothing():
    rng = np.random.default_rng(0)
    truth, guess = rng.integers(0, 3, 50).tolist(), rng.integers(0, 3, 50).tolist()
    row = compare_runs([run("a", truth, guess), run("b", truth, guess)], resamples=200).iloc[0]
    assert row["Weighted F1 95% Low"] == row["Weighted F1 95% High"] == 0
    assert row["McNemar P-Value"] == 1 and "score the same weighted F1" in row["Verdict"]


def test_the_interval_pairs_rows():
    """Two models that differ on 10 of 400 rows, both right on the others: paired, the accuracy
    difference can only be near 0.025; resampled apart, the interval would be ten times wider."""
    truth = [0, 1, 2, 1] * 100
    guess_b = list(truth)
    for i in range(10):
        guess_b[i * 40] = (truth[i * 40] + 1) % 3
    differences = bootstrap_differences(run("a", truth, truth), run("b", truth, guess_b), resamples=1000)
    low, high = np.percentile(differences["accuracy"], [2.5, 97.5])
    assert 0.005 < low < 0.025 < high < 0.045


def test_holm_across_pairs_by_hand():
    """Three runs, three pairs: Holm multiplies the smallest p by 3, the next by 2 (kept at least
    the one before), the largest by 1."""
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 3, 120)
    guesses = [np.where(rng.random(120) < share, truth, (truth + 1) % 3) for share in (0.9, 0.75, 0.7)]
    table = compare_runs([run(n, truth.tolist(), g.tolist()) for n, g in zip("xyz", guesses)], resamples=200)
    raw = table["McNemar P-Value"].to_numpy()
    order = np.argsort(raw)
    expected = np.minimum(1, np.maximum.accumulate(raw[order] * np.array([3, 2, 1])))
    assert table["McNemar P (Holm)"].to_numpy()[order] == pytest.approx(expected)
    assert len(table) == 3 and "after Holm over 3 pairs" in table["Verdict"][0]


def write_run(folder: Path, name: str, rows: list[LabelledRow], right_share: float, seed: int) -> Path:
    """An evaluate_labelled output folder, written by its own writer: the model answers each row
    right with probability `right_share` (else the next class), and one answer is invalid."""
    rng = np.random.default_rng(seed)
    predictions = []
    for i, row in enumerate(rows):
        label = row.label if rng.random() < right_share else LABELS[(LABELS.index(row.label) + 1) % 3]
        valid = i != 3
        predictions.append(Prediction("test", row, valid, 0.8 * LABEL_VALUE[label] if valid else None, 0.9,
                                      "because" if valid else None, None if valid else "no JSON"))
    spec = ModelSpec(backend="llamacpp", model=name, name=name)
    data = LabelledInput(rows, [], "Sentences_AllAgree.txt", "none")
    write_outputs(folder, predictions, evaluate(predictions, spec, data, 1.0))
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared_data) -> dict[str, Path]:
    rows = read_phrasebank(shared_data / "financial_phrasebank" / "Sentences_AllAgree.txt")[:300]
    folder = tmp_path_factory.mktemp("labelled") / "reports"
    return {"finetune": write_run(folder / "finetune", "finetune", rows, 0.92, 1),
            "base": write_run(folder / "base", "base", rows, 0.6, 2),
            "other": write_run(folder / "other", "other", rows[:-1], 0.6, 3)}


def test_read_run_is_evaluate_labelled_scoring(runs):
    scored = read_run(runs["finetune"])
    metrics = json.loads((runs["finetune"] / "metrics.json").read_text())
    names = np.array([*LABELS, "invalid"])
    assert len(scored.keys) == metrics["rows"] == 300
    assert f1_score(names[scored.truth], names[scored.guess], labels=list(LABELS), average="weighted") == \
        pytest.approx(metrics["at_chosen_threshold"]["weighted_f1"])


def test_script_writes_csv_xlsx_and_verdicts(runs, tmp_path):
    out = tmp_path / "comparison.csv"
    result = run_script("eval/compare_labelled.py", runs["base"], runs["finetune"], "--output", out,
                        "--resamples", "500")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out)
    row = table.iloc[0]
    assert (row["Model A"], row["Model B"], row["Rows"]) == ("base", "finetune", 300)
    assert row["Weighted F1 Difference"] < 0 and row["Weighted F1 95% High"] < 0  # base is worse, clearly
    assert row["McNemar P (Holm)"] < 0.001 and row["Only B Right"] > 5 * row["Only A Right"]
    verdict = row["Verdict"]
    assert verdict.startswith(f"finetune is more accurate than base by {-row['Weighted F1 Difference']:.3f} weighted F1 "
                              f"[{-row['Weighted F1 95% High']:.3f}, {-row['Weighted F1 95% Low']:.3f}]")
    assert "The difference is real" in verdict and verdict in result.stdout
    sheet = pd.read_excel(out.with_suffix(".xlsx"), sheet_name="Paired Accuracy")
    assert list(sheet.columns) == list(table.columns) and sheet["Verdict"][0] == verdict


def test_runs_on_other_rows_are_one_line_error(runs, tmp_path):
    result = run_script("eval/compare_labelled.py", runs["base"], runs["other"], "--output", tmp_path / "x.csv")
    assert result.returncode == 2 and not (tmp_path / "x.csv").exists()
    assert result.stderr.strip().splitlines() == [
        f"error: {runs['other']}: scored on other rows than {runs['base']} (299 rows in common of 299 and 300): "
        "evaluate both on the same input, --limit and --seed"]
    result = run_script("eval/compare_labelled.py", runs["base"], tmp_path, "--output", tmp_path / "x.csv")
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {tmp_path / 'predictions.csv'}: not found (is {tmp_path} an "
                                     "evaluate_labelled --output folder?)")


def test_the_html_report_gives_a_verdict_per_pair_on_the_same_rows(runs, tmp_path):
    """generate_report finds the three runs under the reports folder: the two on the same rows are
    compared, the one on other rows is not."""
    reports = runs["base"].parent
    assert len(report_comparisons([runs["base"], runs["finetune"], runs["other"]], resamples=200)) == 1
    write_model(tmp_path / "sentiments", "m", [[0.1, 0.2], [0.1, 0.3]])
    config = write_config(tmp_path / "config.yaml", tmp_path / "sentiments", models=["m"])
    config.write_text(config.read_text().replace(f"'{tmp_path / 'reports'}'", f"'{reports}'"))
    result = run_script("eval/generate_report.py", "--config", config, "--output", tmp_path / "report.html",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    page = BeautifulSoup((tmp_path / "report.html").read_text(encoding="utf-8"), "html.parser")
    verdicts = [p.get_text() for p in page.select("#accuracy ~ p.verdict")]
    assert len(verdicts) == 1 and verdicts[0].startswith("finetune is more accurate than base by ")
    assert page.select("#accuracy ~ p.verdict.significant")
