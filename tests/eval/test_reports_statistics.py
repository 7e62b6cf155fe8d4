"""Comparison statistics on hand-built sentiments folders with known answers, checked against
scipy and statsmodels; degenerate data gives NaN with a note."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from eval.comparisons import (PairInputs, compare_pair, pair_comparisons, quantization_anova,
                              quantization_families)
from eval.metrics import article_metrics, model_details, quantization_level
from eval.sentiment_files import load_sentiments
from tests.reports_data import write_model
from utils.errors import FinsentError

ARTICLES = 8
ITERATIONS = 6


def table(rng: np.random.Generator, means: np.ndarray, spread: float) -> list[list[float]]:
    """iterations × articles sentiments around per-article means, clipped to [-1, 1]."""
    values = means + rng.normal(0, spread, size=(ITERATIONS, len(means)))
    return np.clip(np.round(values, 3), -1, 1).tolist()


@pytest.fixture()
def known(tmp_path):
    """'steady' and 'jumpy' share article means but not variance; 'shifted' is steady + 0.2
    on every article, exactly; 'flaky' loses 40% of its answers to invalid JSON."""
    rng = np.random.default_rng(7)
    means = rng.uniform(-0.2, 0.2, ARTICLES)
    steady = table(rng, means, 0.02)
    write_model(tmp_path, "steady", steady)
    write_model(tmp_path, "jumpy", table(rng, means, 0.25))
    write_model(tmp_path, "shifted", (np.array(steady) + 0.2).round(3).tolist())
    flaky = table(rng, means, 0.02)
    for i, row in enumerate(flaky):
        for j in range(ARTICLES):
            if (i * ARTICLES + j) % 5 < 2:
                row[j] = None
    write_model(tmp_path, "flaky", flaky)
    return load_sentiments(tmp_path)


def sentiments(data, model):
    return data.valid().query("model == @model")["sentiment"].to_numpy()


def test_variance_tests_see_a_variance_difference_the_f_test_does_not(known):
    row = compare_pair(PairInputs.from_data(known), "steady", "jumpy")
    a, b = sentiments(known, "steady"), sentiments(known, "jumpy")
    assert row["Levene P-Value"] == pytest.approx(stats.levene(a, b, center="mean").pvalue)
    assert row["Brown-Forsythe W"] == pytest.approx(stats.levene(a, b, center="median").statistic)
    assert row["Brown-Forsythe P-Value"] < 0.001          # the variances do differ
    assert row["F-Test P-Value"] > 0.05                   # the means do not: F is no variance test
    assert row["F-Statistic"] == pytest.approx(row["T-Statistic"] ** 2)
    assert row["Variance Ratio"] == pytest.approx(np.var(a) / np.var(b))
    welch = stats.ttest_ind(a, b, equal_var=False)
    assert (row["Welch T"], row["Welch P-Value"]) == pytest.approx((welch.statistic, welch.pvalue))


def test_paired_test_finds_a_known_shift_and_cohens_d_matches_t(known):
    row = compare_pair(PairInputs.from_data(known), "steady", "shifted")
    assert row["Paired Articles"] == ARTICLES
    assert row["Mean Paired Difference"] == pytest.approx(-0.2, abs=1e-9)
    steady = known.valid().groupby(["model", "article_key"])["sentiment"].mean()
    diff = steady["steady"] - steady["shifted"]
    assert row["Wilcoxon P-Value"] == pytest.approx(stats.wilcoxon(diff).pvalue)
    assert row["Wilcoxon P-Value"] == pytest.approx(2 / 2 ** ARTICLES)  # every article shifts down
    n1, n2 = row["N 1"], row["N 2"]
    assert row["Cohen's d"] == pytest.approx(row["T-Statistic"] * math.sqrt(1 / n1 + 1 / n2))


def test_consistency_test_pairs_per_article_variances(known):
    row = compare_pair(PairInputs.from_data(known), "steady", "jumpy")
    variances = known.valid().groupby(["model", "article_key"])["sentiment"].var(ddof=0)
    assert row["Mean Article Variance 1"] == pytest.approx(variances["steady"].mean())
    assert row["Mean Article Variance 2"] == pytest.approx(variances["jumpy"].mean())
    diff = variances["steady"] - variances["jumpy"]
    assert row["Consistency Wilcoxon P-Value"] == pytest.approx(stats.wilcoxon(diff).pvalue)
    assert row["Consistency Wilcoxon P-Value"] == pytest.approx(2 / 2 ** ARTICLES)  # steadier on every article
    # 'shifted' answers steady + 0.2: the same spread on every article, its means differ
    same = compare_pair(PairInputs.from_data(known), "steady", "shifted")
    assert same["Mean Article Variance 1"] == pytest.approx(same["Mean Article Variance 2"], abs=1e-6)
    assert same["Wilcoxon P-Value"] < 0.05


def test_fisher_and_holm_match_scipy_and_statsmodels(known):
    pairs = [("steady", "jumpy"), ("steady", "shifted"), ("steady", "flaky"), ("jumpy", "flaky")]
    result = pair_comparisons(known, pairs)
    flaky = result.iloc[2]
    valid, total = flaky["N 2"], ITERATIONS * ARTICLES
    assert valid == total - sum((k % 5) < 2 for k in range(total))
    expected = stats.fisher_exact([[total, 0], [valid, total - valid]]).pvalue
    assert flaky["Fisher P-Value"] == pytest.approx(expected)
    for raw, adjusted in (("Welch P-Value", "Welch P (Holm)"),
                          ("Brown-Forsythe P-Value", "Brown-Forsythe P (Holm)"),
                          ("Consistency Wilcoxon P-Value", "Consistency Wilcoxon P (Holm)")):
        expected = multipletests(result[raw].to_numpy(), method="holm")[1]
        assert result[adjusted].to_numpy() == pytest.approx(expected)


def test_degenerate_pairs_give_nan_and_a_note(tmp_path):
    write_model(tmp_path, "constant_a", [[0.5, 0.5]] * 3)
    write_model(tmp_path, "constant_b", [[0.5, 0.5]] * 3)
    write_model(tmp_path, "silent", [[None, None]] * 3)
    data = load_sentiments(tmp_path)
    result = pair_comparisons(data, [("constant_a", "constant_b"), ("constant_a", "silent")])
    same, silent = result.iloc[0], result.iloc[1]
    assert math.isnan(same["F-Statistic"]) and math.isnan(same["Levene P-Value"])
    assert "no within-group variance" in same["Note"] and "per-article means identical" in same["Note"]
    assert math.isnan(same["Cohen's d"])
    assert quantization_anova(data, {})["Note"].item().startswith("no model family")
    assert math.isnan(silent["T-Test P-Value"]) and "fewer than 2 valid answers (6 and 0)" in silent["Note"]
    assert silent["Fisher P-Value"] < 0.01  # 6/6 valid against 0/6: that part is defined
    assert result["Welch P (Holm)"].isna().all()
    metrics = article_metrics(data)
    assert metrics.query("`Model Name` == 'silent'")["Mean Sentiment"].isna().all()
    assert model_details(data).set_index("Model Name").loc["silent", "Valid JSON Rate"] == 0


def test_quantization_anova_against_scipy(tmp_path):
    rng = np.random.default_rng(3)
    means = rng.uniform(-0.5, 0.5, ARTICLES)
    levels = {"q4_K_M": 0.0, "Q8": 0.1, "F16": 0.1}
    for level, shift in levels.items():
        write_model(tmp_path, f"fam-7b.{level}", table(rng, means + shift, 0.05))
    write_model(tmp_path, "other-model", table(rng, means, 0.05))
    data = load_sentiments(tmp_path)
    families = quantization_families(data.models)
    assert families == {"fam-7b": ["fam-7b.q4_K_M", "fam-7b.Q8", "fam-7b.F16"]}
    assert [quantization_level(m) for m in families["fam-7b"]] == ["q4_K_M", "q8_0", "fp16"]
    row = quantization_anova(data, families).iloc[0]
    groups = [sentiments(data, m) for m in families["fam-7b"]]
    assert row["ANOVA F"] == pytest.approx(stats.f_oneway(*groups).statistic)
    # a 0.1 shift is lost in the pooled ANOVA (articles differ more than that) but not in
    # Friedman, which pairs the levels article by article
    assert row["Friedman P-Value"] < 0.01 < 0.05 < row["ANOVA P-Value"]
    assert row["Brown-Forsythe P-Value"] == pytest.approx(stats.levene(*groups, center="median").pvalue)
    blocks = data.valid().groupby(["model", "article_key"])["sentiment"].mean().unstack("model")
    friedman = stats.friedmanchisquare(*(blocks[m] for m in families["fam-7b"]))
    assert row["Friedman Chi2"] == pytest.approx(friedman.statistic)
    assert row["Paired Articles"] == ARTICLES
    configured = {"mine": ["fam-7b.q4_K_M", "other-model"]}
    assert quantization_families(data.models, configured) == configured
    with pytest.raises(FinsentError, match="quantization_families 'typo': no model folder 'fam-7b.q5'"):
        quantization_families(data.models, {"typo": ["fam-7b.q5", "other-model"]})
