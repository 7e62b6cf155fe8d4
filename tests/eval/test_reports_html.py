"""The one HTML report: written by eval/generate_report.py from real report outputs, rendered
by headless Chromium (Debian's `chromium`, installed by .ci/run) offline: the screenshot is a
page, not a blank canvas, and the page's text holds the tables and the verdicts."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from bs4 import BeautifulSoup
from PIL import Image

from eval.html_report import pair_verdict
from eval.labelled import write_outputs
from tests.conftest import run_script
from tests.reports_data import labelled_metrics, write_config, write_model

pytestmark = pytest.mark.slow


def chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("chromium not found: `apt-get install chromium` (.ci/run installs it)")
    return binary


def headless(tmp_path: Path, *args: str) -> str:
    result = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                             f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """Three models (one steady, one jumpy, one that loses some answers), the comparison
    workbook, the heatmaps, one evaluate_labelled output, then the HTML report."""
    folder = tmp_path_factory.mktemp("html")
    rng = np.random.default_rng(5)
    means = rng.uniform(-0.5, 0.5, 8)
    write_model(folder / "sentiments", "steady:7b-q4_K_M", (means + rng.normal(0, 0.01, (6, 8))).round(3).tolist())
    write_model(folder / "sentiments", "jumpy:7b-q4_K_M", np.clip(means + rng.normal(0, 0.3, (6, 8)), -1, 1).round(3).tolist())
    flaky = (means + rng.normal(0, 0.05, (6, 8))).round(3).tolist()
    flaky[0][:3] = [None] * 3
    write_model(folder / "sentiments", "flaky", flaky)
    config = write_config(folder / "config.yaml", folder / "sentiments",
                          models=["steady:7b-q4_K_M", "jumpy:7b-q4_K_M", "flaky"],
                          pairs=[["steady:7b-q4_K_M", "jumpy:7b-q4_K_M"], ["flaky", "steady_7b-q4_K_M"]])
    predictions, metrics = labelled_metrics(0.5)
    write_outputs(folder / "reports" / "labelled", predictions, metrics)
    for script in ("eval/generate_model_comparison_report.py", "eval/generate_heatmaps.py", "eval/generate_report.py"):
        result = run_script(script, "--config", config, cwd=folder)
        assert result.returncode == 0, result.stderr[-2000:]
    assert "HTML report: reports/report.html" in result.stdout
    return folder / "reports" / "report.html"


def test_report_is_one_self_contained_file(report):
    page = BeautifulSoup(report.read_text(encoding="utf-8"), "html.parser")
    assert not page.find_all(["script", "link", "iframe"])
    images = page.find_all("img")
    assert len(images) == 6 + 1  # the heatmaps and the confusion matrix
    assert all(img["src"].startswith("data:image/png;base64,") for img in images)
    hrefs = [a["href"] for a in page.find_all("a")]
    assert "model_comparisons.xlsx" in hrefs and "labelled/metrics.xlsx" in hrefs
    assert all((report.parent / href).is_file() for href in hrefs)  # relative, and there


def test_chromium_renders_the_page_with_its_tables(report, tmp_path):
    url = report.resolve().as_uri()
    screenshot = tmp_path / "report.png"
    headless(tmp_path, "--window-size=1280,1800", f"--screenshot={screenshot}", url)
    with Image.open(screenshot) as image:
        grey = np.asarray(image.convert("L"))
    assert grey.shape == (1800, 1280)
    assert (grey < 200).mean() > 0.02 and len(np.unique(grey)) > 50  # text and tables, not blank

    page = BeautifulSoup(headless(tmp_path, "--dump-dom", url), "html.parser")
    headers = {" ".join(th.get_text().split()) for th in page.find_all("th")}
    assert {"Model Name", "Valid JSON Rate", "Mean Per-Article Variance", "Comparison",
            "Consistency Wilcoxon P (Holm)", "Weighted F1", "t chosen"} <= headers
    summary, pairs, accuracy = page.find_all("table")
    assert "NaN" not in page.get_text()  # a missing value reads "–"
    assert [tr.td.get_text() for tr in summary.find_all("tr")[1:]] == ["steady_7b-q4_K_M", "jumpy_7b-q4_K_M", "flaky"]
    assert len(pairs.find_all("tr")) == 1 + 2
    assert "gemma3-270m" in accuracy.get_text()
    verdicts = [p.get_text(" ", strip=True) for p in page.select("p.verdict")]
    assert verdicts[0].startswith("steady_7b-q4_K_M is more consistent than jumpy_7b-q4_K_M")
    assert "significant after Holm's correction over 2 pairs" in verdicts[0]


def test_verdicts_say_who_by_how_much_and_whether_it_holds():
    row = {"Model 1": "a", "Model 2": "b", "Mean Article Variance 1": 0.03, "Mean Article Variance 2": 0.01,
           "Consistency Wilcoxon P (Holm)": 0.004, "Paired Articles": 19, "Note": ""}
    assert pair_verdict(row, 12) == (
        "b is more consistent than a: its answer to the same article varies 3.0× less between iterations "
        "(mean per-article variance 0.0100 against 0.0300). The difference is significant after Holm's "
        "correction over 12 pairs (Wilcoxon signed-rank over 19 articles, p = 0.004).")
    row["Consistency Wilcoxon P (Holm)"] = 0.31
    assert pair_verdict(row, 12).endswith("is not significant after Holm's correction over 12 pairs "
                                          "(Wilcoxon signed-rank over 19 articles, p = 0.31): it may be chance.")
    row.update({"Mean Article Variance 1": float("nan"),
                "Note": "fewer than 2 valid answers (0 and 30); no article with valid answers from both models"})
    assert pair_verdict(row, 1) == "Cannot compare a and b: fewer than 2 valid answers (0 and 30)."
