"""The report scripts, run as real subprocesses on the published reference data (34 models ×
14 iterations × 19 articles) laid out as the original study's users hold it (folder names
that differ from the config in case, 4 models and 8 pairs never committed), with its config
unchanged: the published rows reproduce, the comparison workbook's original columns equal
scipy on the same pooled data, the heatmap files, the HTML report."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from bs4 import BeautifulSoup
from PIL import Image
from scipy import stats

from eval.heatmaps import HEATMAPS, SUMMARY_FILE, CellTexts, build_heatmap, metric_jobs
from eval.metrics import METRIC_COLUMNS, article_metrics
from eval.sentiment_files import load_sentiments
from finsent.config import load_config
from tests.conftest import run_script
from tests.reports_data import LOWER_CASE_PREFIX, UNCOMMITTED_PREFIX, original_study_layout

pytestmark = pytest.mark.slow

SHEETS = ["Model Details", "Statistical Comparisons", "Quantization ANOVA", "Article Consistency",
          "Pair Articles", "Guide", "Notes"]


@pytest.fixture(scope="module")
def reference(shared_data) -> Path:
    return shared_data / "reference_eval_msft"


MISSING_MODELS = [f"{UNCOMMITTED_PREFIX}{level}" for level in ("Q4_K_M", "Q5_K_M", "Q8", "F16")]
SCRIPTS = ("eval/generate_model_metrics.py", "eval/generate_model_comparison_report.py",
           "eval/generate_heatmaps.py", "eval/generate_report.py")


@pytest.fixture(scope="module")
def layout(reference, tmp_path_factory) -> Path:
    return original_study_layout(reference / "sentiments", tmp_path_factory.mktemp("original") / "sentiments")


@pytest.fixture(scope="module")
def outputs(reference, layout, tmp_path_factory) -> Path:
    """Run the report scripts once, from a scratch folder, with the original study's config
    unchanged; each script's stderr is kept as <script name>.stderr."""
    out = tmp_path_factory.mktemp("reports")
    for script in SCRIPTS:
        result = run_script(script, "--config", reference / "config.yaml", "--sentiments", layout, cwd=out)
        assert result.returncode == 0, result.stderr[-2000:]
        (out / f"{Path(script).stem}.stderr").write_text(result.stderr)
    return out


def warnings_of(outputs: Path, script: str) -> list[str]:
    return [line for line in (outputs / f"{script}.stderr").read_text().splitlines() if " WARNING " in line]


def test_models_and_pairs_without_a_folder_are_one_warning_line_each(outputs):
    for script in SCRIPTS:
        (models,) = [line for line in warnings_of(outputs, Path(script).stem) if "models_to_test" in line]
        assert "no folder" in models and "4 model(s)" in models and "--strict" in models
        assert all(name in models for name in MISSING_MODELS), models
    (pairs,) = [line for line in warnings_of(outputs, "generate_model_comparison_report") if "pairs" in line]
    assert "8 comparison_pairs entries" in pairs
    assert [int(n) for n in re.findall(r"(\d+) \('", pairs)] == list(range(13, 21))


def test_strict_makes_a_missing_folder_one_error_line(reference, layout, tmp_path):
    result = run_script("eval/generate_model_metrics.py", "--config", reference / "config.yaml",
                        "--sentiments", layout, "--strict", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert "4 model(s)" in error and all(name in error for name in MISSING_MODELS)
    assert not (tmp_path / "reports").exists()


def read_sheet(path: Path, sheet: str) -> pd.DataFrame:
    return pd.read_excel(path, sheet_name=sheet, engine="openpyxl")


def test_metrics_reproduce_the_published_rows(outputs, reference):
    published = pd.read_csv(reference / "reports" / "model_metrics.csv")
    published = published[~published["Model Name"].str.startswith(UNCOMMITTED_PREFIX)]
    ours = pd.read_csv(outputs / "reports" / "model_metrics.csv")
    assert len(published) == len(ours) == 646 - 4 * 19
    lowered = ours["Model Name"].str.startswith(LOWER_CASE_PREFIX)
    assert ours.loc[lowered, "Model Name"].str.contains("_k_m").any()  # the folders' own names
    # same rows, same order; names equal ignoring case
    assert (ours["Model Name"].str.casefold().to_numpy() == published["Model Name"].str.casefold().to_numpy()).all()
    assert (ours["Article Key"].to_numpy() == published["Article Key"].to_numpy()).all()
    no_valid = ours["Valid JSON Rate"].eq(0)
    for column in METRIC_COLUMNS:
        close = np.abs(ours[column].to_numpy() - published[column].to_numpy()) <= 0.01 + 1e-9
        # the original wrote 0 where an article had no valid answer; we write NaN
        blank = ours[column].isna().to_numpy() & no_valid.to_numpy() & published[column].eq(0).to_numpy()
        assert (close | blank).all(), column
    assert no_valid.sum() == ours["Mean Sentiment"].isna().sum() > 0
    workbook = openpyxl.load_workbook(outputs / "reports" / "model_metrics.xlsx")
    assert workbook.sheetnames == ["Model Details", "Notes"]
    assert workbook["Model Details"].max_row == len(ours) + 1
    notes = read_sheet(outputs / "reports" / "model_metrics.xlsx", "Notes")["Note"]
    assert notes.str.contains("no folder").any()


def pooled_valid_sentiments(folder: Path) -> list[float]:
    """As the original read them: every answer that has a sentiment, every file of the model."""
    values = []
    for path in sorted(folder.glob("*.json")):
        values += [s["sentiment"] for s in json.loads(path.read_text())["sentiments"].values()
                   if "sentiment" in s]
    return values


def test_comparison_original_columns_equal_scipy_on_pooled_data(outputs, layout):
    table = read_sheet(outputs / "reports" / "model_comparisons.xlsx", "Statistical Comparisons")
    assert list(table.columns[:5]) == ["Comparison", "F-Statistic", "F-Test P-Value",
                                       "T-Statistic", "T-Test P-Value"]
    assert len(table) == 20 - 8
    for row in table.itertuples(index=False):
        a = pooled_valid_sentiments(layout / row[5])
        b = pooled_valid_sentiments(layout / row[6])
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
    assert len(families) == 8 and families["ANOVA P-Value"].notna().all()
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
    # 30 model rows of 0.3 in at 100 dpi plus margins
    assert 30 * 30 < height < 30 * 30 + 400 and width > 1200


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


def test_html_report_holds_every_model_and_pair(outputs):
    page = BeautifulSoup((outputs / "reports" / "report.html").read_text(encoding="utf-8"), "html.parser")
    summary, pairs = page.find_all("table")[:2]
    assert len(summary.find_all("tr")) == 1 + 30 and len(pairs.find_all("tr")) == 1 + 12
    assert "llama3_8b-instruct-sentiment_analysis-q5_k_m" in summary.get_text()
    verdicts = [p.get_text(" ", strip=True) for p in page.select("p.verdict")]
    assert len(verdicts) == 12 and all("more consistent than" in v and "Holm" in v for v in verdicts)
    assert len(page.find_all("img")) == len(HEATMAPS) + 1  # every heatmap, inline
    assert all(img["src"].startswith("data:image/png;base64,") for img in page.find_all("img"))
    assert {a["href"] for a in page.find_all("a")} >= {"model_metrics.xlsx", "model_comparisons.xlsx",
                                                       "statistical_comparisons.csv"}
