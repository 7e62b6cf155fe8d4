"""Statistics for comparing models: per-model details, pairwise tests, quantization ANOVA,
per-article consistency, and the Guide that says what every column tests.

The pairwise table starts with the original study's columns, computed exactly as it did
(scipy `f_oneway` and `ttest_ind` on the two models' pooled valid sentiments), so its
published numbers reproduce. A two-group one-way ANOVA is the pooled-variance t-test:
F = t², and it compares means, not variances. The columns after them add what the original
lacked: tests of equal variances (Levene, Brown–Forsythe), Welch's t, paired tests over
articles (Wilcoxon signed-rank on per-article means, and on per-article variances over
iterations: which model is more consistent), Cohen's d, Holm-adjusted p-values across all
pairs, and Fisher's exact test on valid-JSON counts.

Degenerate data (fewer than two valid answers, no within-group variance, all paired
differences zero) gives NaN and a line in the `Note` column, never an exception.
"""
from __future__ import annotations

import gc
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from eval.metrics import QUANT_ORDER, model_details, model_family, quantization_level
from eval.sentiment_files import SentimentData
from eval.sentiment_folder import model_folder_name
from utils.errors import FinsentError

NAN = math.nan
ORIGINAL_PAIR_COLUMNS = ["Comparison", "F-Statistic", "F-Test P-Value", "T-Statistic",
                         "T-Test P-Value"]
HOLM_OF = {"T-Test P-Value": "T-Test P (Holm)", "Welch P-Value": "Welch P (Holm)",
           "Levene P-Value": "Levene P (Holm)", "Brown-Forsythe P-Value": "Brown-Forsythe P (Holm)",
           "Wilcoxon P-Value": "Wilcoxon P (Holm)",
           "Consistency Wilcoxon P-Value": "Consistency Wilcoxon P (Holm)",
           "Fisher P-Value": "Fisher P (Holm)"}


# --- quantization families --------------------------------------------------------------

def quantization_families(models: Sequence[str],
                          configured: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[str]]:
    """Family → its models (two or more quantization levels). `configured` (family → model
    names, matched to folders ignoring case) wins; otherwise families come from the names'
    quantization suffixes."""
    if configured:
        by_folded = {m.casefold(): m for m in models}
        families = {family: [by_folded.get(model_folder_name(m).casefold(), model_folder_name(m))
                             for m in names] for family, names in configured.items()}
        for family, members in families.items():
            unknown = [m for m in members if m not in models]
            if unknown:
                raise FinsentError(f"quantization_families '{family}': no model folder "
                                   f"{', '.join(repr(m) for m in unknown)}")
        return families
    families: dict[str, list[str]] = {}
    for model in models:
        if quantization_level(model) is not None:
            families.setdefault(model_family(model), []).append(model)
    order = {level: i for i, level in enumerate(QUANT_ORDER)}
    return {family: sorted(members, key=lambda m: order.get(quantization_level(m) or "", 99))
            for family, members in families.items() if len(members) >= 2}


# --- one pair ------------------------------------------------------------------------------

