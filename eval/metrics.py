"""Per model × article metrics over the iterations, with the original study's column names.

Definitions (as the original, so its published `model_metrics.csv` reproduces):
* Inference Rate (s): mean `time_taken` of the valid answers;
* Valid JSON Rate: valid answers / answers;
* Sentiment Variance: population variance (ddof=0) of the valid sentiments;
* Mean Sentiment, Mean Confidence: means over the valid answers.
Where an article has no valid answer the four valid-only columns are NaN (the original
wrote 0, indistinguishable from a real 0).

Also the per-model table (`model_details`) and the model-name facts (quantization level,
family) that the comparisons and the heatmaps share; nothing here needs scipy.
"""
from __future__ import annotations

import re

import pandas as pd

from eval.sentiment_files import SentimentData

KEYS = ["Model Name", "Article Key"]
METRIC_COLUMNS = ["Inference Rate (s)", "Valid JSON Rate", "Sentiment Variance",
                  "Mean Sentiment", "Mean Confidence"]
COUNT_COLUMNS = ["Valid Answers", "Answers"]
COLUMNS = KEYS + METRIC_COLUMNS + COUNT_COLUMNS
QUANT_SUFFIX = re.compile(r"[-._:](?P<level>q\d(?:_k(?:_[sml])?|_\d)?|fp16|f16|bf16|fp32|f32)$",
                          re.IGNORECASE)
QUANT_ORDER = ["q2_K", "q3_K_S", "q3_K_M", "q3_K_L", "q4_0", "q4_1", "q4_K_S", "q4_K_M",
               "q5_0", "q5_1", "q5_K_S", "q5_K_M", "q6_K", "q8_0", "bf16", "fp16", "fp32"]


def article_metrics(data: SentimentData) -> pd.DataFrame:
    """One row per model and article, in the order models and articles were read."""
    answers = data.answers
    by = ["model", "article_key"]
    all_answers = answers.groupby(by, sort=False)
    table = pd.DataFrame({"Answers": all_answers.size(), "Valid Answers": all_answers["valid"].sum()})
    valid = answers[answers["valid"]].groupby(by, sort=False)
    table["Inference Rate (s)"] = valid["time_taken"].mean()
    table["Valid JSON Rate"] = table["Valid Answers"] / table["Answers"]
    table["Sentiment Variance"] = valid["sentiment"].var(ddof=0)
    table["Mean Sentiment"] = valid["sentiment"].mean()
    table["Mean Confidence"] = valid["confidence"].mean()
    table = table.rename_axis(KEYS).reset_index()
    return table[COLUMNS]


def metric_grid(metrics: pd.DataFrame, column: str, models: list[str]) -> pd.DataFrame:
    """Model × article grid of one metric column (rows in `models` order)."""
    articles = list(dict.fromkeys(metrics["Article Key"]))
    grid = metrics.pivot(index="Model Name", columns="Article Key", values=column)
    return grid.reindex(index=[m for m in models if m in grid.index], columns=articles)


# --- model names ---------------------------------------------------------------

def quantization_level(model: str) -> str | None:
    """Canonical quantization of a model name's suffix: q4_K_M, q5_K_M, q8_0, fp16, ..."""
    match = QUANT_SUFFIX.search(model)
    if match is None:
        return None
    level = match["level"].lower()
    if level in ("f16", "fp16"):
        return "fp16"
    if level in ("f32", "fp32"):
        return "fp32"
    if re.fullmatch(r"q\d", level):  # "Q8" in the original's names means q8_0
        return f"{level}_0"
    return level.replace("_k", "_K").replace("_s", "_S").replace("_m", "_M").replace("_l", "_L")


def model_family(model: str) -> str:
    """The model name without its quantization suffix."""
    match = QUANT_SUFFIX.search(model)
    return model[:match.start()] if match else model


# --- per model ---------------------------------------------------------------------------

def model_details(data: SentimentData) -> pd.DataFrame:
    """One row per model: pooled sentiment mean/variance/std (population, as the original),
    mean per-article variance (consistency), valid-JSON rate, mean inference time, counts."""
    answers = data.answers
    valid = answers[answers["valid"]]
    by_model = answers.groupby("model", sort=False)
    by_valid = valid.groupby("model", sort=False)
    per_article_var = valid.groupby(["model", "article_key"], sort=False)["sentiment"].var(ddof=0)
    table = pd.DataFrame(index=pd.Index(data.models, name="Model Name"))
    table["Family"] = [model_family(m) for m in data.models]
    table["Quantization Level"] = [quantization_level(m) or "" for m in data.models]
    table["Mean Sentiment"] = by_valid["sentiment"].mean()
    table["Sentiment Variance"] = by_valid["sentiment"].var(ddof=0)
    table["Sentiment Std"] = by_valid["sentiment"].std(ddof=0)
    table["Mean Per-Article Variance"] = per_article_var.groupby(level="model").mean()
    table["Valid JSON Rate"] = by_model["valid"].mean()
    table["Mean Inference Time (s)"] = by_valid["time_taken"].mean()
    table["Mean Confidence"] = by_valid["confidence"].mean()
    table["Answers"] = by_model.size()
    table["Valid Answers"] = by_model["valid"].sum()
    table["Articles"] = by_model["article_key"].nunique()
    table["Iterations"] = data.files.groupby("model")["iteration"].nunique()
    table[["Answers", "Valid Answers", "Articles", "Iterations"]] = (
        table[["Answers", "Valid Answers", "Articles", "Iterations"]].fillna(0).astype(int))
    return table.reset_index()
