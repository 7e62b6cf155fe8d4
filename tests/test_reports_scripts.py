"""The three report scripts, run as real subprocesses on the published reference data
(34 models × 14 iterations × 19 articles): the 646-row reproduction, the comparison workbook
whose original columns equal scipy on the same pooled data, and the heatmap files."""
from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from eval.heatmaps import HEATMAPS, SUMMARY_FILE, CellTexts, build_heatmap, metric_jobs
from eval.metrics import KEYS, METRIC_COLUMNS, article_metrics
from eval.sentiment_files import load_sentiments
from utils.config import load_config
from tests.conftest import run_script

pytestmark = pytest.mark.slow

SHEETS = ["Model Details", "Statistical Comparisons", "Quantization ANOVA", "Article Consistency",
          "Pair Articles", "Guide", "Notes"]


@pytest.fixture(scope="module")
def reference(shared_data) -> Path:
    return shared_data / "reference_eval_msft"


@pytest.fixture(scope="module")
def outputs(reference, tmp_path_factory) -> Path:
    """Run the three scripts once, from a scratch folder, with the original study's config."""
    out = tmp_path_factory.mktemp("reports")
    common = ["--config", reference / "config.yaml", "--sentiments", reference / "sentiments"]
    for script in ("eval/generate_model_metrics.py", "eval/generate_model_comparison_report.py",
                   "eval/generate_heatmaps.py"):
        result = run_script(script, *common, cwd=out)
        assert result.returncode == 0, result.stderr[-2000:]
    return out


def read_sheet(path: Path, sheet: str) -> pd.DataFrame:
    return pd.read_excel(path, sheet_name=sheet, engine="openpyxl")


def test_metrics_reproduce_the_646_published_rows(outputs, reference):
    published = pd.read_csv(reference / "reports" / "model_metrics.csv")
    ours = pd.read_csv(outputs / "reports" / "model_metrics.csv")
    assert len(published) == len(ours) == 646
    assert (ours[KEYS].to_numpy() == published[KEYS].to_numpy()).all()  # same rows, same order
    no_valid = ours["Valid JSON Rate"].eq(0)
    for column in METRIC_COLUMNS:
        close = (ours[column] - published[column]).abs() <= 0.01 + 1e-9
        # the original wrote 0 where an article had no valid answer; we write NaN
        blank = ours[column].isna() & no_valid & published[column].eq(0)
        assert (close | blank).all(), column
    assert no_valid.sum() == ours["Mean Sentiment"].isna().sum() > 0
    workbook = openpyxl.load_workbook(outputs / "reports" / "model_metrics.xlsx")
    assert workbook.sheetnames == ["Model Details", "Notes"]
    assert workbook["Model Details"].max_row == 647


def pooled_valid_sentiments(folder: Path) -> list[float]:
    """As the original read them: every answer that has a sentiment, every file of the model."""
    values = []
    for path in sorted(folder.glob("*.json")):
        values += [s["sentiment"] for s in json.loads(path.read_text())["sentiments"].values()
                   if "sentiment" in s]
    return values


def test_comparison_original_columns_equal_scipy_on_pooled_data(outputs, reference):
    table = read_sheet(outputs / "reports" / "model_comparisons.xlsx", "Statistical Comparisons")
    assert list(table.columns[:5]) == ["Comparison", "F-Statistic", "F-Test P-Value",
                                       "T-Statistic", "T-Test P-Value"]
    assert len(table) == 20
    for row in table.itertuples(index=False):
        a = pooled_valid_sentiments(reference / "sentiments" / row[5])
        b = pooled_valid_sentiments(reference / "sentiments" / row[6])
        anova, student = stats.f_oneway(a, b), stats.ttest_ind(a, b)
        assert row[1] == pytest.approx(anova.statistic, rel=1e-9)
        assert row[2] == pytest.approx(anova.pvalue, rel=1e-9, abs=1e-300)
        assert row[3] == pytest.approx(student.statistic, rel=1e-9)
        assert row[4] == pytest.approx(student.pvalue, rel=1e-9, abs=1e-300)
        assert row[1] == pytest.approx(row[3] ** 2, rel=1e-9)  # F = t²


def test_comparison_workbook_has_every_sheet_styled(outputs):
    path = outputs / "reports" / "model_comparisons.xlsx"
    workbook = openpyxl.load_workbook(path)
    assert workbook.sheetnames == SHEETS
    comparisons = workbook["Statistical Comparisons"]
    assert comparisons.freeze_panes == "B2"
    assert comparisons["A1"].font.bold
    assert len(comparisons.conditional_formatting) > 0
    guide = read_sheet(path, "Guide")
    for sheet in SHEETS[:5]:
        described = set(guide.loc[guide["Sheet"] == sheet, "Column"])
        assert set(read_sheet(path, sheet).columns) <= described, sheet
    f_line = guide.loc[guide["Column"] == "F-Statistic", "What it means / tests"].item()
    assert "F equals" in f_line and "t²" in f_line and "means, not variances" in f_line
    families = read_sheet(path, "Quantization ANOVA")
    assert len(families) == 9 and families["ANOVA P-Value"].notna().all()
    for name in ("model_details", "statistical_comparisons", "quantization_anova",
                 "article_consistency", "pair_articles"):
        assert (outputs / "reports" / f"{name}.csv").stat().st_size > 200


def test_heatmaps_are_nontrivial_pngs_one_row_per_model(outputs):
    folder = outputs / "heatmaps"
    sizes = {}
    for name in [spec.file_name for spec in HEATMAPS] + [SUMMARY_FILE]:
        path = folder / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 50_000
        with Image.open(path) as image:
            sizes[name] = image.size
            colours = len(image.convert("RGB").resize((200, 200)).getcolors(maxcolors=40_000))
        assert colours > 50, name  # a picture, not a blank canvas
    width, height = sizes["mean_sentiment_heatmap.png"]
    # 34 model rows of 0.3 in at 100 dpi plus margins
    assert 34 * 30 < height < 34 * 30 + 400 and width > 1200


def test_heatmap_figure_has_one_row_per_model_and_a_text_per_value(reference):
    config = load_config(reference / "config.yaml").eval
    data = load_sentiments(reference / "sentiments", config.models_to_test)
    job = metric_jobs(article_metrics(data), data.models, Path("unused"))[0]
    figure = build_heatmap(job)
    ax = figure.axes[0]
    assert ax.collections[0].get_array().shape == (34, 20)  # 19 articles + the mean
    assert [label.get_text() for label in ax.get_yticklabels()] == data.models
    (labels,) = [artist for artist in ax.get_children() if isinstance(artist, CellTexts)]
    assert len(labels.texts) == job.grid.notna().to_numpy().sum()
    assert labels.texts[0] == f"{job.grid.iloc[0, 0]:.2f}" and tuple(labels.centres[0]) == (0.5, 0.5)
    last = job.grid.iloc[-1, -1]  # the last model's mean, in the bottom-right cell
    assert labels.texts[-1] == f"{last:.2f}" and tuple(labels.centres[-1]) == (19.5, 33.5)