def _finite(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else NAN


def original_tests(sentiments1: np.ndarray, sentiments2: np.ndarray) -> dict[str, float]:
    """The original's columns: scipy f_oneway and ttest_ind on the pooled valid sentiments."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        anova = stats.f_oneway(sentiments1, sentiments2)
        student = stats.ttest_ind(sentiments1, sentiments2)
    return {"F-Statistic": _finite(anova.statistic), "F-Test P-Value": _finite(anova.pvalue),
            "T-Statistic": _finite(student.statistic), "T-Test P-Value": _finite(student.pvalue)}


def cohens_d(sentiments1: np.ndarray, sentiments2: np.ndarray) -> float:
    """(mean1 − mean2) / pooled sample standard deviation; NaN when that is 0."""
    n1, n2 = len(sentiments1), len(sentiments2)
    if n1 < 2 or n2 < 2:
        return NAN
    pooled = ((n1 - 1) * np.var(sentiments1, ddof=1) + (n2 - 1) * np.var(sentiments2, ddof=1)) / (n1 + n2 - 2)
    return NAN if pooled == 0 else float((np.mean(sentiments1) - np.mean(sentiments2)) / math.sqrt(pooled))


def paired_wilcoxon(values1: pd.Series, values2: pd.Series, test: str, compared: str
                    ) -> tuple[int, float, float, float, list[str]]:
    """Wilcoxon signed-rank on two per-article series over the articles both have: (articles,
    mean difference, W, p, notes); NaN and a note naming `test` where it is undefined."""
    both = pd.concat([values1, values2], axis=1, join="inner").dropna()
    diff = (both.iloc[:, 0] - both.iloc[:, 1]).to_numpy()
    mean_diff = float(diff.mean()) if len(diff) else NAN
    if len(diff) == 0:
        return 0, mean_diff, NAN, NAN, [f"no article with valid answers from both models: {test} undefined"]
    if np.all(diff == 0):
        return len(diff), mean_diff, NAN, NAN, [f"per-article {compared} identical: {test} undefined"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # small-sample normal approximation notice
        test = stats.wilcoxon(diff)
    return len(diff), mean_diff, _finite(test.statistic), _finite(test.pvalue), []


def paired_article_test(means1: pd.Series, means2: pd.Series) -> tuple[dict[str, float], list[str]]:
    """Wilcoxon signed-rank on per-article mean sentiments of the articles both models answered."""
    n, mean_diff, w, p, notes = paired_wilcoxon(means1, means2, "Wilcoxon", "means")
    return {"Paired Articles": n, "Mean Paired Difference": mean_diff, "Wilcoxon W": w,
            "Wilcoxon P-Value": p}, notes


def consistency_test(variances1: pd.Series, variances2: pd.Series) -> tuple[dict[str, float], list[str]]:
    """Which model is steadier over iterations: each model's per-article variance, averaged,
    and Wilcoxon signed-rank on the two, paired by article (differences between articles
    cancel, unlike a variance test on the pooled sentiments)."""
    _, _, w, p, notes = paired_wilcoxon(variances1, variances2, "consistency Wilcoxon", "variances")
    return {"Mean Article Variance 1": float(variances1.mean()) if len(variances1) else NAN,
            "Mean Article Variance 2": float(variances2.mean()) if len(variances2) else NAN,
            "Consistency Wilcoxon W": w, "Consistency Wilcoxon P-Value": p}, notes


@dataclass
class PairInputs:
    """What every pair needs, split once: valid sentiments and answer counts per model, and
    per-article mean sentiments and variances over iterations (model × article)."""
    sentiments: dict[str, np.ndarray]
    totals: dict[str, int]
    article_means: pd.DataFrame
    article_variances: pd.DataFrame

    @classmethod
    def from_data(cls, data: SentimentData) -> "PairInputs":
        valid = data.valid()
        sentiments = {m: g.to_numpy() for m, g in valid.groupby("model", sort=False)["sentiment"]}
        totals = data.answers.groupby("model", sort=False).size().to_dict()
        by_article = valid.groupby(["model", "article_key"])["sentiment"]
        return cls({m: sentiments.get(m, np.array([])) for m in data.models},
                   {m: int(totals.get(m, 0)) for m in data.models},
                   by_article.mean().unstack("article_key"), by_article.var(ddof=0).unstack("article_key"))

    def per_article(self, table: pd.DataFrame, model: str) -> pd.Series:
        """One model's row of a model × article table (empty without valid answers)."""
        return table.loc[model].dropna() if model in table.index else pd.Series(dtype=float)


def compare_pair(inputs: PairInputs, model1: str, model2: str) -> dict[str, object]:
    """Every column of one row of the Statistical Comparisons sheet."""
    s1, s2 = inputs.sentiments[model1], inputs.sentiments[model2]
    total1, total2 = inputs.totals[model1], inputs.totals[model2]
    notes: list[str] = []
    row: dict[str, object] = {"Comparison": f"{model1} vs {model2}"}
    row.update(original_tests(s1, s2))
    row.update({"Model 1": model1, "Model 2": model2, "N 1": len(s1), "N 2": len(s2),
                "Mean 1": float(np.mean(s1)) if len(s1) else NAN,
                "Mean 2": float(np.mean(s2)) if len(s2) else NAN,
                "Variance 1": float(np.var(s1)) if len(s1) else NAN,
                "Variance 2": float(np.var(s2)) if len(s2) else NAN})
    row["Variance Ratio"] = (row["Variance 1"] / row["Variance 2"]
                             if len(s2) and row["Variance 2"] > 0 else NAN)
    spread = {"Levene W": NAN, "Levene P-Value": NAN, "Brown-Forsythe W": NAN,
              "Brown-Forsythe P-Value": NAN, "Welch T": NAN, "Welch P-Value": NAN}
    if len(s1) < 2 or len(s2) < 2:
        notes.append(f"fewer than 2 valid answers ({len(s1)} and {len(s2)}): two-sample tests undefined")
        for key in ORIGINAL_PAIR_COLUMNS[1:]:
            row[key] = NAN
    elif np.ptp(s1) == 0 and np.ptp(s2) == 0:
        notes.append(f"both models answered one constant sentiment ({s1[0]:g}, {s2[0]:g}): "
                     "no within-group variance, F, t and variance tests undefined")
        for key in ORIGINAL_PAIR_COLUMNS[1:]:
            row[key] = NAN
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            levene = stats.levene(s1, s2, center="mean")
            brown_forsythe = stats.levene(s1, s2, center="median")
            welch = stats.ttest_ind(s1, s2, equal_var=False)
        spread = {"Levene W": _finite(levene.statistic), "Levene P-Value": _finite(levene.pvalue),
                  "Brown-Forsythe W": _finite(brown_forsythe.statistic),
                  "Brown-Forsythe P-Value": _finite(brown_forsythe.pvalue),
                  "Welch T": _finite(welch.statistic), "Welch P-Value": _finite(welch.pvalue)}
        if math.isnan(spread["Brown-Forsythe W"]):
            notes.append("all answers equal their model's median: Brown-Forsythe undefined")
    row.update(spread)
    paired, paired_notes = paired_article_test(inputs.per_article(inputs.article_means, model1),
                                                inputs.per_article(inputs.article_means, model2))
    row.update(paired)
    notes += paired_notes
    consistency, consistency_notes = consistency_test(inputs.per_article(inputs.article_variances, model1),
                                                      inputs.per_article(inputs.article_variances, model2))
    row.update(consistency)
    notes += consistency_notes
    row["Cohen's d"] = cohens_d(s1, s2)
    valid1, valid2 = len(s1), len(s2)
    row.update({"Valid JSON Rate 1": valid1 / total1 if total1 else NAN,
                "Valid JSON Rate 2": valid2 / total2 if total2 else NAN,
                "Fisher P-Value": (float(stats.fisher_exact([[valid1, total1 - valid1],
                                                             [valid2, total2 - valid2]]).pvalue)
                                   if total1 and total2 else NAN)})
    row["Note"] = "; ".join(notes)
    return row


def add_holm(table: pd.DataFrame) -> pd.DataFrame:
    """Holm-adjusted p-values across all pairs, one column per test (NaN p-values left out)."""
    for column, adjusted in HOLM_OF.items():
        p = table[column].to_numpy(dtype=float)
        out = np.full(len(p), NAN)
        finite = np.isfinite(p)
        if finite.any():
            # statsmodels' Holm branch calls gc.collect(), which walks every live object
            # (0.15 s each with pandas and scipy loaded); frozen objects are skipped.
            gc.freeze()
            try:
                out[finite] = multipletests(p[finite], method="holm")[1]
            finally:
                gc.unfreeze()
        table[adjusted] = out
    return table


def pair_comparisons(data: SentimentData, pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """The Statistical Comparisons sheet: one row per resolved pair."""
    inputs = PairInputs.from_data(data)
    rows = [compare_pair(inputs, m1, m2) for m1, m2 in pairs]
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=pair_columns())
    table = add_holm(table)
    return table[pair_columns()]


def pair_columns() -> list[str]:
    return [*ORIGINAL_PAIR_COLUMNS, "Model 1", "Model 2", "N 1", "N 2", "Mean 1", "Mean 2",
            "Variance 1", "Variance 2", "Variance Ratio", "Levene W", "Levene P-Value",
            "Brown-Forsythe W", "Brown-Forsythe P-Value", "Welch T", "Welch P-Value",
            "Paired Articles", "Mean Paired Difference", "Wilcoxon W", "Wilcoxon P-Value",
            "Mean Article Variance 1", "Mean Article Variance 2", "Consistency Wilcoxon W",
            "Consistency Wilcoxon P-Value", "Cohen's d", "Valid JSON Rate 1", "Valid JSON Rate 2", "Fisher P-Value",
            *HOLM_OF.values(), "Note"]


# --- quantization levels of one family -------------------------------------------------------

def quantization_anova(data: SentimentData, families: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Per family: one-way ANOVA of the pooled valid sentiments across its quantization levels
    (means), Brown–Forsythe across them (variances), and Friedman on per-article means
    (articles as blocks, paired)."""
    valid = data.valid()
    groups = {m: g["sentiment"].to_numpy() for m, g in valid.groupby("model", sort=False)}
    article_means = valid.groupby(["model", "article_key"])["sentiment"].mean().unstack("model")
    rows = []
    for family, members in families.items():
        present = [m for m in members if len(groups.get(m, ())) >= 2]
        row: dict[str, object] = {
            "Family": family, "Models": ", ".join(members),
            "Levels": ", ".join(quantization_level(m) or m for m in members),
            "Valid Answers per Level": ", ".join(str(len(groups.get(m, ()))) for m in members),
            "Means per Level": ", ".join(f"{groups[m].mean():.3f}" if m in groups else "nan" for m in members),
            "ANOVA F": NAN, "ANOVA P-Value": NAN, "Brown-Forsythe W": NAN,
            "Brown-Forsythe P-Value": NAN, "Friedman Chi2": NAN, "Friedman P-Value": NAN,
            "Paired Articles": 0, "Note": ""}
        notes = []
        if len(present) < 2:
            notes.append("fewer than two levels with 2+ valid answers: tests undefined")
        elif all(np.ptp(groups[m]) == 0 for m in present):
            notes.append("every level answered one constant sentiment: tests undefined")
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                anova = stats.f_oneway(*(groups[m] for m in present))
                spread = stats.levene(*(groups[m] for m in present), center="median")
            row.update({"ANOVA F": _finite(anova.statistic), "ANOVA P-Value": _finite(anova.pvalue),
                        "Brown-Forsythe W": _finite(spread.statistic),
                        "Brown-Forsythe P-Value": _finite(spread.pvalue)})
        if len(present) < len(members):
            notes.append(f"left out (fewer than 2 valid answers): "
                         f"{', '.join(m for m in members if m not in present)}")
        blocks = article_means.reindex(columns=present).dropna() if len(present) >= 3 else pd.DataFrame()
        row["Paired Articles"] = len(blocks)
        if len(present) >= 3 and len(blocks) >= 2 and blocks.nunique(axis=1).gt(1).any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                friedman = stats.friedmanchisquare(*(blocks[m].to_numpy() for m in present))
            row["Friedman Chi2"], row["Friedman P-Value"] = _finite(friedman.statistic), _finite(friedman.pvalue)
        elif len(present) >= 2:
            notes.append("Friedman needs 3+ levels and 2+ articles answered by all, not all tied")
        row["Note"] = "; ".join(notes)
        rows.append(row)
    columns = ["Family", "Levels", "Models", "Valid Answers per Level", "Means per Level", "ANOVA F",
               "ANOVA P-Value", "Brown-Forsythe W", "Brown-Forsythe P-Value", "Paired Articles",
               "Friedman Chi2", "Friedman P-Value", "Note"]
    if not rows:
        rows = [{"Note": "no model family with two or more quantization levels (names ending in "
                         "q4_K_M, q5_K_M, q8_0, fp16, ...; or set eval.quantization_families)"}]
    return pd.DataFrame(rows, columns=columns)


# --- per article -----------------------------------------------------------------------------

def article_consistency(metrics: pd.DataFrame, data: SentimentData) -> pd.DataFrame:
    """Per article, across models: how consistent each model was over iterations (variance)
    and how much models disagree with each other (spread of their mean sentiments)."""
    by_article = metrics.groupby("Article Key", sort=False)
    variance = metrics.dropna(subset=["Sentiment Variance"])
    ranked = variance.sort_values(["Article Key", "Sentiment Variance", "Model Name"])
    first = ranked.groupby("Article Key", sort=False)
    table = pd.DataFrame({
        "Models": by_article["Model Name"].nunique(),
        "Mean Variance": by_article["Sentiment Variance"].mean(),
        "Median Variance": by_article["Sentiment Variance"].median(),
        "Share Zero Variance": variance.assign(zero=variance["Sentiment Variance"].eq(0))
                                       .groupby("Article Key")["zero"].mean(),
        "Most Consistent Model": first["Model Name"].first(),
        "Least Consistent Model": first["Model Name"].last(),
        "Max Variance": by_article["Sentiment Variance"].max(),
        "Mean of Model Means": by_article["Mean Sentiment"].mean(),
        "Std of Model Means": by_article["Mean Sentiment"].std(ddof=0),
        "Valid JSON Rate": by_article["Valid JSON Rate"].mean(),
    })
    info = data.answers.drop_duplicates("article_key").set_index("article_key")[["url", "published"]]
    table["URL"] = info["url"].reindex(table.index)
    table["Published"] = info["published"].reindex(table.index)
    return table.rename_axis("Article Key").reset_index()


def pair_articles(metrics: pd.DataFrame, pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """Per pair and article: both models' variance and mean sentiment, and which was steadier."""
    columns = ["Comparison", "Article Key", "Variance 1", "Variance 2", "Mean Sentiment 1",
               "Mean Sentiment 2", "Valid JSON Rate 1", "Valid JSON Rate 2", "Steadier"]
    if not pairs:
        return pd.DataFrame(columns=columns)
    values = ["Sentiment Variance", "Mean Sentiment", "Valid JSON Rate"]
    grid = metrics.set_index(["Model Name", "Article Key"])[values].unstack("Article Key")
    first = grid.loc[[m1 for m1, _ in pairs]].stack("Article Key", future_stack=True)
    second = grid.loc[[m2 for _, m2 in pairs]].stack("Article Key", future_stack=True)
    articles = first.index.get_level_values("Article Key")
    table = pd.DataFrame({
        "Comparison": np.repeat([f"{m1} vs {m2}" for m1, m2 in pairs], grid.columns.levshape[1]),
        "Article Key": articles,
        "Variance 1": first["Sentiment Variance"].to_numpy(),
        "Variance 2": second["Sentiment Variance"].to_numpy(),
        "Mean Sentiment 1": first["Mean Sentiment"].to_numpy(),
        "Mean Sentiment 2": second["Mean Sentiment"].to_numpy(),
        "Valid JSON Rate 1": first["Valid JSON Rate"].to_numpy(),
        "Valid JSON Rate 2": second["Valid JSON Rate"].to_numpy()})
    diff = table["Variance 1"] - table["Variance 2"]
    table["Steadier"] = np.select([diff < 0, diff > 0, diff == 0], ["model 1", "model 2", "tie"], "n/a")
    return table[columns]


# --- the Guide sheet -------------------------------------------------------------------------

F_EQUALS_T2 = ("A two-group one-way ANOVA's F equals the pooled t-test's t² (same p-value): it "
               "compares means, not variances. The original study read it as a variance test; "
               "for variances read Levene / Brown-Forsythe.")

GUIDE: list[tuple[str, str, str]] = [
    ("Model Details", "Model Name", "Model folder name (':' replaced by '_')."),
    ("Model Details", "Family", "Model name without its quantization suffix."),
    ("Model Details", "Quantization Level", "q4_K_M, q5_K_M, q8_0, fp16, ... parsed from the name ('Q8' = q8_0, 'F16' = fp16)."),
    ("Model Details", "Mean Sentiment", "Mean of all valid sentiments (every article and iteration pooled)."),
    ("Model Details", "Sentiment Variance", "Population variance (ddof=0, as the original) of the pooled valid sentiments: mixes disagreement between articles with inconsistency over iterations."),
    ("Model Details", "Sentiment Std", "Square root of Sentiment Variance."),
    ("Model Details", "Mean Per-Article Variance", "Mean over articles of the variance over iterations: the consistency the study asks about (0 = same answer every time)."),
    ("Model Details", "Valid JSON Rate", "Valid answers / all answers."),
    ("Model Details", "Mean Inference Time (s)", "Mean time_taken of the valid answers."),
    ("Model Details", "Mean Confidence", "Mean self-reported confidence of the valid answers."),
    ("Model Details", "Answers", "Answers read (articles × iterations)."),
    ("Model Details", "Valid Answers", "Answers that parsed as a valid sentiment JSON."),
    ("Model Details", "Articles", "Distinct article keys answered."),
    ("Model Details", "Iterations", "Iteration files read."),
    ("Statistical Comparisons", "Comparison", "'model 1 vs model 2', one row per comparison_pairs entry."),
    ("Statistical Comparisons", "F-Statistic", "Original column: scipy f_oneway on the two models' pooled valid sentiments. " + F_EQUALS_T2),
    ("Statistical Comparisons", "F-Test P-Value", "P-value of F-Statistic: equal means (not variances), same as T-Test P-Value."),
    ("Statistical Comparisons", "T-Statistic", "Original column: Student's t (scipy ttest_ind, pooled variance) on the pooled valid sentiments; t² = F."),
    ("Statistical Comparisons", "T-Test P-Value", "P-value of Student's t: equal means, assuming equal variances and independent answers."),
    ("Statistical Comparisons", "Model 1", "First model of the pair (folder name)."),
    ("Statistical Comparisons", "Model 2", "Second model of the pair (folder name)."),
    ("Statistical Comparisons", "N 1", "Valid answers of model 1."),
    ("Statistical Comparisons", "N 2", "Valid answers of model 2."),
    ("Statistical Comparisons", "Mean 1", "Mean pooled valid sentiment of model 1."),
    ("Statistical Comparisons", "Mean 2", "Mean pooled valid sentiment of model 2."),
    ("Statistical Comparisons", "Variance 1", "Population variance of model 1's pooled valid sentiments."),
    ("Statistical Comparisons", "Variance 2", "Population variance of model 2's pooled valid sentiments."),
    ("Statistical Comparisons", "Variance Ratio", "Variance 1 / Variance 2 (< 1: model 1 spreads less)."),
    ("Statistical Comparisons", "Levene W", "Levene's test statistic (centred on the mean): a real test of equal variances."),
    ("Statistical Comparisons", "Levene P-Value", "Small: the two models' variances differ."),
    ("Statistical Comparisons", "Brown-Forsythe W", "Levene's test centred on the median (Brown-Forsythe): equal variances, robust to skew and outliers."),
    ("Statistical Comparisons", "Brown-Forsythe P-Value", "Small: the variances differ; the preferred variance test here."),
    ("Statistical Comparisons", "Welch T", "Welch's t (scipy ttest_ind equal_var=False): equal means without assuming equal variances."),
    ("Statistical Comparisons", "Welch P-Value", "Small: the means differ."),
    ("Statistical Comparisons", "Paired Articles", "Articles with valid answers from both models (pairs for Wilcoxon)."),
    ("Statistical Comparisons", "Mean Paired Difference", "Mean over articles of (model 1's mean sentiment − model 2's)."),
    ("Statistical Comparisons", "Wilcoxon W", "Wilcoxon signed-rank statistic on per-article mean sentiments: paired by article, so differences between articles cancel."),
    ("Statistical Comparisons", "Wilcoxon P-Value", "Small: one model rates the same articles systematically higher."),
    ("Statistical Comparisons", "Mean Article Variance 1", "Mean over articles of model 1's sentiment variance over iterations: its consistency (0 = same answer every time)."),
    ("Statistical Comparisons", "Mean Article Variance 2", "The same for model 2."),
    ("Statistical Comparisons", "Consistency Wilcoxon W", "Wilcoxon signed-rank statistic on the two models' per-article variances, paired by article."),
    ("Statistical Comparisons", "Consistency Wilcoxon P-Value", "Small: one model is steadier over iterations on the same articles (the study's question; the pooled variance tests also count disagreement between articles)."),
    ("Statistical Comparisons", "Cohen's d", "(Mean 1 − Mean 2) / pooled sample std: effect size (0.2 small, 0.5 medium, 0.8 large)."),
    ("Statistical Comparisons", "Valid JSON Rate 1", "Valid answers / answers of model 1."),
    ("Statistical Comparisons", "Valid JSON Rate 2", "Valid answers / answers of model 2."),
    ("Statistical Comparisons", "Fisher P-Value", "Fisher's exact test on the 2×2 table valid/invalid × model: small = the valid-JSON rates differ."),
    *[("Statistical Comparisons", adjusted, f"{raw} adjusted by Holm's method across all pairs (statsmodels multipletests), controlling the family-wise error rate.")
      for raw, adjusted in HOLM_OF.items()],
    ("Statistical Comparisons", "Note", "Why a value is NaN (too few answers, no variance, identical groups)."),
    ("Quantization ANOVA", "Family", "Models sharing a name up to the quantization suffix (or eval.quantization_families)."),
    ("Quantization ANOVA", "Levels", "Quantization levels compared."),
    ("Quantization ANOVA", "Models", "Model folders of the family."),
    ("Quantization ANOVA", "Valid Answers per Level", "Valid answers of each level."),
    ("Quantization ANOVA", "Means per Level", "Mean pooled valid sentiment of each level."),
    ("Quantization ANOVA", "ANOVA F", "One-way ANOVA (scipy f_oneway) across levels: equal means."),
    ("Quantization ANOVA", "ANOVA P-Value", "Small: quantization changes the mean sentiment."),
    ("Quantization ANOVA", "Brown-Forsythe W", "Brown-Forsythe across levels: equal variances."),
    ("Quantization ANOVA", "Brown-Forsythe P-Value", "Small: quantization changes the spread of sentiments."),
    ("Quantization ANOVA", "Paired Articles", "Articles answered validly by every level (blocks for Friedman)."),
    ("Quantization ANOVA", "Friedman Chi2", "Friedman test on per-article mean sentiments, articles as blocks (3+ levels)."),
    ("Quantization ANOVA", "Friedman P-Value", "Small: levels rate the same articles differently."),
    ("Quantization ANOVA", "Note", "Why a value is NaN or a level was left out."),
    ("Article Consistency", "Article Key", "First 8 hex digits of md5(url)."),
    ("Article Consistency", "Models", "Models that answered the article."),
    ("Article Consistency", "Mean Variance", "Mean over models of the sentiment variance over iterations."),
    ("Article Consistency", "Median Variance", "Median of the same."),
    ("Article Consistency", "Share Zero Variance", "Share of models that gave the same sentiment in every iteration."),
    ("Article Consistency", "Most Consistent Model", "Model with the lowest variance on the article."),
    ("Article Consistency", "Least Consistent Model", "Model with the highest variance on the article."),
    ("Article Consistency", "Max Variance", "Highest variance of any model."),
    ("Article Consistency", "Mean of Model Means", "Mean over models of their mean sentiment."),
    ("Article Consistency", "Std of Model Means", "Population std of the models' mean sentiments: how much models disagree."),
    ("Article Consistency", "Valid JSON Rate", "Mean valid-JSON rate over models."),
    ("Article Consistency", "URL", "The article."),
    ("Article Consistency", "Published", "Its publication date."),
    ("Pair Articles", "Comparison", "The pair."),
    ("Pair Articles", "Article Key", "The article."),
    ("Pair Articles", "Variance 1", "Model 1's sentiment variance over iterations on the article."),
    ("Pair Articles", "Variance 2", "Model 2's."),
    ("Pair Articles", "Mean Sentiment 1", "Model 1's mean sentiment on the article."),
    ("Pair Articles", "Mean Sentiment 2", "Model 2's."),
    ("Pair Articles", "Valid JSON Rate 1", "Model 1's valid-JSON rate on the article."),
    ("Pair Articles", "Valid JSON Rate 2", "Model 2's."),
    ("Pair Articles", "Steadier", "The model with the lower variance on the article (tie, or n/a without data)."),
    ("Notes", "Note", "Files, iterations, answers or models left out while reading, with the reason."),
]


def guide() -> pd.DataFrame:
    return pd.DataFrame(GUIDE, columns=["Sheet", "Column", "What it means / tests"])


def comparison_sheets(data: SentimentData, metrics: pd.DataFrame, pairs: Sequence[tuple[str, str]],
                      families: Mapping[str, Sequence[str]]) -> dict[str, pd.DataFrame]:
    """Every sheet of the comparison workbook, in order."""
    return {"Model Details": model_details(data),
            "Statistical Comparisons": pair_comparisons(data, pairs),
            "Quantization ANOVA": quantization_anova(data, families),
            "Article Consistency": article_consistency(metrics, data),
            "Pair Articles": pair_articles(metrics, pairs),
            "Guide": guide()}
